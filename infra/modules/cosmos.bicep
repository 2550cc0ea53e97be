metadata name = 'Cosmos DB (NoSQL)'
metadata description = 'Account with keys disabled, continuous backup, the database and every container of shared/kernel/catalog.py; data-plane RBAC for the app identity.'

@description('Required. Account name.')
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Required. SQL database name (COSMOS_DATABASE).')
param databaseName string

@description('Required. Containers from infra/catalog.json: [{name, partitionKeyPath, defaultTtl?}]. An absent defaultTtl leaves TTL off.')
param containers array

@description('Optional. `serverless` (pay per request) or `autoscale` (shared database throughput up to autoscaleMaxThroughput RU/s).')
@allowed([
  'serverless'
  'autoscale'
])
param throughputMode string = 'serverless'

@description('Optional. Autoscale ceiling in RU/s for the shared database throughput (autoscale mode only).')
@minValue(1000)
param autoscaleMaxThroughput int = 1000

@description('Required. Principal id of the app identity (gets Cosmos DB Built-in Data Contributor).')
param appPrincipalId string

@description('Optional. Use Cosmos DB\'s preview full-text languages (the account must have the multi-language full-text preview enabled): a path whose catalogue entry names a previewLanguage (Spanish) gets that analyser instead of en-US.')
param fullTextPreviewLanguages bool = false

@description('Optional. Principal id of a developer who also gets Built-in Data Contributor, for local debugging against this account. Empty: none.')
param developerPrincipalId string = ''

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Optional. Reach the account only through private endpoints (public network access disabled).')
param enablePrivateNetworking bool = false

// Cosmos DB Built-in Data Contributor (data plane: sqlRoleDefinitions, not Azure RBAC).
var dataContributorRoleId = '00000000-0000-0000-0000-000000000002'
var dataPrincipals = empty(developerPrincipalId) ? [appPrincipalId] : [appPrincipalId, developerPrincipalId]

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  // checkov:skip=CKV_AZURE_101: Public network access is disabled when enablePrivateNetworking is on (prod); dev keeps it with keys disabled and Entra RBAC only.
  // checkov:skip=CKV_AZURE_99: Dev keeps the public endpoint (keys disabled, Entra RBAC only); enablePrivateNetworking (on in prod) disables public network access.
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: throughputMode == 'serverless' ? [{ name: 'EnableServerless' }] : []
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: enablePrivateNetworking ? 'Disabled' : 'Enabled'
    networkAclBypass: 'None'
    isVirtualNetworkFilterEnabled: false
    ipRules: []
    enableAutomaticFailover: false
    enableFreeTier: false
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: throughputMode == 'autoscale' ? { autoscaleSettings: { maxThroughput: autoscaleMaxThroughput } } : {}
  }
}

// TTL stays off unless the catalogue sets defaultTtl: -1 = on without expiry, n = expire n seconds
// after the last write (an item's own `ttl` overrides). A container with fullTextPaths (the Search
// port's) gets a fullTextPolicy and a full-text index on each path (API 2025-04-15 has both).
resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2025-04-15' = [
  for container in containers: {
    parent: database
    name: container.name
    properties: {
      resource: union({
          id: container.name
          partitionKey: {
            paths: [container.partitionKeyPath]
            kind: 'Hash'
            version: 2
          }
          indexingPolicy: {
            indexingMode: 'consistent'
            automatic: true
            includedPaths: [{ path: '/*' }]
            excludedPaths: [{ path: '/"_etag"/?' }]
          }
        }, contains(container, 'defaultTtl') ? { defaultTtl: container.defaultTtl } : {},
        contains(container, 'fullTextPaths') ? {
          fullTextPolicy: {
            defaultLanguage: 'en-US'
            fullTextPaths: fullTextPreviewLanguages ? container.fullTextPathsPreview : container.fullTextPaths
          }
          indexingPolicy: {
            indexingMode: 'consistent'
            automatic: true
            includedPaths: [{ path: '/*' }]
            excludedPaths: [{ path: '/"_etag"/?' }]
            fullTextIndexes: container.fullTextIndexes
          }
        } : {})
    }
  }
]

resource dataContributors 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [
  for principalId in dataPrincipals: {
    parent: account
    name: guid(account.id, principalId, dataContributorRoleId)
    properties: {
      roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributorRoleId}'
      principalId: principalId
      scope: account.id
    }
  }
]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Requests'
        enabled: true
      }
    ]
  }
}

@description('Account name.')
output name string = account.name

@description('Account resource id.')
output resourceId string = account.id

@description('Document endpoint (COSMOS__accountEndpoint).')
output endpoint string = account.properties.documentEndpoint

@description('Database name.')
output databaseName string = database.name
