"""The list walker and the API's continuation tokens (shared/kernel/lists.py), on the embedded
store: pages in order across several lists, resumes exactly after the last entry examined, and
every token that is not one the list handed out is a 400."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.sqlite_documents import SqliteDocumentStore
from shared.kernel import lists
from shared.kernel.catalog import CONTAINERS
from shared.kernel.clock import ManualClock
from shared.kernel.documents import DocumentStore, Item
from shared.kernel.errors import BadRequest, ValidationFailed


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DocumentStore]:
    store = SqliteDocumentStore(tmp_path / "store.sqlite3", CONTAINERS, ManualClock())
    yield store
    await store.close()


async def keep_all(entry: Item, segment: lists.Segment) -> str:
    return f"{segment.list_key}/{entry['ref']}"


async def fill(store: DocumentStore, list_key: str, refs: list[str]) -> None:
    await lists.add(store, *(lists.entry(list_key, ref, ref) for ref in refs))


async def walk_all(
    store: DocumentStore, segments: list[lists.Segment], max_items: int, load: Any
) -> list[Any]:
    rows: list[Any] = []
    cursor: dict[str, Any] | None = None
    while True:
        page, cursor = await lists.walk(store, segments, cursor, max_items, load)
        assert len(page) <= max_items
        rows += page
        if cursor is None:
            return rows


async def test_a_walk_goes_list_by_list_in_position_order(store: DocumentStore) -> None:
    await fill(store, "b", ["b2", "b1"])
    await fill(store, "a", ["a1", "a3", "a2"])
    segments = [lists.Segment("2", "b"), lists.Segment("1", "a"), lists.Segment("3", "empty")]
    rows = await walk_all(store, segments, 2, keep_all)
    assert rows == ["a/a1", "a/a2", "a/a3", "b/b1", "b/b2"]


async def test_entries_the_loader_drops_cost_a_read_but_never_a_gap(store: DocumentStore) -> None:
    await fill(store, "a", [f"x{n:02d}" for n in range(20)])

    async def odd_only(entry: Item, _: lists.Segment) -> str | None:
        return entry["ref"] if int(entry["ref"][1:]) % 2 else None

    rows = await walk_all(store, [lists.Segment("0", "a")], 3, odd_only)
    assert rows == [f"x{n:02d}" for n in range(1, 20, 2)]


async def test_a_page_stops_after_a_bounded_scan_even_if_short(store: DocumentStore) -> None:
    await fill(store, "a", [f"x{n:02d}" for n in range(30)])

    async def none(entry: Item, _: lists.Segment) -> None:
        return None

    page, cursor = await lists.walk(store, [lists.Segment("0", "a")], None, 2, none)
    assert page == []
    assert cursor is not None  # 8 entries examined (4 per requested item); the rest next time


async def test_a_cursor_into_a_list_that_left_the_walk_resumes_with_the_next(store: DocumentStore) -> None:
    await fill(store, "a", ["a1", "a2"])
    await fill(store, "c", ["c1"])
    _, cursor = await lists.walk(store, [lists.Segment("1", "a"), lists.Segment("2", "b")], None, 1, keep_all)
    assert cursor is not None
    assert cursor["at"] == "1"
    # "a" was renumbered away between pages: its inner token is dropped, the walk goes on after it.
    rows, _ = await lists.walk(store, [lists.Segment("0", "a"), lists.Segment("3", "c")], cursor, 5, keep_all)
    assert rows == ["c/c1"]


def test_tokens_round_trip_and_fit_only_their_scope() -> None:
    token = lists.seal("patient-appointments:p-1", {"at": "0", "c": "inner"})
    assert token is not None
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert lists.unseal("patient-appointments:p-1", token) == {"at": "0", "c": "inner"}
    assert lists.seal("x", None) is None
    for scope, bad in [
        ("patient-appointments:p-2", token),
        ("patient-appointments:p-1", token[:-2]),
        ("patient-appointments:p-1", "%%%"),
        ("patient-appointments:p-1", base64.urlsafe_b64encode(b"[1, 2]").decode()),
        ("patient-appointments:p-1", base64.urlsafe_b64encode(json.dumps({"v": 9}).encode()).decode()),
    ]:
        with pytest.raises(ValidationFailed):
            lists.unseal(scope, bad)
    for shape in ({"at": 1, "c": None}, {"at": "0"}, {"at": "0", "c": 5, "x": 1}, ["at"]):
        with pytest.raises(ValidationFailed):
            lists.cursor_of(shape)


def test_a_deeply_nested_token_is_a_bad_request_not_a_recursion_error() -> None:
    digest = lists._digest("a")
    for text in [
        "[" * 1500,
        "[" * 1000 + "]" * 1000,
        '{"v":1,"s":"' + digest + '","at":"0","c":' + "[" * 1400,
    ]:
        with pytest.raises(ValidationFailed):
            lists.unseal("a", base64.urlsafe_b64encode(text.encode()).decode())
    # Deeper than any token we seal (the board's cursors are two levels), even when well formed.
    four = {"v": 1, "s": digest, "at": {"x": {"y": {"z": 1}}}}
    with pytest.raises(ValidationFailed):
        lists.unseal("a", base64.urlsafe_b64encode(json.dumps(four).encode()).decode())
    board = lists.seal("a", {"cv": {"at": "0", "c": None}, "ag": None})
    assert lists.unseal("a", board) == {"cv": {"at": "0", "c": None}, "ag": None}


def test_a_token_longer_than_its_bound_is_never_handed_out() -> None:
    with pytest.raises(RuntimeError):
        lists.seal("s", {"at": "0", "c": "x" * 3000})


async def test_a_well_sealed_token_around_a_forged_store_token_is_a_bad_request(store: DocumentStore) -> None:
    await fill(store, "a", ["a1", "a2"])
    forged = lists.seal("a", {"at": "0", "c": "bm90IGEgdG9rZW4"})
    with pytest.raises(BadRequest):  # the store's own check: a 400, never a 500
        await lists.read_page(store, "a", [lists.Segment("0", "a")], forged, 1, keep_all)
