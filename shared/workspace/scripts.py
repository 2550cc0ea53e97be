"""Agent scripts: administrators write them, an agent reads the one for the conversation at hand.

All scripts live in one partition with their index (`_index`: each script's sub-script references,
its `appliesTo` and priority). A write checks the new references against the index, refuses one
that would close a cycle (naming it, e.g. `a → b → a`; a script calling itself is a cycle of one)
and writes the script and the new index in one transactional batch under the index's ETag, so two
concurrent writes cannot each add half of a cycle: the second one's batch fails and it checks
again. A reference to a script not defined yet is allowed; reading skips it and says so.

Choosing reads only the index; expanding reads the chosen script and its sub-scripts (point
reads). Placeholders are filled from the patient record (audited read), the agent's directory
entry and the queue's settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.audit.api import record_access
from shared.auth.principal import Principal
from shared.conversations.api import ConversationDocument, conversations
from shared.kernel.catalog import SCRIPTS
from shared.kernel.clock import Clock
from shared.kernel.documents import BatchFailed, BatchOperation, DocumentStore
from shared.kernel.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from shared.kernel.etags import IfMatch, check_if_match, entity_tag
from shared.kernel.retry import Again, retry
from shared.kernel.search import language_family
from shared.kernel.stored import Stored
from shared.kernel.times import stamp
from shared.patients.api import PatientRegistry
from shared.routing.api import RoutingDirectory
from shared.workspace.documents import INDEX_ID, SCOPE, IndexEntry, ScriptDocument, ScriptIndex
from shared.workspace.model import ConversationScript, FilledStep, Script, ScriptRequest

PLACEHOLDERS = frozenset({"patient.firstName", "patient.name", "agent.name", "queue.name"})
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
MAX_DEPTH = 20
MAX_STEPS = 500


# Placeholders ------------------------------------------------------------------------------------


def placeholder_problems(text: str) -> list[str]:
    """What is wrong with a text's placeholders (empty: nothing)."""
    problems = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            problems.append("has an unmatched brace (write {{ or }} for a literal one)")
        elif name not in PLACEHOLDERS:
            problems.append(
                f"has an unknown placeholder {{{name}}} (known: {', '.join(sorted(PLACEHOLDERS))})"
            )
    return problems


def fill(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(match.group(1) or "", "")

    return _TOKEN.sub(replace, text)


# Cycles -------------------------------------------------------------------------------------------


def find_cycle(start: str, edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle reachable from `start` as a path that ends where it began (`[a, b, a]`), or None."""
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in on_path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        on_path.add(node)
        for child in edges.get(node, ()):
            found = visit(child)
            if found:
                return found
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    return visit(start)


# Choosing -----------------------------------------------------------------------------------------


def _matches(entry: IndexEntry, conversation: ConversationDocument) -> int | None:
    """How many criteria the entry sets, when all of them match the conversation (else None)."""
    criteria = 0
    if entry.queue_ids is not None:
        criteria += 1
        if conversation.queue_id not in entry.queue_ids:
            return None
    if entry.languages is not None:
        criteria += 1
        language = conversation.language or conversation.locale
        if language is None or language_family(language) not in {language_family(x) for x in entry.languages}:
            return None
    if entry.urgency is not None:
        criteria += 1
        if conversation.urgency != entry.urgency:
            return None
    return criteria


def choose(scripts: Mapping[str, IndexEntry], conversation: ConversationDocument) -> str | None:
    """Most specific first (most criteria matched), then lower priority, then smaller id."""
    ranked = sorted(
        (-criteria, entry.priority, script_id)
        for script_id, entry in scripts.items()
        if (criteria := _matches(entry, conversation)) is not None
    )
    return ranked[0][2] if ranked else None


# The service --------------------------------------------------------------------------------------


def script_view(doc: ScriptDocument) -> Script:
    return Script.model_validate(
        {
            "id": doc.id,
            "name": doc.name,
            "language": doc.language,
            "steps": doc.steps,
            "appliesTo": doc.applies_to,
            "priority": doc.priority,
            "updatedAt": doc.updated_at,
        }
    )


def _refs(request: ScriptRequest) -> list[str]:
    return list(dict.fromkeys(step.scriptId for step in request.steps if step.type == "script"))


def _check_texts(request: ScriptRequest) -> None:
    errors = [
        {"field": f"body.steps[{i}].text", "message": problem}
        for i, step in enumerate(request.steps)
        if step.type == "text"
        for problem in placeholder_problems(step.text)
    ]
    if errors:
        raise ValidationFailed(errors)


class Scripts:
    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._scripts = Stored(store, SCRIPTS, ScriptDocument)
        self._index = Stored(store, SCRIPTS, ScriptIndex)

    async def get(self, script_id: str) -> ScriptDocument:
        doc = await self._scripts.read_or_none(script_id, SCOPE)
        if doc is None or script_id == INDEX_ID:
            raise NotFound("No such script.")
        return doc

    async def put(
        self, actor: Principal, script_id: str, request: ScriptRequest, *, if_match: IfMatch | None
    ) -> tuple[ScriptDocument, bool]:
        if script_id == INDEX_ID:
            raise ValidationFailed([{"field": "scriptId", "message": "is reserved"}])
        _check_texts(request)
        refs = _refs(request)
        applies = request.appliesTo

        async def step() -> tuple[ScriptDocument, bool]:
            index = await self._index.read_or_none(INDEX_ID, SCOPE)
            current = await self._scripts.read_or_none(script_id, SCOPE)
            check_if_match(if_match, None if current is None else entity_tag(current.etag), "script")
            entries = dict(index.scripts) if index is not None else {}
            edges = {key: entry.refs for key, entry in entries.items()} | {script_id: refs}
            cycle = find_cycle(script_id, edges)
            if cycle:
                raise ValidationFailed(
                    [{"field": "body.steps", "message": "would create a cycle: " + " → ".join(cycle)}]
                )
            entries[script_id] = IndexEntry(
                refs=refs,
                queue_ids=None if applies is None else applies.queueIds,
                languages=None if applies is None else applies.languages,
                urgency=None if applies is None or applies.urgency is None else str(applies.urgency),
                priority=request.priority,
            )
            doc = ScriptDocument(
                id=script_id,
                name=request.name,
                language=request.language,
                steps=[s.model_dump(mode="json", exclude_none=True) for s in request.steps],
                applies_to=None if applies is None else applies.model_dump(mode="json", exclude_none=True),
                priority=request.priority,
                updated_at=stamp(self._clock.now()),
                updated_by=actor.subject,
            )
            new_index = ScriptIndex(id=INDEX_ID, scripts=entries)
            operations = [
                BatchOperation.create(doc.body())
                if current is None
                else BatchOperation.replace(doc.body(), etag=current.etag),
                BatchOperation.create(new_index.body())
                if index is None
                else BatchOperation.replace(new_index.body(), etag=index.etag),
            ]
            try:
                results = await self._store.container(SCRIPTS).batch(SCOPE, operations)
            except BatchFailed as failed:
                if isinstance(failed.error, Conflict | PreconditionFailed | NotFound):
                    raise Again() from None
                raise
            written = results[0]
            doc.store_etag = None if written is None else written.get("_etag")
            return doc, current is None

        return await retry(step, give_up=lambda: Conflict("Scripts are being changed concurrently; retry."))

    async def for_conversation(
        self, principal: Principal, conversation_id: str, correlation_id: str | None
    ) -> ConversationScript:
        """The assigned agent's script for the conversation (anyone else: 404)."""
        conversation = await conversations.read_or_none(self._store, conversation_id)
        if conversation is None or conversation.agent_id != principal.subject:
            raise NotFound("no such conversation")
        await record_access(
            self._store,
            self._clock,
            actor=principal,
            action="read",
            resource=f"conversations/{conversation.id}/script",
            patient_id=conversation.patient_id,
            correlation_id=correlation_id,
        )
        index = await self._index.read_or_none(INDEX_ID, SCOPE)
        chosen = choose(index.scripts if index is not None else {}, conversation)
        if chosen is None:
            raise NotFound("No script applies to this conversation.")
        values = await self._values(principal, conversation, correlation_id)
        root = await self.get(chosen)
        steps: list[FilledStep] = []
        missing: list[str] = []
        await self._expand(root, values, [root.id], steps, missing)
        return ConversationScript(
            scriptId=root.id, name=root.name, language=root.language, steps=steps, missing=missing
        )

    async def _expand(
        self,
        doc: ScriptDocument,
        values: Mapping[str, str],
        path: list[str],
        steps: list[FilledStep],
        missing: list[str],
    ) -> None:
        if len(path) > MAX_DEPTH:
            raise Conflict("Scripts nest too deeply.")
        for raw in doc.steps:
            if len(steps) >= MAX_STEPS:
                return
            if raw["type"] == "text":
                steps.append(FilledStep(type="text", text=fill(raw["text"], values), scriptId=doc.id))
            elif raw["type"] == "action":
                steps.append(
                    FilledStep(
                        type="action", action=raw["action"], articleId=raw.get("articleId"), scriptId=doc.id
                    )
                )
            else:
                child_id = raw["scriptId"]
                if child_id in path:  # only a write that raced past the index could do this
                    raise Conflict("The scripts form a cycle: " + " → ".join([*path, child_id]))
                child = await self._scripts.read_or_none(child_id, SCOPE)
                if child is None:
                    if child_id not in missing:
                        missing.append(child_id)
                    continue
                await self._expand(child, values, [*path, child_id], steps, missing)

    async def _values(
        self, principal: Principal, conversation: ConversationDocument, correlation_id: str | None
    ) -> dict[str, str]:
        patient = await PatientRegistry(self._store, self._clock).read(
            principal, conversation.patient_id, correlation_id or ""
        )
        directory = RoutingDirectory(self._store)
        try:
            agent_name = (await directory.agent_doc(principal.subject)).profile.name
        except NotFound:
            agent_name = principal.name or ""
        queue_name = ""
        if conversation.queue_id:
            queue = await directory.queue_doc(conversation.queue_id)
            queue_name = queue.settings.name if queue is not None else conversation.queue_id
        values: dict[str, Any] = {
            "patient.firstName": patient.item.first_name,
            "patient.name": patient.item.name or "",
            "agent.name": agent_name,
            "queue.name": queue_name,
        }
        return values
