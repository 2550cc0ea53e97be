metadata name = 'Key Vault'
metadata description = 'RBAC-mode vault (purge protection optional, on in production) holding the Standard Webhooks secrets (bot escalations in, bot callbacks out); Key Vault Secrets User for the app identity.'

@description('Required. Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Required. Azure region.')
param location string

@description('Required. Resource tags.')
param tags object

@description('Required. Standard Webhooks secret (`whsec_<base64>`) bots sign escalations with.')
@secure()
@minLength(32)
param webhookSecret string

@description('Optional. Standard Webhooks secret (`whsec_<base64>`) that signs callbacks to bots; empty: no callback secret is stored (callbacks stay off).')
@secure()
param botCallbackSecret string = ''

@description('Optional. Days until the stored webhook secrets expire; every deployment writes the values again and restarts the clock.')
@minValue(30)
@maxValue(730)
param webhookSecretValidityDays int = 365

@description('Optional. Time of this deployment (the secret expiry counts from it). Leave the default.')
param deployedAt string = utcNow()

@description('Required. Principal id of the app identity (gets Key Vault Secrets User).')
param appPrincipalId string

@description('Required. Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Optional. Reach the vault only through private endpoints (public network access disabled).')
param enablePrivateNetworking bool = false

@description('Optional. Purge protection: a deleted vault cannot be purged before its retention ends. Irreversible once on; off, the property is left out (ARM refuses false), so `azd down --purge` can remove a dev vault.')
param enablePurgeProtection bool = true

@description('Optional. The Teams outgoing webhook\'s security token (base64) that signs providers\' replies for teams without a token of their own (PSC_TEAMS_OUTGOING_TOKEN); empty: none stored.')
@secure()
param teamsOutgoingToken string = ''

@description('Optional. Key that signs the one-use links of reminders and surveys (PSC_LINK_SIGNING_KEY); empty: none stored.')
@secure()
param linkSigningKey string = ''

var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
// Key Vault Secrets Officer: the API writes the secrets integration admins give it (a team's
// Workflows URL and outgoing-webhook token: PUT /api/manage/teams/{teamId}).
var secretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_109: Without private networking the Flex app resolves Key Vault references over the public endpoint (App Service is not a trusted service), so the firewall defaults to Deny only when enablePrivateNetworking is on (prod).
  // checkov:skip=CKV_AZURE_189: Public network access is disabled when enablePrivateNetworking is on (prod); dev keeps it, guarded by RBAC.
  // checkov:skip=CKV_AZURE_110: Purge protection is the enablePurgeProtection parameter, on in production (main.prod.bicepparam, main.bicep default); off only in dev, where the property must be absent (ARM refuses false) so azd down --purge works. checkov cannot see inside union().
  // checkov:skip=CKV_AZURE_42: Same property as CKV_AZURE_110 (soft delete stays on everywhere, 90 days); purge protection is on in production through the parameter.
  properties: union({
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: enablePrivateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: enablePrivateNetworking ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }, enablePurgeProtection ? { enablePurgeProtection: true } : {})
}

resource webhookSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'psc-webhook-secret'
  properties: {
    value: webhookSecret
    contentType: 'text/plain; format=standard-webhooks'
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(dateTimeAdd(deployedAt, 'P${webhookSecretValidityDays}D'))
    }
  }
}

resource botCallbackSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(botCallbackSecret)) {
  // checkov:skip=CKV_AZURE_41: checkov does not read the properties of a conditional resource (= if); attributes.exp is set below, as for psc-webhook-secret (tests/infra asserts it).
  // checkov:skip=CKV_AZURE_114: Same blindness to a conditional resource; contentType is set below (tests/infra asserts it).
  parent: vault
  name: 'psc-bot-callback-secret'
  properties: {
    value: botCallbackSecret
    contentType: 'text/plain; format=standard-webhooks'
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(dateTimeAdd(deployedAt, 'P${webhookSecretValidityDays}D'))
    }
  }
}

resource secretsUserAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, secretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource teamsTokenResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(teamsOutgoingToken)) {
  // checkov:skip=CKV_AZURE_41: checkov does not read the properties of a conditional resource (= if); attributes.exp is set below, as for psc-webhook-secret (tests/infra asserts it).
  // checkov:skip=CKV_AZURE_114: Same blindness to a conditional resource; contentType is set below (tests/infra asserts it).
  parent: vault
  name: 'psc-teams-outgoing-token'
  properties: {
    value: teamsOutgoingToken
    contentType: 'text/plain; format=teams-outgoing-webhook-token'
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(dateTimeAdd(deployedAt, 'P${webhookSecretValidityDays}D'))
    }
  }
}

resource linkSigningKeyResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(linkSigningKey)) {
  // checkov:skip=CKV_AZURE_41: checkov does not read the properties of a conditional resource (= if); attributes.exp is set below, as for psc-webhook-secret (tests/infra asserts it).
  // checkov:skip=CKV_AZURE_114: Same blindness to a conditional resource; contentType is set below (tests/infra asserts it).
  parent: vault
  name: 'psc-link-signing-key'
  properties: {
    value: linkSigningKey
    contentType: 'text/plain; format=hmac-sha256-key'
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(dateTimeAdd(deployedAt, 'P${webhookSecretValidityDays}D'))
    }
  }
}

resource secretsOfficerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, secretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
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

@description('Vault name.')
output name string = vault.name

@description('Vault resource id.')
output resourceId string = vault.id

@description('Versionless URI of the webhook secret (the Key Vault reference follows rotations).')
output webhookKeyVaultUri string = webhookSecretResource.properties.secretUri

@description('Versionless URI of the bot callback secret (built from the vault URI, so it never refers to a secret left undeployed); empty when none is stored.')
output botCallbackKeyVaultUri string = empty(botCallbackSecret) ? '' : '${vault.properties.vaultUri}secrets/psc-bot-callback-secret'

@description('Vault URI (PSC_KEY_VAULT_URI): the API writes team secrets here.')
output vaultUri string = vault.properties.vaultUri

@description('Key Vault reference target of the Teams outgoing token; empty when none was given.')
output teamsTokenKeyVaultUri string = empty(teamsOutgoingToken) ? '' : '${vault.properties.vaultUri}secrets/psc-teams-outgoing-token'

@description('Key Vault reference target of the link signing key; empty when none was given.')
output linkSigningKeyVaultUri string = empty(linkSigningKey) ? '' : '${vault.properties.vaultUri}secrets/psc-link-signing-key'
