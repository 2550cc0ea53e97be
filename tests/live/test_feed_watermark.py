"""The feed's watermark without a hub: a push that fails moves nothing, so the event comes again
and is pushed; a completed event is never pushed twice; the catalogue's subscription asks for
exactly the subjects the feed shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from shared.kernel.catalog import TOPICS
from shared.kernel.errors import Unavailable
from shared.kernel.stored import Stored
from shared.live.api import SUBJECTS, WATERMARK_ID, LiveFeed, Watermark
from shared.runtime import Runtime
from tests.functions.test_messages import active, staff_write
from tests.live.support import envelopes, event_items


class RecordingHub:
    """A Realtime that keeps what it was asked to do; `fail_at` makes the n-th send raise."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.changes: list[tuple[str, str, str]] = []
        self.fail_at = fail_at

    async def client_url(self, user_id: str, groups: Sequence[str], *, minutes: int = 5) -> str:
        raise AssertionError("not used")

    async def send_to_group(self, group: str, payload: Mapping[str, Any]) -> None:
        if self.fail_at is not None and len(self.sent) + 1 == self.fail_at:
            self.fail_at = None
            raise Unavailable("hub down")
        self.sent.append((group, dict(payload)))

    async def add_user_to_group(self, group: str, user_id: str) -> None:
        self.changes.append(("add", group, user_id))

    async def remove_user_from_group(self, group: str, user_id: str) -> None:
        self.changes.append(("remove", group, user_id))

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def test_the_subscription_wants_exactly_the_subjects_the_feed_shows() -> None:
    (realtime,) = [s for s in TOPICS["events"].subscriptions if s.name == "realtime"]
    assert set(realtime.subjects) == set(SUBJECTS)
    assert realtime.requires_session  # one conversation's frames in order


async def test_a_failed_push_is_pushed_on_redelivery_and_a_done_one_never_again(runtime: Runtime) -> None:
    cid = await active(runtime)
    assert (await staff_write(cid, text="Hello")).status == 201
    events = envelopes(await event_items(runtime))
    message = next(e for e in events if e["type"] == "conversation.message")

    broken = RecordingHub(fail_at=2)  # the patient's frame goes, the staff frame fails
    with pytest.raises(Unavailable):
        await LiveFeed(runtime.store, broken).handle(message)
    assert await Stored(runtime.store, "conversations", Watermark).read_or_none(WATERMARK_ID, cid) is None

    hub = RecordingHub()
    feed = LiveFeed(runtime.store, hub)
    assert await feed.handle(message) == 2
    assert [g for g, _ in hub.sent] == [f"conv.{cid}.patient", f"conv.{cid}.staff"]
    # The patient's frame went twice: the same `event` id, which the client drops.
    assert broken.sent[0][1]["event"] == hub.sent[0][1]["event"] == message["id"]

    mark = await Stored(runtime.store, "conversations", Watermark).read(WATERMARK_ID, cid)
    assert (mark.version, mark.n, mark.conversation_id) == (message["version"], 1, cid)
    assert await feed.handle(message) == 0
    # An older event of the same conversation than the watermark: pushed already, nothing goes.
    older = next(e for e in events if e["type"] == "conversation.accepted")
    assert await feed.handle(older) == 0
    assert len(hub.sent) == 2


async def test_subjects_it_does_not_show_are_acknowledged_and_change_nothing(runtime: Runtime) -> None:
    hub = RecordingHub()
    envelope = {"id": "a-1:3.1", "type": "appointment.booked", "aggregateId": "a-1", "version": 3, "at": "x"}
    assert await LiveFeed(runtime.store, hub).handle(envelope) == 0
    assert hub.sent == []
