metadata name = 'Communication Services'
metadata description = 'Azure Communication Services (local auth off) with an e-mail service and its Azure-managed domain (optionally a verified custom domain), engagement tracking off; its Event Grid system topic delivers SMS and e-mail delivery reports and inbound SMS to the notification-reports Service Bus queue with the topic\'s own identity (Service Bus Data Sender on that queue); the app identity gets Communication and Email Service Owner on the resource.'

@description('Required. Communication Services resource name.')
param name string

@description('Required. E-mail Communication Services resource name.')
param emailServiceName string

@description('Required. Event Grid system topic name.')
param systemTopicName string

@description('Required. Resource tags.')
param tags object

@description('Optional. Where ACS keeps data at rest (e.g. United States, Europe, UK, Switzerland, Norway, Germany, France, Australia, Japan, Canada).')
param dataLocation string = 'United States'

@description('Optional. A custom e-mail domain (e.g. notify.example.org). Created for verification; linked and used as sender only once customEmailDomainVerified is true. Empty: the Azure-managed domain only.')
param customEmailDomain string = ''

@description('Optional. The custom domain\'s DNS records are verified: link it and send from it.')
param customEmailDomainVerified bool = false

@description('Required. Principal id of the app identity (gets Communication and Email Service Owner).')
param appPrincipalId string

@description('Required. Service Bus namespace name (created by the servicebus module).')
param serviceBusNamespaceName string

@description('Required. Name of the queue reports and inbound SMS go to (catalog: notification-reports).')
param reportsQueueName string

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

// The app sends SMS and e-mail with Entra tokens; no narrower built-in role lets an identity send
// (Contributor is broader), so the assignment is scoped to this one resource.
var communicationAndEmailServiceOwner = '09976791-48a7-449e-bb21-39d1a415f350'
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var useCustomDomain = !empty(customEmailDomain) && customEmailDomainVerified
var reportEventTypes = [
  'Microsoft.Communication.SMSDeliveryReportReceived'
  'Microsoft.Communication.SMSReceived'
  'Microsoft.Communication.EmailDeliveryReportReceived'
]

resource emailService 'Microsoft.Communication/emailServices@2025-05-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

// No tracking pixels and no rewritten links: links reach patients as written, and nothing reports
// who opened which message.
resource managedDomain 'Microsoft.Communication/emailServices/domains@2025-05-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource customDomain 'Microsoft.Communication/emailServices/domains@2025-05-01' = if (!empty(customEmailDomain)) {
  parent: emailService
  name: empty(customEmailDomain) ? 'unused' : customEmailDomain
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'CustomerManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: name
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    disableLocalAuth: true
    linkedDomains: useCustomDomain ? [managedDomain.id, customDomain.id] : [managedDomain.id]
  }
}

resource appSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communication.id, appPrincipalId, communicationAndEmailServiceOwner)
  scope: communication
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', communicationAndEmailServiceOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: communication.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource reportsQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: namespace
  name: reportsQueueName
}

// The topic's own identity sends to this one queue, nothing else.
resource topicSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(reportsQueue.id, systemTopic.id, serviceBusDataSender)
  scope: reportsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// A Service Bus destination needs no function to exist when this deploys (a function endpoint
// would), and reuses the queue trigger's retries and dead letters. Event Grid retries a failed
// delivery for 24 h with the same MessageId, which the queue's duplicate detection absorbs.
resource reports 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'notification-reports'
  dependsOn: [
    topicSends
  ]
  properties: {
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'ServiceBusQueue'
        properties: {
          resourceId: reportsQueue.id
        }
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: reportEventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: communication
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

resource topicDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: systemTopic
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

@description('Communication Services resource id.')
output resourceId string = communication.id

@description('Endpoint of the resource (ACS__endpoint).')
output endpoint string = 'https://${communication.properties.hostName}'

@description('E-mail sender address (ACS_EMAIL_SENDER): DoNotReply on the verified custom domain, else on the Azure-managed one.')
output emailSender string = 'DoNotReply@${useCustomDomain ? customDomain.properties.mailFromSenderDomain : managedDomain.properties.mailFromSenderDomain}'

@description('DNS records to create for the custom domain before setting customEmailDomainVerified (empty without one).')
output customDomainVerificationRecords object = empty(customEmailDomain) ? {} : customDomain.properties.verificationRecords
