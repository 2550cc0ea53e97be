metadata name = 'Service Bus'
metadata description = 'Namespace with SAS keys disabled and every queue, topic, subscription and subscription rule of shared/kernel/catalog.py; Data Sender and Data Receiver for the app identity (namespace scope: they cover topics and subscriptions), Data Owner for an optional ops principal.'

@description('Required. Namespace name.')
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Optional. Standard, or Premium (needed for private endpoints; dedicated capacity).')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

@description('Optional. Messaging units (Premium only).')
@allowed([
  1
  2
  4
  8
  16
])
param premiumCapacity int = 1

@description('Required. Queues from infra/catalog.json (generated from shared/kernel/catalog.py QueueSpec): [{name, setting, maxDeliveryCount, lockDuration, duplicateDetectionHistoryTimeWindow, defaultMessageTimeToLive, deadLetteringOnMessageExpiration}], durations ISO-8601.')
param queues array

@description('Required. Topics from infra/catalog.json (TopicSpec): [{name, setting, duplicateDetectionHistoryTimeWindow, defaultMessageTimeToLive}]; duplicate detection is always on.')
param topics array

@description('Required. Subscriptions from infra/catalog.json (SubscriptionSpec), flat: [{topic, topicIndex, name, setting, maxDeliveryCount, lockDuration, requiresSession, defaultMessageTimeToLive, deadLetteringOnMessageExpiration}]; topicIndex points into topics.')
param subscriptions array

@description('Required. Subscription rules from infra/catalog.json: one correlation filter on the label per subject a subscription wants, [{topic, subscription, subscriptionIndex, name, subject}]; a subscription without rules keeps the default rule (every message).')
param subscriptionRules array

@description('Required. Principal id of the app identity (gets Data Sender and Data Receiver).')
param appPrincipalId string

@description('Optional. Principal id of a developer who also gets Data Sender and Data Receiver, for local debugging. Empty: none.')
param developerPrincipalId string = ''

@description('Optional. Principal id of the operators (`python -m ops`: queue depths need the Manage right) who get Data Owner. Empty: none.')
param opsPrincipalId string = ''

@description('Optional. Kind of principal opsPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param opsPrincipalType string = 'Group'

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Optional. Reach the namespace only through private endpoints (requires Premium).')
param enablePrivateNetworking bool = false

// Azure Service Bus Data Sender, Azure Service Bus Data Receiver.
var roleDefinitionIds = [
  '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
]
var developerRoleDefinitionIds = empty(developerPrincipalId) ? [] : roleDefinitionIds
// Azure Service Bus Data Owner: the only built-in data role with Manage (runtime properties,
// dead-letter administration); the app itself never gets it.
var dataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: skuName == 'Premium' ? premiumCapacity : null
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: enablePrivateNetworking ? 'Disabled' : 'Enabled'
    zoneRedundant: skuName == 'Premium'
  }
}

resource serviceBusQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for queue in queues: {
    parent: namespace
    name: queue.name
    properties: {
      maxDeliveryCount: queue.maxDeliveryCount
      lockDuration: queue.lockDuration
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: queue.duplicateDetectionHistoryTimeWindow
      defaultMessageTimeToLive: queue.defaultMessageTimeToLive
      deadLetteringOnMessageExpiration: queue.deadLetteringOnMessageExpiration
      requiresSession: false
      enablePartitioning: false
    }
  }
]

resource serviceBusTopics 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = [
  for topic in topics: {
    parent: namespace
    name: topic.name
    properties: {
      // The outbox relay re-sends after a crash; duplicate detection on MessageId absorbs it.
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: topic.duplicateDetectionHistoryTimeWindow
      defaultMessageTimeToLive: topic.defaultMessageTimeToLive
      supportOrdering: true
      enablePartitioning: false
    }
  }
]

resource serviceBusSubscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = [
  for subscription in subscriptions: {
    parent: serviceBusTopics[subscription.topicIndex]
    name: subscription.name
    properties: {
      maxDeliveryCount: subscription.maxDeliveryCount
      lockDuration: subscription.lockDuration
      requiresSession: subscription.requiresSession
      defaultMessageTimeToLive: subscription.defaultMessageTimeToLive
      deadLetteringOnMessageExpiration: subscription.deadLetteringOnMessageExpiration
      deadLetteringOnFilterEvaluationExceptions: true
    }
  }
]

// Adding a rule removes the subscription's implicit $Default (match-all) rule.
resource serviceBusRules 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2024-01-01' = [
  for rule in subscriptionRules: {
    parent: serviceBusSubscriptions[rule.subscriptionIndex]
    name: rule.name
    properties: {
      filterType: 'CorrelationFilter'
      correlationFilter: {
        label: rule.subject
      }
    }
  }
]

resource appRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(namespace.id, appPrincipalId, roleId)
    scope: namespace
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource developerRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in developerRoleDefinitionIds: {
    name: guid(namespace.id, developerPrincipalId, roleId)
    scope: namespace
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: developerPrincipalId
    }
  }
]

resource opsRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(opsPrincipalId)) {
  name: guid(namespace.id, opsPrincipalId, dataOwner)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataOwner)
    principalId: opsPrincipalId
    principalType: opsPrincipalType
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: namespace
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

@description('Namespace name.')
output name string = namespace.name

@description('Namespace resource id.')
output resourceId string = namespace.id

@description('Fully qualified namespace host (ServiceBusConnection__fullyQualifiedNamespace).')
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
