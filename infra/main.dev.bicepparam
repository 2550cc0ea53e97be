// Development: public endpoints (identity-only, keys disabled everywhere), serverless Cosmos DB,
// Standard Service Bus, scale to zero. Secrets and ids come from the environment, never this file.
using 'main.bicep'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'psc-dev')
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
param developerPrincipalId = readEnvironmentVariable('AZURE_PRINCIPAL_ID', '')
// SMS sender bought for the Communication Services resource (E.164) or an alphanumeric id; empty: no SMS.
param acsSmsSender = readEnvironmentVariable('PSC_ACS_SMS_FROM', '')

// Purge protection off: `azd down --purge && azd up` can recreate the environment.
param keyVaultPurgeProtection = false
param enablePrivateNetworking = false
param cosmosThroughputMode = 'serverless'
param serviceBusSku = 'Standard'
param webPubSubSku = 'Free_F1'
param storageSku = 'Standard_LRS'
param alwaysReadyHttpInstances = 0
param httpPerInstanceConcurrency = 16
param maximumInstanceCount = 40
param logRetentionInDays = 30
// Browser origins of the portal and consoles, e.g. ['https://portal.example.org']; none by default.
param corsAllowedOrigins = []
