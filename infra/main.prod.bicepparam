// Production: private endpoints and VNet integration (public access off on data services),
// Premium Service Bus (needed for private endpoints), zone-redundant storage, one warm HTTP instance.
using 'main.bicep'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'psc-prod')
param location = readEnvironmentVariable('AZURE_LOCATION', 'swedencentral')
param entraClientId = readEnvironmentVariable('PSC_ENTRA_CLIENT_ID')
param entraAudience = readEnvironmentVariable('PSC_ENTRA_AUDIENCE', '')
param patientAuthority = readEnvironmentVariable('PSC_PATIENT_AUTHORITY', '')
param patientTenantId = readEnvironmentVariable('PSC_PATIENT_TENANT_ID', '')
param patientClientId = readEnvironmentVariable('PSC_PATIENT_CLIENT_ID', '')
param webhookSecret = readEnvironmentVariable('PSC_WEBHOOK_SECRET')
// Bot callbacks (optional): the hosts bots' callback URLs may name, and the secret that signs them.
param botCallbackHosts = readEnvironmentVariable('PSC_BOT_CALLBACK_HOSTS', '')
param botCallbackSecret = readEnvironmentVariable('PSC_BOT_CALLBACK_SECRET', '')
param teamsOutgoingToken = readEnvironmentVariable('PSC_TEAMS_OUTGOING_TOKEN', '')
param teamsWorkflowHosts = readEnvironmentVariable('PSC_TEAMS_WORKFLOW_HOSTS', '')
// Operators who run `python -m ops` (Service Bus Data Owner); empty: none.
param opsPrincipalId = readEnvironmentVariable('PSC_OPS_PRINCIPAL_ID', '')
// SMS sender bought for the Communication Services resource (E.164) or an alphanumeric id; empty: no SMS.
param acsSmsSender = readEnvironmentVariable('PSC_ACS_SMS_FROM', '')

param keyVaultPurgeProtection = true
param enablePrivateNetworking = true
param cosmosThroughputMode = 'autoscale'
param cosmosAutoscaleMaxThroughput = 4000
param serviceBusSku = 'Premium'
param webPubSubSku = 'Standard_S1'
param storageSku = 'Standard_ZRS'
param alwaysReadyHttpInstances = 1
param httpPerInstanceConcurrency = 16
param maximumInstanceCount = 100
param logRetentionInDays = 90
// Browser origins of the portal and consoles, e.g. ['https://portal.example.org']; none by default.
param corsAllowedOrigins = []
