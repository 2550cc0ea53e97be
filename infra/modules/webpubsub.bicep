metadata name = 'Web PubSub'
metadata description = 'Azure Web PubSub for real-time push: Entra only (access keys disabled), the app\'s hub (no anonymous clients, no event handlers), Web PubSub Service Owner for the app identity, diagnostics; with private networking its REST API answers only through the private endpoint while browsers keep connecting over the public one.'

@description('Required. Resource name.')
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Optional. Free_F1 (20 connections, no SLA, no private endpoints: dev only) or Standard_S1.')
@allowed([
  'Free_F1'
  'Standard_S1'
])
param skuName string = 'Standard_S1'

@description('Optional. Units (1,000 concurrent connections each) on Standard_S1.')
@minValue(1)
@maxValue(100)
param capacity int = 1

@description('Required. Hub the app\'s clients connect to (PSC_WEBPUBSUB_HUB).')
param hubName string

@description('Required. Principal id of the app identity (gets Web PubSub Service Owner: mint client tokens, send, manage groups).')
param appPrincipalId string

@description('Optional. Principal id of a developer who also gets Web PubSub Service Owner, for local debugging and the contract suite. Empty: none.')
param developerPrincipalId string = ''

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Optional. Refuse REST calls from the public network: the app reaches the REST API through its private endpoint.')
param enablePrivateNetworking bool = false

// Web PubSub Service Owner: full data-plane access, including :generateToken for keyless client URLs.
var serviceOwner = '12cf5a90-567b-43ae-8102-96cf46c7d9b4'

resource webPubSub 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName == 'Free_F1' ? 'Free' : 'Standard'
    capacity: skuName == 'Free_F1' ? 1 : capacity
  }
  // checkov:skip=CKV_AZURE_176: A Web PubSub identity authenticates the service to upstream event handlers and Key Vault (custom certificates); this hub has neither: clients only receive, and the app calls the service with its own identity.
  properties: {
    disableLocalAuth: true
    disableAadAuth: false
    // Patients' and agents' browsers connect over the internet, so public access stays on; what it
    // may carry is narrowed below.
    publicNetworkAccess: 'Enabled'
    // Request types: client connections always come from the public network. The REST API (the
    // app's pushes and tokens) comes from it only without private networking; with it the public
    // network is denied the REST API and the private endpoint, which no rule can name (Azure
    // generates its connection name), gets the default action.
    networkACLs: {
      defaultAction: enablePrivateNetworking ? 'Allow' : 'Deny'
      publicNetwork: {
        allow: enablePrivateNetworking ? ['ClientConnection'] : ['ClientConnection', 'RESTAPI']
        deny: enablePrivateNetworking ? ['RESTAPI', 'ServerConnection', 'Trace'] : ['ServerConnection', 'Trace']
      }
    }
    tls: {
      clientCertEnabled: false
    }
  }
}

resource hub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: webPubSub
  name: hubName
  properties: {
    // Every client presents a token the app minted; nothing is forwarded upstream.
    anonymousConnectPolicy: 'deny'
    eventHandlers: []
    eventListeners: []
  }
}

resource appRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(webPubSub.id, appPrincipalId, serviceOwner)
  scope: webPubSub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource developerRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(webPubSub.id, developerPrincipalId, serviceOwner)
  scope: webPubSub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceOwner)
    principalId: developerPrincipalId
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: webPubSub
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
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

@description('Web PubSub resource name.')
output name string = webPubSub.name

@description('Web PubSub resource id.')
output resourceId string = webPubSub.id

@description('Endpoint the app calls with its identity (PSC_WEBPUBSUB_ENDPOINT).')
output endpoint string = 'https://${webPubSub.properties.hostName}'

@description('Hub name (PSC_WEBPUBSUB_HUB).')
output hubName string = hub.name
