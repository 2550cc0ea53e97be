"""The input types every edge check is built from: ids, text, dates and instants, and the bounded
JSON reader."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from shared.kernel.ids import ExternalId, Id, is_id
from shared.kernel.json_reader import JsonRejected, read_json
from shared.kernel.text import Line, Text
from shared.kernel.times import Day, Instant, parse_instant


class Sample(BaseModel):
    id: Id | None = None
    external: ExternalId | None = None
    line: Line | None = None
    text: Text | None = None
    day: Day | None = None
    at: Instant | None = None


def refused(**fields: object) -> bool:
    try:
        Sample.model_validate_json(json.dumps(fields), strict=True)
    except ValidationError:
        return True
    return False


@pytest.mark.parametrize(
    "value",
    [
        "p-1",
        "c-" + "a" * 32,
        "dr-nowak.20260106T0700Z",
        "webhook:" + "f" * 64,
        "user@example.org",
        "a" * 100,
        "...",
    ],
)
def test_our_ids_and_the_ones_we_derive_are_ids(value: str) -> None:
    assert is_id(value)


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "a\\b", "a?b", "a#b", "a b", "a\0", "é", "a" * 101])
def test_paths_queries_controls_and_long_ids_are_not(value: str) -> None:
    assert not is_id(value)
    assert refused(id=value)


def test_an_external_id_is_any_printable_text_up_to_512() -> None:
    assert not refused(external="19:meeting_Zjk@thread.v2/a b?c#d")
    assert refused(external="x" * 513)
    assert refused(external="a\nb")
    assert refused(external="")


@pytest.mark.parametrize(
    "value", ["Anna", "Ewa Nowak-Kowalska", "José", "\u05e9\u05e8\u05d4\u200f (Sarah)", "株式会社"]
)
def test_names_in_any_script_with_direction_marks_are_lines(value: str) -> None:
    assert not refused(line=value)


@pytest.mark.parametrize(
    "value", ["a\0", "a\x7f", "a\x85", "a\u202eb", "a\u2066b\u2069", "a\ud800", "a\nb", "a\tb", "a\u2028b"]
)
def test_controls_overrides_and_line_breaks_are_not_lines(value: str) -> None:
    assert refused(line=value)


def test_free_text_keeps_line_breaks_and_tabs_but_not_controls() -> None:
    assert not refused(text="first line\r\nsecond\tindented")
    assert refused(text="bell\a")
    assert refused(text="\u202dreversed")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-30T08:00:00+02:00", datetime(2026, 3, 30, 6, tzinfo=UTC)),
        ("2026-03-30t06:00z", datetime(2026, 3, 30, 6, tzinfo=UTC)),
        ("1900-01-01T00:00:00Z", datetime(1900, 1, 1, tzinfo=UTC)),
        ("2199-12-31T23:59:59+00:00", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_an_instant_needs_an_offset_and_becomes_utc(text: str, utc: datetime) -> None:
    assert parse_instant(text) == utc


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-05:00",  # UTC would be year 10000: OverflowError before
        "0001-01-01T00:00:00+01:00",  # UTC would be year 0
        "1899-12-31T23:00:00Z",
        "1900-01-01T00:00:00+05:00",  # 1899 in UTC
        "2026-03-30T08:00:00",  # naive
        "2026-03-30",
        "20260330T080000Z",  # basic format
        "2026-W14-1T08:00:00Z",  # week date
        "2026-03-30T08:00:00+02",
        "٢٠٢٦-03-30T08:00:00Z",  # non-ASCII digits
    ],
)
def test_instants_out_of_range_naive_or_oddly_written_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"offset|between|ISO-8601"):
        parse_instant(text)
    assert refused(at=text)


def test_arithmetic_on_any_accepted_value_cannot_overflow() -> None:
    latest, earliest = parse_instant("2199-12-31T09:59:59-14:00"), parse_instant("1900-01-01T14:00:00+14:00")
    assert latest + timedelta(days=800) > latest
    assert earliest - timedelta(days=800) < earliest
    with pytest.raises(ValueError, match="between 1900-01-01 and 2199-12-31"):
        parse_instant("2199-12-31T23:59:59-14:00")  # 2200 in UTC


@pytest.mark.parametrize(("text", "ok"), [("2026-03-30", True), ("1900-01-01", True), ("2199-12-31", True),
                                          ("0001-01-01", False), ("9999-12-31", False), ("2026-3-30", False),
                                          ("2026-02-30", False), ("20260330", False)])  # fmt: skip
def test_days_are_plain_dates_between_1900_and_2199(text: str, ok: bool) -> None:
    assert refused(day=text) is not ok
    if ok:
        assert Sample.model_validate_json(f'{{"day": "{text}"}}').day == date.fromisoformat(text)


def test_json_types_are_not_dates() -> None:
    assert refused(day=20260330)
    assert refused(at=1767686400)


# The bounded JSON reader ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ('{"a": 1, "a": 2}', "a", "has the same key twice"),
        ('{"a": {"b": [{"c": 1, "c": 1}]}}', "a.b.0.c", "has the same key twice"),
        ('{"name": "x\\u0000"}', "name", "must not contain control characters or bidirectional overrides"),
        ('["\\u202e"]', "0", "must not contain control characters or bidirectional overrides"),
        ('{"a": NaN}', "", "is not valid JSON (NaN and Infinity are not JSON numbers)"),
        ('{"a": ', "", "is not valid JSON"),
        ("[" * 33 + "]" * 33, "0." * 31 + "0", "is nested deeper than 32 levels"),
        ("[" * 1000 + "]" * 1000, "", "is nested deeper than 32 levels"),
        ("[" * 100_000 + "]" * 100_000, "", "is nested deeper than 32 levels"),
    ],
)
def test_the_reader_refuses_with_a_path_and_never_the_value(text: str, path: str, message: str) -> None:
    with pytest.raises(JsonRejected) as caught:
        read_json(text)
    assert (caught.value.path, caught.value.message) == (path, message)


def test_the_reader_caps_size_and_needs_utf8() -> None:
    with pytest.raises(JsonRejected, match="larger than 10 bytes"):
        read_json(b'"' + b"x" * 10 + b'"', max_bytes=10)
    with pytest.raises(JsonRejected, match="not UTF-8"):
        read_json(b'"\xff"')


def test_a_key_that_is_not_a_name_is_not_repeated_back() -> None:
    with pytest.raises(JsonRejected) as caught:
        read_json('{"jan.nowak@example.org": 1, "jan.nowak@example.org": 2}')
    assert "example" not in caught.value.path


def test_plain_json_reads_as_the_standard_library_reads_it() -> None:
    text = '{"a": [1, 2.5, true, null, "x\\ny"], "b": {"c": "\u05e9\u200f"}}'
    assert read_json(text) == {"a": [1, 2.5, True, None, "x\ny"], "b": {"c": "\u05e9\u200f"}}


def test_the_documented_history_events_are_exactly_the_lifecycle_moves() -> None:
    """The served enum of history events must follow the lifecycle graph, or a new move answers 500."""
    from typing import get_args

    from shared.conversations.model import TRANSITIONS, HistoryEvent

    assert set(get_args(HistoryEvent)) == {"open", *TRANSITIONS}


def test_an_id_with_a_trailing_newline_is_not_an_id() -> None:
    """`$` in a regex also matches before a final newline: ids are checked whole."""
    from shared.kernel.ids import is_id

    assert is_id("abc")
    assert not is_id("abc\n")
