// Deployed at the Sentinel workspace's resource group (which may be in another
// resource group or subscription than the application): role assignments
// scoped to the workspace itself, and the automation rule that runs the
// playbook on every new incident.

@description('Name of the existing Sentinel-enabled Log Analytics workspace.')
param workspaceName string

@description('Principal (object) id of the Function App\'s user-assigned identity.')
param functionPrincipalId string

@description('Principal (object) id of the playbook\'s system-assigned identity.')
param playbookPrincipalId string

@description('Resource id of the playbook (Logic App) the automation rule runs.')
param playbookResourceId string

@description('Tenant of the playbook.')
param playbookTenantId string = tenant().tenantId

@description('Create the automation rule that runs the playbook on incident creation.')
param enableAutomationRule bool = true

@description('Order of the automation rule among the workspace\'s rules (1-1000).')
@minValue(1)
@maxValue(1000)
param automationRuleOrder int = 100

var roles = {
  logAnalyticsDataReader: '3b03c2da-16b3-4a49-8834-0f8130efdd3b'
  sentinelResponder: '3e150937-b8fe-4cfb-8069-0eaf05ecd056'
  sentinelReader: '8d289c81-5878-46d4-8554-54e1e3d8b5cb'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

// Function identity, Log Analytics Data Reader on the workspace: the KQL query
// over DeviceNetworkEvents and DeviceNetworkInfo (workspaces/query/read and
// tables/data/read). Narrower than Log Analytics Reader, which adds */read.
resource functionQueryReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, functionPrincipalId, roles.logAnalyticsDataReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity, Microsoft Sentinel Responder on the workspace: PUT
// incidents/{id}/comments (the triage comment), GET the incident and POST
// incidents/{id}/entities. The narrowest built-in role that can write incident
// comments; Microsoft Sentinel Reader cannot, Contributor could also edit rules.
resource functionSentinelResponder 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, functionPrincipalId, roles.sentinelResponder)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.sentinelResponder)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Playbook identity, Microsoft Sentinel Reader on the workspace: the Microsoft
// Sentinel connector of the incident trigger authenticates as this identity.
// The playbook changes nothing in Sentinel, so read is enough.
resource playbookSentinelReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, playbookPrincipalId, roles.sentinelReader)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.sentinelReader)
    principalId: playbookPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Runs the playbook on every incident created from now on.
resource automationRule 'Microsoft.SecurityInsights/automationRules@2023-02-01' = if (enableAutomationRule) {
  name: guid(workspace.id, playbookResourceId, 'lateral-movement-triage')
  scope: workspace
  properties: {
    displayName: 'Lateral-movement triage on incident creation'
    order: automationRuleOrder
    triggeringLogic: {
      isEnabled: true
      triggersOn: 'Incidents'
      triggersWhen: 'Created'
      conditions: []
    }
    actions: [
      {
        order: 1
        actionType: 'RunPlaybook'
        actionConfiguration: {
          logicAppResourceId: playbookResourceId
          tenantId: playbookTenantId
        }
      }
    ]
  }
}

output automationRuleName string = enableAutomationRule ? automationRule.name : ''
