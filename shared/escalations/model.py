"""What a bot sends to `POST /api/escalations`, in either of the two formats the brief fixes, and
the one normalised `Escalation` the service works with.

1. Native JSON: `botConversationId`, `patient`, `reason`, `triage`, `transcript`, `locale`,
   `channel`, `context`.
2. A Bot Framework activity (the Omnichannel escalation contract): `conversation.id` is the bot
   conversation id, `text` the agent-only summary, `channelData.tags` a JSON *string*
   `{"type":"Escalate","context":{...}}` whose context values are routing attributes.

Bots add fields over time, so unknown fields are ignored (not 400). Every text field is bounded;
the body as a whole is capped at 256 KiB by the HTTP edge. Transcript, summary, reason and the
patient's details are PHI: they are stored with the conversation and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    model_validator,
)

from shared.conversations.api import Status, Urgency
from shared.kernel.ids import ID_RULE, ExternalId, Id, is_id
from shared.kernel.json_reader import JsonRejected, read_json
from shared.kernel.text import Line, Text
from shared.kernel.times import Day, Instant, stamp
from shared.patients.api import PatientIdentity
from shared.routing.api import FALLBACK_LANGUAGE, RoutingAttributes

BodyFormat = Literal["native", "activity"]
MAX_CONTEXT_KEYS = 50
# Context keys that are routing attributes themselves (Omnichannel's context variables).
ATTRIBUTE_KEYS = frozenset({"urgency", "specialty", "language", "locale"})
# Context keys that identify the patient in an activity: used for matching, never kept as context.
IDENTITY_KEYS = {"patientId": "id", "email": "email", "phone": "phone"}

ContextKey = Annotated[Line, Field(min_length=1, max_length=64)]
MAX_CONTEXT_VALUE = 1000
# channelData.tags is JSON inside a string: read by the same bounded reader as bodies, with room
# for the largest context the model allows (50 values of 1,000 characters) and no more.
MAX_TAGS_BYTES = 64 * 1024
MAX_TAGS_DEPTH = 4


def _context_value(value: Any) -> Any:
    # One clear error at `context.<key>` instead of one per union member.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_CONTEXT_VALUE:
        raise ValueError(f"must be at most {MAX_CONTEXT_VALUE} characters")
    return value


ContextValue = Annotated[str | int, BeforeValidator(_context_value)]
Context = Annotated[dict[ContextKey, ContextValue], Field(max_length=MAX_CONTEXT_KEYS)]


class _Bot(BaseModel):
    model_config = ConfigDict(
        extra="ignore", str_strip_whitespace=True, populate_by_name=True, defer_build=True
    )


class EscalationPatient(_Bot):
    """Who the bot believes the patient is; every field optional (matching decides)."""

    id: Id | None = None
    name: Line | None = Field(None, max_length=200)
    email: Line | None = Field(None, max_length=320)
    phone: Line | None = Field(None, max_length=40)
    dateOfBirth: Day | None = None
    language: Line | None = Field(None, min_length=2, max_length=35)


class Triage(_Bot):
    urgency: Urgency
    specialty: Line | None = Field(None, min_length=1, max_length=64)
    symptoms: list[Annotated[Line, Field(max_length=200)]] = Field(default_factory=list, max_length=50)


class TranscriptEntry(_Bot):
    from_: Literal["bot", "patient"] = Field(alias="from")
    text: Text = Field(max_length=10_000)
    timestamp: Instant


class CallbackRequest(_Bot):
    """Where the bot wants to hear about its conversation (PRODUCT.md "Bot callbacks"). The URL is
    checked against PSC_BOT_CALLBACK_HOSTS when the escalation arrives (a 400 names the rule,
    never the URL: it may carry a token)."""

    url: str = Field(
        min_length=1, max_length=2048, description="https URL on a host listed in PSC_BOT_CALLBACK_HOSTS."
    )


class NativeEscalation(_Bot):
    """The native escalation body."""

    botConversationId: ExternalId
    patient: EscalationPatient
    reason: Text = Field(min_length=1, max_length=2000)
    triage: Triage
    transcript: list[TranscriptEntry] = Field(max_length=2000)
    locale: Line | None = Field(None, min_length=2, max_length=35)
    channel: Line | None = Field(None, max_length=64)
    context: Context = Field(default_factory=dict)
    callback: CallbackRequest | None = None


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return read_json(value, max_bytes=MAX_TAGS_BYTES, max_depth=MAX_TAGS_DEPTH)
        except JsonRejected as rejected:
            where = f" (at {rejected.path})" if rejected.path else ""
            raise ValueError(
                f'must be a JSON string {{"type":"Escalate","context":{{...}}}}: it {rejected.message}{where}'
            ) from None
    return value  # an object is accepted too (some bots send it unencoded)


class EscalateTags(_Bot):
    type: Literal["Escalate"]
    context: Context = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_urgency_and_patient_id(self) -> EscalateTags:
        if "urgency" in self.context and _urgency(self.context["urgency"]) is None:
            raise ValueError("context.urgency must be one of emergency, urgent, routine")
        # The same id rule as a native body's patient.id: it names one of our records.
        if "patientId" in self.context and not is_id(str(self.context["patientId"])):
            raise ValueError("context.patientId " + ID_RULE)
        return self


_TAGS_SCHEMA = {
    "type": "string",
    "contentMediaType": "application/json",
    "description": 'JSON string {"type":"Escalate","context":{name: string|integer}}; context values '
    "are routing attributes (urgency, specialty, language, locale; patientId, email and phone are "
    "used to find the patient).",
    "examples": ['{"type":"Escalate","context":{"urgency":"urgent","specialty":"cardiology"}}'],
}


class ChannelData(_Bot):
    tags: Annotated[EscalateTags, BeforeValidator(_json_object), WithJsonSchema(_TAGS_SCHEMA)]
    callback: CallbackRequest | None = None


class ActivityConversation(_Bot):
    id: ExternalId


class BotActivity(_Bot):
    """A Bot Framework activity carrying the Omnichannel escalation tags."""

    type: Line | None = Field(None, max_length=64)
    conversation: ActivityConversation
    text: Text | None = Field(None, max_length=20_000, description="Agent-only escalation summary.")
    locale: Line | None = Field(None, min_length=2, max_length=35)
    channelId: Line | None = Field(None, max_length=64)
    channelData: ChannelData


def _format_of(data: Any) -> BodyFormat:
    if (
        isinstance(data, dict)
        and "botConversationId" not in data
        and ({"conversation", "channelData"} & data.keys() or data.get("type") == "message")
    ):
        return "activity"
    return "native"


class EscalationRequest(RootModel[NativeEscalation | BotActivity]):
    """Either body format. The format is picked from the body's shape (a `botConversationId`
    means native; `conversation`/`channelData` mean an activity), so a 400 names the fields of
    the format the caller meant rather than of both."""

    model_config = ConfigDict(defer_build=True)

    @model_validator(mode="wrap")
    @classmethod
    def _pick_format(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(data, cls):
            return data
        model: type[BaseModel] = BotActivity if _format_of(data) == "activity" else NativeEscalation
        # A ValidationError raised here keeps its field paths (body.triage.urgency, ...).
        return cls.model_construct(root=model.model_validate(data))  # type: ignore[arg-type]

    @classmethod
    def model_validate_json(
        cls, json_data: str | bytes | bytearray, *, strict: bool | None = None, **kwargs: Any
    ) -> EscalationRequest:
        """From JSON text (how the edge validates bodies): the chosen format validates the text
        itself, so strict JSON rules hold (the wrap validator above sees Python objects, where
        strict mode would refuse the strings JSON carries dates and enums in)."""
        data = read_json(bytes(json_data) if not isinstance(json_data, str) else json_data)
        model: type[BaseModel] = BotActivity if _format_of(data) == "activity" else NativeEscalation
        return cls.model_construct(root=model.model_validate_json(json_data, strict=strict, **kwargs))  # type: ignore[arg-type]

    def normalized(self) -> Escalation:
        root = self.root
        if isinstance(root, NativeEscalation):
            return _from_native(root)
        return _from_activity(root)


@dataclass(frozen=True)
class Escalation:
    """One escalation, whatever format it came in."""

    bot_conversation_id: str
    patient: PatientIdentity
    reason: str | None
    summary: str | None
    transcript: list[dict[str, Any]]
    attributes: RoutingAttributes
    channel: str | None
    locale: str | None
    body_format: BodyFormat
    symptoms: list[str] = field(default_factory=list)
    # The bot's callback URL as sent (checked by the intake against the policy of the moment).
    callback_url: str | None = None

    @property
    def callback_field(self) -> str:
        """Where the callback URL sat in the body, for a 400 field error."""
        return "body.callback.url" if self.body_format == "native" else "body.channelData.callback.url"

    def phi(self) -> list[Any]:
        """Every value that must never reach a log (for `mark_phi`)."""
        p = self.patient
        return [
            p.name,
            p.email,
            p.phone,
            p.date_of_birth,
            self.reason,
            self.summary,
            *(line["text"] for line in self.transcript),
            *self.symptoms,
            self.callback_url,  # not PHI, but it may carry the bot's token
        ]


def _urgency(value: object) -> Urgency | None:
    try:
        return Urgency(str(value).strip().lower())
    except ValueError:
        return None


def primary_language(tag: object) -> str | None:
    """`pt-BR` → `pt`: routing rules and agents' languages name languages, not regions."""
    if tag is None:
        return None
    primary = str(tag).strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if 2 <= len(primary) <= 3 and primary.isalpha() else None


def _from_native(body: NativeEscalation) -> Escalation:
    p = body.patient
    language = primary_language(p.language) or primary_language(body.locale) or FALLBACK_LANGUAGE
    return Escalation(
        bot_conversation_id=body.botConversationId,
        patient=PatientIdentity(
            id=p.id,
            name=p.name,
            email=p.email,
            phone=p.phone,
            date_of_birth=p.dateOfBirth.isoformat() if p.dateOfBirth else None,
            language=p.language,
        ),
        reason=body.reason,
        summary=None,
        transcript=[
            {"from": line.from_, "text": line.text, "timestamp": stamp(line.timestamp)}
            for line in body.transcript
        ],
        attributes=RoutingAttributes(
            urgency=body.triage.urgency,
            specialty=body.triage.specialty,
            language=language,
            context=dict(body.context),
        ),
        channel=body.channel,
        locale=body.locale,
        body_format="native",
        symptoms=list(body.triage.symptoms),
        callback_url=body.callback.url if body.callback else None,
    )


def _from_activity(activity: BotActivity) -> Escalation:
    context = dict(activity.channelData.tags.context)
    identity = {target: str(context.pop(key)) for key, target in IDENTITY_KEYS.items() if key in context}
    urgency = _urgency(context.pop("urgency", None)) or Urgency.ROUTINE
    specialty = context.pop("specialty", None)
    language_value = context.pop("language", None)
    locale_value = context.pop("locale", None)
    language = (
        primary_language(language_value)
        or primary_language(locale_value)
        or primary_language(activity.locale)
        or FALLBACK_LANGUAGE
    )
    locale = str(locale_value) if locale_value is not None else activity.locale
    return Escalation(
        bot_conversation_id=activity.conversation.id,
        patient=PatientIdentity(**identity),
        reason=None,
        summary=activity.text,
        transcript=[],
        attributes=RoutingAttributes(
            urgency=urgency,
            specialty=str(specialty) if specialty not in (None, "") else None,
            language=language,
            context=context,
        ),
        channel=activity.channelId,
        locale=locale,
        body_format="activity",
        callback_url=activity.channelData.callback.url if activity.channelData.callback else None,
    )


class EscalationAnswer(BaseModel):
    """`202` for a new escalation, `200` (same body) for a repeated one."""

    model_config = ConfigDict(defer_build=True)

    conversationId: str
    status: Status = Field(description="The conversation's status as of the answer, usually `waiting`.")
    queueId: str | None = None
