"""An SMS is always one segment: GSM-7 (160 septets, the extension table counting two) or UCS-2
(70), transliterated to GSM-7 only where that is what makes it fit, shortened only in its words,
and never with a link cut, changed or left out."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.notifications.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_LIMIT,
    UCS2_LIMIT,
    Link,
    Part,
    SmsTooLong,
    Text,
    fit_sms,
    gsm7_septets,
    is_gsm7,
    segment_fits,
    transliterate_gsm7,
    ucs2_units,
)

# 3GPP TS 23.038 default alphabet, row by row (0x00-0x7F), written out independently of the module.
SPEC_ROWS = [
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
]


def test_the_alphabet_is_the_standards() -> None:
    spec = "".join(SPEC_ROWS)
    assert len(spec) == 128
    assert set(spec) - {"\x1b"} == GSM7_BASIC
    assert set("\f^{}\\[~]|€") == GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "septets"),
    [
        ("abc", 3),
        ("€", 2),
        ("[]", 4),
        ("{x}|~^\\", 13),
        ("ñé à ü ß Ø", 10),
        ("Δ and Ω", 7),
        ("ą", None),
        ("ó", None),  # ò is GSM-7, ó is not
        ("`", None),
    ],
)
def test_septets_are_counted_as_the_standard_says(text: str, septets: int | None) -> None:
    assert gsm7_septets(text) == septets


def test_a_segment_is_160_septets_or_70_ucs2_characters() -> None:
    assert segment_fits("a" * 160)
    assert not segment_fits("a" * 161)
    assert not segment_fits("a" * 159 + "€")  # the euro sign takes the 160th and a 161st septet
    assert segment_fits("ą" * 70)
    assert not segment_fits("ą" * 71)
    assert ucs2_units("😀") == 2  # outside the BMP: a surrogate pair
    assert not segment_fits("ą" * 69 + "😀")


def test_polish_is_transliterated_when_that_makes_it_fit() -> None:
    text = (
        "Przypomnienie: wizyta u lekarza we wtorek o 10:30. Prosimy o potwierdzenie obecności "
        "lub odwołanie wizyty z wyprzedzeniem. Zażółć gęślą jaźń."
    )
    assert len(text) > UCS2_LIMIT
    fitted = fit_sms([Text(text)])
    assert fitted.encoding == "GSM-7"
    assert fitted.transliterated
    assert not fitted.shortened
    assert "Zazolc gesla jazn" in fitted.text
    assert "obecnosci" in fitted.text


def test_a_short_polish_text_keeps_its_letters() -> None:
    fitted = fit_sms([Text("Wizyta odwołana: wtorek 10:30.")])
    assert fitted.encoding == "UCS-2"
    assert fitted.text == "Wizyta odwołana: wtorek 10:30."
    assert not fitted.transliterated


def test_spanish_letters_gsm7_has_stay_and_the_others_lose_their_accent() -> None:
    assert transliterate_gsm7("Núñez, mañana, atención, ¿qué?, pingüino") == (
        "Nuñez, mañana, atencion, ¿qué?, pingüino"
    )


def test_letters_decomposition_cannot_reduce_are_mapped_and_typography_is_plain() -> None:
    assert transliterate_gsm7("Łódź, Wałbrzych") == "Lodz, Walbrzych"
    typography = "\u201cquoted\u201d \u2013 10:30\u202fAM\u2026"
    assert transliterate_gsm7(typography) == '"quoted" - 10:30 AM...'
    assert transliterate_gsm7("预约") is None
    assert transliterate_gsm7("see you 😀") is None


def test_text_that_no_transliteration_helps_is_shortened_in_ucs2() -> None:
    link = Link("https://psc.example.org/s/abc")
    fitted = fit_sms([Text("您好\uff0c" * 30, shrink=True), Text(" "), link])
    assert fitted.encoding == "UCS-2"
    assert fitted.shortened
    assert fitted.units <= UCS2_LIMIT
    assert fitted.text.endswith(" https://psc.example.org/s/abc")
    assert "\u2026" in fitted.text


def test_the_shrinkable_text_is_cut_at_a_word_and_marked() -> None:
    name = "Dr Maximiliana Konstantynopolitańczykiewiczówna-Brzęczyszczykiewicz " * 3
    parts: list[Part] = [
        Text("Reminder: "),
        Text(name.strip(), shrink=True),
        Text(", Tue 14 Apr 10:30. Confirm "),
        Link("https://psc.example.org/l/confirm-0123456789"),
    ]
    fitted = fit_sms(parts)
    assert fitted.encoding == "GSM-7"
    assert fitted.shortened
    assert fitted.units <= GSM7_LIMIT
    assert fitted.text.startswith("Reminder: Dr Maximiliana")
    assert "...," in fitted.text
    assert fitted.text.endswith("Confirm https://psc.example.org/l/confirm-0123456789")


def test_links_that_cannot_fit_fail_loudly_instead_of_splitting() -> None:
    links = [Link(f"https://psc.example.org/l/{i}-" + "x" * 60) for i in range(3)]
    with pytest.raises(SmsTooLong) as caught:
        fit_sms([Text("Confirm ", shrink=True), links[0], Text(" "), links[1], Text(" "), links[2]])
    assert caught.value.limit == GSM7_LIMIT
    assert caught.value.needed > GSM7_LIMIT


def test_a_link_gsm7_cannot_carry_makes_the_message_ucs2_and_is_kept_as_it_is() -> None:
    link = Link("https://psc.example.org/zażółć")
    fitted = fit_sms([Text("Open "), link])
    assert fitted.encoding == "UCS-2"
    assert "https://psc.example.org/zażółć" in fitted.text


# --- properties ----------------------------------------------------------------------------------

urls = st.one_of(
    st.from_regex(r"https://[a-z]{1,12}\.example\.org/[a-z]{1,3}/[A-Za-z0-9_~-]{0,48}", fullmatch=True),
    st.from_regex(r"https://x\.org/[a-zżółć]{1,8}", fullmatch=True),  # needs UCS-2
)
words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    max_size=220,
)
parts_strategy = st.lists(
    st.one_of(
        st.builds(Text, words, st.booleans()),
        st.builds(Link, urls),
    ),
    min_size=1,
    max_size=6,
)


def _independent_units(text: str) -> int:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def _fixed_need(parts: list[Part]) -> tuple[int, int]:
    """(units, limit) of the links and unshrinkable text in the encoding the message needs: GSM-7
    when every text can be transliterated and every link is GSM-7, else UCS-2."""
    fixed = [p for p in parts if not (isinstance(p, Text) and p.shrink)]
    plain = [transliterate_gsm7(p.value) if isinstance(p, Text) else p.url for p in parts]
    if all(x is not None and is_gsm7(x) for x in plain):
        text = "".join(transliterate_gsm7(p.value) or "" if isinstance(p, Text) else p.url for p in fixed)
        return _independent_units(text), GSM7_LIMIT
    text = "".join(unicodedata.normalize("NFC", p.value) if isinstance(p, Text) else p.url for p in fixed)
    return len(text.encode("utf-16-le")) // 2, UCS2_LIMIT


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts_strategy)
def test_any_message_is_one_segment_with_every_link_whole_or_is_refused(parts: list[Part]) -> None:
    needed, limit = _fixed_need(parts)
    if needed > limit:
        # Refused exactly when the links and fixed text alone are over the segment they need.
        with pytest.raises(SmsTooLong) as refused:
            fit_sms(parts)
        assert (refused.value.needed, refused.value.limit) == (needed, limit)
        return
    fitted = fit_sms(parts)
    assert segment_fits(fitted.text)
    assert fitted.units == _independent_units(fitted.text)
    limit = GSM7_LIMIT if fitted.encoding == "GSM-7" else UCS2_LIMIT
    assert fitted.units <= limit
    if fitted.encoding == "GSM-7":
        assert is_gsm7(fitted.text)
    else:
        assert not is_gsm7(fitted.text)
    rest = fitted.text
    for part in parts:
        if isinstance(part, Link):
            assert part.url in rest, part.url
            rest = rest[rest.index(part.url) + len(part.url) :]  # in order, each whole
    if not fitted.shortened and not fitted.transliterated:
        assert fitted.text == "".join(
            unicodedata.normalize("NFC", p.value) if isinstance(p, Text) else p.url for p in parts
        )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Text, words, st.just(False)) | st.builds(Link, urls), min_size=1, max_size=5))
def test_nothing_is_shortened_when_no_text_may_shrink(parts: list[Part]) -> None:
    try:
        fitted = fit_sms(parts)
    except SmsTooLong:
        return
    assert not fitted.shortened


@settings(max_examples=300, deadline=None)
@given(words)
def test_transliteration_changes_only_what_gsm7_lacks(text: str) -> None:
    plain = transliterate_gsm7(text)
    if plain is None:
        return
    assert is_gsm7(plain)
    normalised = unicodedata.normalize("NFC", text)
    if is_gsm7(normalised):
        assert plain == normalised


def test_a_lone_space_that_may_shrink_goes_when_the_rest_fills_the_segment() -> None:
    # Found by hypothesis: a shrinkable " " kept as a spacer left 71 units where 70 fit.
    parts: list[Part] = [
        Text(" ", shrink=True),
        Text("00\U00010000", shrink=False),
        Link("https://x.org/a"),
        Link("https://a.example.org/a/000000000000000000000000000"),
    ]
    fitted = fit_sms(parts)
    assert fitted.units <= UCS2_LIMIT
    assert fitted.text.startswith("00")
