"""Shared fixtures: a real embedded runtime per test (SQLite under tmp_path, a manual clock),
dev tokens, and a way to call the registered functions exactly as the host does."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.auth.dev_tokens import issue_dev_token
from shared.config import Settings
from shared.kernel.clock import ManualClock
from shared.kernel.observability import install_logging
from shared.runtime import Runtime, build_runtime, use_runtime

DEV_SECRET = "test-secret-0123456789abcdef-0123456789"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "PSC_AUTH_MODE": "dev",
        "PSC_DEV_JWT_SECRET": DEV_SECRET,
        "PSC_DATA_DIR": str(data_dir),
        "PSC_STORE": "embedded",
        "PSC_BUS": "embedded",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def runtime(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Runtime]:
    install_logging(logging.DEBUG)
    rt = await build_runtime(make_settings(tmp_path / "data"), clock=clock)
    with use_runtime(rt):
        yield rt
    await rt.close()


def token(*roles: str, sub: str = "user-1", patient_id: str | None = None, **kw: Any) -> str:
    return issue_dev_token(DEV_SECRET, sub=sub, roles=roles, patient_id=patient_id, **kw)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def trigger_settings() -> dict[str, str]:
    """The app settings the triggers name (`%SETTING%`), as Bicep and the sample set them: every
    queue, topic and subscription of the catalog, the sweep's schedule and the relay's database."""
    from shared.kernel.catalog import QUEUES, TOPICS

    names = {spec.setting: spec.name for spec in QUEUES.values()}
    for topic in TOPICS.values():
        names[topic.setting] = topic.name
        names |= {sub.setting: sub.name for sub in topic.subscriptions}
    return names | {"PSC_SWEEP_SCHEDULE": "0 */5 * * * *", "COSMOS_DATABASE": "psc"}


_FUNCTIONS: dict[str, Any] | None = None


def registered_functions() -> dict[str, Any]:
    """`app.get_functions()` is not idempotent: index the app once per test session."""
    global _FUNCTIONS
    if _FUNCTIONS is None:
        import function_app

        _FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}
    return _FUNCTIONS


async def invoke(
    name: str,
    *,
    method: str = "GET",
    url: str = "http://localhost/api/x",
    bearer: str | None = None,
    json_body: Any = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Answer:
    all_headers = dict(headers or {})
    if bearer:
        all_headers["Authorization"] = f"Bearer {bearer}"
    if json_body is not None:
        body = json.dumps(json_body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = func.HttpRequest(
        method,
        url,
        headers=all_headers,
        params=params or {},
        route_params=route_params or {},
        body=body or b"",
    )
    fn = registered_functions()[name].get_user_function()
    response: func.HttpResponse = await fn(request)
    answer_headers = dict(response.headers)
    if response.mimetype:  # the host turns mimetype into Content-Type
        answer_headers.setdefault("Content-Type", response.mimetype)
    return Answer(response.status_code, answer_headers, response.get_body())


async def seed_patients(runtime: Runtime, *patient_ids: str) -> None:
    """Patient records for tests that only need them to exist (bookings name existing patients)."""
    patients = runtime.store.container("patients")
    for patient_id in patient_ids:
        await patients.upsert({"id": patient_id, "type": "patient", "name": f"Patient {patient_id}"})


async def seed_conversation(runtime: Runtime, conversation_id: str, patient_id: str) -> None:
    """A conversation document about `patient_id`, as the escalation webhook stores one."""
    from shared.conversations.model import new_conversation

    doc = new_conversation(
        conversation_id=conversation_id,
        bot_conversation_id=f"bot-{conversation_id}",
        patient_id=patient_id,
        patient_match="id",
        now=runtime.clock.now(),
        reason=None,
        summary=None,
        urgency="routine",
        specialty=None,
        language="en",
        context={},
        channel=None,
        locale=None,
        body_format="native",
    )
    await runtime.store.container("conversations").upsert(doc.body())


# Documents that live beside an aggregate in its partition (shared/kernel/outbox.py): its events,
# and a conversation's messages and message keys.
CHILD_TYPES = frozenset({"event", "message", "message-key"})


async def stored_items(runtime: Runtime, container: str, *, children: bool = False) -> list[dict[str, Any]]:
    """Every document of a container (a cross-partition scan: tests only); without `children`,
    the aggregates and other top-level documents only."""
    from shared.kernel.documents import Query

    page = await runtime.store.container(container).query_cross_partition(Query(), max_items=10_000)
    return [item for item in page.items if children or item.get("type") not in CHILD_TYPES]
