"""Follow-ups: reminder and survey policies (administrators), the consumer of the `events`
topic that plans reminders, confirmations and surveys, and the `followups` queue's sends.

Services and models load with the first call (see shared/web/api.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import azure.functions as func

from shared.auth.principal import Role
from shared.web.api import PUBLIC, Api, Call, Reply, allow
from shared.web.headers import Header

if TYPE_CHECKING:
    from shared.followups.api import Followups, Policies
    from shared.runtime import Runtime

bp = func.Blueprint()
api = Api(bp, tag="follow-ups")

ADMIN = allow(Role.ADMINISTRATOR)
READERS = allow(Role.ADMINISTRATOR, Role.SUPERVISOR)
HTML_PAGE = "shared.followups.model:HtmlPage"
PAGE_HEADERS = (
    Header(
        "Content-Security-Policy",
        "No script, no framing, no resource from elsewhere; the page's form posts to this origin only.",
        {"type": "string", "examples": ["default-src 'none'; form-action 'self'; frame-ancestors 'none'"]},
        required=True,
    ),
    Header(
        "Referrer-Policy",
        "`no-referrer`: the link (its token) is never sent elsewhere.",
        {"type": "string", "enum": ["no-referrer"]},
        required=True,
    ),
)
REMINDER_POLICY = "shared.followups.model:ReminderPolicy"
SURVEY_POLICY = "shared.followups.model:SurveyPolicy"


def followups_of(rt: Runtime, correlation_id: str = "followups") -> Followups:
    from shared.followups.api import Followups

    settings = rt.settings
    return Followups(
        rt.store,
        rt.bus,
        rt.clock,
        rt.notifier,
        settings.link_signing_key,
        settings.public_base_url,
        settings.portal_base_url,
        correlation_id,
    )


@bp.service_bus_topic_trigger(
    arg_name="msg",
    topic_name="%EVENTS_TOPIC%",
    subscription_name="%FOLLOWUPS_SUBSCRIPTION%",
    connection="ServiceBusConnection",
    is_sessions_enabled=True,
)
async def followup_events(msg: func.ServiceBusMessage) -> None:
    """Appointment and conversation events: plan and schedule reminders, confirmations and
    surveys. Subjects it does not handle are acknowledged; a redelivery changes nothing."""
    from shared.followups.api import handle_event
    from shared.kernel.messaging import handling
    from shared.runtime import get_runtime

    with handling(msg) as correlation_id:
        rt = await get_runtime()
        try:
            envelope = json.loads(msg.get_body())
        except ValueError:
            return  # not an event envelope: nothing to do (never retried into the dead letters)
        if isinstance(envelope, dict):
            await handle_event(followups_of(rt, correlation_id), envelope)


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name="%FOLLOWUPS_QUEUE%", connection="ServiceBusConnection"
)
async def followup_send(msg: func.ServiceBusMessage) -> None:
    """One scheduled send: record the intent, send, record the outcome, fall back once. A
    redelivery finds the record settled or repeats the same send, which the channel deduplicates."""
    from shared.followups.api import dispatch, send_body
    from shared.kernel.messaging import handling
    from shared.runtime import get_runtime

    with handling(msg) as correlation_id:
        rt = await get_runtime()
        body = send_body(msg.get_body())
        if body is not None:
            await dispatch(followups_of(rt, correlation_id), body)


@bp.service_bus_queue_trigger(
    arg_name="msg", queue_name="%NOTIFICATION_REPORTS_QUEUE%", connection="ServiceBusConnection"
)
async def notification_reports(msg: func.ServiceBusMessage) -> None:
    """ACS delivery reports and inbound SMS from Event Grid: delivered, failed (falls back once),
    STOP / START / HELP. Whatever cannot be read is acknowledged (a log line with its reason code),
    never retried into the dead letters; a redelivery changes nothing."""
    from shared.followups.api import handle_report
    from shared.kernel.messaging import handling
    from shared.runtime import get_runtime

    with handling(msg) as correlation_id:
        rt = await get_runtime()
        await handle_report(followups_of(rt, correlation_id), msg.get_body())


def _policies(call: Call) -> Policies:
    from shared.followups.api import Policies

    return Policies(call.runtime.store)


async def _audit(call: Call, action: str, resource: str, patient_id: str | None = None) -> None:
    from shared.audit.api import record_access

    await record_access(
        call.runtime.store,
        call.runtime.clock,
        actor=call.user,
        action=action,  # type: ignore[arg-type]
        resource=resource,
        patient_id=patient_id,
        correlation_id=call.correlation_id,
    )


def _etag_of(doc: object | None) -> dict[str, str]:
    from shared.kernel.etags import stored_etag

    return {} if doc is None else {"ETag": stored_etag(doc)}


@api.route(
    "manage/reminder-policy",
    "PUT",
    access=ADMIN,
    summary="Replace the reminder policy",
    body=REMINDER_POLICY,
    response=REMINDER_POLICY,
    errors=(400,),
    if_match=True,
)
async def put_reminder_policy(call: Call) -> Reply:
    """`offsets`: ISO 8601 durations before the appointment's start (`P2D`, `PT2H`; days, hours,
    minutes, seconds; at most `P30D`), one reminder each; `channels`: the allowed channels in
    fallback order (the patient's preferred channel goes first when allowed); `quietHours` on the
    patient's clock (a patient's own win); `cap`: follow-ups (reminders and surveys) per day and
    per ISO week. Applies to appointments booked or moved after the change. `If-Match` with the
    ETag you read avoids overwriting a concurrent change (412)."""
    doc = await _policies(call).put_reminder_policy(
        call.body, call.runtime.clock.now(), if_match=call.if_match
    )
    await _audit(call, "update", "manage/reminder-policy")
    return Reply(body=call.body, headers=_etag_of(doc))


@api.route(
    "manage/reminder-policy",
    "GET",
    access=READERS,
    summary="Read the reminder policy",
    response=REMINDER_POLICY,
    etag=True,
)
async def get_reminder_policy(call: Call) -> Reply:
    """The policy in force: as last written (with its ETag), or the defaults (one reminder a day
    before, SMS then e-mail then the portal, quiet 21:00-08:00, 1 a day and 3 a week)."""
    from shared.followups.api import ReminderPolicy

    doc = await _policies(call).reminder_doc()
    body = ReminderPolicy() if doc is None else ReminderPolicy.model_validate(doc.policy)
    return Reply(body=body, headers=_etag_of(doc))


@api.route(
    "manage/survey-policy",
    "PUT",
    access=ADMIN,
    summary="Replace the survey policy",
    body=SURVEY_POLICY,
    response=SURVEY_POLICY,
    errors=(400,),
    if_match=True,
)
async def put_survey_policy(call: Call) -> Reply:
    """`afterConversation` (a conversation a human handled closed) and `afterVisit` (an
    appointment fulfilled): whether a survey goes and after which delay (ISO 8601 duration);
    `capDays`: no survey to a patient who had one within that many days. `If-Match` as above."""
    doc = await _policies(call).put_survey_policy(call.body, call.runtime.clock.now(), if_match=call.if_match)
    await _audit(call, "update", "manage/survey-policy")
    return Reply(body=call.body, headers=_etag_of(doc))


@api.route(
    "manage/survey-policy",
    "GET",
    access=READERS,
    summary="Read the survey policy",
    response=SURVEY_POLICY,
    etag=True,
)
async def get_survey_policy(call: Call) -> Reply:
    """The policy in force: as last written (with its ETag), or the defaults (no surveys)."""
    from shared.followups.api import SurveyPolicy

    doc = await _policies(call).survey_doc()
    body = SurveyPolicy() if doc is None else SurveyPolicy.model_validate(doc.policy)
    return Reply(body=body, headers=_etag_of(doc))


def _page(body: bytes) -> Reply:
    from shared.followups.api import PAGE_CSP

    return Reply(
        body=body,
        content_type="text/html",
        headers={"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer"},
    )


@api.route(
    "links/{token}",
    "GET",
    access=PUBLIC,
    summary="The page of a reminder's link (never acts)",
    response=HTML_PAGE,
    media_type="text/html",
    errors=(404, 409, 410),
    response_headers=PAGE_HEADERS,
)
async def link_page(call: Call) -> Reply:
    """A small page with one button (confirm, or cancel the appointment) that posts to the same
    address. Fetching it never acts: mail scanners and link previews open every link. 409: the
    link was used; 410: it expired; 404: no such link (or not one we signed)."""
    from shared.followups.api import link_page as page

    return _page(await page(followups_of(call.runtime, call.correlation_id), call.route("token")))


@api.route(
    "links/{token}",
    "POST",
    access=PUBLIC,
    summary="Use a reminder's link, once",
    response=HTML_PAGE,
    media_type="text/html",
    errors=(404, 409, 410),
    response_headers=PAGE_HEADERS,
)
async def use_link(call: Call) -> Reply:
    """Acts without sign-in, once: `confirm` notes the patient's confirmation, `cancel` cancels
    the appointment (its confirmation follows). Send no body (the page's form post, or an empty
    POST). A second use is 409, an expired link 410, an unknown or forged one 404; a link of an
    appointment changed since the reminder went is 409. Audited under the patient."""
    from shared.followups.api import done_page
    from shared.followups.api import use_link as act

    result = await act(followups_of(call.runtime, call.correlation_id), call.route("token"))
    return _page(done_page(result))


@api.route(
    "surveys/{token}",
    "GET",
    access=PUBLIC,
    summary="A survey's questions (its link, no sign-in)",
    response="shared.followups.model:Survey",
    errors=(404, 409, 410),
)
async def get_survey(call: Call) -> Reply:
    """The questions in the patient's language: satisfaction (1-5), likelihood to recommend
    (0-10) and an optional comment. Reading never answers. 409: answered already; 410: the link
    expired; 404: no such survey (or not a link we signed)."""
    from shared.followups.api import survey_of

    return Reply(body=await survey_of(followups_of(call.runtime, call.correlation_id), call.route("token")))


@api.route(
    "surveys/{token}",
    "POST",
    access=PUBLIC,
    summary="Answer a survey, once",
    body="shared.followups.model:SurveyAnswer",
    response="shared.followups.model:SurveyAnswered",
    errors=(400, 404, 409, 410),
)
async def answer_survey(call: Call) -> Reply:
    """`{"csat": 1-5, "nps": 0-10, "comment"?}`: answers once (a second answer is 409; an expired
    link 410; an unknown or forged one 404). Emits `survey.answered` (scores only, never the
    comment); audited under the patient."""
    from shared.followups.api import answer_survey as answer

    await answer(followups_of(call.runtime, call.correlation_id), call.route("token"), call.body)
    return Reply(body={"status": "answered"})


@api.route(
    "me/inbox",
    "GET",
    access=allow(Role.PATIENT),
    summary="My portal inbox",
    response="shared.followups.model:Inbox",
)
async def my_inbox(call: Call) -> Reply:
    """Reminders, confirmations and surveys the portal channel delivered to the signed-in patient,
    newest first (at most 100), with their links. Audited."""
    from shared.followups.api import inbox_of

    patient_id = call.own_patient_id()
    inbox = await inbox_of(followups_of(call.runtime, call.correlation_id), patient_id)
    await _audit(call, "list", "me/inbox", patient_id)
    return Reply(body=inbox)


@api.route(
    "me/inbox/{itemId}/read",
    "POST",
    access=allow(Role.PATIENT),
    summary="Mark a message of my inbox read",
    response="shared.followups.model:InboxEntry",
    errors=(404,),
)
async def read_inbox_item(call: Call) -> Reply:
    """Marks one of the signed-in patient's own messages read (again: unchanged); any other id,
    another patient's included, is 404. Audited."""
    from shared.followups.api import mark_read

    patient_id = call.own_patient_id()
    entry = await mark_read(followups_of(call.runtime, call.correlation_id), patient_id, call.route("itemId"))
    await _audit(call, "update", f"me/inbox/{call.route('itemId')}", patient_id)
    return Reply(body=entry)


@api.route(
    "dev/outbox",
    "GET",
    access=ADMIN,
    summary="What the embedded channel would have sent to a patient (dev host only)",
    query="shared.followups.model:DevOutboxQuery",
    response="shared.followups.model:DevOutbox",
    errors=(404,),
)
async def dev_outbox(call: Call) -> Reply:
    """Every SMS and e-mail the embedded channel recorded for `patientId` and the patient's portal
    items, oldest first, with their links (`confirm`, `cancel`, `reschedule`, `survey`). Only in
    dev mode with the embedded channel (`PSC_AUTH_MODE=dev`, `PSC_NOTIFY=embedded`); elsewhere
    404, as if the route did not exist. Audited."""
    from shared.followups.api import dev_outbox as outbox
    from shared.kernel.errors import NotFound

    settings = call.runtime.settings
    if settings.auth_mode != "dev" or settings.notify != "embedded":
        raise NotFound("Not found.")
    patient_id = call.query.patientId
    found = await outbox(followups_of(call.runtime, call.correlation_id), patient_id)
    await _audit(call, "list", "dev/outbox", patient_id)
    return Reply(body=found)


@api.route(
    "supervisor/surveys",
    "GET",
    access=allow(Role.SUPERVISOR, Role.ADMINISTRATOR),
    summary="Survey answers and response rates",
    query="shared.followups.model:SurveyReportQuery",
    response="shared.followups.model:SurveyReport",
    errors=(400,),
)
async def survey_report(call: Call) -> Reply:
    """Surveys sent from `from` (inclusive) to `to` (exclusive, at most 93 days), their answers
    (comments included: the patients' own words) and response rates in total and per queue,
    agent and provider. Audited."""
    from shared.followups.api import survey_report as report

    found = await report(call.runtime.store, call.query.from_, call.query.to)
    await _audit(call, "read", "supervisor/surveys")
    return Reply(body=found)
