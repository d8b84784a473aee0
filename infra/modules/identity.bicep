// The user-assigned managed identity the Function App uses for everything:
// AzureWebJobsStorage (blobs + queues), the Flex deployment container,
// Application Insights ingestion, the Log Analytics query and the Sentinel API.

@description('Name of the user-assigned managed identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags applied to the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
