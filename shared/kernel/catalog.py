"""Every container, queue, topic and subscription the code uses: the one list that adapters, the
dev host, the infra tests and docs/ARCHITECTURE.md agree on. Add here first, then run
`python scripts/gen_infra_catalog.py`; `infra/` follows (a test checks). A new consumer of the
`events` topic is one `SubscriptionSpec` line in TOPICS."""

from __future__ import annotations

from datetime import timedelta

from shared.kernel.documents import ContainerSpec, FullTextPath
from shared.kernel.messages import QueueSpec, SubscriptionSpec, TopicSpec

SIX_YEARS = 6 * 365 * 24 * 3600  # HIPAA keeps audit documentation six years

# The names, written once: code refers to these constants, never to the strings.
PATIENTS = "patients"
AUDIT = "audit"
LOOKUPS = "lookups"
CONVERSATIONS = "conversations"
AGENTS = "agents"
ROUTING = "routing"
PROVIDERS = "providers"
SLOTS = "slots"
APPOINTMENTS = "appointments"
LISTS = "lists"
OUTBOX = "outbox"
LEASES = "leases"
ARTICLES = "articles"
SEARCH = "search"
SCRIPTS = "scripts"
TEAMS = "teams"
CONSULTS = "consults"
HISTORY = "history"
KPIS = "kpis"
NOTIFICATIONS = "notifications"
ROUTING_QUEUE = "routing"
NOTIFICATION_REPORTS_QUEUE = "notification-reports"
FOLLOWUPS_QUEUE = "followups"
FOLLOWUPS_SUBSCRIPTION = "followups"
EVENTS_TOPIC = "events"

CONTAINERS: dict[str, ContainerSpec] = {
    spec.name: spec
    for spec in (
        ContainerSpec(
            PATIENTS,
            "/id",
            description="One document per patient (the registry); id = the token's patient_id.",
        ),
        ContainerSpec(
            AUDIT,
            "/patientId",
            default_ttl=SIX_YEARS,
            description="Append-only audit trail of every read or change of patient data.",
        ),
        ContainerSpec(
            LOOKUPS,
            "/id",
            default_ttl=-1,
            description="Deterministic-id lookup documents, point reads only: idempotency keys "
            "(bot conversation id, webhook-id, Idempotency-Key, each with its own ttl), the "
            "patient contact index (hashed e-mail / phone -> patient ids), patients' sign-in links "
            "(hashed issuer + oid -> patient id), link codes (hashed, 24 h) and link attempts (1 h).",
        ),
        ContainerSpec(
            CONVERSATIONS,
            "/conversationId",
            default_ttl=-1,
            description="A partition per conversation: the conversation (state, time stamps), its "
            "messages, its message keys, its Teams consults (`consult:<code>`) and its outbox "
            "events (which expire by their own ttl).",
        ),
        ContainerSpec(
            AGENTS,
            "/agentId",
            default_ttl=-1,
            description="A partition per agent (id = the staff member's oid; sub in dev mode): the "
            "agent (profile, presence, load; the ETag on it is what keeps an agent within capacity) "
            "and its outbox events.",
        ),
        ContainerSpec(
            ROUTING,
            "/queueId",
            description="Per queue partition: the queue's settings, a seat per member agent (a copy "
            "of the agent's presence and load) and a waiting entry per queued conversation; "
            "the `_config` partition holds the routing rules and the queue index.",
        ),
        ContainerSpec(
            PROVIDERS,
            "/id",
            description="One document per provider: calendar settings (hours, exceptions, rules).",
        ),
        ContainerSpec(
            SLOTS,
            "/providerId",
            description="Taken slots with a deterministic id per provider and start: created only "
            "if absent, so a slot can never be booked twice.",
        ),
        ContainerSpec(
            APPOINTMENTS,
            "/appointmentId",
            default_ttl=-1,
            description="A partition per appointment (FHIR R4 Appointment semantics): the "
            "appointment and its outbox events.",
        ),
        ContainerSpec(
            LISTS,
            "/list",
            description="Paged-list indexes, one partition per list (a patient's or a provider's "
            "appointments, providers, agents, a queue's live conversations): small entries of ids "
            "and a sortKey, no PHI; readers re-read the members (shared/kernel/lists.py).",
        ),
        ContainerSpec(
            OUTBOX,
            "/patientId",
            default_ttl=30 * 24 * 3600,
            description="The embedded notification channel's record of every SMS and e-mail it "
            "would have sent (PSC_NOTIFY=embedded: the dev host and tests), one document per "
            "notification and channel; stays empty in Azure, where ACS sends.",
        ),
        ContainerSpec(
            NOTIFICATIONS,
            "/patientId",
            default_ttl=-1,
            description="Follow-ups, a partition per patient: the patient's follow-up ledger (the "
            "aggregate: cap counters by day and ISO week, version; the ETag on it guards the whole "
            "partition), notification records (deterministic id purpose + subject + occasion: "
            "intent, attempts, status), per appointment the reminders scheduled for its version, "
            "portal inbox items, surveys and their answers, and the ledger's outbox events; the "
            "partition `_config` holds the reminder and survey policies.",
        ),
        ContainerSpec(
            LEASES,
            "/id",
            description="Change-feed leases: where each change-feed-triggered function has read up "
            "to (the Cosmos DB trigger's lease container; the dev host keeps its leases here too). "
            "Partition key /id, as the trigger requires.",
        ),
        ContainerSpec(
            ARTICLES,
            "/articleId",
            description="Knowledge articles: per article one partition holding the current version "
            "(id = the article id) and every version written (`<articleId>:v<n>`), written together "
            "in one transactional batch.",
        ),
        ContainerSpec(
            SEARCH,
            "/scope",
            description="The Search port's index in Azure (Cosmos DB full-text search): one document "
            "per entry in the partition `<index>:<language>`, its text in the path of its language "
            "(derived data: the knowledge service rewrites it on every article write).",
            full_text=(
                FullTextPath("/textEn", "en-US"),
                FullTextPath("/textEs", "en-US", preview_language="es-ES"),
                FullTextPath("/textPl", "en-US"),
                FullTextPath("/text", "en-US"),
            ),
        ),
        ContainerSpec(
            SCRIPTS,
            "/scope",
            description="Agent scripts, all in the partition `scripts`: one document per script and "
            "the index (`_index`: each script's sub-script references, appliesTo and priority), "
            "written together in one transactional batch so no write can close a cycle.",
        ),
        ContainerSpec(
            TEAMS,
            "/id",
            description="Teams consult configuration: `team:<teamId>` (name, providers, where its "
            "secrets are; never the secrets), `provider-team:<providerId>` (a provider's team), and "
            "`team-index` (the configured team ids, for checking a reply's signature).",
        ),
        ContainerSpec(
            CONSULTS,
            "/id",
            description="Teams consults' reference codes (id = the code on the card, created only if "
            "absent: the conversation and team it belongs to; the consult itself lives in its "
            "conversation's partition) and the replies Teams delivered "
            "(`teams-reply:<sha256(activity id)>`, stored before anything else happens).",
        ),
        ContainerSpec(
            HISTORY,
            "/day",
            description="The durable event history: every event of the `events` topic as its "
            "envelope (ids, stamps, attributes; never PHI), one partition per UTC day of `at`, id = "
            "the message id (a redelivery meets its own document). Read by the KPI rebuild and the "
            "Power BI export; kept, unlike the outbox's event documents, which expire.",
        ),
        ContainerSpec(
            KPIS,
            "/partition",
            description="KPI buckets (docs/KPIS.md): one document per scope (`all`, `queue:<id>`, "
            "`agent:<id>`) and UTC hour with its four 15-minute buckets' sums, and beside it one "
            "mark document per aggregate that added to it (the last event applied), in the "
            "partition `<scope>:<YYYY-MM-DD>` (a range query reads a day's partition per scope); "
            "and each agent's last presence (`presence:<agentId>`).",
        ),
    )
}

QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec(
            ROUTING_QUEUE,
            "ROUTING_QUEUE",
            max_delivery_count=5,
            lock_duration=timedelta(seconds=60),
            duplicate_detection_window=timedelta(minutes=10),
            description="Routing requests: a conversation to classify, queue and assign; an agent "
            "whose capacity or presence changed. Handlers are idempotent.",
        ),
        QueueSpec(
            NOTIFICATION_REPORTS_QUEUE,
            "NOTIFICATION_REPORTS_QUEUE",
            max_delivery_count=10,
            # Event Grid retries a delivery for up to 24 h with the same MessageId (the event id):
            # the window covers all of it, as Event Grid's Service Bus handler page recommends.
            duplicate_detection_window=timedelta(days=1),
            description="ACS delivery reports and inbound SMS from the communication service's Event "
            "Grid system topic (one event per message, Event Grid schema, MessageId = event id); "
            "the embedded channel sends the same events. No sessions: Event Grid cannot deliver to "
            "a session-enabled queue.",
        ),
        QueueSpec(
            FOLLOWUPS_QUEUE,
            "FOLLOWUPS_QUEUE",
            max_delivery_count=10,
            lock_duration=timedelta(seconds=60),
            duplicate_detection_window=timedelta(minutes=10),
            description="Scheduled follow-up sends (reminders, confirmations, surveys): scheduled "
            "messages (sequence numbers kept to cancel), message id = the notification id; the "
            "dispatcher checks the appointment version and the record before it sends.",
        ),
    )
}

CALLBACKS_SUBSCRIPTION = "callbacks"
REALTIME_SUBSCRIPTION = "realtime"

# Subscriptions of the `events` topic: one per consumer, each idempotent by message id.
EVENT_SUBSCRIPTIONS: tuple[SubscriptionSpec, ...] = (
    SubscriptionSpec(
        "transcripts",
        "TRANSCRIPTS_SUBSCRIPTION",
        subjects=("conversation.closed",),
        description="Archives a closed conversation's transcript once, then starts its messages' "
        "retention (shared/conversations/transcripts.py). No sessions: one event per conversation "
        "matters, and `archivedAt` on the conversation makes a redelivery a no-op.",
    ),
    SubscriptionSpec(
        "patient-conversations",
        "PATIENT_CONVERSATIONS_SUBSCRIPTION",
        subjects=("conversation.waiting",),
        description="Lists a new conversation under its patient (`patient-conversations:<patientId>` "
        "in `lists`) for the unified patient view and `GET /api/me/conversations`; idempotent (a "
        "redelivery finds the entry).",
    ),
    SubscriptionSpec(
        "history",
        "HISTORY_SUBSCRIPTION",
        description="The event history (shared/history): every event filed under its day; no "
        "sessions (a day is read back in order of `at`).",
    ),
    SubscriptionSpec(
        "kpis",
        "KPIS_SUBSCRIPTION",
        requires_session=True,
        subjects=(
            "conversation.waiting",
            "conversation.accepted",
            "conversation.abandoned",
            "conversation.transferred",
            "conversation.closed",
            "conversation.message",
            "conversation.offered",
            "conversation.declined",
            "conversation.expired",
            "conversation.wrapup",
            "agent.presence",
            "appointment.arrived",
            "appointment.fulfilled",
            "appointment.noshow",
            "notification.sent",
            "notification.delivered",
            "survey.sent",
            "survey.answered",
        ),
        description="KPI aggregation (shared/kpis): 15-minute buckets per queue, agent and the "
        "whole service, and the supervisors' live tiles; sessions on (each aggregate's events in "
        "order, which its per-aggregate marks rely on).",
    ),
    SubscriptionSpec(
        REALTIME_SUBSCRIPTION,
        "REALTIME_SUBSCRIPTION",
        max_delivery_count=10,
        requires_session=True,
        # shared/live/frames.py SUBJECTS (the kernel imports no capability; a test compares them).
        subjects=(
            "conversation.waiting",
            "conversation.offered",
            "conversation.accepted",
            "conversation.declined",
            "conversation.expired",
            "conversation.message",
            "conversation.transferred",
            "conversation.wrapup",
            "conversation.closed",
            "conversation.abandoned",
            "agent.presence",
        ),
        # A frame is news for seconds: an hour-old one would only confuse a client, which catches
        # up through the REST API anyway.
        default_message_ttl=timedelta(hours=1),
        dead_lettering_on_expiration=False,
        description="Real-time frames (shared/live): messages, status, queue places, offers and "
        "removals, board deltas pushed to the hub's groups; per conversation or agent in order.",
    ),
    SubscriptionSpec(
        CALLBACKS_SUBSCRIPTION,
        "CALLBACKS_SUBSCRIPTION",
        requires_session=True,
        subjects=(
            "conversation.waiting",
            "conversation.accepted",
            "conversation.message",
            "conversation.transferred",
            "conversation.closed",
            "callbacks.wake",
        ),
        description="Bot callbacks (shared/callbacks/consumer.py): per conversation in order, the "
        "events a bot hears about, and the consumer's own scheduled wake-ups (retries, queue "
        "position looks), which no other subscription's filter lets in.",
    ),
    SubscriptionSpec(
        FOLLOWUPS_SUBSCRIPTION,
        "FOLLOWUPS_SUBSCRIPTION",
        requires_session=True,
        subjects=(
            "appointment.booked",
            "appointment.rescheduled",
            "appointment.cancelled",
            "appointment.fulfilled",
            "appointment.noshow",
            "appointment.merged",
            "conversation.closed",
        ),
        description="Follow-ups: schedules reminders and confirmations per appointment version, "
        "cancels them on a change, and surveys after a conversation or a visit.",
    ),
)

TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec(
            EVENTS_TOPIC,
            "EVENTS_TOPIC",
            # Longer than a relay can take to re-send after a crash (lease expiry 60 s, a restart,
            # a deployment) with room to spare; short enough that ops can resubmit a dead letter
            # within the hour (a copy inside the window would be dropped).
            duplicate_detection_window=timedelta(hours=1),
            default_message_ttl=timedelta(days=14),
            subscriptions=EVENT_SUBSCRIPTIONS,
            description="Domain events from the transactional outbox: message id "
            "`<aggregate id>:<version>.<n>`, session id = the aggregate id, subject = the event type.",
        ),
    )
}
