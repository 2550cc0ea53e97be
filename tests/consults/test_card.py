"""The consult card: Adaptive Card 1.5 as Teams takes it through a Workflows webhook, carrying the
reference code and the question and nothing that identifies the patient; checked with Microsoft's
`adaptivecards` parser (npm, a dev dependency) where node and the package are installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.consults.api import codes_in, consult_card, new_code, shown, workflow_payload

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("validate_card.cjs")


def card(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "code": "K7M3Q9PX",
        "agent_name": "Alex Agent",
        "question": "Is 5 mg of amlodipine safe with a history of ankle swelling?",
        "urgency": "urgent",
        "specialty": "cardiology",
        "reply_to": "PSC",
    }
    values.update(overrides)
    return consult_card(**values)


def test_the_card_is_adaptive_card_1_5_in_a_workflows_message() -> None:
    content = card()
    payload = workflow_payload(content)
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"] is content
    assert content["type"] == "AdaptiveCard"
    assert content["version"] == "1.5"
    assert content["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    text = json.dumps(content)
    assert "K7M3-Q9PX" in text
    assert content["body"][2] == {"type": "TextBlock", "text": card()["body"][2]["text"], "wrap": True}
    assert "@PSC K7M3-Q9PX" in content["body"][3]["text"]


def test_the_card_leaves_out_what_is_not_given() -> None:
    facts = card(urgency=None, specialty=None)["body"][1]["facts"]
    assert [f["title"] for f in facts] == ["Reference", "From"]


def test_reference_codes_are_read_back_from_a_reply_however_typed() -> None:
    code = new_code()
    assert len(code) == 8
    assert codes_in(f"<at>PSC</at> {shown(code).lower()} take it with food") == [code]
    assert codes_in("K7M3Q9PX and also k7m3-q9px") == ["K7M3Q9PX"]
    assert codes_in("K7M3-Q9PO") == ["K7M3Q9P0"]  # O read as 0, as Crockford base32 says
    assert codes_in("no code here, just words") == []
    assert codes_in("ABCD-EFGHI") == []  # nine characters: not a code


def _node_with_adaptivecards() -> list[str] | None:
    node = shutil.which("node")
    if node is None:
        return None
    paths = [str(REPO / "node_modules"), *filter(None, os.environ.get("NODE_PATH", "").split(os.pathsep))]
    if not any((Path(p) / "adaptivecards" / "dist" / "adaptivecards.js").exists() for p in paths):
        return None
    return [node, str(SCRIPT)]


def parse_with_adaptivecards(content: dict[str, Any]) -> dict[str, Any]:
    command = _node_with_adaptivecards()
    if command is None:
        pytest.skip("the adaptivecards npm package is not installed (npm ci installs it from package.json)")
    paths = [str(REPO / "node_modules"), os.environ.get("NODE_PATH", "")]
    result = subprocess.run(
        command,
        input=json.dumps(content),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": os.pathsep.join(p for p in paths if p)},
        check=True,
    )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_microsoft_s_parser_reads_the_card_at_1_5_without_a_complaint() -> None:
    content = card()
    parsed = parse_with_adaptivecards(content)
    assert parsed["events"] == []
    assert parsed["roundTrip"] == content  # every property known to the 1.5 schema


def test_microsoft_s_parser_does_complain_about_a_broken_card() -> None:
    """The control: the same check on a card with an unknown element and a misspelt property."""
    broken = card()
    broken["body"].append({"type": "Carousel3D", "text": "x"})
    broken["body"][0]["wieght"] = "Bolder"
    parsed = parse_with_adaptivecards(broken)
    assert parsed["events"]
    assert parsed["roundTrip"] != broken
