"""Knowledge through the HTTP edge: versioned articles, search (drafts and archived articles never
appear; a question worded differently finds its article first), and a conversation's suggestions."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kernel.documents import Query
from shared.runtime import Runtime
from tests.conftest import Answer, invoke, token
from tests.workspace.support import AGENT, KNOWLEDGE, OTHER_AGENT, SUPERVISOR, all_items, held_conversation

ARTICLES: dict[str, dict[str, Any]] = {
    "reset-password": {
        "title": "Resetting your patient portal password",
        "body": "If you forgot the password for the patient portal, use the Forgot password link on the "
        "sign-in page. A reset link arrives by e-mail within minutes.",
        "language": "en",
        "status": "published",
        "tags": ["portal"],
    },
    "book-appointment": {
        "title": "Booking an appointment",
        "body": "Choose a provider, pick a free slot and confirm.",
        "language": "en",
        "status": "published",
    },
    "move-appointment": {
        "title": "Cancelling or moving an appointment",
        "body": "Appointments can be cancelled or rescheduled up to 24 hours before the visit.",
        "language": "en",
        "status": "published",
    },
    "password-draft": {
        "title": "New password rules (draft)",
        "body": "Passwords will need twelve characters. Forgot password? Reset it here.",
        "language": "en",
        "status": "draft",
    },
    "old-password": {
        "title": "Old password reset form",
        "body": "Forgot your password? Reset it with the old form.",
        "language": "en",
        "status": "archived",
    },
    "restablecer": {
        "title": "Restablecer la contraseña",
        "body": "Si olvidó la contraseña del portal, use el enlace.",
        "language": "es",
        "status": "published",
    },
}


async def put_article(
    article_id: str, body: dict[str, Any], bearer: str = KNOWLEDGE, **headers: str
) -> Answer:
    return await invoke(
        "put_article",
        method="PUT",
        bearer=bearer,
        json_body=body,
        headers=headers or None,
        route_params={"articleId": article_id},
    )


async def search(q: str, language: str | None = None, bearer: str = AGENT) -> Answer:
    params = {"q": q, **({"language": language} if language else {})}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return await invoke(
        "search_articles", bearer=bearer, params=params, url=f"http://localhost/api/knowledge/search?{query}"
    )


def ids(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.json
    return [item["id"] for item in answer.json["items"]]


@pytest.fixture
async def corpus(runtime: Runtime) -> Runtime:
    for article_id, body in ARTICLES.items():
        assert (await put_article(article_id, body)).status == 201
    return runtime


# Articles -----------------------------------------------------------------------------------------


async def test_each_change_is_a_new_version_and_a_repeat_changes_nothing(runtime: Runtime) -> None:
    body = ARTICLES["book-appointment"]
    first = await put_article("a1", body)
    assert (first.status, first.json["version"]) == (201, 1)
    assert first.json["updatedBy"] == "km-1"
    again = await put_article("a1", body)
    assert (again.status, again.json["version"], again.headers["ETag"]) == (200, 1, first.headers["ETag"])
    changed = await put_article("a1", {**body, "status": "archived"}, **{"If-Match": first.headers["ETag"]})
    assert (changed.status, changed.json["version"], changed.json["status"]) == (200, 2, "archived")
    stale = await put_article("a1", {**body, "title": "x"}, **{"If-Match": first.headers["ETag"]})
    assert stale.status == 412
    stored = await runtime.store.container("articles").query(Query(), partition_key="a1")
    assert sorted(item["id"] for item in stored.items) == ["a1", "a1:v1", "a1:v2"]


@pytest.mark.parametrize(
    "body",
    [
        {**ARTICLES["book-appointment"], "status": "live"},
        {**ARTICLES["book-appointment"], "title": ""},
        {**ARTICLES["book-appointment"], "title": "two\nlines"},
        {**ARTICLES["book-appointment"], "language": "English"},
        {**ARTICLES["book-appointment"], "tags": "portal"},
        {key: value for key, value in ARTICLES["book-appointment"].items() if key != "body"},
        {**ARTICLES["book-appointment"], "version": 3},
    ],
)
async def test_bad_articles_are_refused_and_nothing_is_written(
    runtime: Runtime, body: dict[str, Any]
) -> None:
    assert (await put_article("a1", body)).status == 400
    assert await all_items(runtime, "articles") == []
    assert ids(await search("appointment")) == []


async def test_only_knowledge_managers_write_articles(runtime: Runtime) -> None:
    for bearer in (AGENT, SUPERVISOR, token("Administrator"), token("Patient", patient_id="p-1")):
        assert (await put_article("a1", ARTICLES["book-appointment"], bearer)).status == 403
    assert await all_items(runtime, "articles") == []


async def test_agents_read_published_articles_only(corpus: Runtime) -> None:
    async def read(article_id: str, bearer: str) -> int:
        return (await invoke("get_article", bearer=bearer, route_params={"articleId": article_id})).status

    assert await read("password-draft", KNOWLEDGE) == 200
    assert await read("password-draft", AGENT) == 404
    assert await read("old-password", SUPERVISOR) == 404
    assert await read("reset-password", AGENT) == 200
    assert await read("nothing", KNOWLEDGE) == 404
    assert await read("reset-password", token("Patient", patient_id="p-1")) == 403


# Search -------------------------------------------------------------------------------------------


async def test_a_question_worded_differently_finds_its_article_first(corpus: Runtime) -> None:
    answer = await search("I can't remember my password, how do I reset it?")
    assert ids(answer)[0] == "reset-password"
    first = answer.json["items"][0]
    assert first == {
        "id": "reset-password",
        "title": "Resetting your patient portal password",
        "score": 1.0,
        "matched": ["password", "reset"],
    }
    assert ids(await search("Can I move the time of my visit?"))[0] == "move-appointment"


async def test_drafts_and_archived_articles_never_appear(corpus: Runtime) -> None:
    found = ids(await search("forgot password reset rules form"))
    assert "password-draft" not in found
    assert "old-password" not in found
    # Publishing makes it findable; archiving it again takes it out.
    draft = ARTICLES["password-draft"]
    await put_article("password-draft", {**draft, "status": "published"})
    assert "password-draft" in ids(await search("twelve characters"))
    await put_article("password-draft", {**draft, "status": "archived"})
    assert ids(await search("twelve characters")) == []


async def test_search_keeps_to_the_language_asked(corpus: Runtime) -> None:
    assert ids(await search("contraseña")) == []
    assert ids(await search("contraseña portal", "es")) == ["restablecer"]
    # An article moved to another language leaves the first one's results.
    await put_article("restablecer", {**ARTICLES["restablecer"], "language": "en"})
    assert ids(await search("contraseña", "es")) == []
    assert ids(await search("contraseña", "en")) == ["restablecer"]


async def test_a_stale_index_entry_is_never_shown(corpus: Runtime) -> None:
    """The index is written after the article: an entry left behind by a crash is filtered out."""
    await corpus.store.container("articles").delete("move-appointment", "move-appointment")
    assert "move-appointment" not in ids(await search("cancelled visit"))


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "x", "language": "klingon!"}, {"q": "x" * 501}, {"q": "a\u202eb"}],
)
async def test_bad_searches_are_refused(corpus: Runtime, params: dict[str, str]) -> None:
    answer = await invoke("search_articles", bearer=AGENT, params=params)
    assert answer.status == 400


async def test_only_agents_and_supervisors_search(corpus: Runtime) -> None:
    assert (await search("password", bearer=SUPERVISOR)).status == 200
    for bearer in (KNOWLEDGE, token("Patient", patient_id="p-1"), token("Administrator")):
        assert (await search("password", bearer=bearer)).status == 403


# Suggestions --------------------------------------------------------------------------------------


async def suggestions(conversation_id: str, bearer: str = AGENT) -> Answer:
    return await invoke(
        "conversation_suggestions", bearer=bearer, route_params={"conversationId": conversation_id}
    )


async def test_a_conversation_gets_the_top_three_articles_for_its_reason(corpus: Runtime) -> None:
    await held_conversation(
        corpus, "c-1", "p-1", reason="Wants to reschedule the appointment, forgot password too"
    )
    found = ids(await suggestions("c-1"))
    assert len(found) == 3
    assert set(found) == {"move-appointment", "reset-password", "book-appointment"}
    assert ids(await suggestions("c-1", SUPERVISOR)) == found
    page = await corpus.store.container("audit").query(Query(), partition_key="p-1")
    assert {r["resource"] for r in page.items} == {"conversations/c-1/suggestions"}


async def test_suggestions_are_only_for_the_assigned_agent_or_a_supervisor(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1")
    assert (await suggestions("c-1", OTHER_AGENT)).status == 404
    assert (await suggestions("c-2")).status == 404
    assert (await suggestions("c-1", token("Patient", patient_id="p-1"))).status == 403
    assert (await suggestions("c-1", KNOWLEDGE)).status == 403


async def test_a_spanish_conversation_gets_spanish_articles(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1", reason="olvidó la contraseña", language="es")
    assert ids(await suggestions("c-1")) == ["restablecer"]


PATIENT = token("Patient", sub="oid-p1", patient_id="p-1")


async def say(conversation_id: str, text: str, bearer: str = PATIENT) -> None:
    answer = await invoke(
        "send_my_message",
        method="POST",
        bearer=bearer,
        json_body={"text": text},
        route_params={"conversationId": conversation_id},
    )
    assert answer.status == 201, answer.json


async def test_the_patient_s_messages_feed_the_suggestions(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1", reason="Question")
    assert ids(await suggestions("c-1")) == []
    await say("c-1", "I need to reschedule my visit")
    assert ids(await suggestions("c-1")) == ["move-appointment"]
    await say("c-1", "and I forgot the portal password")
    assert set(ids(await suggestions("c-1"))) == {"move-appointment", "reset-password"}


async def test_staff_messages_and_internal_notes_do_not_feed_the_suggestions(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1", reason="Question")
    for visibility in ("patient", "internal"):
        answer = await invoke(
            "send_message",
            method="POST",
            bearer=AGENT,
            json_body={"text": "Forgot password? Reschedule?", "visibility": visibility},
            route_params={"conversationId": "c-1"},
        )
        assert answer.status == 201, answer.json
    assert ids(await suggestions("c-1")) == []


# Sending an article ------------------------------------------------------------------------------


async def send_article(conversation_id: str, body: Any, bearer: str = AGENT) -> Answer:
    return await invoke(
        "send_article",
        method="POST",
        bearer=bearer,
        json_body=body,
        route_params={"conversationId": conversation_id},
    )


async def patient_messages(conversation_id: str) -> list[dict[str, Any]]:
    answer = await invoke("my_messages", bearer=PATIENT, route_params={"conversationId": conversation_id})
    assert answer.status == 200, answer.json
    items: list[dict[str, Any]] = answer.json["items"]
    return items


async def test_an_agent_sends_a_published_article_the_patient_reads_as_a_message(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1")
    sent = await send_article("c-1", {"articleId": "reset-password"})
    assert sent.status == 201, sent.json
    article = ARTICLES["reset-password"]
    assert sent.json["visibility"] == "patient"
    assert sent.json["text"] == f"{article['title']}\n\n{article['body']}"
    assert sent.json["from"] == {"role": "agent", "id": "agent-7", "name": "Alex Agent"}
    assert [m["text"] for m in await patient_messages("c-1")] == [sent.json["text"]]
    # The same version again (a retry, a double click): the first message, nothing new.
    again = await send_article("c-1", {"articleId": "reset-password"})
    assert (again.status, again.json["seq"]) == (200, sent.json["seq"])
    assert len(await patient_messages("c-1")) == 1
    audit = await corpus.store.container("audit").query(Query(), partition_key="p-1")
    assert ("create", "conversations/c-1/messages") in {(r["action"], r["resource"]) for r in audit.items}


async def test_a_new_version_of_the_article_is_a_new_message(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1")
    assert (await send_article("c-1", {"articleId": "book-appointment"})).status == 201
    changed = {**ARTICLES["book-appointment"], "body": "Choose a provider and a slot, then confirm."}
    assert (await put_article("book-appointment", changed)).status == 200
    assert (await send_article("c-1", {"articleId": "book-appointment"})).status == 201
    assert len(await patient_messages("c-1")) == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"articleId": "password-draft"}, 422),
        ({"articleId": "old-password"}, 422),
        ({"articleId": "nothing-here"}, 422),
        ({}, 400),
        ({"articleId": "reset-password", "text": "extra"}, 400),
        ({"articleId": "not an id"}, 400),
    ],
)
async def test_only_published_articles_are_sent_and_bad_requests_write_nothing(
    corpus: Runtime, body: dict[str, Any], status: int
) -> None:
    await held_conversation(corpus, "c-1", "p-1")
    before = await all_items(corpus, "conversations")
    answer = await send_article("c-1", body)
    assert answer.status == status, answer.json
    assert await all_items(corpus, "conversations") == before


async def test_an_article_too_long_for_a_message_is_refused(corpus: Runtime) -> None:
    await held_conversation(corpus, "c-1", "p-1")
    long = {**ARTICLES["book-appointment"], "body": "Choose a slot. " * 300}
    assert (await put_article("long", long)).status == 201
    assert (await send_article("c-1", {"articleId": "long"})).status == 422
    assert await patient_messages("c-1") == []


async def test_only_the_assigned_agent_or_a_supervisor_sends_and_not_to_a_closed_conversation(
    corpus: Runtime,
) -> None:
    await held_conversation(corpus, "c-1", "p-1")
    body = {"articleId": "reset-password"}
    assert (await send_article("c-1", body, OTHER_AGENT)).status == 404
    assert (await send_article("c-404", body)).status == 404
    assert (await send_article("c-1", body, PATIENT)).status == 403
    assert (await send_article("c-1", body, KNOWLEDGE)).status == 403
    assert (await send_article("c-1", body, SUPERVISOR)).status == 201
    from shared.conversations.model import Status

    await held_conversation(corpus, "c-2", "p-1", status=Status.CLOSED)
    assert (await send_article("c-2", body)).status == 409
