"""The two lock files: generated from the short `.in` files, fully pinned, and in agreement."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def pins(name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        found[normal(match.group(1))] = match.group(2)
    return found


def test_both_lock_files_pin_every_package_exactly_and_name_their_command() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        text = (ROOT / name).read_text()
        assert "pip-compile" in text.split("\n", 6)[4], f"{name} should say how it was generated"
        assert pins(name)
        # A machine's own mirrors stay out of the lock (Azure's remote build cannot reach them).
        assert "--index-url" not in text
        assert "--find-links" not in text


def test_dev_lock_holds_production_pins_unchanged() -> None:
    production, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert production.items() <= dev.items()


def test_every_direct_requirement_is_in_its_lock() -> None:
    for source, lock in (
        ("requirements.in", "requirements.txt"),
        ("requirements-dev.in", "requirements-dev.txt"),
    ):
        locked = pins(lock)
        for line in (ROOT / source).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            name = normal(re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0])
            assert name in locked, f"{name} from {source} is not pinned in {lock}"


def test_the_readme_commands_install_from_the_lock() -> None:
    env = (ROOT / "scripts" / "python-env.sh").read_text()
    assert "-r requirements-dev.txt" in env
