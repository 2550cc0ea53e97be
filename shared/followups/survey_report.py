"""Supervisors' view of survey answers and response rates (`GET /api/supervisor/surveys`): the
surveys sent in a window and their answers, in total and per queue, agent and provider. One
cross-partition query each for the surveys and the answers (no ORDER BY, so the Cosmos SDK can
run it; sorted here), bounded by `MAX_SCANNED`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from shared.followups.documents import NotificationRecord, SurveyAnswerDocument
from shared.followups.model import SurveyAnswerView, SurveyFigures, SurveyReport
from shared.kernel.catalog import NOTIFICATIONS
from shared.kernel.documents import Query, where
from shared.kernel.stored import Stored
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.kernel.documents import DocumentStore

MAX_SCANNED = 10_000
MAX_ANSWERS = 500


def _figures(id: str | None, sent: int, scores: list[tuple[int, int]]) -> SurveyFigures:
    answered = len(scores)
    # CSAT as docs/KPIS.md defines it (the dashboard's): the share of 4-5 answers; the mean score
    # beside it, under its own name.
    csat = round(sum(1 for c, _ in scores if c >= 4) / answered, 4) if answered else None
    mean = round(sum(c for c, _ in scores) / answered, 2) if answered else None
    nps = (
        round(100 * (sum(1 for _, n in scores if n >= 9) - sum(1 for _, n in scores if n <= 6)) / answered, 1)
        if answered
        else None
    )
    return SurveyFigures(
        id=id,
        sent=sent,
        answered=answered,
        responseRate=round(answered / sent, 4) if sent else None,
        csat=csat,
        meanScore=mean,
        nps=nps,
    )


def _group(
    key: str, sent: Iterable[NotificationRecord], answers: Iterable[SurveyAnswerDocument]
) -> list[SurveyFigures]:
    counts: dict[str, int] = defaultdict(int)
    scores: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in sent:
        if key in record.attributes:
            counts[record.attributes[key]] += 1
    for answer in answers:
        if key in answer.attributes:
            scores[answer.attributes[key]].append((answer.csat, answer.nps))
    return [_figures(k, counts[k], scores[k]) for k in sorted(set(counts) | set(scores))]


async def survey_report(store: DocumentStore, start: datetime, end: datetime) -> SurveyReport:
    low, high = stamp(start), stamp(end)
    records = await Stored(store, NOTIFICATIONS, NotificationRecord).query_cross_partition(
        Query(
            conditions=(
                where("type", "=", "notification"),
                where("purpose", "=", "survey"),
                where("sentAt", ">=", low),
                where("sentAt", "<", high),
            )
        ),
        max_items=MAX_SCANNED,
    )
    found = await Stored(store, NOTIFICATIONS, SurveyAnswerDocument).query_cross_partition(
        Query(
            conditions=(
                where("type", "=", "survey-answer"),
                where("sentAt", ">=", low),
                where("sentAt", "<", high),
            )
        ),
        max_items=MAX_SCANNED,
    )
    sent = [r for r in records.items if r.status in ("sent", "delivered")]
    answers = sorted(found.items, key=lambda a: a.answered_at, reverse=True)
    return SurveyReport(
        totals=_figures(None, len(sent), [(a.csat, a.nps) for a in answers]),
        byQueue=_group("queueId", sent, answers),
        byAgent=_group("agentId", sent, answers),
        byProvider=_group("providerId", sent, answers),
        answers=[
            SurveyAnswerView(
                subjectId=a.subject_id,
                answeredAt=a.answered_at,
                csat=a.csat,
                nps=a.nps,
                comment=a.comment,
                queueId=a.attributes.get("queueId"),
                agentId=a.attributes.get("agentId"),
                providerId=a.attributes.get("providerId"),
            )
            for a in answers[:MAX_ANSWERS]
        ],
    )
