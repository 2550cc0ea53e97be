"""One SMS segment: GSM-7 or UCS-2, transliteration to GSM-7, and fitting text around links.

A single-part SMS holds 160 GSM-7 septets or 70 UCS-2 characters (3GPP TS 23.038; FACTS.md). The
GSM 03.38 default alphabet has 127 printable characters of one septet each (ASCII letters and
digits, most punctuation, some accented letters such as é, ñ, ü, à, Ø, ß and a few Greek
capitals) and an extension table whose ten characters (`^ { } \\ [ ~ ] | €` and form feed) cost an
escape plus the character: two septets. Any other character makes the whole message UCS-2, where
a character outside the Basic Multilingual Plane (an emoji) counts as two (UTF-16 code units).

`fit_sms` builds the text of one segment from parts: `Text` (words; `shrink=True` parts may be cut
at a word to fit) and `Link` (atomic: never transliterated, cut or changed). In order of
preference: the text as it is in GSM-7; as it is in UCS-2 (keeps diacritics when it fits 70);
transliterated to GSM-7 (Polish ą→a, ł→l, Spanish á→a; letters GSM-7 already has stay, so ñ and é
are kept); and only then shortened, in GSM-7 when transliteration allows it (160 beats 70), with
`...` (GSM-7) or `…` (UCS-2) where text was cut. If the links and the fixed text alone cannot fit,
`SmsTooLong` is raised: a message is never split and a link never broken.

Hand-written: the table is fixed by the standard, and no maintained library both counts septets
and transliterates only what GSM-7 lacks (`unicodedata` does the decomposition).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_LIMIT = 160
UCS2_LIMIT = 70

# TS 23.038 default alphabet, code points 0x00-0x7F in order, without 0x1B (the escape to the
# extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs the escape septet plus its own.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# What NFKD decomposition cannot reduce to GSM-7, and typography that has a plain equivalent.
_EXPLICIT = {
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "Đ": "D",
    "ħ": "h",
    "Ħ": "H",
    "\u0131": "i",  # dotless i
    "œ": "oe",
    "Œ": "OE",
    "þ": "th",
    "Þ": "Th",
    "ð": "d",
    "Ð": "D",
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "`": "'",
    "\u00b4": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\u2022": "-",
    "\u2026": "...",
    "\u00b7": ".",
    # Spaces Babel and CLDR put in dates and times (no-break, narrow no-break, thin, figure).
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\u2007": " ",
    "\u200a": " ",
}


class SmsTooLong(ValueError):
    """Even with every shrinkable text cut, the links and the fixed text need more than one
    segment. `needed` is what they take in the encoding they need, against `limit`."""

    def __init__(self, needed: int, limit: int, encoding: Encoding) -> None:
        super().__init__(
            f"the links and fixed text need {needed} {'septets' if encoding == 'GSM-7' else 'characters'}"
            f" in {encoding}; one segment holds {limit}"
        )
        self.needed = needed
        self.limit = limit
        self.encoding = encoding


@dataclass(frozen=True)
class Text:
    """Words of the message. `shrink=True`: may be cut at a word (or dropped) to fit."""

    value: str
    shrink: bool = False


@dataclass(frozen=True)
class Link:
    """A URL: appears whole and unchanged, or the message is not built."""

    url: str


Part = Text | Link


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: Encoding
    units: int  # GSM-7 septets or UCS-2 code units
    transliterated: bool
    shortened: bool


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def gsm7_septets(text: str) -> int | None:
    """Septets `text` takes in GSM-7 (extension characters count 2), or None if it cannot be."""
    total = 0
    for ch in text:
        if ch in GSM7_BASIC:
            total += 1
        elif ch in GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


def ucs2_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def units(text: str, encoding: Encoding) -> int:
    """Cost of `text` in `encoding`; `ValueError` if GSM-7 cannot carry it."""
    if encoding == "UCS-2":
        return ucs2_units(text)
    septets = gsm7_septets(text)
    if septets is None:
        raise ValueError("text is not GSM-7")
    return septets


def segment_fits(text: str) -> bool:
    """Whether `text` is one segment in the encoding it needs."""
    septets = gsm7_septets(text)
    return septets <= GSM7_LIMIT if septets is not None else ucs2_units(text) <= UCS2_LIMIT


def transliterate_gsm7(text: str) -> str | None:
    """`text` with every character GSM-7 lacks replaced by its plain form (letters without their
    marks, typography by ASCII), or None when some character has none (CJK, emoji)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        if ch in _EXPLICIT:
            out.append(_EXPLICIT[ch])
            continue
        plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if not plain or not is_gsm7(plain):
            return None
        out.append(plain)
    return "".join(out)


def fit_sms(parts: Sequence[Part]) -> SmsText:
    """The text of one SMS segment from `parts` (see the module docstring). Raises `SmsTooLong`."""
    texts = [_nfc(p) for p in parts]
    original = _join(texts)
    septets = gsm7_septets(original)
    if septets is not None and septets <= GSM7_LIMIT:
        return SmsText(original, "GSM-7", septets, transliterated=False, shortened=False)
    if septets is None and ucs2_units(original) <= UCS2_LIMIT:
        return SmsText(original, "UCS-2", ucs2_units(original), transliterated=False, shortened=False)
    plain = _transliterated(texts)
    if plain is not None:
        joined = _join(plain)
        plain_septets = gsm7_septets(joined)
        assert plain_septets is not None
        if plain_septets <= GSM7_LIMIT:
            return SmsText(joined, "GSM-7", plain_septets, transliterated=septets is None, shortened=False)
        shortened = _shorten(plain, "GSM-7")
        return SmsText(shortened, "GSM-7", units(shortened, "GSM-7"), septets is None, shortened=True)
    shortened = _shorten(texts, "UCS-2")
    # Cutting may have removed every character GSM-7 lacks: then it is GSM-7 (and still fits).
    encoding = encoding_of(shortened)
    return SmsText(shortened, encoding, units(shortened, encoding), transliterated=False, shortened=True)


def _nfc(part: Part) -> Part:
    return Text(unicodedata.normalize("NFC", part.value), part.shrink) if isinstance(part, Text) else part


def _join(parts: Sequence[Part]) -> str:
    return "".join(p.value if isinstance(p, Text) else p.url for p in parts)


def _transliterated(parts: Sequence[Part]) -> list[Part] | None:
    out: list[Part] = []
    for part in parts:
        if isinstance(part, Link):
            if not is_gsm7(part.url):
                return None
            out.append(part)
            continue
        plain = transliterate_gsm7(part.value)
        if plain is None:
            return None
        out.append(Text(plain, part.shrink))
    return out


def _shorten(parts: list[Part], encoding: Encoding) -> str:
    limit = GSM7_LIMIT if encoding == "GSM-7" else UCS2_LIMIT
    ellipsis = "..." if encoding == "GSM-7" else "\u2026"
    current = list(parts)
    fixed = sum(_cost(p, encoding) for p in current if not (isinstance(p, Text) and p.shrink))
    if fixed > limit:
        raise SmsTooLong(fixed, limit, encoding)
    while True:
        total = sum(_cost(p, encoding) for p in current)
        if total <= limit:
            return _join(current)
        shrinkable = [i for i, p in enumerate(current) if isinstance(p, Text) and p.shrink]
        if not shrinkable:
            raise SmsTooLong(total, limit, encoding)
        # Cut the longest first: the others keep as much of their meaning as they can.
        index = max(shrinkable, key=lambda i: _cost(current[i], encoding))
        value = current[index].value  # type: ignore[union-attr]
        cut = _cut(value, units(value, encoding) - (total - limit), encoding, ellipsis)
        if units(cut, encoding) < units(value, encoding):
            current[index] = Text(cut, shrink=True)
        else:  # as short as it gets: it stays as it is from now on
            current[index] = Text(value, shrink=False)


def _cost(part: Part, encoding: Encoding) -> int:
    return units(part.value if isinstance(part, Text) else part.url, encoding)


def _cut(value: str, room: int, encoding: Encoding, ellipsis: str) -> str:
    """The longest start of `value` ending at a word, plus `ellipsis`, within `room` units. A space
    the text began or ended with stays, so the parts around it stay apart, unless even that space
    is over `room`: then nothing stays (the links and fixed text fit by themselves)."""
    lead = " " if value[:1].isspace() else ""
    trail = " " if value[-1:].isspace() else ""
    spacer = " " if (lead or trail) and room >= 1 else ""
    budget = room - units(ellipsis, encoding) - len(lead) - len(trail)
    words = value.strip()
    if budget <= 0 or not words:
        return spacer
    kept = ""
    for index, ch in enumerate(words):
        if units(words[: index + 1], encoding) > budget:
            break
        if ch.isspace():
            kept = words[:index]
    else:
        kept = words
    if not kept:  # one long first word: cut it where the budget ends
        end = 0
        while end < len(words) and units(words[: end + 1], encoding) <= budget:
            end += 1
        kept = words[:end]
    kept = kept.rstrip(" ,;:-")
    if not kept:
        return spacer
    return f"{lead}{kept}{ellipsis}{trail}"
