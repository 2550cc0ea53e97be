"""A known day of events (docs/KPIS.md's cases) as envelopes in the exact shapes the services
write, each aggregate's versions counted as the outbox counts them, and the numbers the
definitions give for it, worked out by hand."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

Envelope = dict[str, Any]


class Feed:
    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self._versions: dict[str, int] = defaultdict(int)

    def write(self, aggregate_id: str, at: str, *events: tuple[str, dict[str, Any]]) -> None:
        """One write of an aggregate: its next version, the events numbered from 1."""
        self._versions[aggregate_id] += 1
        version = self._versions[aggregate_id]
        for n, (kind, data) in enumerate(events, start=1):
            self.events.append(
                {
                    "id": f"{aggregate_id}:{version}.{n}",
                    "type": kind,
                    "aggregateId": aggregate_id,
                    "version": version,
                    "at": at,
                    "data": data,
                }
            )


def t(hms: str) -> str:
    return f"2026-03-02T{hms}.000Z"


def waiting(queue: str, at: str, sl: int, *, first: bool = True, first_queue: str | None = None) -> Any:
    return (
        "conversation.waiting",
        {
            "queueId": queue,
            "queuedAt": at,
            "first": first,
            "escalatedAt": at,
            "serviceLevelSeconds": sl,
            "priority": 1,
            "firstQueueId": first_queue or queue,
        },
    )


def accepted(
    queue: str, agent: str, at: str, wait: float, first_wait: float, sl: int, first: bool, fq: str
) -> Any:
    return (
        "conversation.accepted",
        {
            "agentId": agent,
            "queueId": queue,
            "first": first,
            "queuedAt": "…",
            "acceptedAt": at,
            "waitSeconds": wait,
            "firstWaitSeconds": first_wait,
            "serviceLevelSeconds": sl,
            "firstQueueId": fq,
        },
    )


def closed(
    queue: str, agent: str | None, at: str, handled: bool, active: float | None, wrapup: float | None
) -> Any:
    return (
        "conversation.closed",
        {
            "queueId": queue,
            "agentId": agent,
            "handled": handled,
            "activeSeconds": active,
            "wrapupSeconds": wrapup,
            "endReason": "completed" if handled else "overflow-end",
            "closedAt": at,
        },
    )


def abandoned(queue: str, at: str, wait: float, sl: int) -> Any:
    return (
        "conversation.abandoned",
        {
            "queueId": queue,
            "agentId": None,
            "waitSeconds": wait,
            "serviceLevelSeconds": sl,
            "firstQueueId": queue,
            "abandonedAt": at,
        },
    )


def presence(
    status: str, load: int, at: str, capacity: int = 2, queues: tuple[str, ...] = ("gen", "bill")
) -> Any:
    return (
        "agent.presence",
        {
            "status": status,
            "chosen": status,
            "load": load,
            "capacity": capacity,
            "queues": list(queues),
            "at": at,
        },
    )


def known_day() -> list[Envelope]:
    f = Feed()
    # Agent a-1's presence over the hour (a-2 sends none: it adds no utilization).
    f.write("a-1", t("09:50:00"), presence("available", 0, t("09:50:00")))
    # c-1: queued in gen (threshold 30 s), declined by a-1, accepted by a-2 after 20 s (within),
    # first agent reply 30 s later, transferred to bill, accepted there by a-1 after 60 s, closed.
    f.write("c-1", t("10:00:00"), waiting("gen", t("10:00:00"), 30))
    f.write(
        "c-1", t("10:00:05"), ("conversation.offered", {"agentId": "a-1", "queueId": "gen", "offerSeq": 1})
    )
    f.write("c-1", t("10:00:08"), ("conversation.declined", {"agentId": "a-1", "queueId": "gen", "count": 1}))
    f.write("c-1", t("10:00:20"), accepted("gen", "a-2", t("10:00:20"), 20, 20, 30, True, "gen"))
    msg = {"seq": 2, "visibility": "patient", "from": {"role": "agent", "id": "a-2"}, "queueId": "gen"}
    f.write(
        "c-1",
        t("10:00:50"),
        (
            "conversation.message",
            {**msg, "agentId": "a-2", "firstAgentResponse": True, "responseSeconds": 30.0},
        ),
    )
    f.write(
        "c-1",
        t("10:01:30"),
        (
            "conversation.message",
            {**msg, "seq": 3, "agentId": "a-2", "firstAgentResponse": False, "responseSeconds": None},
        ),
    )
    transfer = {
        "fromQueueId": "gen",
        "toQueueId": "bill",
        "fromAgentId": "a-2",
        "toAgentId": None,
        "engaged": True,
        "status": "active",
    }
    f.write(
        "c-1",
        t("10:05:00"),
        ("conversation.transferred", transfer),
        waiting("bill", t("10:05:00"), 60, first=False, first_queue="gen"),
    )
    f.write("c-1", t("10:06:00"), accepted("bill", "a-1", t("10:06:00"), 60, 20, 30, False, "gen"))
    f.write("a-1", t("10:06:00"), presence("busy", 1, t("10:06:00")))
    f.write("c-1", t("10:20:00"), closed("bill", "a-1", t("10:20:00"), True, 1000.0, 180.0))
    # c-2 left after 5 s (short abandon); c-3 after 120 s (abandoned).
    f.write("c-2", t("10:01:00"), waiting("gen", t("10:01:00"), 30))
    f.write(
        "c-2",
        t("10:01:05"),
        abandoned("gen", t("10:01:05"), 5.0, 30),
        closed("gen", None, t("10:01:05"), False, None, None),
    )
    f.write("c-3", t("10:02:00"), waiting("gen", t("10:02:00"), 30))
    f.write(
        "c-3",
        t("10:04:00"),
        abandoned("gen", t("10:04:00"), 120.0, 30),
        closed("gen", None, t("10:04:00"), False, None, None),
    )
    # c-4: accepted by a-1 after 70 s (outside the threshold), closed later.
    f.write("c-4", t("10:14:00"), waiting("gen", t("10:14:00"), 30))
    f.write("c-4", t("10:15:10"), accepted("gen", "a-1", t("10:15:10"), 70, 70, 30, True, "gen"))
    f.write("a-1", t("10:15:10"), presence("busy", 2, t("10:15:10")))
    f.write("a-1", t("10:20:00"), presence("busy", 1, t("10:20:00")))
    f.write("c-4", t("10:40:00"), closed("gen", "a-1", t("10:40:00"), True, 1400.0, 70.0))
    f.write("a-1", t("10:40:00"), presence("available", 0, t("10:40:00")))
    f.write("a-1", t("11:00:00"), presence("offline", 0, t("11:00:00")))
    # c-5: entered bill and was ended by overflow: incoming only.
    f.write("c-5", t("10:30:00"), waiting("bill", t("10:30:00"), 60))
    f.write("c-5", t("10:31:00"), closed("bill", None, t("10:31:00"), False, None, None))
    # Surveys about c-1 (queue gen, agent a-2), sent 10:10, answered later.
    about = {"queueId": "gen", "agentId": "a-2", "conversationId": "c-1", "sentAt": t("10:10:00")}
    for survey in ("s-1", "s-2", "s-3", "s-4"):
        f.write(survey, t("10:10:00"), ("survey.sent", about))
    f.write("s-1", t("12:00:00"), ("survey.answered", {**about, "csat": 5, "nps": 9}))
    f.write("s-2", t("12:30:00"), ("survey.answered", {**about, "csat": 3, "nps": 5}))
    f.write("s-4", t("13:00:00"), ("survey.answered", {**about, "csat": 4}))
    # Reminders: n-1 delivered (reported twice), n-2 failed, n-3 delivered then a fallback's
    # failure; n-4 is a confirmation, not a reminder.
    for note, purpose in (
        ("n-1", "reminder"),
        ("n-2", "reminder"),
        ("n-3", "reminder"),
        ("n-4", "confirmation"),
    ):
        f.write(note, t("10:00:00"), ("notification.sent", {"purpose": purpose, "sentAt": t("10:00:00")}))
    sent = {"purpose": "reminder", "sentAt": t("10:00:00")}
    f.write("n-1", t("10:00:09"), ("notification.delivered", sent))
    f.write("n-1", t("10:00:12"), ("notification.delivered", sent))
    f.write("n-2", t("10:00:09"), ("notification.failed", sent))
    f.write("n-3", t("10:00:09"), ("notification.delivered", sent))
    f.write("n-3", t("10:00:30"), ("notification.failed", sent))
    f.write("n-4", t("10:00:09"), ("notification.delivered", {**sent, "purpose": "confirmation"}))
    # Appointments: a no-show; one arrived then fulfilled (attended once); a no-show corrected to arrived.
    appt = {"patientId": "p-1", "providerId": "dr-1", "start": t("10:30:00"), "end": t("10:45:00")}
    f.write("ap-1", t("10:50:00"), ("appointment.noshow", {**appt, "status": "noshow"}))
    f.write("ap-2", t("10:29:00"), ("appointment.arrived", {**appt, "status": "arrived"}))
    f.write("ap-2", t("10:46:00"), ("appointment.fulfilled", {**appt, "status": "fulfilled"}))
    late = {**appt, "start": t("10:45:00"), "end": t("11:00:00")}
    f.write("ap-3", t("11:05:00"), ("appointment.noshow", {**late, "status": "noshow"}))
    f.write("ap-3", t("11:06:00"), ("appointment.arrived", {**late, "status": "arrived"}))
    return f.events


# 10:00-11:00, the whole service (docs/KPIS.md, by hand):
UTILIZATION = 2330 / 7200  # a-1: load-seconds 550 + 580 + 1200 over capacity-seconds 2 x 3600
HOUR_ALL = {
    "incoming": 5,  # c-1 … c-5
    "engaged": 2,  # c-1 (once, though accepted twice), c-4
    "abandoned": 1,  # c-3
    "shortAbandoned": 1,  # c-2
    "transferred": 1,
    "firstWaitSeconds": 45.0,  # (20 + 70) / 2
    "asaSeconds": 50.0,  # (20 + 60 + 70) / 3 acceptances
    "serviceLevel": 1 / 3,  # c-1 within / (2 engaged + 1 abandoned)
    "abandonRate": 0.25,  # 1 / (5 - 1 short)
    "transferRate": 0.5,
    "ahtSeconds": 1325.0,  # (1180 + 1470) / 2
    "firstResponseSeconds": 30.0,
    "utilization": UTILIZATION,
    "csat": 2 / 3,
    "nps": 0.0,  # one promoter, one detractor
    "surveyResponseRate": 0.75,
    "reminderDeliveryRate": 2 / 3,
    "noShowRate": 1 / 3,
}
HOUR_GEN = {
    **HOUR_ALL,
    "incoming": 4,
    "asaSeconds": 45.0,  # c-1's second acceptance belongs to bill
    "ahtSeconds": 1470.0,  # c-1 closed in bill
    "abandonRate": 1 / 3,
    "utilization": UTILIZATION,  # a-1 served gen and bill
    "reminderDeliveryRate": None,  # reminders belong to no queue
    "noShowRate": None,
}
HOUR_BILL = {
    "incoming": 1,
    "engaged": 0,
    "abandoned": 0,
    "shortAbandoned": 0,
    "transferred": 0,
    "firstWaitSeconds": None,
    "asaSeconds": 60.0,
    "serviceLevel": None,
    "abandonRate": 0.0,
    "transferRate": None,
    "ahtSeconds": 1180.0,
    "firstResponseSeconds": None,
    "utilization": UTILIZATION,
    "csat": None,
    "nps": None,
    "surveyResponseRate": None,
    "reminderDeliveryRate": None,
    "noShowRate": None,
}
HOUR_A1 = {
    **HOUR_BILL,
    "incoming": 0,
    "engaged": 1,  # c-4
    "firstWaitSeconds": 70.0,
    "asaSeconds": 65.0,  # c-1 in bill 60, c-4 70
    "serviceLevel": 0.0,  # c-4 outside the threshold
    "abandonRate": None,
    "transferRate": 0.0,
    "ahtSeconds": 1325.0,
}
HOUR_A2 = {
    **HOUR_BILL,
    "incoming": 0,
    "engaged": 1,
    "transferred": 1,
    "firstWaitSeconds": 20.0,
    "asaSeconds": 20.0,
    "serviceLevel": 1.0,
    "abandonRate": None,
    "transferRate": 1.0,
    "ahtSeconds": None,
    "firstResponseSeconds": 30.0,
    "utilization": None,  # no presence events
    "csat": 2 / 3,
    "nps": 0.0,
    "surveyResponseRate": 0.75,
}
