metadata name = 'Private endpoint'
metadata description = 'One private endpoint for one sub-resource (group id) of a service, registered in its private DNS zone.'

@description('Required. Private endpoint name.')
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Required. Subnet id the endpoint gets its address from.')
param subnetId string

@description('Required. Resource id of the service behind the endpoint.')
param serviceResourceId string

@description('Required. Private Link group id: blob, queue, table, Sql, namespace, vault, webpubsub.')
param groupId string

@description('Required. Private DNS zone id the endpoint registers its A record in.')
param dnsZoneId string

resource endpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: serviceResourceId
          groupIds: [groupId]
        }
      }
    ]
  }
}

resource zoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: replace(last(split(dnsZoneId, '/')), '.', '-')
        properties: {
          privateDnsZoneId: dnsZoneId
        }
      }
    ]
  }
}

@description('Private endpoint resource id.')
output resourceId string = endpoint.id
