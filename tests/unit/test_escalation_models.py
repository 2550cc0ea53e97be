"""Both escalation body formats normalise to one Escalation; errors name the caller's fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.conversations.api import Urgency
from shared.escalations.model import EscalationRequest, primary_language

NATIVE: dict[str, Any] = {
    "botConversationId": "b-1",
    "patient": {"id": "p-1", "name": "Ann", "dateOfBirth": "1980-02-03", "language": "pt-BR"},
    "reason": "Rash",
    "triage": {"urgency": "routine", "specialty": "dermatology", "symptoms": ["rash"]},
    "transcript": [{"from": "patient", "text": "It itches", "timestamp": "2026-01-05T10:00:00+01:00"}],
    "context": {"plan": "gold", "age": 44},
    "someFutureField": True,  # bots add fields: ignored, not a 400
}


def parse(body: Any) -> Any:
    return EscalationRequest.model_validate_json(json.dumps(body)).normalized()


def errors(body: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        EscalationRequest.model_validate_json(json.dumps(body))
    return {".".join(str(p) for p in e["loc"]) for e in caught.value.errors()}


def tags(**context: Any) -> str:
    return json.dumps({"type": "Escalate", "context": context})


def test_native_escalations_normalise() -> None:
    e = parse(NATIVE)
    assert e.body_format == "native"
    assert e.bot_conversation_id == "b-1"
    assert (e.patient.id, e.patient.date_of_birth) == ("p-1", "1980-02-03")
    assert e.attributes.urgency is Urgency.ROUTINE
    assert (e.attributes.specialty, e.attributes.language) == ("dermatology", "pt")
    assert e.attributes.context == {"plan": "gold", "age": 44}
    assert e.transcript == [{"from": "patient", "text": "It itches", "timestamp": "2026-01-05T09:00:00.000Z"}]
    assert "It itches" in e.phi()
    assert "Ann" in e.phi()
    assert "Rash" in e.phi()


def test_native_language_falls_back_to_the_locale_then_english() -> None:
    body = {**NATIVE, "patient": {}, "locale": "de-AT"}
    assert parse(body).attributes.language == "de"
    assert parse({**NATIVE, "patient": {}}).attributes.language == "en"


def test_an_activity_maps_its_context_onto_routing_attributes() -> None:
    activity = {
        "type": "message",
        "conversation": {"id": "19:abc|livechat"},
        "text": "Summary for the agent",
        "locale": "fr-FR",
        "channelId": "msteams",
        "channelData": {
            "tags": tags(
                Urgency="x", urgency="URGENT", specialty="ent", locale="es-MX", ward=7, phone="+48601234567"
            )
        },
    }
    e = parse(activity)
    assert e.body_format == "activity"
    assert e.bot_conversation_id == "19:abc|livechat"
    assert e.summary == "Summary for the agent"
    assert e.attributes.urgency is Urgency.URGENT
    assert (e.attributes.specialty, e.attributes.language, e.locale) == ("ent", "es", "es-MX")
    assert e.attributes.context == {"Urgency": "x", "ward": 7}
    assert e.patient.phone == "+48601234567"
    assert e.channel == "msteams"


def test_an_activity_without_routing_context_gets_defaults() -> None:
    e = parse({"conversation": {"id": "c"}, "channelData": {"tags": tags()}, "locale": "pl-PL"})
    assert e.attributes.urgency is Urgency.ROUTINE
    assert (e.attributes.specialty, e.attributes.language) == (None, "pl")
    assert e.transcript == []
    assert e.summary is None


def test_tags_sent_as_an_object_are_accepted_too() -> None:
    body = {
        "conversation": {"id": "c"},
        "channelData": {"tags": {"type": "Escalate", "context": {"language": "it"}}},
    }
    assert parse(body).attributes.language == "it"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"botConversationId", "patient", "reason", "triage", "transcript"}),
        ({**NATIVE, "botConversationId": ""}, {"botConversationId"}),
        (
            {**NATIVE, "transcript": [{"from": "nurse", "text": "x", "timestamp": "now"}]},
            {"transcript.0.from", "transcript.0.timestamp"},
        ),
        (
            {**NATIVE, "context": {"k": [1], "flag": True, "long": "x" * 1001}},
            {"context.k", "context.flag", "context.long"},
        ),
        ({**NATIVE, "context": {f"k{i}": i for i in range(51)}}, {"context"}),
        ({**NATIVE, "patient": {"dateOfBirth": "yesterday"}}, {"patient.dateOfBirth"}),
        ({"type": "message", "conversation": {"id": "c"}}, {"channelData"}),
        ({"conversation": {"id": "c"}, "channelData": {"tags": "[]"}}, {"channelData.tags"}),
        (
            {"conversation": {"id": "c"}, "channelData": {"tags": json.dumps({"context": {}})}},
            {"channelData.tags.type"},
        ),
    ],
)
def test_errors_name_the_fields_of_the_format_meant(body: Any, expected: set[str]) -> None:
    assert expected <= errors(body)


def test_a_non_object_body_is_an_error_at_the_root() -> None:
    assert errors([1]) == {""}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("pl", "pl"),
        ("pt-BR", "pt"),
        ("zh_Hant_TW", "zh"),
        ("EN-gb", "en"),
        ("english", None),
        ("", None),
        (None, None),
    ],
)
def test_primary_language(tag: Any, expected: str | None) -> None:
    assert primary_language(tag) == expected
