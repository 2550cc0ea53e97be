metadata name = 'Storage account'
metadata description = 'Host storage for the Functions runtime (identity-based), the Flex deployment-package container, the archive container, the transcripts container and the Power BI exports container; shared keys off.'

@description('Required. Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Required. Blob container the Flex Consumption app deploys its package to.')
param deploymentContainerName string

@description('Optional. Blob container for KPI and audit exports (no PHI in KPI exports).')
param archiveContainerName string = 'archive'

@description('Optional. Blob container for closed conversations\' transcripts (PHI, written once each), apart from the exports so that an export reader is never granted them.')
param transcriptsContainerName string = 'transcripts'
@description('Optional. Blob container of the Power BI export (Parquet by table and date folder).')
param exportsContainerName string = 'exports'

@description('Optional. Object id of the principal Power BI reads the export as (a group, a user or a service principal); it gets Storage Blob Data Reader on the exports container only. Empty: none.')
param exportsReaderPrincipalId string = ''

@description('Optional. Principal type of exportsReaderPrincipalId.')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param exportsReaderPrincipalType string = 'Group'

@description('Optional. Redundancy. ZRS keeps a copy in each availability zone of the region.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

@description('Required. Principal id of the app identity (gets Blob Data Owner, Queue and Table Data Contributor).')
param appPrincipalId string

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Optional. Reach the account only through private endpoints (public network access disabled).')
param enablePrivateNetworking bool = false

// Storage Blob Data Owner, Storage Queue Data Contributor, Storage Table Data Contributor.
var roleDefinitionIds = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  // checkov:skip=CKV_AZURE_206: Redundancy is the skuName parameter; dev keeps LRS, prod picks ZRS or GZRS.
  // checkov:skip=CKV_AZURE_35: The firewall defaults to Deny when enablePrivateNetworking is on (prod); without private endpoints the Flex host reaches storage publicly (identity-only, shared keys off).
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: enablePrivateNetworking ? 'Disabled' : 'Enabled'
    // Without private networking the Flex host reaches storage over its public endpoint (it is not
    // a "trusted service"), so the firewall can only default to Deny when private endpoints exist.
    networkAcls: {
      defaultAction: enablePrivateNetworking ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource archiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: archiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource transcriptsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: transcriptsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource exportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: exportsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Storage Blob Data Reader on the exports container alone: Power BI reads the feed, nothing else.
// The app writes it with the account-wide Blob Data Owner role above.
resource exportsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(exportsReaderPrincipalId)) {
  name: guid(exportsContainer.id, exportsReaderPrincipalId, '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
  scope: exportsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1')
    principalId: exportsReaderPrincipalId
    principalType: exportsReaderPrincipalType
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(storage.id, appPrincipalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: storage
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

@description('Storage account name (AzureWebJobsStorage__accountName).')
output name string = storage.name

@description('Storage account resource id.')
output resourceId string = storage.id

@description('Blob endpoint, e.g. https://<name>.blob.<suffix>/.')
output blobEndpoint string = storage.properties.primaryEndpoints.blob

@description('Deployment container name.')
output deploymentContainerName string = deploymentContainer.name

@description('Archive container name.')
output archiveContainerName string = archiveContainer.name

@description('Transcripts container name.')
output transcriptsContainerName string = transcriptsContainer.name
@description('Power BI exports container name.')
output exportsContainerName string = exportsContainer.name
