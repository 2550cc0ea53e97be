"""Which events become which bot callbacks (shared/callbacks/mapping.py), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.callbacks.mapping import (
    SUBJECTS,
    Envelope,
    message_data,
    need_of,
    position_decision,
    position_webhook_id,
    webhook_id,
)
from shared.kernel.catalog import CALLBACKS_SUBSCRIPTION, TOPICS

CID = "c-0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def envelope(type: str, version: int = 3, n: int = 1, **data: Any) -> Envelope:
    return Envelope.parse(
        {
            "id": f"{CID}:{version}.{n}",
            "type": type,
            "aggregateId": CID,
            "version": version,
            "at": "2026-01-05T09:00:00.000Z",
            "data": data,
        }
    )


@pytest.mark.parametrize(
    ("event", "need"),
    [
        (envelope("conversation.waiting", queueId="general"), "position"),
        (envelope("conversation.accepted", agentId="a-1"), "agent"),
        (
            envelope("conversation.message", seq=3, visibility="patient", **{"from": {"role": "agent"}}),
            "message",
        ),
        (
            envelope("conversation.message", seq=3, visibility="patient", **{"from": {"role": "supervisor"}}),
            "message",
        ),
        (
            envelope("conversation.message", seq=3, visibility="patient", **{"from": {"role": "system"}}),
            "message",
        ),
        (envelope("conversation.transferred"), "transferred"),
        (envelope("conversation.closed", endReason="completed"), "closed"),
    ],
)
def test_each_event_the_bot_hears_of_makes_its_callback(event: Envelope, need: str) -> None:
    assert need_of(event) == need


@pytest.mark.parametrize(
    "event",
    [
        envelope("conversation.message", seq=4, visibility="internal", **{"from": {"role": "agent"}}),
        envelope("conversation.message", seq=5, visibility="patient", **{"from": {"role": "patient"}}),
        envelope("conversation.message", seq=1, visibility="patient", **{"from": {"role": "bot"}}),
        envelope("conversation.message", seq=6, **{"from": {"role": "agent"}}),  # no visibility: not sent
        envelope("conversation.offered"),
        envelope("conversation.wrapup"),
        envelope("conversation.declined"),
    ],
)
def test_internal_notes_the_patients_and_the_bots_own_words_and_other_events_make_none(
    event: Envelope,
) -> None:
    assert need_of(event) is None


def test_the_message_document_decides_whatever_the_event_said() -> None:
    view = {
        "seq": 4,
        "from": {"role": "agent", "id": "a-1", "name": "Nurse Joy"},
        "visibility": "internal",
        "text": "note",
    }
    assert message_data(view) is None
    assert message_data({**view, "visibility": "patient", "from": {"role": "patient", "id": "p-1"}}) is None
    assert message_data({**view, "visibility": "patient"}) == {
        "seq": 4,
        "text": "note",
        "from": {"role": "agent", "name": "Nurse Joy"},  # never the staff member's id
    }


def test_webhook_ids_are_dot_free_one_to_one_and_the_same_for_a_redelivery() -> None:
    ids = {webhook_id(f"{CID}:{v}.{n}") for v in range(1, 30) for n in range(1, 4)}
    assert len(ids) == 29 * 3
    assert not any("." in i for i in ids)
    assert webhook_id(f"{CID}:12.1") == webhook_id(f"{CID}:12.1") == f"{CID}:12-1"
    assert webhook_id(f"{CID}:1.21") != webhook_id(f"{CID}:12.1")
    assert position_webhook_id(CID, 3) not in ids


def test_a_body_that_is_not_an_envelope_is_refused() -> None:
    with pytest.raises(ValueError, match="envelope"):
        Envelope.parse({"type": "conversation.closed"})
    with pytest.raises(ValueError, match="aggregate"):
        Envelope.parse(
            {"id": "c-x:3.1", "type": "t", "aggregateId": "c-y", "version": 3, "at": "2026-01-05T09:00:00Z"}
        )


def test_a_changed_place_is_told_at_most_every_15_seconds() -> None:
    assert position_decision(None, None, (3, False), NOW) == "tell"
    assert position_decision((3, False), NOW, (3, False), NOW + timedelta(minutes=5)) == "same"
    assert position_decision((3, False), NOW, (2, False), NOW + timedelta(seconds=14)) == "later"
    assert position_decision((3, False), NOW, (2, False), NOW + timedelta(seconds=15)) == "tell"
    assert (
        position_decision((3, False), NOW, (3, True), NOW + timedelta(seconds=20)) == "tell"
    )  # hours closed


def test_the_subscription_lets_in_exactly_what_the_consumer_handles() -> None:
    spec = TOPICS["events"].subscription(CALLBACKS_SUBSCRIPTION)
    assert spec.requires_session
    assert set(spec.subjects) == set(SUBJECTS)
