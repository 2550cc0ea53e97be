"""Which callback URLs an escalation may name, and which addresses a delivery may reach."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.callbacks.policy import (
    CallbackPolicy,
    CallbackUrlRefused,
    address_refusal,
    callback_body,
    classify_status,
    parse_allowed_hosts,
    parse_retry_after,
)

HOSTS = (
    "bots.example.org, *.eu.example.org, hooks.example.net:8443, bücher.example, 127.0.0.1, localhost, [::1]"
)
PROD = CallbackPolicy(parse_allowed_hosts(HOSTS), dev_mode=False)
DEV = CallbackPolicy(parse_allowed_hosts(HOSTS), dev_mode=True)


def refusal(policy: CallbackPolicy, url: str) -> str:
    with pytest.raises(CallbackUrlRefused) as refused:
        policy.check_url(url)
    return refused.value.reason


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://bots.example.org/cb?token=abc", "https://bots.example.org/cb?token=abc"),
        ("HTTPS://Bots.EXAMPLE.org:443/cb", "https://bots.example.org/cb"),
        ("https://bots.example.org./cb", "https://bots.example.org/cb"),
        ("https://eu1.eu.example.org/hook", "https://eu1.eu.example.org/hook"),
        ("https://hooks.example.net:8443/h", "https://hooks.example.net:8443/h"),
        ("https://BÜCHER.example/ä", "https://xn--bcher-kva.example/%C3%A4"),
        ("https://bots.example.org", "https://bots.example.org/"),
    ],
)
def test_an_allowed_https_url_comes_back_normalised(url: str, normalised: str) -> None:
    assert PROD.check_url(url) == normalised
    assert PROD.check_url(normalised) == normalised


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example.com/cb", "host-not-allowed"),
        ("https://bots.example.org.evil.com/cb", "host-not-allowed"),
        ("https://eu.example.org/cb", "host-not-allowed"),  # the wildcard's own domain
        ("https://a.b.eu.example.org/cb", "host-not-allowed"),  # one label only
        ("https://bots.example.org:8443/cb", "port-not-allowed"),
        ("https://hooks.example.net/h", "port-not-allowed"),
        ("http://bots.example.org/cb", "https-required"),
        ("http://localhost:3978/api/callback", "https-required"),
        ("ftp://bots.example.org/cb", "scheme"),
        ("javascript:alert(1)", "malformed"),
        ("https://user:pw@bots.example.org/cb", "userinfo"),
        ("https://user@bots.example.org/cb", "userinfo"),
        ("https://@bots.example.org/cb", "userinfo"),
        ("https://bots.example.org:443@evil.example.com/cb", "userinfo"),
        ("https://bots.example.org/cb#frag", "fragment"),
        ("https://bots.example.org/cb#", "fragment"),
        ("https://bots.example.org/" + "a" * 2030, "too-long"),
        ("https://bots.example.org/" + "é" * 700, "too-long"),  # longer once percent-encoded
        ("bots.example.org/cb", "malformed"),
        ("//bots.example.org/cb", "scheme"),
        ("https:///cb", "malformed"),
        ("https://bots.example.org\\@evil.com/", "malformed"),
        ("https://bots example.org/", "malformed"),
        ("https://bots.example.org/a b", "malformed"),
        ("https://bots.example.org/\ncb", "malformed"),
        ("https://bots.example.org:0/", "malformed"),
        ("https://2130706433/", "malformed"),  # IPv4 spelled as a number
        ("https://127.1/", "malformed"),
        ("https://localhost/cb", "address-refused"),  # outside dev mode loopback is never reached
        ("https://127.0.0.1/cb", "address-refused"),
        ("https://[::1]/cb", "address-refused"),
    ],
)
def test_a_url_outside_the_policy_is_refused_with_a_reason(url: str, reason: str) -> None:
    assert refusal(PROD, url) == reason


def test_the_refusal_never_repeats_the_url() -> None:
    with pytest.raises(CallbackUrlRefused) as refused:
        PROD.check_url("https://evil.example.com/cb?token=s3cr3t")
    assert "s3cr3t" not in str(refused.value)
    assert "evil" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:3978/api/callback",
        "http://127.0.0.1:9/x",
        "https://localhost/x",
        "http://[::1]:8080/",
    ],
)
def test_dev_mode_reaches_a_listed_loopback_host_over_http_on_any_port(url: str) -> None:
    assert DEV.check_url(url).startswith(url.split(":")[0])


def test_dev_mode_reaches_no_unlisted_loopback_and_no_other_host_over_http() -> None:
    only_localhost = CallbackPolicy(parse_allowed_hosts("localhost"), dev_mode=True)
    assert refusal(only_localhost, "http://127.0.0.1:3978/") == "host-not-allowed"
    assert refusal(DEV, "http://bots.example.org/cb") == "https-required"
    assert refusal(DEV, "http://127.0.0.2:3978/") == "host-not-allowed"


def test_no_host_is_allowed_when_the_list_is_empty() -> None:
    none = CallbackPolicy(parse_allowed_hosts(""), dev_mode=True)
    assert refusal(none, "https://bots.example.org/cb") == "host-not-allowed"
    assert refusal(none, "http://localhost:3978/") == "host-not-allowed"


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "*.org",
        "*.*.example.org",
        "bots.*.example.org",
        "https://bots.example.org",
        "bots.example.org/cb",
        "user@bots.example.org",
        "*.10.0.0.1",
        "bots example.org",
        "bots.example.org:0",
        "bots.example.org:99999",
        "-bots.example.org",
        "bots..example.org",
    ],
)
def test_an_allow_list_entry_that_is_not_a_host_is_refused_naming_it(entry: str) -> None:
    with pytest.raises(ValueError, match=r"entry|wildcard|port"):
        parse_allowed_hosts(f"bots.example.org,{entry}")


def test_allow_list_entries_are_normalised_like_urls() -> None:
    hosts = parse_allowed_hosts(
        " Bots.Example.ORG ,*.EU.example.org:8443,,[0:0::1], \uff22\uff2f\uff34\uff33.example.net "
    )
    assert [(h.host, h.wildcard, h.port) for h in hosts] == [
        ("bots.example.org", False, None),
        ("eu.example.org", True, 8443),
        ("::1", False, None),
        ("bots.example.net", False, None),
    ]


@given(st.text(max_size=300))
def test_any_text_is_either_refused_or_normalised_to_an_allowed_https_url(text: str) -> None:
    try:
        url = PROD.check_url(text)
    except CallbackUrlRefused:
        return
    assert url.startswith("https://")
    assert PROD.check_url(url) == url


URL_PARTS = st.tuples(
    st.sampled_from(["https", "https", "https", "http", "HTTPS", "ftp", ""]),
    st.sampled_from(["", "", "", "", "u@", ":@", "@", "u:p@"]),
    st.sampled_from(
        [
            "bots.example.org",
            "BOTS.Example.org.",
            "x.eu.example.org",
            "eu.example.org",
            "a.x.eu.example.org",
            "hooks.example.net",
            "bücher.example",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "10.0.0.1",
            "[::ffff:127.0.0.1]",
            "evil.example.com",
            "bots.example.org.evil.example.com",
        ]
    ),
    st.sampled_from(["", ":443", ":8443", ":80", ":3978", ":0"]),
    st.text(alphabet="/a%2e.é?=&#@\\ ", max_size=24),
)


@settings(max_examples=1000)
@given(URL_PARTS, st.booleans())
def test_whatever_url_is_assembled_only_allowed_hosts_ports_and_schemes_come_through(
    parts: tuple[str, str, str, str, str], dev_mode: bool
) -> None:
    scheme, userinfo, host, port, rest = parts
    text = f"{scheme}://{userinfo}{host}{port}/{rest}"
    policy = DEV if dev_mode else PROD
    try:
        url = policy.check_url(text)
    except CallbackUrlRefused:
        return
    from yarl import URL

    parsed = URL(url)
    assert policy.check_url(url) == url
    assert "@" not in (parsed.raw_authority or "")
    assert "#" not in url
    loopback = parsed.raw_host in ("localhost", "127.0.0.1", "::1")
    if parsed.scheme == "http" or loopback:
        assert dev_mode
        assert loopback
    else:
        assert parsed.scheme == "https"
        assert (parsed.raw_host, parsed.port) in {
            ("bots.example.org", 443),
            ("x.eu.example.org", 443),
            ("hooks.example.net", 8443),
            ("xn--bcher-kva.example", 443),
        }


# --- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "metadata"),  # Azure (and AWS/GCP) instance metadata
        ("168.63.129.16", "metadata"),  # Azure's platform address: public, so named explicitly
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("192.0.0.8", "reserved"),
        ("192.0.2.1", "private"),  # documentation
        ("198.18.0.1", "private"),  # benchmarking
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::1", "private"),
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("2001:db8::1", "private"),
        ("not-an-address", "malformed"),
    ],
)
def test_no_private_loopback_link_local_metadata_or_reserved_address_is_reachable(
    address: str, why: str
) -> None:
    assert address_refusal(address, allow_loopback=False) == why


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "20.50.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_reachable(address: str) -> None:
    assert address_refusal(address, allow_loopback=False) is None


def test_loopback_is_reachable_only_when_allowed_and_nothing_else_private_ever_is() -> None:
    for loopback in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert address_refusal(loopback, allow_loopback=True) is None
    for other in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "fe80::1", "100.64.0.1"):
        assert address_refusal(other, allow_loopback=True) is not None


# --- body and outcome classes -----------------------------------------------------------------


def test_the_body_is_exactly_type_timestamp_and_data() -> None:
    body = callback_body(
        "message",
        {"conversationId": "c-1", "botConversationId": "bot-1", "seq": 3, "text": "Zażółć"},
        datetime(2026, 3, 30, 6, 0, 0, 123456, tzinfo=UTC),
    )
    assert (
        body
        == (
            '{"type":"message","timestamp":"2026-03-30T06:00:00.123Z","data":'
            '{"conversationId":"c-1","botConversationId":"bot-1","seq":3,"text":"Zażółć"}}'
        ).encode()
    )


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("conversation.reopened", {"conversationId": "c", "botConversationId": "b"}),
        ("message", {"conversationId": "c"}),
        ("message", {"conversationId": "", "botConversationId": "b"}),
    ],
)
def test_a_body_without_a_known_type_or_the_conversation_ids_is_a_programming_error(
    event_type: str, data: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="callback"):
        callback_body(event_type, data, datetime(2026, 1, 1, tzinfo=UTC))


NOW = datetime(2026, 3, 30, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (200, "delivered", False),
        (204, "delivered", False),
        (301, "redirect", False),
        (307, "redirect", False),
        (308, "redirect", False),
        (400, "client-error", False),
        (401, "client-error", False),
        (404, "client-error", False),
        (410, "gone", False),
        (408, "request-timeout", True),
        (425, "request-timeout", True),
        (429, "rate-limited", True),
        (500, "server-error", True),
        (502, "server-error", True),
        (503, "server-error", True),
        (599, "server-error", True),
    ],
)
def test_each_status_has_its_outcome(status: int, reason: str, retryable: bool) -> None:
    result = classify_status(status, None, NOW)
    assert (result.ok, result.reason, result.retryable, result.status) == (
        status < 300,
        reason,
        retryable,
        status,
    )


def test_retry_after_is_read_as_seconds_or_a_date_and_bounded() -> None:
    assert classify_status(429, "120", NOW).retry_after == 120
    assert classify_status(503, "Mon, 30 Mar 2026 06:02:00 GMT", NOW).retry_after == 120
    assert classify_status(429, "99999999999999", NOW).retry_after == 3600
    assert classify_status(429, "Mon, 30 Mar 2026 05:00:00 GMT", NOW).retry_after == 0
    assert classify_status(429, "soon", NOW).retry_after is None
    assert classify_status(410, "120", NOW).retry_after is None
    assert parse_retry_after(None, NOW) is None
