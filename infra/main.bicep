metadata name = 'Patient Service Center'
metadata description = 'Resource group, identity, monitoring, storage, Cosmos DB, Service Bus, Communication Services with its e-mail domain and report subscription, Key Vault, Web PubSub, optional private networking and the Flex Consumption function app.'

targetScope = 'subscription'

@description('Required. azd environment name; part of every resource name (via resourceToken) and of the azd-env-name tag.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Required. Region of every resource; it must offer Flex Consumption.')
@minLength(1)
@metadata({ azd: { type: 'location' } })
param location string

@description('Optional. Resource group name; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Required. Application (client) id of the API app registration: the audience of v2.0 tokens (PSC_ENTRA_CLIENT_ID).')
@minLength(1)
param entraClientId string

@description('Optional. App ID URI of the API (api://...), which v1.0 tokens may carry as audience (PSC_ENTRA_AUDIENCE). Empty: only the client id.')
param entraAudience string = ''

@description('Optional. Entra tenant that issues staff and bot tokens (PSC_ENTRA_TENANT_ID); default the deployment tenant.')
param entraTenantId string = tenant().tenantId

@description('Optional. Patient sign-in: the External ID authority https://<subdomain>.ciamlogin.com (PSC_PATIENT_AUTHORITY). Set all three patient parameters or none.')
param patientAuthority string = ''

@description('Optional. Patient sign-in: the External ID tenant id (PSC_PATIENT_TENANT_ID).')
param patientTenantId string = ''

@description('Optional. Patient sign-in: client id of the API registration in the External ID tenant (PSC_PATIENT_CLIENT_ID).')
param patientClientId string = ''

@description('Required. Standard Webhooks secret `whsec_<base64>` for bot escalations; stored in Key Vault only.')
@secure()
@minLength(32)
param webhookSecret string

@description('Optional. Hosts bot callback URLs may name, comma-separated (PSC_BOT_CALLBACK_HOSTS): `host`, `host:port`, `*.domain`. Empty: callbacks are refused. Needs botCallbackSecret.')
param botCallbackHosts string = ''

@description('Optional. Standard Webhooks secret `whsec_<base64>` that signs callbacks to bots (PSC_BOT_CALLBACK_SECRET); stored in Key Vault only. Required with botCallbackHosts.')
@secure()
param botCallbackSecret string = ''

@description('Optional. Put Cosmos DB, Service Bus (Premium), storage and Key Vault behind private endpoints, disable their public access and integrate the function app with the VNet.')
param enablePrivateNetworking bool = false

@description('Optional. Key Vault purge protection. On in production; off (the property left out) lets `azd down --purge && azd up` recreate a dev environment, since a protected vault\'s name stays taken for 90 days.')
param keyVaultPurgeProtection bool = true

@description('Optional. Cosmos DB capacity: `serverless` or `autoscale`.')
@allowed([
  'serverless'
  'autoscale'
])
param cosmosThroughputMode string = 'serverless'

@description('Optional. Autoscale ceiling in RU/s (autoscale mode only).')
@minValue(1000)
param cosmosAutoscaleMaxThroughput int = 1000

@description('Optional. Cosmos DB database name (COSMOS_DATABASE).')
param cosmosDatabaseName string = 'psc'

@description('Optional. Spanish knowledge articles get Cosmos DB\'s Spanish full-text analyser (a preview: enable "multi-language support for full-text search" on the account first); off, every path uses the English one.')
param cosmosFullTextPreviewLanguages bool = false

@description('Optional. The Teams outgoing webhook\'s security token (base64) for teams without their own (PSC_TEAMS_OUTGOING_TOKEN); empty: none.')
@secure()
param teamsOutgoingToken string = ''

@description('Optional. Hosts a team\'s Workflows URL may name besides Power Automate\'s own (PSC_TEAMS_WORKFLOW_HOSTS), comma-separated.')
param teamsWorkflowHosts string = ''

@description('Optional. Key (at least 32 characters) that signs the one-use links in reminders and surveys (PSC_LINK_SIGNING_KEY); stored in Key Vault only. Empty: reminders and surveys are not sent (confirmations still are).')
@secure()
param linkSigningKey string = ''

@description('Optional. Base URL patients reach this API at (PSC_PUBLIC_BASE_URL): confirm, cancel and survey links point there. Empty: the function app\'s azurewebsites.net name (set it when the app has a custom domain or a unique default hostname).')
param publicBaseUrl string = ''

@description('Optional. Base URL of the patient portal (PSC_PORTAL_BASE_URL): the reschedule link of a reminder or a confirmation points there.')
param portalBaseUrl string = ''

@description('Optional. Service Bus tier; private networking needs Premium and forces it.')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Optional. Web PubSub tier: Free_F1 (20 connections, no SLA: dev only) or Standard_S1; private networking needs Standard and forces it.')
@allowed([
  'Free_F1'
  'Standard_S1'
])
param webPubSubSku string = 'Standard_S1'

@description('Optional. Web PubSub units on Standard_S1 (1,000 concurrent connections each).')
@minValue(1)
@maxValue(100)
param webPubSubCapacity int = 1

@description('Optional. Storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Optional. Always-ready instances for the HTTP trigger group (0 = scale to zero).')
@minValue(0)
param alwaysReadyHttpInstances int = 0

@description('Optional. Concurrent HTTP requests per instance.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Optional. Instance ceiling of the function app.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Optional. Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional. Six-field NCRONTAB of the routing sweep timer (PSC_SWEEP_SCHEDULE), the backstop for timed routing rules, which fire from scheduled messages. Rarer means an idle app is woken less often.')
@minLength(11)
param routingSweepSchedule string = '0 */5 * * * *'

@description('Optional. Days a closed conversation\'s live message documents are kept after its transcript was archived (PSC_MESSAGE_RETENTION_DAYS); the transcript itself stays in the transcripts container.')
@minValue(1)
@maxValue(3650)
param messageRetentionDays int = 30
@description('Optional. KPIs: a conversation the patient leaves within this many seconds of its first queuing is a short abandon, reported apart and kept out of the abandon rate (PSC_KPI_SHORT_ABANDON_SECONDS, docs/KPIS.md).')
@minValue(0)
@maxValue(3600)
param kpiShortAbandonSeconds int = 10

@description('Optional. Where Azure Communication Services keeps SMS and e-mail data at rest (United States, Europe, UK, Switzerland, Norway, Germany, France, Australia, Japan, Canada, ...).')
param communicationDataLocation string = 'United States'

@description('Optional. SMS sender (ACS_SMS_FROM): a phone number bought for the Communication Services resource (E.164) or a registered alphanumeric sender id. Numbers cannot be bought from a template; empty: no SMS until set.')
param acsSmsSender string = ''

@description('Optional. A custom e-mail domain for the sender; empty: the Azure-managed domain (DoNotReply@<id>.azurecomm.net).')
param customEmailDomain string = ''

@description('Optional. The custom e-mail domain\'s DNS records (output ACS_EMAIL_DOMAIN_RECORDS) are in place: link it and send from it.')
param customEmailDomainVerified bool = false

@description('Optional. Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Optional. Browser origins (scheme://host[:port]) allowed to call the API: the portal and consoles. Set on the Function App\'s platform CORS, never as an app setting. Empty: none.')
param corsAllowedOrigins array = []

@description('Optional. Object id of a developer who also gets Cosmos DB and Service Bus data roles, for debugging locally against Azure (azd sets AZURE_PRINCIPAL_ID). Empty: none.')
param developerPrincipalId string = ''

@description('Optional. Object id of the group (or user, or service principal) Power BI reads the export as: Storage Blob Data Reader on the `exports` container only (docs/POWERBI.md). Empty: none.')
param powerBiReaderPrincipalId string = ''

@description('Optional. Principal type of powerBiReaderPrincipalId.')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param powerBiReaderPrincipalType string = 'Group'

@description('Optional. Object id of the operators\' principal (a group, user or service principal) that runs `python -m ops` against Service Bus; it gets Azure Service Bus Data Owner on the namespace (queue depths need the Manage right). Empty: none.')
param opsPrincipalId string = ''

@description('Optional. Kind of principal opsPrincipalId is.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param opsPrincipalType string = 'Group'

var abbrs = loadJsonContent('abbreviations.json')
// Containers, queues, topics and subscriptions from shared/kernel/catalog.py (scripts/gen_infra_catalog.py writes
// this file; a test checks it).
var catalog = loadJsonContent('catalog.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var effectiveServiceBusSku = enablePrivateNetworking ? 'Premium' : serviceBusSku
var effectiveWebPubSubSku = enablePrivateNetworking ? 'Standard_S1' : webPubSubSku
// The hub real-time clients connect to (PSC_WEBPUBSUB_HUB); the code's default is the same.
var webPubSubHub = 'psc'
// One app setting per queue, topic and subscription: triggers read the names as %SETTING%.
var queueSettings = [
  for queue in catalog.queues: {
    name: queue.setting
    value: queue.name
  }
]
var topicSettings = [
  for topic in catalog.topics: {
    name: topic.setting
    value: topic.name
  }
]
// Event Grid delivers ACS reports and inbound SMS to this catalogue queue.
var reportsQueueName = filter(catalog.queues, queue => queue.setting == 'NOTIFICATION_REPORTS_QUEUE')[0].name
var subscriptionSettings = [
  for subscription in catalog.subscriptions: {
    name: subscription.setting
    value: subscription.name
  }
]

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? '${abbrs.resourcesResourceGroups}${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
    appPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    appPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateNetworking: enablePrivateNetworking
    exportsReaderPrincipalId: powerBiReaderPrincipalId
    exportsReaderPrincipalType: powerBiReaderPrincipalType
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: '${abbrs.documentDBDatabaseAccounts}${resourceToken}'
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    containers: catalog.containers
    throughputMode: cosmosThroughputMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    fullTextPreviewLanguages: cosmosFullTextPreviewLanguages
    appPrincipalId: identity.outputs.principalId
    developerPrincipalId: developerPrincipalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateNetworking: enablePrivateNetworking
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    skuName: effectiveServiceBusSku
    queues: catalog.queues
    topics: catalog.topics
    subscriptions: catalog.subscriptions
    subscriptionRules: catalog.subscriptionRules
    appPrincipalId: identity.outputs.principalId
    developerPrincipalId: developerPrincipalId
    opsPrincipalId: opsPrincipalId
    opsPrincipalType: opsPrincipalType
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateNetworking: enablePrivateNetworking
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    name: '${abbrs.communicationCommunicationServices}${resourceToken}'
    emailServiceName: '${abbrs.communicationEmailServices}${resourceToken}'
    systemTopicName: '${abbrs.eventGridSystemTopics}acs-${resourceToken}'
    tags: tags
    dataLocation: communicationDataLocation
    customEmailDomain: customEmailDomain
    customEmailDomainVerified: customEmailDomainVerified
    appPrincipalId: identity.outputs.principalId
    serviceBusNamespaceName: serviceBus.outputs.name
    reportsQueueName: reportsQueueName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    webhookSecret: webhookSecret
    botCallbackSecret: botCallbackSecret
    teamsOutgoingToken: teamsOutgoingToken
    linkSigningKey: linkSigningKey
    appPrincipalId: identity.outputs.principalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateNetworking: enablePrivateNetworking
    enablePurgeProtection: keyVaultPurgeProtection
  }
}

module webPubSub 'modules/webpubsub.bicep' = {
  name: 'webpubsub'
  scope: rg
  params: {
    name: '${abbrs.signalRServiceWebPubSub}${resourceToken}'
    location: location
    tags: tags
    skuName: effectiveWebPubSubSku
    capacity: webPubSubCapacity
    hubName: webPubSubHub
    appPrincipalId: identity.outputs.principalId
    developerPrincipalId: developerPrincipalId
    workspaceId: monitoring.outputs.workspaceId
    enablePrivateNetworking: enablePrivateNetworking
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  scope: rg
  params: {
    name: '${abbrs.networkVirtualNetworks}${resourceToken}'
    nsgNamePrefix: '${abbrs.networkNetworkSecurityGroups}${resourceToken}'
    location: location
    tags: tags
  }
}

// Private endpoints: one per service sub-resource, each registered in its private DNS zone. The
// list is a deploy-time constant (loops need one); the service ids are looked up per item.
var privateEndpoints = [
  {
    key: 'blob'
    service: 'storage'
    groupId: 'blob'
    zone: 'blob'
  }
  {
    key: 'queue'
    service: 'storage'
    groupId: 'queue'
    zone: 'queue'
  }
  {
    key: 'table'
    service: 'storage'
    groupId: 'table'
    zone: 'table'
  }
  {
    key: 'cosmos'
    service: 'cosmos'
    groupId: 'Sql'
    zone: 'cosmos'
  }
  {
    key: 'servicebus'
    service: 'serviceBus'
    groupId: 'namespace'
    zone: 'serviceBus'
  }
  {
    key: 'keyvault'
    service: 'keyVault'
    groupId: 'vault'
    zone: 'keyVault'
  }
  {
    key: 'webpubsub'
    service: 'webPubSub'
    groupId: 'webpubsub'
    zone: 'webPubSub'
  }
]
var privateEndpointServices = {
  storage: storage.outputs.resourceId
  cosmos: cosmos.outputs.resourceId
  serviceBus: serviceBus.outputs.resourceId
  keyVault: keyVault.outputs.resourceId
  webPubSub: webPubSub.outputs.resourceId
}

module endpoints 'modules/private-endpoint.bicep' = [
  for pe in (enablePrivateNetworking ? privateEndpoints : []): {
    name: 'pep-${pe.key}'
    scope: rg
    params: {
      name: '${abbrs.networkPrivateEndpoints}${pe.key}-${resourceToken}'
      location: location
      tags: tags
      subnetId: network.outputs.privateEndpointSubnetId
      serviceResourceId: privateEndpointServices[pe.service]
      groupId: pe.groupId
      dnsZoneId: network.outputs.dnsZoneIds[pe.zone]
    }
  }
]

module api 'modules/function-app.bicep' = {
  name: 'api'
  scope: rg
  dependsOn: [
    // With private networking the host must reach storage and Key Vault through the endpoints.
    endpoints
  ]
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    virtualNetworkSubnetId: enablePrivateNetworking ? network.outputs.appSubnetId : ''
    workspaceId: monitoring.outputs.workspaceId
    corsAllowedOrigins: corsAllowedOrigins
    extraAppSettings: concat(queueSettings, topicSettings, subscriptionSettings)
    appSettings: {
      PSC_STORE: 'cosmos'
      PSC_BUS: 'servicebus'
      PSC_AUTH_MODE: 'entra'
      PSC_ENTRA_TENANT_ID: entraTenantId
      PSC_ENTRA_CLIENT_ID: entraClientId
      PSC_ENTRA_AUDIENCE: entraAudience
      PSC_PATIENT_AUTHORITY: patientAuthority
      PSC_PATIENT_TENANT_ID: patientTenantId
      PSC_PATIENT_CLIENT_ID: patientClientId
      PSC_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookKeyVaultUri})'
      PSC_BOT_CALLBACK_HOSTS: botCallbackHosts
      PSC_BOT_CALLBACK_SECRET: empty(botCallbackSecret) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.botCallbackKeyVaultUri})'
      // Team secrets (Workflows URLs, outgoing-webhook tokens) written through the API go to
      // Key Vault with the identity (role Key Vault Secrets Officer).
      PSC_SECRETS: 'keyvault'
      PSC_KEY_VAULT_URI: keyVault.outputs.vaultUri
      PSC_TEAMS_OUTGOING_TOKEN: empty(teamsOutgoingToken) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.teamsTokenKeyVaultUri})'
      PSC_TEAMS_WORKFLOW_HOSTS: teamsWorkflowHosts
      PSC_LINK_SIGNING_KEY: empty(linkSigningKey) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.linkSigningKeyVaultUri})'
      PSC_PUBLIC_BASE_URL: empty(publicBaseUrl) ? 'https://${functionAppName}.azurewebsites.net' : publicBaseUrl
      PSC_PORTAL_BASE_URL: empty(portalBaseUrl) ? 'https://${functionAppName}.azurewebsites.net/portal' : portalBaseUrl
      AZURE_CLIENT_ID: identity.outputs.clientId
      COSMOS__accountEndpoint: cosmos.outputs.endpoint
      COSMOS__credential: 'managedidentity'
      COSMOS__clientId: identity.outputs.clientId
      COSMOS_DATABASE: cosmos.outputs.databaseName
      ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
      ServiceBusConnection__credential: 'managedidentity'
      ServiceBusConnection__clientId: identity.outputs.clientId
      // Real-time push through the identity (role Web PubSub Service Owner); no access key exists.
      PSC_REALTIME: 'webpubsub'
      PSC_WEBPUBSUB_ENDPOINT: webPubSub.outputs.endpoint
      PSC_WEBPUBSUB_HUB: webPubSub.outputs.hubName
      // KPI exports go to the archive container, transcripts to their own (PHI), through the
      // identity (Storage Blob Data Owner on the account).
      PSC_ARCHIVE: 'blob'
      ARCHIVE_CONTAINER: storage.outputs.archiveContainerName
      TRANSCRIPTS_CONTAINER: storage.outputs.transcriptsContainerName
      PSC_MESSAGE_RETENTION_DAYS: string(messageRetentionDays)
      // The Power BI export (nightly timer, python -m ops export), on the same account.
      EXPORTS_CONTAINER: storage.outputs.exportsContainerName
      ARCHIVE__blobServiceUri: storage.outputs.blobEndpoint
      ARCHIVE__credential: 'managedidentity'
      ARCHIVE__clientId: identity.outputs.clientId
      // host.json telemetryMode OpenTelemetry + this: the worker tells the host it exports its own
      // telemetry (shared/telemetry.py), so the host stops forwarding worker logs (sent once) and
      // the worker carries the host's trace context into each invocation.
      PYTHON_ENABLE_OPENTELEMETRY: 'true'
      PSC_SWEEP_SCHEDULE: routingSweepSchedule
      PSC_KPI_SHORT_ABANDON_SECONDS: string(kpiShortAbandonSeconds)
      // SMS and e-mail through ACS with the identity (Communication and Email Service Owner).
      PSC_NOTIFY: 'acs'
      ACS__endpoint: communication.outputs.endpoint
      ACS_SMS_FROM: acsSmsSender
      ACS_EMAIL_SENDER: communication.outputs.emailSender
      // The host's request body limit (default 100 MB) set to the API's own 256 KiB: a bigger
      // body is refused (413) while it arrives instead of being buffered for the code to refuse.
      FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: '262144'
    }
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output COSMOS_ACCOUNT_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmos.outputs.databaseName
output SERVICEBUS_FULLY_QUALIFIED_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output WEBPUBSUB_ENDPOINT string = webPubSub.outputs.endpoint
output WEBPUBSUB_HUB string = webPubSub.outputs.hubName
output ACS_ENDPOINT string = communication.outputs.endpoint
output ACS_EMAIL_SENDER string = communication.outputs.emailSender
output ACS_EMAIL_DOMAIN_RECORDS object = communication.outputs.customDomainVerificationRecords
