// Lateral-movement triage for Microsoft Sentinel: one deployment puts the
// Function App, its storage/queue, Application Insights, the managed identity,
// the playbook and the automation rule next to an existing Sentinel workspace.
//
//   azd up
//   az deployment sub create -l <location> -f infra/main.bicep -p namePrefix=... sentinelWorkspaceResourceId=...
targetScope = 'subscription'

@minLength(2)
@maxLength(16)
@description('Prefix of every resource name (azd passes the environment name). Letters, digits and hyphens.')
param namePrefix string

@minLength(1)
@description('Region of the new resources; Flex Consumption must be offered there.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource id of the existing Sentinel-enabled Log Analytics workspace, /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>. It may be in another resource group or subscription.')
param sentinelWorkspaceResourceId string

@description('Create the automation rule that runs the playbook on every new incident.')
param enableAutomationRule bool = true

@description('false (default): the playbook puts the incident on the triage-requests queue. true: it calls POST /api/triage with a function key.')
param useHttpTrigger bool = false

@description('Object id of the "Azure Security Insights" service principal (app id 98785600-1bb7-4fb9-b9fa-19afe2c8a360) in your tenant: az ad sp show --id 98785600-1bb7-4fb9-b9fa-19afe2c8a360 --query id -o tsv. Grants it Microsoft Sentinel Automation Contributor on the new resource group so automation rules may run the playbook. Empty: skipped (grant it in Sentinel > Settings > Playbook permissions).')
param sentinelAutomationPrincipalId string = ''

@description('Resource group for the new resources; default rg-<namePrefix>. Do not use the workspace\'s own group if you will run azd down, which deletes the whole group.')
param resourceGroupName string = ''

@description('Log Analytics query endpoint (LOG_ANALYTICS_ENDPOINT); change it for sovereign clouds.')
param logAnalyticsEndpoint string = 'https://api.loganalytics.io/v1'

@description('api-version of the Microsoft.SecurityInsights calls (SENTINEL_API_VERSION).')
param sentinelApiVersion string = '2025-09-01'

@description('Hours searched before the incident\'s first activity (TRIAGE_LOOKBACK_HOURS).')
param triageLookbackHours string = '48'

@description('Hours searched after the incident\'s last activity (TRIAGE_FOLLOWUP_HOURS).')
param triageFollowupHours string = '24'

@description('Comma-separated initiating process names to ignore (TRIAGE_EXCLUDED_PROCESSES).')
param triageExcludedProcesses string = 'sensendr.exe'

@description('Comma-separated initiating account names to ignore (TRIAGE_EXCLUDED_ACCOUNTS).')
param triageExcludedAccounts string = 'local service'

@description('Seconds all Log Analytics queries of one run may take, retries included (TRIAGE_QUERY_BUDGET_SECONDS); keep it under the 230 s HTTP limit.')
param triageQueryBudgetSeconds string = '150'

@description('Extra remote-administration/file-sharing ports to emphasise, comma-separated, optionally named: 5900=VNC,8443 (TRIAGE_ADMIN_PORTS).')
param triageAdminPorts string = ''

@description('Days before the search window whose destinations are not reported as new; 0 turns it off (TRIAGE_BASELINE_DAYS).')
param triageBaselineDays string = '14'

@description('true: add labels such as lateral-movement:smb to the incident; this changes the incident (TRIAGE_ADD_LABELS).')
@allowed([
  'true'
  'false'
])
param triageAddLabels string = 'false'

@description('Raise the incident to this severity when the rule matches; empty: never (TRIAGE_RAISE_SEVERITY_TO).')
@allowed([
  ''
  'High'
  'Medium'
  'Low'
])
param triageRaiseSeverityTo string = ''

@description('The rule for raising the severity: admin (an internal device reached over an admin protocol) or any (any internal connection) (TRIAGE_RAISE_SEVERITY_WHEN).')
@allowed([
  'admin'
  'any'
])
param triageRaiseSeverityWhen string = 'admin'

@description('true: add an incident task asking the analyst to review the connections (TRIAGE_CREATE_TASK).')
@allowed([
  'true'
  'false'
])
param triageCreateTask string = 'false'

// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>
var workspaceIdParts = split(sentinelWorkspaceResourceId, '/')
var workspaceSubscriptionId = workspaceIdParts[2]
var workspaceResourceGroupName = workspaceIdParts[4]
var workspaceName = workspaceIdParts[8]

var resourceToken = toLower(uniqueString(subscription().id, namePrefix, location))
var compactPrefix = toLower(take(replace(namePrefix, '-', ''), 9))
var tags = {
  'azd-env-name': namePrefix
  application: 'lateral-movement-triage'
}
var queueName = 'triage-requests'
var deploymentContainerName = 'app-package'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${namePrefix}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
  }
}

module workspace 'modules/workspace-lookup.bicep' = {
  name: 'sentinel-workspace-lookup'
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroupName)
  params: {
    workspaceName: workspaceName
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${namePrefix}-${resourceToken}'
    appInsightsName: 'appi-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${compactPrefix}${resourceToken}'
    location: location
    tags: tags
    queueName: queueName
    deploymentContainerName: deploymentContainerName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module functionApp 'modules/function.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: 'func-${namePrefix}-${resourceToken}'
    planName: 'plan-${namePrefix}-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    workspaceCustomerId: workspace.outputs.customerId
    logAnalyticsEndpoint: logAnalyticsEndpoint
    armEndpoint: environment().resourceManager
    sentinelApiVersion: sentinelApiVersion
    lookbackHours: triageLookbackHours
    followupHours: triageFollowupHours
    excludedProcesses: triageExcludedProcesses
    excludedAccounts: triageExcludedAccounts
    queryBudgetSeconds: triageQueryBudgetSeconds
    adminPorts: triageAdminPorts
    baselineDays: triageBaselineDays
    addLabels: triageAddLabels
    raiseSeverityTo: triageRaiseSeverityTo
    raiseSeverityWhen: triageRaiseSeverityWhen
    createTask: triageCreateTask
  }
}

module playbook 'modules/playbook.bicep' = {
  name: 'playbook'
  scope: rg
  params: {
    name: 'logic-${namePrefix}-triage'
    location: location
    tags: tags
    useHttpTrigger: useHttpTrigger
    queueEndpoint: storage.outputs.queueEndpoint
    queueName: queueName
    functionAppName: functionApp.outputs.name
    functionHostName: functionApp.outputs.defaultHostName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module appRbac 'modules/app-rbac.bicep' = {
  name: 'app-role-assignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    queueName: queueName
    appInsightsName: monitoring.outputs.appInsightsName
    functionPrincipalId: identity.outputs.principalId
    playbookPrincipalId: playbook.outputs.principalId
    playbookUsesQueue: !useHttpTrigger
    sentinelAutomationPrincipalId: sentinelAutomationPrincipalId
  }
}

module sentinelAccess 'modules/sentinel-access.bicep' = {
  name: 'sentinel-access'
  scope: resourceGroup(workspaceSubscriptionId, workspaceResourceGroupName)
  params: {
    workspaceName: workspaceName
    functionPrincipalId: identity.outputs.principalId
    playbookPrincipalId: playbook.outputs.principalId
    playbookResourceId: playbook.outputs.id
    playbookTenantId: tenant().tenantId
    enableAutomationRule: enableAutomationRule
  }
  // The automation rule is accepted only once Sentinel may run the playbook.
  dependsOn: [
    appRbac
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output PLAYBOOK_ID string = playbook.outputs.id
output PLAYBOOK_PRINCIPAL_ID string = playbook.outputs.principalId
output TRIAGE_QUEUE_NAME string = queueName
output AUTOMATION_RULE_NAME string = sentinelAccess.outputs.automationRuleName
