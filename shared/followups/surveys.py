"""Answering a survey through its one-use link, without sign-in: `GET /api/surveys/{token}` shows
the questions in the patient's language (never acts), `POST` answers once (then 409; expired 410;
forged or unknown 404). The answers are stored in the patient's partition with `survey.answered`
(csat, nps, when the survey went, the subject's queue/agent/provider; never the comment), and the
use is audited under the patient."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.followups.documents import SurveyAnswerDocument, record_id
from shared.followups.model import Survey, SurveyAnswer, SurveyQuestion
from shared.kernel.errors import Conflict, NotFound
from shared.kernel.retry import retry
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.followups.links import LinkDocument
    from shared.followups.service import Followups

# The questions' words, per template language: three fixed questions need no template machinery.
QUESTIONS: dict[str, tuple[str, str, str]] = {
    "en": (
        "How satisfied are you with the help you got?",
        "How likely are you to recommend us to a friend or family member?",
        "Anything you would like to tell us? (optional)",
    ),
    "pl": (
        "Jak bardzo jesteś zadowolony z otrzymanej pomocy?",
        "Jak prawdopodobne jest, że polecisz nas rodzinie lub znajomym?",
        "Czy chcesz nam coś przekazać? (opcjonalnie)",
    ),
    "es": (
        "¿Qué tan satisfecho está con la ayuda que recibió?",
        "¿Qué tan probable es que nos recomiende a un familiar o amigo?",
        "¿Algo más que quiera decirnos? (opcional)",
    ),
}


async def _survey_link(fu: Followups, token: str) -> LinkDocument:
    doc = await fu.links.find(token, fu.now())
    if doc.kind != "survey":
        raise NotFound("No such survey.")
    return doc


async def survey_of(fu: Followups, token: str) -> Survey:
    from shared.notifications.api import template_language

    doc = await _survey_link(fu, token)
    patient = await fu.patient(doc.patient_id)
    language = template_language(patient.language if patient else None)
    csat, nps, comment = QUESTIONS.get(language, QUESTIONS["en"])
    return Survey(
        language=language,
        questions=[
            SurveyQuestion(id="csat", type="rating", min=1, max=5, text=csat),
            SurveyQuestion(id="nps", type="rating", min=0, max=10, text=nps),
            SurveyQuestion(id="comment", type="text", optional=True, text=comment),
        ],
    )


async def answer_survey(fu: Followups, token: str, answer: SurveyAnswer) -> None:
    from shared.audit.api import record_access
    from shared.followups.actions import link_principal

    doc = await _survey_link(fu, token)
    now = fu.now()
    used = await fu.links.use(doc, now, "answered")  # first: a second answer at once is a 409
    try:
        await _store(fu, doc, answer)
    except Exception:
        await fu.links.unuse(used)
        raise
    await record_access(
        fu.store,
        fu.clock,
        actor=link_principal(doc.patient_id),
        action="create",
        resource=f"surveys/{doc.subject_id}",
        patient_id=doc.patient_id,
        correlation_id=fu.correlation_id,
    )


async def _store(fu: Followups, doc: LinkDocument, answer: SurveyAnswer) -> None:
    async def step() -> None:
        ledger = await fu.partition.ledger(doc.patient_id)
        record = await fu.partition.records.read_or_none(record_id(doc.notification_id), doc.patient_id)
        if record is None:
            raise NotFound("No such survey.")
        if record.answer is not None:
            raise Conflict("This survey was answered already.")
        at = stamp(fu.now())
        stored = SurveyAnswerDocument(
            id=f"answer:{doc.notification_id}",
            patient_id=doc.patient_id,
            notification_id=doc.notification_id,
            subject_id=doc.subject_id,
            csat=answer.csat,
            nps=answer.nps,
            comment=answer.comment,
            sent_at=record.sent_at,
            answered_at=at,
            attributes=record.attributes,
        )
        ledger = ledger.emit(
            "survey.answered",
            at,
            notificationId=record.notification_id,
            patientId=record.patient_id,
            subjectId=record.subject_id,
            csat=answer.csat,
            nps=answer.nps,
            sentAt=record.sent_at,
            **record.attributes,
        )
        await fu.partition.commit(ledger, [record.changed(answer="answered", answered_at=at), stored])

    await retry(step)
