"""The webhook notifier against real aiohttp receivers on 127.0.0.1 (no client mocks).

Signatures are checked with the independent `standardwebhooks` package, which rejects timestamps far
from the real time: the fake clock starts at the real now.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from rarewatch.clock import FakeClock
from rarewatch.delivery.payload import alert_payload
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET = "whsec_" + base64.b64encode(b"the rotated-in secret, 32 bytes!").decode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_alert(alert_id: str = "alert-1") -> Alert:
    now = datetime.now(UTC)
    item = Item("i1", "mofcom", "稀土 export licence list grows", "https://example.org/1", "s", "", now)
    return Alert(alert_id, item, (Match("licensing", "export-licensing", Severity.HIGH, ("稀土",)),), now)


@dataclass
class Receiver:
    """Answers POST /hook with the scripted handlers in turn, then 200; records every request."""

    script: list[Handler] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        if self.script:
            return await self.script.pop(0)(request)
        return web.Response(status=204)


def status(code: int, body: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=body, headers=headers)

    return handler


def slow(seconds: float) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(status=200)

    return handler


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> Receiver:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    app.router.add_route("*", "/elsewhere", status(200))
    rx.server = await aiohttp_server(app, host="127.0.0.1")
    return rx


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def notifier(url: str, session: aiohttp.ClientSession, clock: FakeClock, **kwargs: object) -> WebhookNotifier:
    return WebhookNotifier("hook", url, session, clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_a_signed_post_verifies_with_the_reference_library(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    alert = make_alert()
    hook = notifier(receiver.url, session, clock, secrets=[SECRET], headers={"Authorization": "Bearer t"})
    await hook.send(alert)
    [(headers, body)] = receiver.requests
    assert Webhook(SECRET).verify(body, headers) == alert_payload(alert)
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == alert.id
    assert headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert headers["Authorization"] == "Bearer t"
    # Compact UTF-8 JSON, not ASCII escapes.
    assert body == json.dumps(alert_payload(alert), ensure_ascii=False, separators=(",", ":")).encode()
    assert "稀土".encode() in body


async def test_during_rotation_each_secret_alone_verifies(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    await notifier(receiver.url, session, clock, secrets=[SECRET, NEW_SECRET]).send(make_alert())
    [(headers, body)] = receiver.requests
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(body, headers)
    Webhook(NEW_SECRET).verify(body, headers)
    stranger = "whsec_" + base64.b64encode(b"not a secret of this destination").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)


async def test_a_tampered_body_fails_verification(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    await notifier(receiver.url, session, clock, secrets=[SECRET]).send(make_alert())
    [(headers, body)] = receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"export", b"import"), headers)


async def test_extra_headers_cannot_replace_the_signed_ones(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    forged = {"Webhook-Id": "forged", "content-type": "text/plain", "X-Team": "metals"}
    await notifier(receiver.url, session, clock, secrets=[SECRET], headers=forged).send(make_alert())
    [(headers, body)] = receiver.requests
    assert headers["webhook-id"] == "alert-1"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "metals"
    Webhook(SECRET).verify(body, headers)


async def test_without_secrets_no_signature_is_sent(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    await notifier(receiver.url, session, clock).send(make_alert())
    [(headers, _)] = receiver.requests
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == "alert-1"


async def test_the_webhook_id_is_the_same_for_every_retry_and_destination(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    receiver.script = [status(500)]
    first = notifier(receiver.url, session, clock, secrets=[SECRET])
    second = WebhookNotifier("other", receiver.url, session, clock=clock)
    alert = make_alert("story-42")
    with pytest.raises(DeliveryError):
        await first.send(alert)
    clock.advance(5)
    await first.send(alert)
    await second.send(alert)
    assert [h["webhook-id"] for h, _ in receiver.requests] == ["story-42"] * 3
    # Each retry is signed afresh with its own timestamp.
    assert receiver.requests[1][0]["webhook-timestamp"] == str(int(clock.now().timestamp()))


async def test_a_5xx_is_retryable_and_quotes_the_body_then_succeeds(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    receiver.script = [status(500, "database \x1b[31mdown\x1b[0m")]
    hook = notifier(receiver.url, session, clock)
    with pytest.raises(DeliveryError) as info:
        await hook.send(make_alert())
    assert info.value.retryable and not info.value.disable
    assert info.value.retry_after is None
    assert str(info.value).startswith("HTTP 500 Internal Server Error: database")
    assert "\x1b" not in str(info.value)
    await hook.send(make_alert())
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("code", [429, 502, 503, 504])
async def test_throttling_statuses_carry_retry_after_seconds(
    code: int, receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    receiver.script = [status(code, "slow down", {"Retry-After": "120"})]
    with pytest.raises(DeliveryError) as info:
        await notifier(receiver.url, session, clock).send(make_alert())
    assert info.value.retryable
    assert info.value.retry_after == 120
    assert f"HTTP {code}" in str(info.value)


async def test_retry_after_may_be_an_http_date(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    when = format_datetime(clock.now() + timedelta(minutes=3), usegmt=True)
    receiver.script = [status(503, headers={"Retry-After": when})]
    with pytest.raises(DeliveryError) as info:
        await notifier(receiver.url, session, clock).send(make_alert())
    assert info.value.retry_after == 180


async def test_410_disables_the_destination(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    receiver.script = [status(410)]
    with pytest.raises(DeliveryError) as info:
        await notifier(receiver.url, session, clock).send(make_alert())
    assert info.value.disable and not info.value.retryable
    assert str(info.value) == "HTTP 410 Gone"


async def test_a_4xx_is_not_retryable_and_quotes_at_most_200_characters(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    receiver.script = [status(422, "bad field: " + "x" * 5000)]
    with pytest.raises(DeliveryError) as info:
        await notifier(receiver.url, session, clock).send(make_alert())
    message = str(info.value)
    assert not info.value.retryable
    assert message.startswith("HTTP 422 Unprocessable")
    assert "bad field: xxx" in message
    assert len(message.split(": ", 1)[1]) == 200


async def test_redirects_are_not_followed(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    assert receiver.server is not None
    target = str(receiver.server.make_url("/elsewhere")) + "?token=secret"
    receiver.script = [status(302, headers={"Location": target})]
    with pytest.raises(DeliveryError) as info:
        await notifier(receiver.url, session, clock).send(make_alert())
    assert not info.value.retryable
    message = str(info.value)
    assert message.startswith("HTTP 302: redirect to http://127.0.0.1:")
    assert message.endswith("/elsewhere?token=REDACTED not followed")  # the key stays, its value goes
    assert "secret" not in message
    assert len(receiver.requests) == 1  # the POST to /hook only: /elsewhere was never requested


async def test_a_slow_receiver_times_out_as_retryable(
    receiver: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    receiver.script = [slow(2)]
    hook = notifier(receiver.url, session, clock, timeout=0.2)
    with pytest.raises(DeliveryError) as info:
        await hook.send(make_alert())
    assert info.value.retryable
    assert str(info.value) == f"POST {receiver.url.removesuffix('/hook')}: timed out after 0.2s"
    await hook.send(make_alert())  # the receiver answers at once now
    assert len(receiver.requests) == 2


async def test_a_closed_port_is_connection_refused_and_retryable(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/tokentokentoken"
    with pytest.raises(DeliveryError) as info:
        await notifier(url, session, clock).send(make_alert())
    assert info.value.retryable
    # Only the origin is named: webhook paths often carry tokens.
    assert str(info.value) == f"POST http://127.0.0.1:{port}: connection refused"


def test_a_malformed_secret_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="base64"):
        WebhookNotifier("hook", "http://127.0.0.1/", session=None, secrets=["whsec_@@@"])  # type: ignore[arg-type]


async def test_an_unusable_url_is_not_retryable(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    with pytest.raises(DeliveryError, match="invalid webhook URL") as info:
        await notifier("http://", session, clock).send(make_alert())
    assert not info.value.retryable
