// Role assignments inside the application's resource group.
// Role definition ids are Azure built-in roles (the same in every tenant).

@description('Name of the Function App\'s storage account.')
param storageAccountName string

@description('Name of the triage-requests queue.')
param queueName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Principal (object) id of the Function App\'s user-assigned identity.')
param functionPrincipalId string

@description('Principal (object) id of the playbook\'s system-assigned identity.')
param playbookPrincipalId string

@description('Whether the playbook enqueues incidents (false when it calls the HTTP trigger instead).')
param playbookUsesQueue bool = true

@description('Object id of the "Azure Security Insights" service principal in this tenant; empty skips that assignment.')
param sentinelAutomationPrincipalId string = ''

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  sentinelAutomationContributor: 'f4c81013-99ee-4d62-a7ee-b3f1f648599a'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource queueService 'queueServices' existing = {
    name: 'default'

    resource queue 'queues' existing = {
      name: queueName
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Function identity, Storage Blob Data Owner on the account: the Functions host
// keeps its locks and keys in blobs (identity-based AzureWebJobsStorage), and
// Flex Consumption reads the deployment package from the app-package container.
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity, Storage Queue Data Contributor on the account: the queue
// trigger reads and deletes triage-requests messages and creates
// triage-requests-poison; the HTTP trigger's output binding adds messages.
resource functionQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Function identity, Monitoring Metrics Publisher on Application Insights:
// telemetry ingestion with Entra ID (the component has local auth disabled).
resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Playbook identity, Storage Queue Data Message Sender on the triage-requests
// queue only: the "put the incident on the queue" HTTP action. It can neither
// read nor delete messages, nor touch any other queue.
resource playbookQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (playbookUsesQueue) {
  name: guid(storage::queueService::queue.id, playbookPrincipalId, roles.storageQueueDataMessageSender)
  scope: storage::queueService::queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: playbookPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Sentinel's own service principal ("Azure Security Insights"), Microsoft
// Sentinel Automation Contributor on this resource group: lets the automation
// rule run the playbook (trigger the Logic App). Its object id differs per tenant.
resource sentinelRunsPlaybooks 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(sentinelAutomationPrincipalId)) {
  name: guid(resourceGroup().id, sentinelAutomationPrincipalId, roles.sentinelAutomationContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.sentinelAutomationContributor)
    principalId: sentinelAutomationPrincipalId
    principalType: 'ServicePrincipal'
  }
}
