"""Channel choice: the policy's order, the patient's preferred channel first when it may be used,
a channel without consent, address or sender skipped with its reason, one fallback only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.notifications.channels import Candidate, ContactPoints, Skipped, plan_channels
from shared.notifications.model import CHANNELS

ANNA = ContactPoints(
    preferred="sms", consent_sms=True, consent_email=True, phone="+48601000001", email="anna@example.org"
)


def test_the_preferred_channel_goes_first_and_the_policy_order_follows() -> None:
    plan = plan_channels(["email", "portal", "sms"], ANNA)
    assert [c.channel for c in plan.candidates] == ["sms", "email", "portal"]
    assert plan.first == Candidate("sms", "+48601000001")
    assert plan.skipped == ()


def test_a_preferred_channel_the_policy_does_not_allow_is_not_used() -> None:
    plan = plan_channels(["email", "portal"], ANNA)
    assert [c.channel for c in plan.candidates] == ["email", "portal"]


def test_a_channel_without_consent_or_address_is_skipped_with_the_reason() -> None:
    ben = ContactPoints(preferred="sms", consent_sms=False, consent_email=True, phone="+12025550142")
    plan = plan_channels(["sms", "email", "portal"], ben)
    assert [c.channel for c in plan.candidates] == ["portal"]
    assert plan.skipped == (Skipped("sms", "no-consent"), Skipped("email", "no-address"))


def test_a_channel_the_deployment_cannot_send_on_is_skipped() -> None:
    plan = plan_channels(["sms", "email"], ANNA, configured=["email"])
    assert [c.channel for c in plan.candidates] == ["email"]
    assert plan.skipped == (Skipped("sms", "not-configured"),)


def test_the_portal_inbox_needs_only_the_policy() -> None:
    nobody = ContactPoints()
    assert plan_channels(["portal"], nobody, configured=[]).first == Candidate("portal", None)
    assert plan_channels(["sms", "email"], nobody).first is None


def test_a_failed_send_falls_back_once() -> None:
    plan = plan_channels(["sms", "email", "portal"], ANNA)
    assert plan.fallback_after("sms") == Candidate("email", "anna@example.org")
    assert plan.fallback_after("email") is None  # the fallback failed too: no third try
    assert plan.fallback_after("portal") is None


def test_contact_points_come_from_a_stored_patient_document() -> None:
    stored = {
        "id": "p-1",
        "name": "Anna",
        "preferredChannel": "email",
        "consent": {"sms": True, "email": "yes"},  # only a real true counts
        "phone": "+48601000001",
        "email": "",
    }
    points = ContactPoints.of(stored)
    assert points == ContactPoints(
        preferred="email", consent_sms=True, consent_email=False, phone="+48601000001"
    )
    assert ContactPoints.of({"preferredChannel": "fax"}).preferred == "portal"
    assert "+48" not in repr(Candidate("sms", "+48601000001"))


channels = st.sampled_from(CHANNELS)


@given(
    st.lists(channels, max_size=5),
    st.builds(
        ContactPoints,
        preferred=channels,
        consent_sms=st.booleans(),
        consent_email=st.booleans(),
        phone=st.none() | st.just("+48601000001"),
        email=st.none() | st.just("a@example.org"),
    ),
    st.lists(channels, max_size=3),
)
def test_every_allowed_channel_is_either_a_candidate_or_skipped_once(
    allowed: list[str], patient: ContactPoints, configured: list[str]
) -> None:
    plan = plan_channels(allowed, patient, configured=configured)  # type: ignore[arg-type]
    seen = [c.channel for c in plan.candidates] + [s.channel for s in plan.skipped]
    assert sorted(seen) == sorted(set(allowed))
    for candidate in plan.candidates:
        if candidate.channel == "sms":
            assert patient.consent_sms
            assert patient.phone
            assert "sms" in configured
        if candidate.channel == "email":
            assert patient.consent_email
            assert patient.email
            assert "email" in configured
    if plan.candidates and patient.preferred in [c.channel for c in plan.candidates]:
        assert plan.candidates[0].channel == patient.preferred
