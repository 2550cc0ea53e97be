"""The reminder and survey policies: one document each in the `notifications` partition
`_config`, replaced whole by `PUT /api/manage/reminder-policy` and `/survey-policy` (If-Match as
every manage PUT). Until one is written, the defaults of the models apply."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from shared.followups.documents import (
    CONFIG_PARTITION,
    REMINDER_POLICY_ID,
    SURVEY_POLICY_ID,
    ReminderPolicyDocument,
    SurveyPolicyDocument,
)
from shared.followups.model import ReminderPolicy, SurveyPolicy
from shared.kernel.catalog import NOTIFICATIONS
from shared.kernel.errors import NotFound, PreconditionFailed
from shared.kernel.etags import IfMatchFailed, check_if_match, stored_etag
from shared.kernel.stored import Stored
from shared.kernel.times import stamp

if TYPE_CHECKING:
    from shared.kernel.documents import DocumentStore
    from shared.kernel.etags import IfMatch


class Policies:
    def __init__(self, store: DocumentStore) -> None:
        self._reminders = Stored(store, NOTIFICATIONS, ReminderPolicyDocument)
        self._surveys = Stored(store, NOTIFICATIONS, SurveyPolicyDocument)

    async def reminder_doc(self) -> ReminderPolicyDocument | None:
        return await self._reminders.read_or_none(REMINDER_POLICY_ID, CONFIG_PARTITION)

    async def survey_doc(self) -> SurveyPolicyDocument | None:
        return await self._surveys.read_or_none(SURVEY_POLICY_ID, CONFIG_PARTITION)

    async def reminder_policy(self) -> ReminderPolicy:
        doc = await self.reminder_doc()
        return ReminderPolicy() if doc is None else ReminderPolicy.model_validate(doc.policy)

    async def survey_policy(self) -> SurveyPolicy:
        doc = await self.survey_doc()
        return SurveyPolicy() if doc is None else SurveyPolicy.model_validate(doc.policy)

    async def put_reminder_policy(
        self, policy: ReminderPolicy, now: datetime, *, if_match: IfMatch | None = None
    ) -> ReminderPolicyDocument:
        existing = await self.reminder_doc() if if_match else None
        check_if_match(if_match, None if existing is None else stored_etag(existing), "reminder policy")
        doc = ReminderPolicyDocument(
            id=REMINDER_POLICY_ID, policy=policy.model_dump(mode="json"), updated_at=stamp(now)
        )
        return await _write(self._reminders, doc, existing, "reminder policy")

    async def put_survey_policy(
        self, policy: SurveyPolicy, now: datetime, *, if_match: IfMatch | None = None
    ) -> SurveyPolicyDocument:
        existing = await self.survey_doc() if if_match else None
        check_if_match(if_match, None if existing is None else stored_etag(existing), "survey policy")
        doc = SurveyPolicyDocument(
            id=SURVEY_POLICY_ID, policy=policy.model_dump(mode="json"), updated_at=stamp(now)
        )
        return await _write(self._surveys, doc, existing, "survey policy")


P = TypeVar("P", ReminderPolicyDocument, SurveyPolicyDocument)


async def _write(documents: Stored[P], doc: P, read: P | None, what: str) -> P:
    """Upsert, or (an If-Match named `read`) replace exactly that version: a change in between
    is a 412, never overwritten."""
    if read is None:
        return await documents.upsert(doc)
    try:
        return await documents.replace(doc.over(read))
    except (PreconditionFailed, NotFound):
        raise IfMatchFailed(f"The {what} changed since you read it (If-Match).") from None
