// Reads the existing Sentinel workspace (deployed at the workspace's own
// resource group, which may be in another subscription) so the Function App
// gets its workspace (customer) id, a GUID, as LOG_ANALYTICS_WORKSPACE_ID.

@description('Name of the existing Sentinel-enabled Log Analytics workspace.')
param workspaceName string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

output customerId string = workspace.properties.customerId
output id string = workspace.id
