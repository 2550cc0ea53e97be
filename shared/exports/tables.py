"""The Power BI star schema: its tables, their columns and types, and the rows of each fact built
from events (envelopes `{"id", "type", "aggregateId", "version", "at", "data"}`, as the `events`
topic carries them). Pure functions: no store, no clock, no Parquet library.

Ids, codes, stamps and measures only: no names, contact details or free text (events carry none,
and the dimensions keep only ids and settings). docs/POWERBI.md describes the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.kernel.times import parse_stamp

Row = dict[str, Any]

# Conversations are exported on the day they closed, with what their events of that day and the
# LOOKBACK days before say (the history is read by day); one open longer keeps its closing measures
# (handled, active and wrap-up seconds, end reason) and loses only its earlier counts and stamps.
LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class Table:
    """A table of the star schema: `columns` maps each column to its DuckDB type (written as the
    Parquet logical type Power BI reads). `by_date`: written as `<name>/date=YYYY-MM-DD/`, else
    one snapshot `<name>/<name>.parquet` replaced by every export. The day is also in every row as
    `dateKey` (not `date`: Hive-style readers add the folder's `date` as a column of their own)."""

    name: str
    columns: Mapping[str, str]
    by_date: bool = True

    def file(self, day: date | None = None) -> str:
        if self.by_date:
            assert day is not None
            return f"{self.name}/date={day.isoformat()}/{self.name}.parquet"
        return f"{self.name}/{self.name}.parquet"


CONVERSATIONS = Table(
    "conversations",
    {
        "conversationId": "VARCHAR",
        "dateKey": "DATE",
        "queueId": "VARCHAR",
        "firstQueueId": "VARCHAR",
        "agentId": "VARCHAR",
        "firstAgentId": "VARCHAR",
        "escalatedAt": "TIMESTAMP",
        "firstQueuedAt": "TIMESTAMP",
        "firstAcceptedAt": "TIMESTAMP",
        "closedAt": "TIMESTAMP",
        "endReason": "VARCHAR",
        "engaged": "BOOLEAN",
        "handled": "BOOLEAN",
        "abandoned": "BOOLEAN",
        "firstWaitSeconds": "DOUBLE",
        "abandonWaitSeconds": "DOUBLE",
        "serviceLevelSeconds": "INTEGER",
        "withinServiceLevel": "BOOLEAN",
        "activeSeconds": "DOUBLE",
        "wrapupSeconds": "DOUBLE",
        "handleSeconds": "DOUBLE",
        "firstResponseSeconds": "DOUBLE",
        "offers": "INTEGER",
        "declines": "INTEGER",
        "expiredOffers": "INTEGER",
        "transfers": "INTEGER",
        "messages": "INTEGER",
        "patientMessages": "INTEGER",
        "agentMessages": "INTEGER",
    },
)
APPOINTMENTS = Table(
    "appointments",
    {
        "appointmentId": "VARCHAR",
        "dateKey": "DATE",
        "change": "VARCHAR",
        "at": "TIMESTAMP",
        "providerId": "VARCHAR",
        "conversationId": "VARCHAR",
        "status": "VARCHAR",
        "start": "TIMESTAMP",
        "startDate": "DATE",
        "end": "TIMESTAMP",
        "minutesBooked": "DOUBLE",
        "noticeHours": "DOUBLE",
    },
)
# Notifications and surveys are facts per **change**, like appointments: a row on the day of each
# event (a notification sent, sent again on its fallback channel, delivered, failed; a survey sent,
# answered), so a day's file never changes after the day however late a delivery report or an
# answer comes. Each row repeats the notification's first `sentAt` (and `sentDate`), so the
# rates count by the day sent, as docs/KPIS.md does. Ids, codes, stamps and scores only: no
# patient id, no text, no address, no survey comment (the events carry none of the last three).
NOTIFICATIONS = Table(
    "notifications",
    {
        "notificationId": "VARCHAR",
        "dateKey": "DATE",
        "change": "VARCHAR",
        "at": "TIMESTAMP",
        "purpose": "VARCHAR",
        "kind": "VARCHAR",
        "channel": "VARCHAR",
        "fallback": "BOOLEAN",
        "appointmentId": "VARCHAR",
        "conversationId": "VARCHAR",
        "providerId": "VARCHAR",
        "queueId": "VARCHAR",
        "agentId": "VARCHAR",
        "sentAt": "TIMESTAMP",
        "sentDate": "DATE",
        "failureCode": "VARCHAR",
    },
)
SURVEYS = Table(
    "surveys",
    {
        "surveyId": "VARCHAR",
        "dateKey": "DATE",
        "change": "VARCHAR",
        "at": "TIMESTAMP",
        "channel": "VARCHAR",
        "conversationId": "VARCHAR",
        "appointmentId": "VARCHAR",
        "queueId": "VARCHAR",
        "agentId": "VARCHAR",
        "providerId": "VARCHAR",
        "sentAt": "TIMESTAMP",
        "sentDate": "DATE",
        "answeredAt": "TIMESTAMP",
        "csat": "INTEGER",
        "nps": "INTEGER",
    },
)
DATES = Table(
    "dates",
    {
        "dateKey": "DATE",
        "year": "INTEGER",
        "quarter": "INTEGER",
        "month": "INTEGER",
        "day": "INTEGER",
        "isoYear": "INTEGER",
        "isoWeek": "INTEGER",
        "isoWeekday": "INTEGER",
    },
)
QUEUES = Table(
    "queues",
    {
        "queueId": "VARCHAR",
        "priority": "INTEGER",
        "assignmentMethod": "VARCHAR",
        "serviceLevelSeconds": "INTEGER",
        "acceptTimeoutSeconds": "INTEGER",
        "wrapupSeconds": "INTEGER",
        "capacityUnits": "INTEGER",
    },
    by_date=False,
)
AGENTS = Table("agents", {"agentId": "VARCHAR", "capacity": "INTEGER"}, by_date=False)
PROVIDERS = Table(
    "providers",
    {
        "providerId": "VARCHAR",
        "specialty": "VARCHAR",
        "timeZone": "VARCHAR",
        "slotMinutes": "INTEGER",
    },
    by_date=False,
)

FACTS = (CONVERSATIONS, APPOINTMENTS, NOTIFICATIONS, SURVEYS)
DIMENSIONS = (DATES, QUEUES, AGENTS, PROVIDERS)


def _time(value: Any) -> datetime | None:
    """A stamp as naive UTC (Parquet TIMESTAMP without zone: Power BI shows it as it is, in UTC)."""
    if not value:
        return None
    return parse_stamp(value).astimezone(UTC).replace(tzinfo=None)


def _order(event: Mapping[str, Any]) -> tuple[int, int]:
    version, _, n = str(event["id"]).rpartition(":")[2].partition(".")
    return int(version), int(n or 0)


def by_aggregate(events: Iterable[Mapping[str, Any]], prefix: str) -> dict[str, list[Mapping[str, Any]]]:
    """Events of type `prefix.*` per aggregate, in the order they were written, each once (a
    history that holds a redelivered event twice counts it once)."""
    seen: set[str] = set()
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        if not str(event["type"]).startswith(prefix) or event["id"] in seen:
            continue
        seen.add(event["id"])
        grouped[event["aggregateId"]].append(event)
    for items in grouped.values():
        items.sort(key=_order)
    return grouped


def conversation_rows(events: Iterable[Mapping[str, Any]], day: date) -> list[Row]:
    """One row per conversation closed on `day` (UTC), from its events (docs/KPIS.md names the
    attributes each carries)."""
    rows = []
    for conversation_id, items in by_aggregate(events, "conversation.").items():
        row = _conversation(conversation_id, items)
        if row is not None and row["dateKey"] == day:
            rows.append(row)
    return sorted(rows, key=lambda r: (r["closedAt"], r["conversationId"]))


def _conversation(conversation_id: str, events: list[Mapping[str, Any]]) -> Row | None:
    row: Row = dict.fromkeys(CONVERSATIONS.columns)
    row.update(conversationId=conversation_id, engaged=False, abandoned=False)
    for key in (
        "offers",
        "declines",
        "expiredOffers",
        "transfers",
        "messages",
        "patientMessages",
        "agentMessages",
    ):
        row[key] = 0
    closed = None
    for event in events:
        kind, data = event["type"], event.get("data") or {}
        if kind == "conversation.waiting" and data.get("first"):
            row.update(
                escalatedAt=_time(data.get("escalatedAt")),
                firstQueuedAt=_time(data.get("queuedAt")),
                firstQueueId=data.get("firstQueueId") or data.get("queueId"),
                serviceLevelSeconds=data.get("serviceLevelSeconds"),
            )
        elif kind == "conversation.offered":
            row["offers"] += 1
        elif kind == "conversation.declined":
            row["declines"] += 1
        elif kind == "conversation.expired":
            row["expiredOffers"] += 1
        elif kind == "conversation.transferred" and data.get("engaged"):
            row["transfers"] += 1
        elif kind == "conversation.accepted" and data.get("first"):
            row.update(
                engaged=True,
                firstAgentId=data.get("agentId"),
                firstAcceptedAt=_time(data.get("acceptedAt") or event["at"]),
                firstWaitSeconds=data.get("firstWaitSeconds"),
                serviceLevelSeconds=data.get("serviceLevelSeconds", row["serviceLevelSeconds"]),
                firstQueueId=data.get("firstQueueId") or row["firstQueueId"],
            )
        elif kind == "conversation.message":
            role = (data.get("from") or {}).get("role")
            row["messages"] += 1
            row["patientMessages"] += role == "patient"
            row["agentMessages"] += role == "agent"
            if data.get("firstAgentResponse"):
                row["firstResponseSeconds"] = data.get("responseSeconds")
        elif kind == "conversation.abandoned":
            row.update(abandoned=True, abandonWaitSeconds=data.get("waitSeconds"))
        elif kind == "conversation.closed":
            closed = data
            closed_at = data.get("closedAt") or event["at"]
    if closed is None:
        return None
    active, wrapup = closed.get("activeSeconds"), closed.get("wrapupSeconds")
    at = _time(closed_at)
    assert at is not None
    row.update(
        dateKey=at.date(),
        closedAt=at,
        queueId=closed.get("queueId"),
        agentId=closed.get("agentId"),
        handled=bool(closed.get("handled")),
        endReason=closed.get("endReason"),
        activeSeconds=active,
        wrapupSeconds=wrapup,
        handleSeconds=(active or 0.0) + (wrapup or 0.0) if closed.get("handled") else None,
    )
    # Engaged conversations only: whether an abandon counts against the service level depends on
    # the short-abandon threshold (docs/KPIS.md), which the report applies to abandonWaitSeconds.
    threshold, wait = row["serviceLevelSeconds"], row["firstWaitSeconds"]
    if row["engaged"] and threshold is not None and wait is not None:
        row["withinServiceLevel"] = wait <= threshold
    return row


def appointment_rows(events: Iterable[Mapping[str, Any]], day: date) -> list[Row]:
    """One row per change of an appointment on `day` (booked, rescheduled, cancelled, arrived,
    fulfilled, noshow): the no-show rate counts the outcomes per `startDate`."""
    rows = []
    for appointment_id, items in by_aggregate(events, "appointment.").items():
        for event in items:
            at = _time(event["at"])
            if at is None or at.date() != day:
                continue
            data = event.get("data") or {}
            start, end = _time(data.get("start")), _time(data.get("end"))
            rows.append(
                {
                    "appointmentId": appointment_id,
                    "dateKey": day,
                    "change": str(event["type"]).removeprefix("appointment."),
                    "at": at,
                    "providerId": data.get("providerId"),
                    "conversationId": data.get("conversationId"),
                    "status": data.get("status"),
                    "start": start,
                    "startDate": start.date() if start else None,
                    "end": end,
                    "minutesBooked": (end - start).total_seconds() / 60 if start and end else None,
                    "noticeHours": (start - at).total_seconds() / 3600 if start else None,
                }
            )
    return sorted(rows, key=lambda r: (r["at"], r["appointmentId"]))


def _once(events: Iterable[Mapping[str, Any]], types: tuple[str, ...], day: date) -> list[Mapping[str, Any]]:
    """The events of `types` that happened on `day`, each once (a history that holds a redelivered
    event twice counts it once), in the order written."""
    seen: set[str] = set()
    found = []
    for event in events:
        if event["type"] not in types or event["id"] in seen:
            continue
        seen.add(event["id"])
        at = _time(event["at"])
        if at is not None and at.date() == day:
            found.append(event)
    return sorted(found, key=lambda e: (e["at"], e["aggregateId"], _order(e)))


def _subject(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(appointmentId, conversationId): reminders, confirmations and visit surveys are about an
    appointment (they carry its provider), the other surveys about a conversation."""
    subject = data.get("subjectId")
    if data.get("purpose", "survey") != "survey" or data.get("providerId"):
        return subject, None
    return None, subject


def _sent(data: Mapping[str, Any]) -> tuple[datetime | None, date | None]:
    sent = _time(data.get("sentAt"))
    return sent, sent.date() if sent else None


def notification_rows(events: Iterable[Mapping[str, Any]], day: date) -> list[Row]:
    """One row per `notification.sent` / `.delivered` / `.failed` on `day` (UTC)."""
    rows = []
    for event in _once(events, ("notification.sent", "notification.delivered", "notification.failed"), day):
        data = event.get("data") or {}
        appointment_id, conversation_id = _subject(data)
        sent_at, sent_date = _sent(data)
        change = str(event["type"]).removeprefix("notification.")
        rows.append(
            {
                "notificationId": data.get("notificationId"),
                "dateKey": day,
                "change": change,
                "at": _time(event["at"]),
                "purpose": data.get("purpose"),
                "kind": data.get("kind"),
                "channel": data.get("channel"),
                "fallback": bool(data.get("fallback")),
                "appointmentId": appointment_id,
                "conversationId": conversation_id,
                "providerId": data.get("providerId"),
                "queueId": data.get("queueId"),
                "agentId": data.get("agentId"),
                "sentAt": sent_at,
                "sentDate": sent_date,
                "failureCode": data.get("reason") if change == "failed" else None,
            }
        )
    return rows


def survey_rows(events: Iterable[Mapping[str, Any]], day: date) -> list[Row]:
    """One row per `survey.sent` / `.answered` on `day` (UTC); the scores on the answer's row."""
    rows = []
    for event in _once(events, ("survey.sent", "survey.answered"), day):
        data = event.get("data") or {}
        appointment_id, conversation_id = _subject({**data, "purpose": "survey"})
        sent_at, sent_date = _sent(data)
        answered = event["type"] == "survey.answered"
        at = _time(event["at"])
        rows.append(
            {
                "surveyId": data.get("notificationId"),
                "dateKey": day,
                "change": "answered" if answered else "sent",
                "at": at,
                "channel": None if answered else data.get("channel"),
                "conversationId": conversation_id,
                "appointmentId": appointment_id,
                "queueId": data.get("queueId"),
                "agentId": data.get("agentId"),
                "providerId": data.get("providerId"),
                "sentAt": sent_at,
                "sentDate": sent_date,
                "answeredAt": at if answered else None,
                "csat": data.get("csat") if answered else None,
                "nps": data.get("nps") if answered else None,
            }
        )
    return rows


def date_row(day: date) -> Row:
    iso = day.isocalendar()
    return {
        "dateKey": day,
        "year": day.year,
        "quarter": (day.month - 1) // 3 + 1,
        "month": day.month,
        "day": day.day,
        "isoYear": iso.year,
        "isoWeek": iso.week,
        "isoWeekday": iso.weekday,
    }


def dimension_rows(table: Table, current: Mapping[str, Row]) -> list[Row]:
    """A dimension's rows as they are now, by id, with every column of the table."""
    key = next(iter(table.columns))
    return [
        {**dict.fromkeys(table.columns), **{k: v for k, v in row.items() if k in table.columns}, key: id_}
        for id_, row in sorted(current.items())
    ]
