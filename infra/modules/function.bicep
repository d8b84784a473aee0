// The Function App: Linux, Flex Consumption, Python 3.11, running as the
// user-assigned identity. App settings hold no key and no connection string
// with a secret: storage and Application Insights are reached with Entra ID.

@description('Name of the Function App.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags applied to the plan and the app.')
param tags object

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Name of the storage account used as AzureWebJobsStorage.')
param storageAccountName string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Connection string of Application Insights (no secret: local auth is disabled).')
param appInsightsConnectionString string

@description('Log Analytics workspace that receives the FunctionAppLogs diagnostic category.')
param logAnalyticsId string

@description('Python version; must match requirements.txt and pyproject.toml.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Upper bound of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Values of the settings triage/config.py reads (SETTINGS).
@description('Workspace (customer) id of the Sentinel workspace.')
param workspaceCustomerId string

@description('Log Analytics query endpoint.')
param logAnalyticsEndpoint string

@description('Azure Resource Manager endpoint.')
param armEndpoint string

@description('api-version of the Microsoft.SecurityInsights calls.')
param sentinelApiVersion string

@description('Hours searched before the incident\'s first activity.')
param lookbackHours string

@description('Hours searched after the incident\'s last activity.')
param followupHours string

@description('Comma-separated initiating process names to ignore.')
param excludedProcesses string

@description('Comma-separated initiating account names to ignore.')
param excludedAccounts string

@description('Seconds all Log Analytics queries of one run may take.')
param queryBudgetSeconds string

@description('Extra admin/file-sharing ports to emphasise, comma-separated, optionally named (5900=VNC).')
param adminPorts string

@description('Days before the window whose destinations are not new; 0 turns the baseline off.')
param baselineDays string

@description('true: add lateral-movement:<protocol> labels to the incident.')
param addLabels string

@description('High, Medium or Low: raise the incident to it when the rule matches; empty: never.')
param raiseSeverityTo string

@description('The rule that raises the severity: admin or any.')
param raiseSeverityWhen string

@description('true: add an incident task for the analyst.')
param createTask string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// Every setting triage/config.py reads, and only those (tests/test_infra.py checks both ways).
// Arrays rather than a loop over an object: the values are only known at deployment time.
var triageSettings = [
  {
    name: 'LOG_ANALYTICS_WORKSPACE_ID'
    value: workspaceCustomerId
  }
  {
    name: 'LOG_ANALYTICS_ENDPOINT'
    value: logAnalyticsEndpoint
  }
  {
    name: 'ARM_ENDPOINT'
    value: armEndpoint
  }
  {
    name: 'SENTINEL_API_VERSION'
    value: sentinelApiVersion
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'TRIAGE_LOOKBACK_HOURS'
    value: lookbackHours
  }
  {
    name: 'TRIAGE_FOLLOWUP_HOURS'
    value: followupHours
  }
  {
    name: 'TRIAGE_EXCLUDED_PROCESSES'
    value: excludedProcesses
  }
  {
    name: 'TRIAGE_EXCLUDED_ACCOUNTS'
    value: excludedAccounts
  }
  {
    name: 'TRIAGE_QUERY_BUDGET_SECONDS'
    value: queryBudgetSeconds
  }
  {
    name: 'TRIAGE_ADMIN_PORTS'
    value: adminPorts
  }
  {
    name: 'TRIAGE_BASELINE_DAYS'
    value: baselineDays
  }
  {
    name: 'TRIAGE_ADD_LABELS'
    value: addLabels
  }
  {
    name: 'TRIAGE_RAISE_SEVERITY_TO'
    value: raiseSeverityTo
  }
  {
    name: 'TRIAGE_RAISE_SEVERITY_WHEN'
    value: raiseSeverityWhen
  }
  {
    name: 'TRIAGE_CREATE_TASK'
    value: createTask
  }
]

// Read by the Functions host, not by our code. Identity-based AzureWebJobsStorage:
// the queue trigger, the queue output binding and the host's blobs share it.
// Flex Consumption sets the runtime itself (FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are not allowed there).
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.properties.primaryEndpoints.queue
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption needs always-ready instances (a standing cost); a triage run lost to a zone outage is retried from the queue.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: client certificates would be a second secret for the playbook to hold; the function key over TLS 1.2 is the documented control.
  // checkov:skip=CKV_AZURE_222: the Sentinel playbook (Consumption Logic App) calls in over the public endpoint; private networking is out of scope.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero and has no minimum instance count to set.
  // checkov:skip=CKV_AZURE_213: no health-check path: the app has no web endpoint to probe, and queue messages are retried and poisoned by the host.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: {
        allowedOrigins: []
      }
      appSettings: concat(hostSettings, triageSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No FTP and no basic-auth publishing: azd deploys with an Entra token.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'function-to-log-analytics'
  scope: site
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
