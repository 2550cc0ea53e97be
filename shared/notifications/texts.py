"""Notification texts per kind, channel and language, from `templates/<language>.toml`.

Templates are `string.Template` (stdlib, `$name`): they hold no logic, so a translator cannot
break anything but words, and `substitute` fails on a missing value instead of sending `$cancel`
to a patient. Gettext catalogs (Babel's `.po`) key translations by English source strings and need
a compile step: a poor fit for whole per-channel messages; Jinja is not a dependency. Babel formats
dates, times and zone names in the patient's language, on the clinic's (the provider's) clock.

Languages: the template language is the primary subtag of the patient's tag (`pl-PL` -> `pl`);
a language without templates falls back to English, and then dates are English too, so a text
never mixes two languages. An SMS is always one segment (`shared.notifications.sms`): the template
as it is, then with the provider's name shortened, then `sms_short`; links are never touched.
"""

from __future__ import annotations

import html
import re
import string
import tomllib
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.notifications.model import (
    LINKS_OF,
    SMS_ONLY,
    AppointmentFacts,
    Channel,
    RenderedText,
    TextKind,
    links_of,
)
from shared.notifications.sms import Link, Part, SmsText, SmsTooLong, Text, fit_sms

TEMPLATES = Path(__file__).parent / "templates"
FALLBACK = "en"
VARIANTS = ("sms", "sms_short", "subject", "text")
_MARK = re.compile("\x00([a-z_]+)\x00")
# Control characters and bidirectional overrides never reach a patient's screen from a value.
_CLDR_SPACES = re.compile("[\u00a0\u202f\u2009\u2007]")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def languages() -> tuple[str, ...]:
    """Languages with templates, English first."""
    found = sorted(path.stem for path in TEMPLATES.glob("*.toml"))
    return (FALLBACK, *(lang for lang in found if lang != FALLBACK))


@cache
def templates(language: str) -> dict[str, dict[str, str]]:
    with (TEMPLATES / f"{language}.toml").open("rb") as file:
        loaded: dict[str, dict[str, str]] = tomllib.load(file)
    return loaded


def template_language(tag: str | None) -> str:
    """The template language for a BCP 47 tag: its primary subtag when templates exist, else en."""
    primary = (tag or FALLBACK).replace("_", "-").split("-")[0].lower()
    return primary if primary in languages() else FALLBACK


def placeholders(template: str) -> set[str]:
    return {
        match.group("named") or match.group("braced")
        for match in string.Template.pattern.finditer(template)
        if match.group("named") or match.group("braced")
    }


def render(
    kind: TextKind,
    channel: Channel,
    *,
    language: str | None,
    appointment: AppointmentFacts | None = None,
    links: Mapping[str, str] | None = None,
) -> RenderedText:
    """The text of `kind` for `channel` in the patient's `language` (a BCP 47 tag). `links` must
    hold every link the kind carries on that channel (`links_of`); others are ignored and left out
    of the result's `links`. Raises `ValueError` for a
    missing link or appointment, `SmsTooLong` when the links alone cannot fit one SMS."""
    lang = template_language(language)
    locale = _locale(language, lang)
    entry = templates(lang)[kind]
    if channel != "sms" and kind in SMS_ONLY:
        raise ValueError(f"{kind} is an SMS reply only")
    wanted = links_of(kind, channel)
    given = dict(links or {})
    missing = [name for name in wanted if not given.get(name)]
    if missing:
        raise ValueError(f"{kind} needs the links {', '.join(missing)}")
    used: dict[str, str] = {name: given[name] for name in wanted}
    if _needs_appointment(entry) and appointment is None:
        raise ValueError(f"{kind} needs the appointment")
    values = _values(appointment, locale, short=channel == "sms")
    if channel == "sms":
        sms = _fit(entry, values, used)
        return RenderedText(
            kind,
            channel,
            lang,
            sms.text,
            links=used,
            encoding=sms.encoding,
            units=sms.units,
            shortened=sms.shortened,
            transliterated=sms.transliterated,
        )
    parts = _parts(entry["text"], values, used)
    text = "".join(p.value if isinstance(p, Text) else p.url for p in parts)
    subject = string.Template(entry["subject"]).substitute(values)
    return RenderedText(kind, channel, lang, text, subject=subject, html=_html(parts), links=used)


def _needs_appointment(entry: Mapping[str, str]) -> bool:
    return any({"provider", "when", "date"} & placeholders(entry.get(v, "")) for v in VARIANTS)


def _locale(tag: str | None, lang: str) -> str:
    """Babel locale: the patient's own tag (es-MX formats as in Mexico) when its language has
    templates and Babel knows it, else the template language."""
    from babel import Locale, UnknownLocaleError

    if tag and tag.replace("_", "-").split("-")[0].lower() == lang:
        try:
            return str(Locale.parse(tag.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            pass
    return lang


def _values(facts: AppointmentFacts | None, locale: str, *, short: bool) -> dict[str, str]:
    if facts is None:
        return {}
    from babel.dates import (
        format_date,
        format_skeleton,
        format_time,
        get_datetime_format,
        get_timezone_location,
        get_timezone_name,
    )

    zone = ZoneInfo(facts.provider_zone)
    local = facts.start.astimezone(zone)
    # SMS: "Tue, Apr 14" and the zone as a place ("Poland Time"); e-mail: the full date and the
    # zone's own name ("Central European Summer Time").
    if short:
        date = format_skeleton("MMMEd", local, locale=locale)
    else:
        date = format_date(local, "full", locale=locale)
    time = format_time(local, "short", tzinfo=zone, locale=locale)
    joined = str(get_datetime_format("medium", locale=locale)).replace("'", "")
    when = joined.replace("{0}", time).replace("{1}", date)
    if _zone_differs(facts, local):
        if short:
            name = get_timezone_location(zone, locale=locale)
        else:
            name = get_timezone_name(local, "long", locale=locale)
        when = f"{when} ({name})"
    if short:  # CLDR's no-break spaces (10:30\u202fAM) would make a whole SMS UCS-2 for nothing
        when = _CLDR_SPACES.sub(" ", when)
    return {
        "provider": _UNSAFE.sub(" ", facts.provider_name).strip(),
        "when": when,
        "date": format_date(local, "long", locale=locale),
    }


def _zone_differs(facts: AppointmentFacts, local: datetime) -> bool:
    """Whether the patient's clock shows another time than the clinic's at the appointment."""
    if not facts.patient_zone:
        return True
    theirs = facts.start.astimezone(ZoneInfo(facts.patient_zone))
    return theirs.replace(tzinfo=None) != local.replace(tzinfo=None)


def _parts(template: str, values: Mapping[str, str], links: Mapping[str, str]) -> list[Part]:
    """The template as parts: fixed text, the provider's name (may shrink), links (atomic)."""
    marked = {"provider": "\x00provider\x00", **{name: f"\x00{name}\x00" for name in links}}
    rendered = string.Template(template).substitute({**values, **marked})
    parts: list[Part] = []
    for index, piece in enumerate(_MARK.split(rendered)):
        if index % 2 == 0:
            if piece:
                parts.append(Text(piece))
        elif piece == "provider":
            parts.append(Text(values["provider"], shrink=True))
        else:
            parts.append(Link(links[piece]))
    return parts


def _fit(entry: Mapping[str, str], values: Mapping[str, str], links: Mapping[str, str]) -> SmsText:
    long = _parts(entry["sms"], values, links)
    short = _parts(entry["sms_short"], values, links) if "sms_short" in entry else None
    try:
        fitted = fit_sms(long)
    except SmsTooLong:
        if short is None:
            raise
        return fit_sms(short)
    if fitted.shortened and short is not None:
        try:
            terse = fit_sms(short)
        except SmsTooLong:
            return fitted
        if not terse.shortened:
            return terse
    return fitted


def _html(parts: list[Part]) -> str:
    """The e-mail's HTML: the same words, escaped, paragraphs and line breaks kept, links clickable."""
    chunks: list[str] = []
    for part in parts:
        if isinstance(part, Link):
            url = html.escape(part.url, quote=True)
            chunks.append(f'<a href="{url}">{url}</a>')
        else:
            chunks.append(html.escape(part.value).replace("\n\n", "</p><p>").replace("\n", "<br>"))
    return f"<html><body><p>{''.join(chunks)}</p></body></html>"


def _channel_of(variant: str) -> Channel:
    return "sms" if variant.startswith("sms") else "email"


def check_templates() -> list[str]:
    """Problems with the template files (a test asserts none): every language has every kind and
    variant English has, with exactly English's placeholders, and every kind carries its links."""
    problems: list[str] = []
    english = templates(FALLBACK)
    allowed = {"provider", "when", "date", "confirm", "cancel", "reschedule", "survey"}
    for kind in LINKS_OF:
        entry: Any = english.get(kind)
        if not entry or "sms" not in entry:
            problems.append(f"en: {kind} has no sms")
            continue
        if kind not in SMS_ONLY and not {"subject", "text"} <= set(entry):
            problems.append(f"en: {kind} has no subject or text")
        for variant, template in entry.items():
            found = placeholders(template)
            if found - allowed:
                problems.append(f"en: {kind}.{variant} uses {sorted(found - allowed)}")
            links = set() if variant == "subject" else set(links_of(kind, _channel_of(variant)))
            carried = found & {"confirm", "cancel", "reschedule", "survey"}
            if carried != links:
                problems.append(f"en: {kind}.{variant} carries {sorted(carried)}, not {sorted(links)}")
    for lang in languages()[1:]:
        translated = templates(lang)
        for name, entry in english.items():
            theirs = translated.get(name, {})
            for variant, template in entry.items():
                if variant not in theirs:
                    problems.append(f"{lang}: {name}.{variant} is missing")
                elif placeholders(theirs[variant]) != placeholders(template):
                    problems.append(f"{lang}: {name}.{variant} placeholders differ from en")
        for name in set(translated) - set(english):
            problems.append(f"{lang}: unknown kind {name}")
    return problems
