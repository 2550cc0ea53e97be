"""The patient registry's model: what a patient may edit about themselves, and the clinical fields
only clinical staff see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.kernel.errors import ValidationFailed
from shared.kernel.ids import ID_RULE, Id, is_id
from shared.kernel.text import Line, Text
from shared.kernel.times import Day, TimeZoneName

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# BCP 47 language tag, the common subset: language, optional script, optional region.
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|\d{3}))?$")


def _phone(value: str) -> str:
    import phonenumbers  # 30 ms: loaded by the first phone to validate, not at cold start

    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be an international phone number such as +48601234567") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(value: str) -> str:
    # pydantic's EmailStr imports email-validator with the model (30 ms of cold start).
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError("must be an e-mail address such as name@example.org") from None


def _hhmm(value: str) -> str:
    if not _HHMM.fullmatch(value):
        raise ValueError("must be a time HH:MM (24-hour)")
    return value


def _language(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise ValueError("must be a language tag such as en, pl or pt-BR")
    return value


EmailAddress = Annotated[
    str, Field(examples=["name@example.org"], json_schema_extra={"format": "email"}), AfterValidator(_email)
]
PhoneNumber = Annotated[str, Field(examples=["+48601234567"]), AfterValidator(_phone)]
ClockTime = Annotated[
    str, Field(examples=["21:00"], json_schema_extra={"pattern": _HHMM.pattern}), AfterValidator(_hhmm)
]
LanguageTag = Annotated[
    str, Field(examples=["en"], json_schema_extra={"pattern": _LANGUAGE.pattern}), AfterValidator(_language)
]
Channel = Literal["sms", "email", "portal"]


class _Strict(BaseModel):
    # defer_build: validators are compiled on first use, not while the worker indexes functions.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Consent(_Strict):
    sms: bool = False
    email: bool = False


class QuietHours(_Strict):
    """No reminders between `start` and `end` in the patient's time zone (may wrap midnight)."""

    start: ClockTime
    end: ClockTime


class PatientProfile(_Strict):
    """What a patient sees and edits about themselves (`/api/me/profile`)."""

    name: Line = Field(min_length=1, max_length=200)
    # FHIR HumanName's given and family parts beside the display name; scripts greet a patient by
    # the given name, else by the first word of `name`.
    givenName: Line | None = Field(None, min_length=1, max_length=100)
    familyName: Line | None = Field(None, min_length=1, max_length=100)
    language: LanguageTag = "en"
    timeZone: TimeZoneName = "UTC"
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    preferredChannel: Channel = "portal"
    consent: Consent = Field(default_factory=Consent)
    quietHours: QuietHours | None = None

    @model_validator(mode="after")
    def _channel_reachable(self) -> PatientProfile:
        if self.preferredChannel == "sms" and not self.phone:
            raise ValueError("preferredChannel sms needs a phone number")
        if self.preferredChannel == "email" and not self.email:
            raise ValueError("preferredChannel email needs an e-mail address")
        return self


class ClinicalFields(_Strict):
    dateOfBirth: Day | None = None
    clinicalNotes: Text | None = Field(default=None, max_length=4000)


class PatientRecord(PatientProfile):
    """The staff view (`/api/patients/{patientId}`); clinical fields only for ClinicalUser."""

    id: Id | None = Field(default=None, description="Read-only; the patient id.")
    provisional: bool | None = Field(default=None, description="Read-only; created by a bot escalation.")
    mergedInto: Id | None = Field(
        default=None, description="Read-only; the patient this record was merged into."
    )
    dateOfBirth: Day | None = None
    clinicalNotes: Text | None = Field(default=None, max_length=4000)


PROFILE_FIELDS = tuple(PatientProfile.model_fields)
CLINICAL_FIELDS = tuple(ClinicalFields.model_fields)


def check_patient_id(patient_id: str) -> str:
    if not is_id(patient_id):
        raise ValidationFailed([{"field": "patientId", "message": ID_RULE}])
    return patient_id


@dataclass(frozen=True)
class PatientIdentity:
    """Who a bot believes the patient is (every field optional): what matching starts from."""

    id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    date_of_birth: str | None = None
    language: str | None = None
