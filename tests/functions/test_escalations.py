"""The escalation webhook through the registered function, on the real embedded store and bus."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from shared.conversations.api import bot_key
from shared.conversations.api import conversation_id_for as nth_conversation
from shared.escalations.intake import webhook_record_id
from shared.kernel.clock import ManualClock
from shared.kernel.errors import Unavailable
from shared.kernel.messages import OutgoingMessage
from shared.kernel.observability import install_logging
from shared.patients.matching import provisional_patient_id as provisional_for_key
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, stored_items, token

# Whose bot conversations: the bearer bot (a dev token's sub), or the holder of the webhook secret.
BEARER_BOT = "dev:bot-sp-1"
SIGNED_BOT = "webhook:webhook"


def conversation_id_for(bot_conversation_id: str, bot: str = BEARER_BOT, generation: int = 1) -> str:
    return nth_conversation(bot_key(bot, bot_conversation_id), generation)


def provisional_patient_id(bot_conversation_id: str, bot: str = BEARER_BOT) -> str:
    return provisional_for_key(bot_key(bot, bot_conversation_id))


SECRET = "whsec_" + base64.b64encode(b"escalation-test-key-0123456789ab").decode()
BOT = token("Bot.Escalate", sub="bot-sp-1")
TRANSCRIPT_TEXT = "I have had crushing chest pain since this morning"
SUMMARY_TEXT = "Patient reports dizziness after new medication"

NATIVE: dict[str, Any] = {
    "botConversationId": "bot-conv-1",
    "patient": {"name": "Jan Nowak", "email": "jan.nowak@example.org", "language": "pl"},
    "reason": "Chest pain",
    "triage": {"urgency": "urgent", "specialty": "cardiology", "symptoms": ["chest pain"]},
    "transcript": [
        {"from": "bot", "text": "How can I help?", "timestamp": "2026-01-05T08:58:00Z"},
        {"from": "patient", "text": TRANSCRIPT_TEXT, "timestamp": "2026-01-05T08:59:00Z"},
    ],
    "locale": "pl-PL",
    "channel": "web",
    "context": {"campaign": "winter", "visits": 3},
}


def activity(conversation_id: str = "bf-conv-1", **context: Any) -> dict[str, Any]:
    tags = {"type": "Escalate", "context": {"urgency": "emergency", "specialty": "neurology", **context}}
    return {
        "type": "message",
        "id": "act-1",
        "channelId": "directline",
        "conversation": {"id": conversation_id},
        "from": {"id": "user-1"},
        "locale": "en-US",
        "text": SUMMARY_TEXT,
        "channelData": {"tags": json.dumps(tags)},
    }


@pytest.fixture
def signed(runtime: Runtime) -> Runtime:
    runtime.settings = runtime.settings.model_copy(update={"webhook_secret": SECRET})
    return runtime


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[str, OutgoingMessage]] = []

    @property
    def ids(self) -> list[str]:
        return [m.message_id for _, m in self.messages]


@pytest.fixture
def sent(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Sent:
    record = Sent()
    real_send = runtime.bus.send

    async def send(queue: str, message: OutgoingMessage) -> None:
        await real_send(queue, message)
        record.messages.append((queue, message))

    monkeypatch.setattr(runtime.bus, "send", send)
    return record


def sign(body: bytes, *, msg_id: str = "msg-1", at: datetime, secret: str = SECRET) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


async def post(
    body: Any = None,
    *,
    bearer: str | None = BOT,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    data = raw if raw is not None else json.dumps(NATIVE if body is None else body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return await invoke("escalate", method="POST", bearer=bearer, body=data, headers=all_headers)


async def post_signed(
    body: Any, clock: ManualClock, *, msg_id: str = "msg-1", skew: float = 0, secret: str = SECRET
) -> Answer:
    raw = json.dumps(body).encode()
    at = clock.now() + timedelta(seconds=skew)
    return await post(raw=raw, bearer=None, headers=sign(raw, msg_id=msg_id, at=at, secret=secret))


async def items(runtime: Runtime, container: str) -> list[dict[str, Any]]:
    return await stored_items(runtime, container)


async def conversation(runtime: Runtime, conversation_id: str) -> dict[str, Any]:
    return await runtime.store.container("conversations").read(conversation_id, conversation_id)


async def put_patient(patient_id: str, **fields: Any) -> None:
    body = {"name": f"Patient {patient_id}", **fields}
    answer = await invoke(
        "put_patient",
        method="PUT",
        bearer=token("Administrator", sub="admin-1"),
        json_body=body,
        route_params={"patientId": patient_id},
    )
    assert answer.status in (200, 201), answer.json


# Both formats, both authentication modes ------------------------------------------------------


async def test_a_native_escalation_with_a_bot_token_is_stored_queued_and_routed(
    runtime: Runtime, sent: Sent
) -> None:
    answer = await post()
    assert answer.status == 202, answer.json
    cid = conversation_id_for("bot-conv-1")
    assert answer.json == {"conversationId": cid, "status": "waiting", "queueId": "default"}
    doc = await conversation(runtime, cid)
    assert doc["status"] == "waiting"
    assert doc["botConversationId"] == "bot-conv-1"
    # The transcript is the conversation's first messages, as the patient sees them.
    messages = await invoke(
        "read_messages", bearer=token("Supervisor", sub="super-1"), route_params={"conversationId": cid}
    )
    assert messages.json["items"] == [
        {
            "seq": 1,
            "id": "msg:0000000001",
            "from": {"role": "bot"},
            "visibility": "patient",
            "text": "How can I help?",
            "at": "2026-01-05T08:58:00.000Z",
        },
        {
            "seq": 2,
            "id": "msg:0000000002",
            "from": {"role": "patient", "id": doc["patientId"]},
            "visibility": "patient",
            "text": TRANSCRIPT_TEXT,
            "at": "2026-01-05T08:59:00.000Z",
        },
    ]
    assert (doc["lastSeq"], messages.json["next"]) == (2, None)
    assert doc["reason"] == "Chest pain"
    assert (doc["urgency"], doc["specialty"], doc["language"], doc["locale"]) == (
        "urgent",
        "cardiology",
        "pl",
        "pl-PL",
    )
    assert doc["context"] == {"campaign": "winter", "visits": 3}
    assert doc["priority"] == 2  # urgent
    assert doc["escalatedAt"] == doc["queuedAt"] == "2026-01-05T09:00:00.000Z"
    assert doc["format"] == "native"
    assert doc["patientMatch"] == "provisional"
    assert sent.messages[0][0] == "routing"
    message = sent.messages[0][1]
    assert message.message_id == f"route:{cid}:queued"
    assert message.subject == "route-conversation"
    assert json.loads(message.body) == {"kind": "conversation", "conversationId": cid}
    audit = [r for r in await items(runtime, "audit") if r["resource"] == f"conversations/{cid}"]
    assert [(r["action"], r["actor"], r["patientId"]) for r in audit] == [
        ("create", "bot-sp-1", doc["patientId"])
    ]


async def test_a_signed_bot_framework_activity_is_accepted(
    signed: Runtime, clock: ManualClock, sent: Sent
) -> None:
    answer = await post_signed(activity(floor=3, email="eve@example.org"), clock)
    assert answer.status == 202, answer.json
    cid = conversation_id_for("bf-conv-1", SIGNED_BOT)
    doc = await conversation(signed, cid)
    assert doc["summary"] == SUMMARY_TEXT
    assert doc["lastSeq"] == 0
    assert (doc["urgency"], doc["specialty"], doc["language"]) == ("emergency", "neurology", "en")
    assert doc["context"] == {"floor": 3}  # routing attributes and identity keys are not context
    assert doc["priority"] == 3
    assert doc["format"] == "activity"
    audit = [r for r in await items(signed, "audit") if r["resource"] == f"conversations/{cid}"]
    assert audit[0]["actor"] == "webhook"
    assert sent.ids == [f"route:{cid}:queued"]


async def test_a_signed_native_escalation_is_accepted(signed: Runtime, clock: ManualClock) -> None:
    answer = await post_signed(NATIVE, clock)
    assert answer.status == 202
    assert answer.json["conversationId"] == conversation_id_for("bot-conv-1", SIGNED_BOT)


# Authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic Ym90OmJvdA=="},
        {"webhook-id": "msg-1", "webhook-timestamp": "1767603600", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "msg-1", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "msg-1", "webhook-timestamp": "1767603600", "webhook-signature": "garbage"},
    ],
)
async def test_missing_or_bad_authentication_is_401_and_writes_nothing(
    signed: Runtime, headers: dict[str, str]
) -> None:
    answer = await post(bearer=None, headers=headers)
    assert answer.status == 401
    assert answer.json["type"] == "urn:psc:problem:unauthorized"
    assert "signature" not in answer.json["detail"].lower()
    assert await items(signed, "conversations") == []
    assert await items(signed, "lookups") == []


async def test_a_token_without_the_bot_role_is_403(runtime: Runtime) -> None:
    answer = await post(bearer=token("Agent", sub="agent-1"))
    assert answer.status == 403
    assert await items(runtime, "conversations") == []


async def test_a_signature_with_another_key_is_401(signed: Runtime, clock: ManualClock) -> None:
    other = "whsec_" + base64.b64encode(b"another-key-0123456789abcdefghij").decode()
    assert (await post_signed(NATIVE, clock, secret=other)).status == 401


async def test_a_body_changed_after_signing_is_401(signed: Runtime, clock: ManualClock) -> None:
    raw = json.dumps(NATIVE).encode()
    headers = sign(raw, at=clock.now())
    tampered = raw.replace(b"urgent", b"routine")
    assert (await post(raw=tampered, bearer=None, headers=headers)).status == 401
    assert await items(signed, "conversations") == []


@pytest.mark.parametrize(("skew", "status"), [(-301, 401), (301, 401), (-300, 202), (300, 202), (-3600, 401)])
async def test_the_timestamp_must_be_within_five_minutes_of_the_clock(
    signed: Runtime, clock: ManualClock, skew: float, status: int
) -> None:
    answer = await post_signed(NATIVE, clock, skew=skew)
    assert answer.status == status


async def test_a_signed_delivery_without_a_configured_secret_is_401(
    runtime: Runtime, clock: ManualClock
) -> None:
    assert runtime.settings.webhook_secret is None
    assert (await post_signed(NATIVE, clock)).status == 401


async def test_a_bearer_header_wins_over_a_signature(signed: Runtime, clock: ManualClock) -> None:
    raw = json.dumps(NATIVE).encode()
    headers = {**sign(raw, at=clock.now()), "Authorization": "Bearer not-a-jwt"}
    assert (await post(raw=raw, bearer=None, headers=headers)).status == 401


# Replays and idempotency ----------------------------------------------------------------------


async def test_a_replayed_webhook_id_is_answered_as_a_duplicate_and_not_processed(
    signed: Runtime, clock: ManualClock, sent: Sent
) -> None:
    first = await post_signed(NATIVE, clock, msg_id="msg-42")
    assert first.status == 202
    audit_before = len(await items(signed, "audit"))
    doc_before = await conversation(signed, first.json["conversationId"])
    clock.advance(30)
    # Same id, even re-signed over another body: the first answer, nothing processed.
    other = {**NATIVE, "botConversationId": "bot-conv-other"}
    replay = await post_signed(other, clock, msg_id="msg-42")
    assert replay.status == 200
    assert replay.json == first.json
    assert len(sent.messages) == 1
    assert len(await items(signed, "audit")) == audit_before
    assert len(await items(signed, "conversations")) == 1
    assert (await conversation(signed, first.json["conversationId"]))["_etag"] == doc_before["_etag"]
    record = await signed.store.container("lookups").read(
        webhook_record_id("msg-42"), webhook_record_id("msg-42")
    )
    assert record["ttl"] >= 600
    assert record["answer"] == first.json


async def test_the_same_bot_conversation_again_answers_200_with_the_same_id(
    runtime: Runtime, clock: ManualClock, sent: Sent
) -> None:
    first = await post()
    assert first.status == 202
    doc = await conversation(runtime, first.json["conversationId"])
    # The router marks what it has seen: a repeat must then send nothing.
    await runtime.store.container("conversations").replace(
        {**{k: v for k, v in doc.items() if not k.startswith("_")}, "routedAt": "2026-01-05T09:00:01.000Z"},
        etag=doc["_etag"],
    )
    doc = await conversation(runtime, first.json["conversationId"])
    clock.advance(60)
    again = await post(body={**NATIVE, "reason": "Something else", "triage": {"urgency": "routine"}})
    assert again.status == 200
    assert again.json == first.json
    after = await conversation(runtime, first.json["conversationId"])
    assert after["_etag"] == doc["_etag"]  # changed nothing
    assert len(sent.messages) == 1
    assert len(await items(runtime, "conversations")) == 1


async def test_a_repeat_before_routing_resends_the_routing_request(runtime: Runtime, sent: Sent) -> None:
    first = await post()
    again = await post()
    assert again.status == 200
    cid = first.json["conversationId"]
    assert sent.ids == [f"route:{cid}:queued", f"route:{cid}:queued"]  # same id: deduplicated by the bus


async def test_a_new_webhook_id_for_the_same_bot_conversation_is_still_one_conversation(
    signed: Runtime, clock: ManualClock
) -> None:
    first = await post_signed(NATIVE, clock, msg_id="msg-a")
    second = await post_signed(NATIVE, clock, msg_id="msg-b")
    assert (first.status, second.status) == (202, 200)
    assert second.json["conversationId"] == first.json["conversationId"]
    assert len(await items(signed, "conversations")) == 1


# Bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({k: v for k, v in NATIVE.items() if k != "reason"}, {"body.reason"}),
        ({**NATIVE, "triage": {"urgency": "whenever"}}, {"body.triage.urgency"}),
        (
            {**NATIVE, "transcript": [{"from": "patient"}]},
            {"body.transcript.0.text", "body.transcript.0.timestamp"},
        ),
        ({"patient": {}}, {"body.botConversationId", "body.reason", "body.triage", "body.transcript"}),
        ({**activity(), "conversation": {}}, {"body.conversation.id"}),
        ({**activity(), "channelData": {"tags": "{not json"}}, {"body.channelData.tags"}),
        (
            {**activity(), "channelData": {"tags": json.dumps({"type": "Other"})}},
            {"body.channelData.tags.type"},
        ),
        (activity(urgency="tomorrow"), {"body.channelData.tags"}),
        ([1, 2], {"body"}),
    ],
)
async def test_missing_or_bad_fields_are_400_naming_them_and_write_nothing(
    runtime: Runtime, sent: Sent, body: Any, fields: set[str]
) -> None:
    answer = await post(body=body)
    assert answer.status == 400
    assert answer.json["type"] == "urn:psc:problem:validation"
    assert fields <= {e["field"] for e in answer.json["errors"]}
    for container in ("conversations", "lookups", "patients", "audit"):
        assert await items(runtime, container) == [], container
    assert sent.messages == []


async def test_bad_json_is_400(runtime: Runtime) -> None:
    assert (await post(raw=b"{not json")).status == 400


async def test_a_body_over_256_kib_is_413(signed: Runtime, clock: ManualClock) -> None:
    raw = json.dumps({**NATIVE, "reason": "x" * (256 * 1024)}).encode()
    assert (await post(raw=raw)).status == 413
    headers = sign(raw, at=clock.now())
    assert (await post(raw=raw, bearer=None, headers=headers)).status == 413
    assert await items(signed, "conversations") == []


# Patient matching ------------------------------------------------------------------------------


async def test_a_known_patient_id_matches_by_id(runtime: Runtime) -> None:
    await put_patient("p-1", email="someone@example.org")
    answer = await post(body={**NATIVE, "patient": {"id": "p-1", "email": "other@example.org"}})
    doc = await conversation(runtime, answer.json["conversationId"])
    assert (doc["patientId"], doc["patientMatch"]) == ("p-1", "id")


async def test_a_unique_email_matches_by_email(runtime: Runtime) -> None:
    await put_patient("p-1", email="Jan.Nowak@example.org")
    await put_patient("p-2", email="other@example.org")
    answer = await post(body={**NATIVE, "patient": {"id": "p-404", "email": "jan.nowak@EXAMPLE.org"}})
    doc = await conversation(runtime, answer.json["conversationId"])
    assert (doc["patientId"], doc["patientMatch"]) == ("p-1", "email")


async def test_a_unique_phone_matches_by_phone(runtime: Runtime) -> None:
    await put_patient("p-1", phone="+48 601 234 567")
    answer = await post(body={**NATIVE, "patient": {"phone": "+48601234567"}})
    doc = await conversation(runtime, answer.json["conversationId"])
    assert (doc["patientId"], doc["patientMatch"]) == ("p-1", "phone")


async def test_an_ambiguous_email_creates_a_provisional_patient_reused_on_retry(runtime: Runtime) -> None:
    await put_patient("p-1", email="family@example.org")
    await put_patient("p-2", email="family@example.org")
    answer = await post(body={**NATIVE, "patient": {"name": "Jan Nowak", "email": "family@example.org"}})
    doc = await conversation(runtime, answer.json["conversationId"])
    provisional = provisional_patient_id("bot-conv-1")
    assert (doc["patientId"], doc["patientMatch"]) == (provisional, "provisional")
    patient = await runtime.store.container("patients").read(provisional, provisional)
    assert patient["provisional"] is True
    assert patient["name"] == "Jan Nowak"
    # Staff can read the provisional record through the registry.
    read = await invoke("get_patient", bearer=token("Agent"), route_params={"patientId": provisional})
    assert read.status == 200
    assert read.json["provisional"] is True


async def test_an_email_changed_in_the_registry_no_longer_matches(runtime: Runtime) -> None:
    await put_patient("p-1", email="old@example.org")
    await put_patient("p-1", email="new@example.org")
    old = await post(body={**NATIVE, "botConversationId": "b-old", "patient": {"email": "old@example.org"}})
    new = await post(body={**NATIVE, "botConversationId": "b-new", "patient": {"email": "new@example.org"}})
    assert (await conversation(runtime, old.json["conversationId"]))["patientMatch"] == "provisional"
    assert (await conversation(runtime, new.json["conversationId"]))["patientId"] == "p-1"


# Failures ----------------------------------------------------------------------------------------


async def test_bus_down_is_503_and_the_retry_routes_the_saved_conversation(
    signed: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, sent: Sent
) -> None:
    recording_send = signed.bus.send

    async def down(queue: str, message: OutgoingMessage) -> None:
        raise Unavailable("bus down")

    monkeypatch.setattr(signed.bus, "send", down)
    failed = await post_signed(NATIVE, clock, msg_id="msg-7")
    assert failed.status == 503
    assert failed.json["type"] == "urn:psc:problem:unavailable"
    # The conversation and its event are one transaction: it stands, waiting, never routed.
    (saved,) = await items(signed, "conversations")
    assert (saved["status"], saved.get("routedAt")) == ("waiting", None)
    events = [e for e in await stored_items(signed, "conversations", children=True) if e["type"] == "event"]
    assert [e["eventType"] for e in events] == ["conversation.waiting"]
    assert await items(signed, "lookups") == []  # the webhook-id claim is released: not answered
    assert [p["id"] for p in await items(signed, "patients")] == [
        provisional_patient_id("bot-conv-1", SIGNED_BOT)
    ]

    monkeypatch.setattr(signed.bus, "send", recording_send)
    clock.advance(5)
    retried = await post_signed(NATIVE, clock, msg_id="msg-7")  # a sender retries with the same id
    assert retried.status == 200
    assert retried.json["conversationId"] == saved["id"]
    assert sent.ids == [f"route:{saved['id']}:queued"]
    assert len(await items(signed, "patients")) == 1
    assert len(await items(signed, "conversations")) == 1


async def test_a_saved_conversation_whose_bot_never_retries_is_routed_by_the_sweep(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, sent: Sent
) -> None:
    from shared.routing.api import Assignment, sweep

    recording_send = runtime.bus.send

    async def broken(queue: str, message: OutgoingMessage) -> None:
        raise ConnectionResetError("peer reset")

    monkeypatch.setattr(runtime.bus, "send", broken)
    assert (await post()).status == 503
    (saved,) = await items(runtime, "conversations")
    monkeypatch.setattr(runtime.bus, "send", recording_send)
    assert (await sweep(Assignment(runtime.store, runtime.bus, clock)))["rerouted"] == 0  # too fresh
    clock.advance(61)
    assert (await sweep(Assignment(runtime.store, runtime.bus, clock)))["rerouted"] == 1
    assert sent.ids == [f"route:{saved['id']}:queued"]


async def test_a_delivery_whose_first_attempt_died_midway_is_completed(
    signed: Runtime, clock: ManualClock, sent: Sent
) -> None:
    # A claim without an answer: the first attempt died after claiming the webhook-id.
    record_id = webhook_record_id("msg-9")
    await signed.store.container("lookups").create({"id": record_id, "type": "webhook-delivery", "ttl": 3600})
    answer = await post_signed(NATIVE, clock, msg_id="msg-9")
    assert answer.status == 202
    assert len(sent.messages) == 1


# PHI and documentation ---------------------------------------------------------------------------


async def test_no_transcript_summary_or_patient_detail_reaches_the_logs(
    signed: Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    install_logging(logging.DEBUG)
    await post()
    await post()
    await post_signed(activity(email="eve@example.org"), clock)
    await post(body={**NATIVE, "triage": {"urgency": "bad"}})

    async def down(queue: str, message: OutgoingMessage) -> None:
        raise Unavailable(f"failed while sending {TRANSCRIPT_TEXT}")

    monkeypatch.setattr(signed.bus, "send", down)
    await post(body={**NATIVE, "botConversationId": "bot-conv-2"})
    text = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    for value in (
        TRANSCRIPT_TEXT,
        SUMMARY_TEXT,
        "Jan Nowak",
        "jan.nowak@example.org",
        "eve@example.org",
        "Chest pain",
    ):
        assert value not in text, value
    assert "escalation accepted" in caplog.text


async def test_openapi_documents_the_route_with_both_security_schemes(runtime: Runtime) -> None:
    document = (await invoke("openapi")).json
    operation = document["paths"]["/api/escalations"]["post"]
    assert operation["security"] == [{"bearer": []}, {"webhookSignature": []}]
    assert operation["x-roles"] == ["Bot.Escalate"]
    assert {"200", "202", "400", "401", "403", "413", "503"} <= set(operation["responses"])
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/EscalationRequest"
    )
    schemes = document["components"]["securitySchemes"]
    assert schemes["webhookSignature"]["name"] == "webhook-signature"
    assert {"NativeEscalation", "BotActivity", "EscalationAnswer"} <= set(document["components"]["schemas"])


async def test_an_escalation_reaches_an_agent_through_the_routing_function(
    signed: Runtime, clock: ManualClock, sent: Sent
) -> None:
    from tests.routing.support import deliver, presence, put_agent, put_queue, put_rules

    await put_queue("cardio")
    await put_rules([{"when": {"specialty": ["cardiology"]}, "queueId": "cardio"}], fallback="cardio")
    await put_agent("a-1", queues=["cardio"], languages=["pl"])
    await presence("a-1", "available")
    answer = await post_signed(NATIVE, clock)
    assert answer.status == 202
    assert answer.json["queueId"] == "cardio"
    assert await deliver(signed) >= 1
    doc = await conversation(signed, answer.json["conversationId"])
    assert doc["routedAt"]
    assert doc["status"] == "offered"
    assert doc["agentId"] == "a-1"
    # Delivered again after routing: the answer carries the current status and nothing is resent.
    before = len(sent.messages)
    again = await post_signed(NATIVE, clock, msg_id="msg-again")
    assert again.status == 200
    assert again.json == {"conversationId": doc["id"], "status": "offered", "queueId": "cardio"}
    assert len(sent.messages) == before


async def test_concurrent_deliveries_of_one_bot_conversation_make_one_conversation(
    runtime: Runtime, sent: Sent
) -> None:
    import asyncio

    answers = await asyncio.gather(*(post() for _ in range(5)))
    assert sorted(a.status for a in answers) == [200, 200, 200, 200, 202]
    assert len({a.json["conversationId"] for a in answers}) == 1
    assert len(await items(runtime, "conversations")) == 1
    assert len(await items(runtime, "patients")) == 1
    assert set(sent.ids) == {f"route:{answers[0].json['conversationId']}:queued"}


# The bot's callback URL (PRODUCT.md "Bot callbacks") -------------------------------------------

CALLBACK_SECRET = "whsec_" + base64.b64encode(b"callback-test-key-0123456789abcd").decode()


@pytest.fixture
def callbacks_allowed(runtime: Runtime) -> Runtime:
    runtime.settings = runtime.settings.model_copy(
        update={"bot_callback_hosts": "bots.example.org,127.0.0.1", "bot_callback_secret": CALLBACK_SECRET}
    )
    return runtime


async def test_a_callback_url_on_a_listed_host_is_stored_with_the_conversation(
    callbacks_allowed: Runtime,
) -> None:
    native = {**NATIVE, "callback": {"url": "https://Bots.Example.org/hooks/psc?token=t0ken"}}
    answer = await post(body=native)
    assert answer.status == 202, answer.json
    stored = await conversation(callbacks_allowed, answer.json["conversationId"])
    assert stored["callbackUrl"] == "https://bots.example.org/hooks/psc?token=t0ken"
    # Never served: it may carry the bot's token.
    view = await invoke(
        "get_conversation",
        bearer=token("Supervisor", sub="sup-1"),
        route_params={"conversationId": answer.json["conversationId"]},
    )
    assert view.status == 200, view.json
    assert "t0ken" not in json.dumps(view.json)


async def test_an_activity_carries_its_callback_in_channel_data(callbacks_allowed: Runtime) -> None:
    body = activity("bf-cb-1")
    body["channelData"]["callback"] = {"url": "http://127.0.0.1:3978/api/psc"}
    answer = await post(body=body)
    assert answer.status == 202, answer.json
    stored = await conversation(callbacks_allowed, answer.json["conversationId"])
    assert stored["callbackUrl"] == "http://127.0.0.1:3978/api/psc"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://evil.example.com/hook?token=s3cret", "PSC_BOT_CALLBACK_HOSTS"),
        ("http://bots.example.org/hook?token=s3cret", "must use https"),
        ("https://user:s3cret@bots.example.org/hook", "user name or password"),
        ("https://bots.example.org/hook#s3cret", "fragment"),
        ("https://bots.example.org:8443/hook?token=s3cret", "port"),
        ("ftp://bots.example.org/s3cret", "https URL"),
    ],
)
async def test_a_refused_callback_url_is_400_naming_the_rule_never_the_url_and_writes_nothing(
    callbacks_allowed: Runtime, sent: Sent, url: str, rule: str
) -> None:
    answer = await post(body={**NATIVE, "callback": {"url": url}})
    assert answer.status == 400, answer.json
    [error] = answer.json["errors"]
    assert error["field"] == "body.callback.url"
    assert rule in error["message"]
    assert "s3cret" not in json.dumps(answer.json)
    for container in ("conversations", "lookups", "patients", "audit"):
        assert await items(callbacks_allowed, container) == [], container
    assert sent.messages == []


async def test_an_activity_callback_refused_names_its_channel_data_field(callbacks_allowed: Runtime) -> None:
    body = activity("bf-cb-2")
    body["channelData"]["callback"] = {"url": "https://elsewhere.example.net/hook"}
    answer = await post(body=body)
    assert answer.status == 400
    assert [e["field"] for e in answer.json["errors"]] == ["body.channelData.callback.url"]


async def test_without_callback_hosts_every_callback_url_is_refused(runtime: Runtime) -> None:
    answer = await post(body={**NATIVE, "callback": {"url": "https://bots.example.org/hook"}})
    assert answer.status == 400
    assert "PSC_BOT_CALLBACK_HOSTS" in answer.json["errors"][0]["message"]
