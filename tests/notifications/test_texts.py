"""Notification texts: every kind in every language and channel, on the clinic's clock, naming the
clinic's zone only when the patient's clock shows another time, one SMS segment with its links
intact, English when the patient's language has no texts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.notifications.model import CHANNELS, SMS_ONLY, TEXT_KINDS, AppointmentFacts, links_of
from shared.notifications.sms import SmsTooLong, segment_fits
from shared.notifications.texts import check_templates, languages, render, template_language

LINKS = {
    "confirm": "https://portal.example.org/l/Yc3kQ9xZt2Lm8Wp4",
    "cancel": "https://portal.example.org/l/Hn7vB2rT5sQ1Xe6K",
    "reschedule": "https://portal.example.org/l/Pq4Wm9Zc1Lx7Ts2N",
    "survey": "https://portal.example.org/s/Jr8Kd3Vb6Fz0Ga5M",
}
# 10:30 in Warsaw (CEST), 04:30 in New York.
WARSAW_TUESDAY = datetime(2026, 4, 14, 8, 30, tzinfo=UTC)


def facts(
    patient_zone: str | None = "Europe/Warsaw", name: str = "lek. Łucja Żółkiewska"
) -> AppointmentFacts:
    return AppointmentFacts(name, WARSAW_TUESDAY, "Europe/Warsaw", patient_zone)


def test_the_template_files_agree_with_english_and_carry_their_links() -> None:
    assert languages()[:1] == ("en",)
    assert {"en", "pl", "es"} <= set(languages())
    assert check_templates() == []


@pytest.mark.parametrize("language", ["en", "pl", "es"])
@pytest.mark.parametrize("kind", TEXT_KINDS)
@pytest.mark.parametrize("channel", CHANNELS)
def test_every_text_renders_in_every_language_and_an_sms_is_one_segment(
    language: str, kind: str, channel: str
) -> None:
    if channel != "sms" and kind in SMS_ONLY:
        with pytest.raises(ValueError, match="SMS reply only"):
            render(kind, channel, language=language)  # type: ignore[arg-type]
        return
    rendered = render(
        kind,  # type: ignore[arg-type]
        channel,  # type: ignore[arg-type]
        language=language,
        appointment=facts("America/New_York"),
        links=LINKS,
    )
    assert rendered.language == language
    assert "$" not in rendered.text
    wanted = links_of(kind, channel)  # type: ignore[arg-type]
    assert rendered.links == {name: LINKS[name] for name in wanted}
    for url in rendered.links.values():
        assert url in rendered.text
    for name, url in LINKS.items():
        if name not in wanted:
            assert url not in rendered.text
    if channel == "sms":
        assert segment_fits(rendered.text)
        assert rendered.encoding in ("GSM-7", "UCS-2")
        assert rendered.subject is None
    else:
        assert rendered.subject
        assert rendered.html
        for url in rendered.links.values():
            assert f'<a href="{url}">' in rendered.html


def test_a_polish_reminder_names_the_clinics_zone_for_a_patient_abroad() -> None:
    short = {"confirm": "https://psc.example/l/Yc3k9", "cancel": "https://psc.example/l/Hn7v2"}
    sms = render("reminder", "sms", language="pl-PL", appointment=facts("America/New_York"), links=short)
    assert sms.text == (
        "Przypomnienie o wizycie: lek. Lucja Zolkiewska, wt., 14 kwi, 10:30 (czas: Polska). "
        "Potwierdz: https://psc.example/l/Yc3k9 Odwolaj: https://psc.example/l/Hn7v2"
    )
    assert sms.encoding == "GSM-7"
    assert sms.transliterated
    assert not sms.shortened
    # With links of a more usual length the terser wording is used, and then the name gives way.
    usual = render("reminder", "sms", language="pl-PL", appointment=facts("America/New_York"), links=LINKS)
    assert usual.text.startswith("Wizyta: lek.")
    assert usual.text.endswith(f"(czas: Polska). Potwierdz {LINKS['confirm']} Odwolaj {LINKS['cancel']}")
    email = render("reminder", "email", language="pl", appointment=facts("America/New_York"), links=LINKS)
    assert email.subject == "Przypomnienie o wizycie: 14 kwietnia 2026"
    when = "wtorek, 14 kwietnia 2026, 10:30 (czas środkowoeuropejski letni)"
    assert f"lek. Łucja Żółkiewska, {when}." in email.text
    assert f"Wybierz inny termin: {LINKS['reschedule']}" in email.text


def test_no_zone_is_named_when_the_patients_clock_shows_the_same_time() -> None:
    at_home = render("cancelled", "sms", language="pl", appointment=facts("Europe/Warsaw"))
    assert at_home.text == "Wizyta odwołana: lek. Łucja Żółkiewska, wt., 14 kwi, 10:30."
    assert at_home.encoding == "UCS-2"  # fits 70 with its letters: nothing transliterated
    next_door = render("cancelled", "sms", language="pl", appointment=facts("Europe/Berlin"))
    assert next_door.text == at_home.text  # another zone, the same wall clock
    unknown = render("cancelled", "sms", language="pl", appointment=facts(None))
    assert "(czas: Polska)" in unknown.text
    booked = render("booked", "sms", language="pl", appointment=facts("Europe/Berlin"), links=LINKS)
    assert (
        booked.text
        == f"Wizyta zarezerwowana: lek. Lucja Zolkiewska, wt., 14 kwi, 10:30. Odwolaj: {LINKS['cancel']}"
    )
    assert booked.encoding == "GSM-7"  # with its link it fits only transliterated


def test_the_zone_follows_daylight_saving_on_the_day_clocks_change() -> None:
    # 29 March 2026: Europe moves to summer time at 01:00 UTC; 10:00 in Warsaw is 08:00 UTC.
    spring = AppointmentFacts(
        "Dr Nowak", datetime(2026, 3, 29, 8, 0, tzinfo=UTC), "Europe/Warsaw", "Europe/London"
    )
    text = render("booked", "email", language="en", appointment=spring, links=LINKS).text
    assert "Sunday, March 29, 2026, 10:00\u202fAM (Central European Summer Time)" in text
    # In London it is 09:00 BST: an hour apart, so the clinic's zone is named.
    winter = AppointmentFacts(
        "Dr Nowak", datetime(2026, 3, 28, 9, 0, tzinfo=UTC), "Europe/Warsaw", "Europe/London"
    )
    winter_text = render("booked", "email", language="en", appointment=winter, links=LINKS).text
    assert "Saturday, March 28, 2026, 10:00\u202fAM (Central European Standard Time)" in winter_text


def test_a_spanish_reminder_keeps_the_letters_gsm7_has() -> None:
    madrid = AppointmentFacts("Dra. Núñez", WARSAW_TUESDAY, "Europe/Madrid", "Europe/Madrid")
    sms = render("reminder", "sms", language="es", appointment=madrid, links=LINKS)
    # The full wording needs 172 septets with these links: the terser one fits without cutting.
    assert sms.text == (
        f"Cita: Dra. Nuñez, mar, 14 abr, 10:30. Confirmar {LINKS['confirm']} Cancelar {LINKS['cancel']}"
    )
    assert sms.encoding == "GSM-7"  # ú became u; ñ is GSM-7 and stays


def test_a_regional_tag_formats_as_its_region_with_its_languages_words() -> None:
    mexico = AppointmentFacts("Dra. Núñez", WARSAW_TUESDAY, "America/Mexico_City", "America/Mexico_City")
    sms = render("booked", "sms", language="es-MX", appointment=mexico, links=LINKS)
    assert sms.language == "es"
    assert "a.m." in sms.text  # Mexico's 12-hour clock; Spain's is 24-hour


def test_a_language_without_texts_falls_back_to_english_dates_included() -> None:
    assert template_language("pt-BR") == "en"
    assert template_language(None) == "en"
    assert template_language("PL") == "pl"
    sms = render(
        "booked", "sms", language="pt-BR", appointment=facts("Europe/Warsaw", "Dr Nowak"), links=LINKS
    )
    assert sms.language == "en"
    assert (
        sms.text
        == f"Booked: your appointment with Dr Nowak, Tue, Apr 14, 10:30 AM. Cancel: {LINKS['cancel']}"
    )


def test_a_long_name_is_shortened_before_a_link_is_touched() -> None:
    name = "Prof. dr hab. n. med. Maximiliana Konstantynopolitańczykiewiczówna-Brzęczyszczykiewicz"
    sms = render("reminder", "sms", language="pl", appointment=facts("America/New_York", name), links=LINKS)
    assert segment_fits(sms.text)
    assert sms.shortened
    assert LINKS["confirm"] in sms.text
    assert LINKS["cancel"] in sms.text


def test_links_too_long_for_one_segment_are_refused() -> None:
    long = {name: url + "/" + "x" * 80 for name, url in LINKS.items()}
    with pytest.raises(SmsTooLong):
        render("reminder", "sms", language="en", appointment=facts(), links=long)


def test_a_missing_link_or_appointment_is_an_error_not_a_placeholder_sent_to_a_patient() -> None:
    with pytest.raises(ValueError, match="cancel"):
        render("reminder", "sms", language="en", appointment=facts(), links={"confirm": LINKS["confirm"]})
    with pytest.raises(ValueError, match="appointment"):
        render("booked", "email", language="en", links=LINKS)


def test_a_name_cannot_inject_markup_or_control_characters() -> None:
    name = "<script>alert(1)</script>\x1b[2J"
    email = render("booked", "email", language="en", appointment=facts("Europe/Warsaw", name), links=LINKS)
    assert "<script>" not in (email.html or "")
    assert "&lt;script&gt;" in (email.html or "")
    assert "\x1b" not in email.text


def test_a_confirmation_of_a_booking_or_a_move_carries_cancel_and_another_time() -> None:
    """What a reminder offers but confirm: cancel by SMS (room for one link and the appointment),
    cancel and another time by e-mail and in the portal; a cancellation carries nothing to act on."""
    for language in languages():
        for kind in ("booked", "rescheduled"):
            sms = render(kind, "sms", language=language, appointment=facts("America/New_York"), links=LINKS)
            assert sms.links == {"cancel": LINKS["cancel"]}
            assert LINKS["cancel"] in sms.text
            email = render(kind, "email", language=language, appointment=facts(), links=LINKS)
            assert email.links == {"cancel": LINKS["cancel"], "reschedule": LINKS["reschedule"]}
            assert LINKS["reschedule"] in email.text
            assert f'href="{LINKS["cancel"]}"' in (email.html or "")
        cancelled = render("cancelled", "email", language=language, appointment=facts(), links=LINKS)
        assert cancelled.links == {}


def test_keyword_replies_fit_one_segment_in_every_language() -> None:
    for language in languages():
        for kind in ("stop", "start", "help"):
            reply = render(kind, "sms", language=language)  # type: ignore[arg-type]
            assert segment_fits(reply.text)
            assert reply.links == {}
