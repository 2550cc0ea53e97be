metadata name = 'Virtual network'
metadata description = 'VNet with a Flex Consumption integration subnet and a private-endpoint subnet, NSGs, and the private DNS zones the private endpoints register in.'

@description('Required. VNet name.')
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Required. NSG name prefix (two NSGs: -app and -pep).')
param nsgNamePrefix string

@description('Optional. VNet address space.')
param addressPrefix string = '10.40.0.0/16'

@description('Optional. Subnet the function app integrates with (delegated to Microsoft.App/environments, as Flex Consumption requires).')
param appSubnetPrefix string = '10.40.1.0/24'

@description('Optional. Subnet for the private endpoints.')
param privateEndpointSubnetPrefix string = '10.40.2.0/24'

// Private Link DNS zones per service; storage zones follow the cloud's storage suffix.
var storageSuffix = environment().suffixes.storage
var privateDnsZones = {
  blob: 'privatelink.blob.${storageSuffix}'
  queue: 'privatelink.queue.${storageSuffix}'
  table: 'privatelink.table.${storageSuffix}'
  cosmos: 'privatelink.documents.azure.com'
  serviceBus: 'privatelink.servicebus.windows.net'
  keyVault: 'privatelink.vaultcore.azure.net'
  webPubSub: 'privatelink.webpubsub.azure.com'
}
var privateDnsZoneKeys = [
  'blob'
  'queue'
  'table'
  'cosmos'
  'serviceBus'
  'keyVault'
  'webPubSub'
]

resource appNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${nsgNamePrefix}-app'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource privateEndpointNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${nsgNamePrefix}-pep'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [addressPrefix]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: privateEndpointNsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for key in privateDnsZoneKeys: {
    name: privateDnsZones[key]
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (key, i) in privateDnsZoneKeys: {
    parent: zones[i]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

@description('VNet resource id.')
output resourceId string = vnet.id

@description('Subnet id for Flex Consumption VNet integration.')
output appSubnetId string = vnet.properties.subnets[0].id

@description('Subnet id for private endpoints.')
output privateEndpointSubnetId string = vnet.properties.subnets[1].id

@description('Private DNS zone ids by service key: blob, queue, table, cosmos, serviceBus, keyVault, webPubSub.')
output dnsZoneIds object = {
  blob: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.blob)
  queue: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.queue)
  table: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.table)
  cosmos: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.cosmos)
  serviceBus: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.serviceBus)
  keyVault: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.keyVault)
  webPubSub: resourceId('Microsoft.Network/privateDnsZones', privateDnsZones.webPubSub)
}
