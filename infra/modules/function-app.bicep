metadata name = 'Function app (Flex Consumption)'
metadata description = 'FC1 plan and a Python 3.11 function app whose every connection is identity-based; the webhook secret is a Key Vault reference.'

@description('Required. Function app name.')
param name string

@description('Required. Flex Consumption plan name.')
param planName string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags (azd-service-name is added here).')
param tags object

@description('Optional. azd service name the app is tagged with (azure.yaml services key).')
param serviceName string = 'api'

@description('Required. Resource id of the user-assigned identity.')
param identityId string

@description('Required. Client id of the user-assigned identity.')
param identityClientId string

@description('Required. Storage account name for AzureWebJobsStorage.')
param storageAccountName string

@description('Required. Blob endpoint of that account, with trailing slash.')
param storageBlobEndpoint string

@description('Required. Blob container for the deployment package.')
param deploymentContainerName string

@description('Required. Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Required. Application settings beyond the host\'s own (PSC_*, COSMOS__*, ServiceBusConnection__*, queue names).')
param appSettings object

@description('Optional. Extra settings as [{name, value}] (one per Service Bus queue, topic and subscription: its setting name and entity name).')
param extraAppSettings array = []

@description('Optional. Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Ceiling on instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Optional. Always-ready instances of the HTTP trigger group (0 = scale from zero, with cold starts).')
@minValue(0)
param alwaysReadyHttpInstances int = 0

@description('Optional. Concurrent HTTP requests one instance takes (Python defaults to 1; handlers are async).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Optional. Subnet id for VNet integration; empty for none.')
param virtualNetworkSubnetId string = ''

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Optional. Browser origins allowed to call the API (platform CORS; `*` alone allows all). Empty: none.')
param corsAllowedOrigins array = []

var allSettings = union(appSettings, {
  // Host storage through the identity: no AzureWebJobsStorage connection string.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Not a secret (endpoint + instrumentation key): local auth is off, ingestion needs the Entra token below.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
})

var settingsList = [
  for setting in items(allSettings): {
    name: setting.key
    value: setting.value
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is offered per region and not assumed here; turning it on is a per-region decision once the target region supports it.
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_212: Flex Consumption has no fixed instance count to raise; it scales per trigger group (alwaysReady and maximumInstanceCount).
  // checkov:skip=CKV_AZURE_17: Client certificates do not fit the callers (browsers, bots); callers authenticate with Entra tokens or webhook signatures.
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  // checkov:skip=CKV_AZURE_222: The app is the public API for portals, consoles and bots; its backends sit behind private endpoints when enablePrivateNetworking is on.
  // checkov:skip=CKV_AZURE_213: The Flex Consumption plan has no App Service health check; GET /api/health answers for external probes.
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(settingsList, extraAppSettings)
      // The platform answers CORS in front of the functions; the code adds no CORS headers.
      // Callers send bearer tokens, not cookies: no credentials mode.
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReadyHttpInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyHttpInstances }] : []
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: workspaceId
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

@description('Function app name.')
output name string = functionApp.name

@description('Function app resource id.')
output resourceId string = functionApp.id

@description('Base URL of the app.')
output uri string = 'https://${functionApp.properties.defaultHostName}'
