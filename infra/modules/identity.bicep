metadata name = 'User-assigned managed identity'
metadata description = 'The one identity the function app uses for every connection (storage, Cosmos DB, Service Bus, Key Vault, App Insights).'

@description('Required. Identity name.')
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id of the identity.')
output resourceId string = identity.id

@description('Client (application) id: AZURE_CLIENT_ID and the `__clientId` settings.')
output clientId string = identity.properties.clientId

@description('Principal (object) id: the target of role assignments.')
output principalId string = identity.properties.principalId

@description('Identity name.')
output name string = identity.name
