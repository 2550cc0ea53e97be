"""App settings. Field aliases are the exact app-setting names used in Azure, in
`local.settings.sample.json` and in the README's settings table (a test checks all three agree).

Nothing here runs at import time: `get_settings()` builds the object on first use and keeps it.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kernel.catalog import CALLBACKS_SUBSCRIPTION, REALTIME_SUBSCRIPTION
from shared.kernel.errors import ConfigError

# Present in every Azure App Service / Functions worker environment, never on a laptop.
AZURE_MARKERS = ("WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME")
DEFAULT_REALTIME_PORT = 7072
# Web PubSub's hub-name rule, as the SDK validates it before any request.
_HUB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}")


def _setting(name: str, default: object = None, description: str = "", **kw: object) -> object:
    return Field(
        default,
        validation_alias=AliasChoices(name),
        description=description,
        **kw,  # type: ignore[call-overload]
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=False)

    store: Literal["embedded", "cosmos"] = _setting(  # type: ignore[assignment]
        "PSC_STORE", "embedded", "Document store: `embedded` (SQLite under PSC_DATA_DIR) or `cosmos`."
    )
    bus: Literal["embedded", "servicebus"] = _setting(  # type: ignore[assignment]
        "PSC_BUS", "embedded", "Message bus: `embedded` (SQLite under PSC_DATA_DIR) or `servicebus`."
    )
    data_dir: Path = _setting(  # type: ignore[assignment]
        "PSC_DATA_DIR", Path(".devhost"), "Folder for the embedded store and bus files."
    )
    auth_mode: Literal["entra", "dev"] = _setting(  # type: ignore[assignment]
        "PSC_AUTH_MODE", "entra", "`entra` (RS256 tokens from Entra ID) or `dev` (HS256 dev tokens)."
    )
    dev_jwt_secret: str | None = _setting(  # type: ignore[assignment]
        "PSC_DEV_JWT_SECRET",
        None,
        "HS256 secret for dev tokens (dev mode only, ≥ 32 characters).",
        repr=False,
    )
    entra_tenant_id: str | None = _setting(  # type: ignore[assignment]
        "PSC_ENTRA_TENANT_ID", None, "Entra tenant id (entra mode)."
    )
    entra_client_id: str | None = _setting(  # type: ignore[assignment]
        "PSC_ENTRA_CLIENT_ID",
        None,
        "The API's application (client) id: the `aud` of v2.0 tokens (entra mode).",
    )
    entra_audience: str | None = _setting(  # type: ignore[assignment]
        "PSC_ENTRA_AUDIENCE",
        None,
        "Optional: the API's App ID URI (api://...), which v1.0 tokens may carry as `aud`.",
    )
    entra_authority: str = _setting(  # type: ignore[assignment]
        "PSC_ENTRA_AUTHORITY",
        "https://login.microsoftonline.com",
        "Authority host; the tenant's OpenID metadata is read from {authority}/{tenant}/v2.0 "
        "(and {authority}/{tenant} for v1.0 tokens).",
    )
    patient_authority: str | None = _setting(  # type: ignore[assignment]
        "PSC_PATIENT_AUTHORITY",
        None,
        "Patients' External ID authority, https://<subdomain>.ciamlogin.com (optional, with the "
        "two settings below).",
    )
    patient_tenant_id: str | None = _setting(  # type: ignore[assignment]
        "PSC_PATIENT_TENANT_ID", None, "Tenant id of the patients' External ID tenant."
    )
    patient_client_id: str | None = _setting(  # type: ignore[assignment]
        "PSC_PATIENT_CLIENT_ID",
        None,
        "Client id of the API's registration in the patients' tenant: the `aud` of patient tokens.",
    )
    webhook_secret: str | None = _setting(  # type: ignore[assignment]
        "PSC_WEBHOOK_SECRET",
        None,
        "Standard Webhooks secret `whsec_<base64>` for bot escalations.",
        repr=False,
    )
    bot_callback_hosts: str | None = _setting(  # type: ignore[assignment]
        "PSC_BOT_CALLBACK_HOSTS",
        None,
        "Comma-separated hosts bot callback URLs may name (`host`, `host:port`, `*.domain`); "
        "blank allows none.",
    )
    bot_callback_secret: str | None = _setting(  # type: ignore[assignment]
        "PSC_BOT_CALLBACK_SECRET",
        None,
        "Standard Webhooks secret `whsec_<base64>` that signs bot callbacks.",
        repr=False,
    )
    callbacks_subscription: str = _setting(  # type: ignore[assignment]
        "CALLBACKS_SUBSCRIPTION",
        CALLBACKS_SUBSCRIPTION,
        "Subscription of the `events` topic the bot-callbacks consumer reads (the trigger reads it "
        "as `%CALLBACKS_SUBSCRIPTION%`; Bicep sets it).",
    )
    cosmos_endpoint: str | None = _setting(  # type: ignore[assignment]
        "COSMOS__accountEndpoint", None, "Cosmos DB account endpoint (identity-based connection)."
    )
    cosmos_database: str = _setting(  # type: ignore[assignment]
        "COSMOS_DATABASE", "psc", "Cosmos DB database name."
    )
    cosmos_emulator_key: str | None = _setting(  # type: ignore[assignment]
        "COSMOS_EMULATOR_KEY",
        None,
        "Cosmos DB emulator key; used only for a loopback emulator endpoint, never in Azure.",
        repr=False,
    )
    servicebus_connection: str | None = _setting(  # type: ignore[assignment]
        "ServiceBusConnection",
        None,
        "Service Bus emulator connection string (`UseDevelopmentEmulator=true` only).",
        repr=False,
    )
    archive: Literal["embedded", "blob"] = _setting(  # type: ignore[assignment]
        "PSC_ARCHIVE", "embedded", "Archive for exports: `embedded` (files under PSC_DATA_DIR) or `blob`."
    )
    archive_container: str = _setting(  # type: ignore[assignment]
        "ARCHIVE_CONTAINER", "archive", "Blob container of the archive."
    )
    exports_container: str = _setting(  # type: ignore[assignment]
        "EXPORTS_CONTAINER", "exports", "Blob container of the Power BI export (with PSC_ARCHIVE=blob)."
    )
    archive_blob_service_uri: str | None = _setting(  # type: ignore[assignment]
        "ARCHIVE__blobServiceUri", None, "Blob service URI of the archive account (identity-based)."
    )
    webjobs_blob_service_uri: str | None = _setting(  # type: ignore[assignment]
        "AzureWebJobsStorage__blobServiceUri",
        None,
        "Host storage blob URI; the archive falls back to it when ARCHIVE__blobServiceUri is unset.",
    )
    archive_connection_string: str | None = _setting(  # type: ignore[assignment]
        "ARCHIVE_CONNECTION_STRING",
        None,
        "Azurite connection string for a local blob archive only.",
        repr=False,
    )
    transcripts_container: str = _setting(  # type: ignore[assignment]
        "TRANSCRIPTS_CONTAINER",
        "transcripts",
        "Blob container of conversation transcripts (PHI: apart from the exports' archive); "
        "embedded: files under PSC_DATA_DIR/transcripts.",
    )
    message_retention_days: int = _setting(  # type: ignore[assignment]
        "PSC_MESSAGE_RETENTION_DAYS",
        30,
        "Days a closed conversation's message documents live after its transcript is archived.",
        ge=1,
        le=3650,
    )
    servicebus_namespace: str | None = _setting(  # type: ignore[assignment]
        "ServiceBusConnection__fullyQualifiedNamespace",
        None,
        "Service Bus namespace host (identity-based connection).",
    )
    azure_client_id: str | None = _setting(  # type: ignore[assignment]
        "AZURE_CLIENT_ID", None, "Client id of the user-assigned managed identity (in Azure)."
    )
    appinsights_connection_string: str | None = _setting(  # type: ignore[assignment]
        "APPLICATIONINSIGHTS_CONNECTION_STRING", None, "Enables OpenTelemetry export when set."
    )
    kpi_short_abandon_seconds: float = _setting(  # type: ignore[assignment]
        "PSC_KPI_SHORT_ABANDON_SECONDS",
        10.0,
        "KPIs: a conversation left within this many seconds of its first queuing is a short "
        "abandon (docs/KPIS.md), reported apart and kept out of the abandon rate.",
        ge=0,
        le=3600,
    )
    realtime: Literal["embedded", "webpubsub"] = _setting(  # type: ignore[assignment]
        "PSC_REALTIME",
        "embedded",
        "Real-time push: `embedded` (the dev host's hub, which speaks Web PubSub's protocols) or "
        "`webpubsub` (Azure Web PubSub through the managed identity).",
    )
    webpubsub_endpoint: str | None = _setting(  # type: ignore[assignment]
        "PSC_WEBPUBSUB_ENDPOINT",
        None,
        "Azure Web PubSub endpoint https://<name>.webpubsub.azure.com (identity-based), used with "
        "PSC_REALTIME=webpubsub.",
    )
    webpubsub_hub: str = _setting(  # type: ignore[assignment]
        "PSC_WEBPUBSUB_HUB", "psc", "Web PubSub hub the app's clients connect to (embedded hub too)."
    )
    realtime_port: int = _setting(  # type: ignore[assignment]
        "PSC_REALTIME_PORT",
        DEFAULT_REALTIME_PORT,
        "Port of the embedded hub on 127.0.0.1 (the dev host listens there; 0: any free port).",
        ge=0,
        le=65535,
    )
    realtime_key: str | None = _setting(  # type: ignore[assignment]
        "PSC_REALTIME_KEY",
        None,
        "Access key of the embedded hub, >= 32 characters; blank: the dev host makes one per run. "
        "Never used in Azure.",
        repr=False,
    )
    realtime_subscription: str = _setting(  # type: ignore[assignment]
        "REALTIME_SUBSCRIPTION",
        REALTIME_SUBSCRIPTION,
        "Subscription of the `events` topic the real-time consumer reads (`%REALTIME_SUBSCRIPTION%`).",
    )
    notify: Literal["embedded", "acs"] = _setting(  # type: ignore[assignment]
        "PSC_NOTIFY",
        "embedded",
        "Notification channel: `embedded` (records messages in the store, sends nothing) or `acs` "
        "(SMS and e-mail through Azure Communication Services).",
    )
    acs_endpoint: str | None = _setting(  # type: ignore[assignment]
        "ACS__endpoint",
        None,
        "Azure Communication Services endpoint (identity-based), required with PSC_NOTIFY=acs.",
    )
    acs_sms_from: str | None = _setting(  # type: ignore[assignment]
        "ACS_SMS_FROM",
        None,
        "SMS sender: an E.164 number of the communication service or an alphanumeric sender id; "
        "unset: no SMS.",
    )
    acs_email_sender: str | None = _setting(  # type: ignore[assignment]
        "ACS_EMAIL_SENDER",
        None,
        "E-mail sender address on a domain linked to the communication service; unset: no e-mail.",
    )
    cors_origins: str | None = _setting(  # type: ignore[assignment]
        "PSC_CORS_ORIGINS",
        None,
        "Dev host only: comma-separated browser origins allowed to call the API; blank allows none. "
        "In Azure the platform's CORS decides (Bicep corsAllowedOrigins).",
    )

    secrets: Literal["embedded", "keyvault"] = _setting(  # type: ignore[assignment]
        "PSC_SECRETS",
        "embedded",
        "Where secrets written through the API (Teams webhook URLs and tokens) are kept: "
        "`embedded` (a file of their own under PSC_DATA_DIR) or `keyvault` (Azure Key Vault "
        "through the identity).",
    )
    key_vault_uri: str | None = _setting(  # type: ignore[assignment]
        "PSC_KEY_VAULT_URI",
        None,
        "Key Vault URI https://<name>.vault.azure.net/ (identity-based, role Key Vault Secrets "
        "Officer), required with PSC_SECRETS=keyvault.",
    )
    teams_outgoing_token: str | None = _setting(  # type: ignore[assignment]
        "PSC_TEAMS_OUTGOING_TOKEN",
        None,
        "The security token Teams showed when the outgoing webhook was created (base64): the "
        "default for teams configured without a token of their own.",
        repr=False,
    )
    link_signing_key: str | None = _setting(  # type: ignore[assignment]
        "PSC_LINK_SIGNING_KEY",
        None,
        "Key (at least 32 characters) that signs the one-use links in reminders and surveys "
        "(Key Vault reference in Azure); blank: follow-ups carry no links.",
        repr=False,
    )
    public_base_url: str = _setting(  # type: ignore[assignment]
        "PSC_PUBLIC_BASE_URL",
        "http://127.0.0.1:7071",
        "Base URL of this API as patients reach it: links in reminders and surveys point here.",
    )
    portal_base_url: str = _setting(  # type: ignore[assignment]
        "PSC_PORTAL_BASE_URL",
        "http://127.0.0.1:7071/portal",
        "Base URL of the patient portal: the reschedule link of a reminder or a confirmation points here.",
    )
    teams_workflow_hosts: str | None = _setting(  # type: ignore[assignment]
        "PSC_TEAMS_WORKFLOW_HOSTS",
        None,
        "Hosts a team's Workflows URL may name besides Power Automate's own domains (comma-"
        "separated, as PSC_BOT_CALLBACK_HOSTS); in dev mode a listed loopback host also over http.",
    )

    @field_validator("teams_workflow_hosts")
    @classmethod
    def _workflow_hosts_parse(cls, value: str | None) -> str | None:
        from shared.callbacks.api import parse_allowed_hosts

        parse_allowed_hosts(value or "")
        return value

    @field_validator("teams_outgoing_token")
    @classmethod
    def _teams_token(cls, value: str | None) -> str | None:
        import base64
        import binascii

        if value is None:
            return value
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be the base64 security token Teams showed") from None
        if len(key) < 16:
            raise ValueError("must be the base64 security token Teams showed (at least 16 bytes)")
        return value

    @field_validator("link_signing_key")
    @classmethod
    def _link_key(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("must have at least 32 characters")
        return value

    @field_validator("public_base_url", "portal_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?", value):
            raise ValueError("must be an http(s) URL such as https://psc.example.org")
        return value.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _origins_azure_would_match(cls, value: str | None) -> str | None:
        parse_origins(value or "")
        return value

    @field_validator("bot_callback_hosts")
    @classmethod
    def _callback_hosts_parse(cls, value: str | None) -> str | None:
        from shared.callbacks.api import parse_allowed_hosts

        parse_allowed_hosts(value or "")
        return value

    @field_validator("bot_callback_secret")
    @classmethod
    def _callback_secret_signs(cls, value: str | None) -> str | None:
        if value is not None:
            check_webhook_secret(value)
        return value

    @field_validator("acs_sms_from")
    @classmethod
    def _sms_sender(cls, value: str | None) -> str | None:
        # E.164, or an alphanumeric sender id: 1-11 letters, digits and spaces, at least one letter.
        if value is None or re.fullmatch(r"\+[1-9]\d{6,14}", value) or _ALPHANUMERIC_SENDER.fullmatch(value):
            return value
        raise ValueError("must be an E.164 number such as +18005550100 or an alphanumeric sender id")

    @field_validator("acs_email_sender")
    @classmethod
    def _email_sender(cls, value: str | None) -> str | None:
        if value is None or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            return value
        raise ValueError("must be an address such as DoNotReply@<domain>")

    @property
    def cors_allowed_origins(self) -> tuple[str, ...]:
        return parse_origins(self.cors_origins or "")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: object) -> object:
        # local.settings.json and Bicep write "" for settings that do not apply.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.auth_mode == "dev":
            if running_in_azure():
                raise ValueError("PSC_AUTH_MODE=dev is refused when the app runs in Azure")
            if not self.dev_jwt_secret or len(self.dev_jwt_secret) < 32:
                raise ValueError("PSC_DEV_JWT_SECRET must be set to at least 32 characters in dev mode")
        else:
            for name, value in (
                ("PSC_ENTRA_TENANT_ID", self.entra_tenant_id),
                ("PSC_ENTRA_CLIENT_ID", self.entra_client_id),
            ):
                if not value:
                    raise ValueError(f"{name} is required when PSC_AUTH_MODE=entra")
        patient = {
            "PSC_PATIENT_AUTHORITY": self.patient_authority,
            "PSC_PATIENT_TENANT_ID": self.patient_tenant_id,
            "PSC_PATIENT_CLIENT_ID": self.patient_client_id,
        }
        missing = [name for name, value in patient.items() if not value]
        if 0 < len(missing) < len(patient):
            raise ValueError(
                "the patient sign-in settings go together: set "
                + ", ".join(missing)
                + " as well, or none of the PSC_PATIENT_* settings"
            )
        if not _HUB_NAME.fullmatch(self.webpubsub_hub):
            raise ValueError(
                "PSC_WEBPUBSUB_HUB: a hub name is a letter, then up to 127 letters, digits or _ ` , . [ ]"
            )
        if self.realtime == "webpubsub":
            endpoint = self.webpubsub_endpoint or ""
            if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?/?", endpoint):
                raise ValueError(
                    "PSC_WEBPUBSUB_ENDPOINT: https://<name>.webpubsub.azure.com is required when"
                    " PSC_REALTIME=webpubsub"
                )
        if self.realtime_key is not None and len(self.realtime_key) < 32:
            raise ValueError("PSC_REALTIME_KEY: the embedded hub's key has at least 32 characters")
        callback_hosts = [part for part in (self.bot_callback_hosts or "").split(",") if part.strip()]
        if callback_hosts and not self.bot_callback_secret:
            raise ValueError("PSC_BOT_CALLBACK_SECRET is required when PSC_BOT_CALLBACK_HOSTS is set")
        if self.secrets == "keyvault" and not re.fullmatch(
            r"https://[A-Za-z0-9-]+\.vault\.[A-Za-z0-9.-]+/?", self.key_vault_uri or ""
        ):
            raise ValueError(
                "PSC_KEY_VAULT_URI: https://<name>.vault.azure.net/ is required with PSC_SECRETS=keyvault"
            )
        if self.store == "cosmos" and not self.cosmos_endpoint:
            raise ValueError("COSMOS__accountEndpoint is required when PSC_STORE=cosmos")
        if self.notify == "acs" and not self.acs_endpoint:
            raise ValueError("ACS__endpoint is required when PSC_NOTIFY=acs")
        if self.bus == "servicebus" and not (self.servicebus_namespace or self.servicebus_connection):
            raise ValueError(
                "ServiceBusConnection__fullyQualifiedNamespace is required when PSC_BUS=servicebus"
            )
        return self

    @property
    def patient_sign_in(self) -> bool:
        """Whether patients sign in through their own External ID tenant."""
        return bool(self.patient_authority and self.patient_tenant_id and self.patient_client_id)


_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$")


def parse_origins(text: str) -> tuple[str, ...]:
    """Comma-separated origins, lower-cased as the Functions host's CORS policy stores them. Refused
    here, because Azure would silently never match them: a path or trailing slash, a wildcard
    subdomain, a default port (browsers omit it), and `*` next to other origins (then it is ignored)."""
    origins = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if "*" in origins:
        if len(origins) > 1:
            raise ValueError("`*` allows every origin and must be the only entry")
        return origins
    for origin in origins:
        match = _ORIGIN.match(origin)
        if match is None:
            raise ValueError(f"{origin!r} is not an origin like https://portal.example.org[:port]")
        scheme, _, port = match.groups()
        if port is not None and int(port) == {"http": 80, "https": 443}[scheme]:
            raise ValueError(f"{origin!r}: drop the default port; browsers never send it")
    return origins


def check_webhook_secret(value: str) -> None:
    """A Standard Webhooks secret we sign with: `whsec_` and strict base64 of a 24-64 byte key
    (the spec's size), which the reference library accepts. ValueError says which part is wrong,
    never the value."""
    import base64
    import binascii

    from standardwebhooks.webhooks import Webhook

    if not value.startswith("whsec_"):
        raise ValueError("must start with whsec_")
    encoded = value.removeprefix("whsec_")
    try:
        # The library's decoder skips characters outside base64; strict here, so a typo is caught.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("the key after whsec_ must be 24 to 64 bytes")
    try:
        Webhook(value)
    except Exception as exc:
        raise ValueError(f"is refused by the Standard Webhooks library ({type(exc).__name__})") from None


def running_in_azure() -> bool:
    return any(os.environ.get(marker) for marker in AZURE_MARKERS)


def setting_names() -> dict[str, str]:
    """Field name → app-setting name."""
    names: dict[str, str] = {}
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        assert isinstance(alias, AliasChoices)
        names[field_name] = str(alias.choices[0])
    return names


def load_settings() -> Settings:
    """Build settings from the environment; a bad or missing setting raises ConfigError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        names = setting_names()
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"] if part != "__root__"]
            name = names.get(loc[0], loc[0]) if loc else ""
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
