"""The HTTP sender against a real bot endpoint on loopback: signed as the reference library
verifies, classified as the schedule needs, and never reaching a host or address it must not."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.callback_sender import (
    USER_AGENT,
    AddressRefused,
    GuardedResolver,
    HttpCallbackSender,
    guarded_socket_factory,
)
from shared.callbacks.policy import CallbackPolicy, address_refusal, parse_allowed_hosts
from shared.kernel.callbacks import CallbackSender
from shared.kernel.clock import Clock, ManualClock, SystemClock
from tests.callbacks.bot import SECRET, Answer, FixedResolver, RecordingBot, certificate

EVENT_AT = datetime(2026, 3, 30, 6, 0, 0, 250000, tzinfo=UTC)
DATA = {"conversationId": "conv-1", "botConversationId": "bot-conv-1", "seq": 4, "text": "Your nurse is Anna"}


def dev(hosts: str = "127.0.0.1,localhost") -> CallbackPolicy:
    return CallbackPolicy(parse_allowed_hosts(hosts), dev_mode=True)


def prod(hosts: str) -> CallbackPolicy:
    return CallbackPolicy(parse_allowed_hosts(hosts), dev_mode=False)


@pytest.fixture
async def senders() -> AsyncIterator[list[HttpCallbackSender]]:
    made: list[HttpCallbackSender] = []
    yield made
    for sender in made:
        await sender.close()


@pytest.fixture
def make(senders: list[HttpCallbackSender]) -> Any:
    def build(policy: CallbackPolicy, clock: Clock | None = None, **kw: Any) -> HttpCallbackSender:
        sender = HttpCallbackSender(SECRET, policy, clock or SystemClock(), **kw)
        senders.append(sender)
        return sender

    return build


async def bot_with(*answers: Answer, ssl_context: Any = None) -> tuple[RecordingBot, int]:
    bot = RecordingBot(*answers)
    return bot, await bot.start(ssl_context)


async def deliver(sender: HttpCallbackSender, url: str, message_id: str = "cb_1") -> Any:
    return await sender.deliver(url, "message", DATA, message_id=message_id, timestamp=EVENT_AT)


async def test_a_delivery_is_signed_as_the_reference_library_verifies_with_exactly_the_contract_body(
    make: Any,
) -> None:
    bot, port = await bot_with(Answer(200))
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    try:
        sender = make(dev(), clock)
        result = await deliver(sender, f"http://127.0.0.1:{port}/api/callbacks?t=1", "msg_0001")
    finally:
        await bot.close()
    assert isinstance(sender, CallbackSender)
    assert (result.ok, result.reason, result.status) == (True, "delivered", 200)
    [seen] = bot.seen
    assert seen.path == "/api/callbacks?t=1"
    assert seen.verified == {"type": "message", "timestamp": "2026-03-30T06:00:00.250Z", "data": DATA}
    assert json.loads(seen.body) == seen.verified
    assert seen.body == json.dumps(seen.verified, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == USER_AGENT
    assert headers["webhook-id"] == "msg_0001"
    assert headers["webhook-timestamp"] == str(int(clock.now().timestamp()))  # the attempt's time
    assert headers["webhook-signature"].startswith("v1,")
    assert "cookie" not in headers
    assert "authorization" not in headers


async def test_a_failed_delivery_is_retried_with_the_same_id_and_a_fresh_signature(make: Any) -> None:
    bot, port = await bot_with(Answer(500), Answer(204))
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    sender = make(dev(), clock)
    try:
        first = await deliver(sender, f"http://localhost:{port}/cb", "cb_42")
        clock.advance(20)
        second = await deliver(sender, f"http://localhost:{port}/cb", "cb_42")
    finally:
        await bot.close()
    assert (first.ok, first.reason, first.status, first.retryable) == (False, "server-error", 500, True)
    assert (second.ok, second.status) == (True, 204)
    assert [s.headers["webhook-id"] for s in bot.seen] == ["cb_42", "cb_42"]
    assert bot.seen[0].body == bot.seen[1].body
    stamps = [int(s.headers["webhook-timestamp"]) for s in bot.seen]
    assert stamps[1] - stamps[0] == 20
    assert all(isinstance(s.verified, dict) for s in bot.seen)


async def test_a_bot_that_does_not_answer_in_time_is_a_timeout(make: Any) -> None:
    bot, port = await bot_with(Answer(200, delay=5))
    try:
        result = await deliver(make(dev(), total_timeout=0.3), f"http://127.0.0.1:{port}/cb")
    finally:
        await bot.close()
    assert (result.ok, result.reason, result.retryable, result.status) == (False, "timeout", True, None)


async def test_a_redirect_even_to_an_allowed_host_is_never_followed(make: Any) -> None:
    bot, port = await bot_with(Answer(307, {"Location": "/elsewhere"}), Answer(200))
    try:
        result = await deliver(make(dev()), f"http://127.0.0.1:{port}/cb")
    finally:
        await bot.close()
    assert (result.ok, result.reason, result.status, result.retryable) == (False, "redirect", 307, False)
    assert [s.path for s in bot.seen] == ["/cb"]


@pytest.mark.parametrize(
    ("answer", "reason", "retry_after"),
    [
        (Answer(429, {"Retry-After": "120"}), "rate-limited", 120),
        (Answer(503, {"Retry-After": "30"}), "server-error", 30),
        (Answer(410), "gone", None),
        (Answer(401), "client-error", None),
        (Answer(200, body=b"x" * 5_000_000), "delivered", None),  # the body is never read
    ],
)
async def test_the_answer_is_classified_for_the_schedule(
    make: Any, answer: Answer, reason: str, retry_after: int | None
) -> None:
    bot, port = await bot_with(answer)
    try:
        result = await deliver(make(dev()), f"http://127.0.0.1:{port}/cb")
    finally:
        await bot.close()
    assert (result.reason, result.retry_after) == (reason, retry_after)


async def test_a_closed_port_is_a_connection_error_to_retry(make: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    result = await deliver(make(dev()), f"http://127.0.0.1:{port}/cb")
    assert (result.reason, result.retryable) == ("connect-error", True)


@pytest.mark.parametrize(
    ("hosts", "dev_mode", "url", "reason"),
    [
        ("localhost", True, "http://127.0.0.1:{port}/cb", "url-refused"),  # not listed
        ("127.0.0.1,localhost", False, "http://127.0.0.1:{port}/cb", "url-refused"),  # http outside dev
        ("127.0.0.1:{port}", False, "https://127.0.0.1:{port}/cb", "address-refused"),
        ("localhost:{port}", False, "https://localhost:{port}/cb", "address-refused"),
    ],
)
async def test_a_url_the_policy_refuses_is_never_connected_to(
    make: Any, hosts: str, dev_mode: bool, url: str, reason: str
) -> None:
    bot, port = await bot_with(Answer(200))
    resolver = FixedResolver(lambda host: ["127.0.0.1"])
    policy = CallbackPolicy(parse_allowed_hosts(hosts.format(port=port)), dev_mode=dev_mode)
    try:
        result = await deliver(make(policy, resolver=resolver), url.format(port=port))
    finally:
        await bot.close()
    assert (result.ok, result.reason, result.retryable) == (False, reason, False)
    assert bot.seen == []
    assert resolver.lookups == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.7"],
        ["169.254.169.254"],
        ["168.63.129.16"],
        ["::ffff:127.0.0.1"],
        ["127.0.0.1"],
        ["fd00:ec2::254"],
        ["93.184.215.14", "10.0.0.7"],  # one bad answer among good ones refuses the lookup
    ],
)
async def test_a_listed_name_that_resolves_to_a_refused_address_is_never_connected_to(
    make: Any, addresses: list[str]
) -> None:
    bot, port = await bot_with(Answer(200))
    resolver = FixedResolver(lambda host: addresses)
    policy = prod(f"bots.example.org:{port}")
    try:
        result = await deliver(make(policy, resolver=resolver), f"https://bots.example.org:{port}/cb")
    finally:
        await bot.close()
    assert (result.reason, result.retryable) == ("address-refused", False)
    assert resolver.lookups == ["bots.example.org"]
    assert bot.seen == []


async def test_dev_mode_reaches_loopback_only_through_a_loopback_name(make: Any) -> None:
    bot, port = await bot_with(Answer(200))
    resolver = FixedResolver(lambda host: ["127.0.0.1"])
    policy = dev(f"127.0.0.1,localhost,bots.example.org:{port}")
    try:
        result = await deliver(make(policy, resolver=resolver), f"https://bots.example.org:{port}/cb")
    finally:
        await bot.close()
    assert result.reason == "address-refused"
    assert bot.seen == []


async def test_localhost_is_refused_by_the_real_resolver_outside_dev_mode() -> None:
    guard = GuardedResolver(prod("localhost"))
    with pytest.raises(AddressRefused) as refused:
        await guard.resolve("localhost", 443, socket.AF_UNSPEC)
    await guard.close()
    assert refused.value.refusal == "loopback"
    dev_guard = GuardedResolver(dev("localhost"))
    answers = await dev_guard.resolve("localhost", 443, socket.AF_UNSPEC)
    await dev_guard.close()
    assert answers
    assert all(address_refusal(a["host"], allow_loopback=True) is None for a in answers)


def test_the_last_look_before_connect_refuses_private_addresses_whatever_found_them() -> None:
    create = guarded_socket_factory(prod("bots.example.org"))
    with pytest.raises(AddressRefused):
        create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443)))
    with pytest.raises(AddressRefused):
        create((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:169.254.169.254", 443, 0, 0)))
    create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 443))).close()


async def test_the_vetted_address_is_dialled_once_with_the_names_sni_certificate_and_host_header(
    make: Any, tmp_path: Path
) -> None:
    server_ctx, client_ctx = certificate(tmp_path, "bots.example.org")
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc]
    bot, port = await bot_with(Answer(200), ssl_context=server_ctx)
    # A rebinding name: the second lookup would say 10.0.0.7. There must be no second lookup.
    answers = iter([["127.0.0.1"], ["10.0.0.7"]])
    resolver = FixedResolver(lambda host: next(answers))

    def loopback_for_this_test(address: str, *, allow_loopback: bool) -> Any:
        return None if address == "127.0.0.1" else address_refusal(address, allow_loopback=allow_loopback)

    sender = make(
        prod(f"bots.example.org:{port}"),
        resolver=resolver,
        ssl_context=client_ctx,
        address_check=loopback_for_this_test,
    )
    try:
        result = await deliver(sender, f"https://bots.example.org:{port}/cb")
    finally:
        await bot.close()
    assert result.reason == "delivered"
    assert resolver.lookups == ["bots.example.org"]
    assert sni == ["bots.example.org"]
    assert bot.seen[0].headers["Host"] == f"bots.example.org:{port}"


async def test_a_certificate_for_another_name_is_a_tls_error(make: Any, tmp_path: Path) -> None:
    server_ctx, client_ctx = certificate(tmp_path, "other.example.org")
    bot, port = await bot_with(Answer(200), ssl_context=server_ctx)
    resolver = FixedResolver(lambda host: ["127.0.0.1"])
    sender = make(
        prod(f"bots.example.org:{port}"),
        resolver=resolver,
        ssl_context=client_ctx,
        address_check=lambda address, *, allow_loopback: None,
    )
    try:
        result = await deliver(sender, f"https://bots.example.org:{port}/cb")
    finally:
        await bot.close()
    assert (result.reason, result.retryable) == ("tls-error", True)
    assert bot.seen == []


async def test_proxies_from_the_environment_are_ignored(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    bot, port = await bot_with(Answer(200))
    try:
        result = await deliver(make(dev()), f"http://127.0.0.1:{port}/cb")
    finally:
        await bot.close()
    assert result.reason == "delivered"


async def test_logs_name_the_host_and_ids_never_the_path_query_or_body(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bot, port = await bot_with(Answer(500), Answer(200))
    sender = make(dev())
    url = f"http://localhost:{port}/hooks/secret-path?token=s3cr3t-t0ken"
    with caplog.at_level(logging.DEBUG):
        try:
            await deliver(sender, url, "cb_7")
            await deliver(sender, url, "cb_7")
            await deliver(sender, "https://evil.example.com/x?token=s3cr3t-t0ken", "cb_8")
        finally:
            await bot.close()
    bot_side = ("aiohttp.access", "aiohttp.server", "aiohttp.web")  # the recording bot's own logs
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records if not r.name.startswith(bot_side))
    assert "cb_7" in text
    assert "localhost" in text
    assert "server-error" in text
    for secret in ("secret-path", "s3cr3t-t0ken", "Your nurse", "Anna", "evil.example.com"):
        assert secret not in text, secret


async def test_a_call_that_can_never_be_right_raises(make: Any) -> None:
    sender = make(dev())
    with pytest.raises(ValueError, match="message_id"):
        await sender.deliver("http://localhost/x", "message", DATA, message_id="a.b", timestamp=EVENT_AT)
    with pytest.raises(ValueError, match="botConversationId"):
        await sender.deliver(
            "http://localhost/x", "message", {"conversationId": "c"}, message_id="m", timestamp=EVENT_AT
        )
