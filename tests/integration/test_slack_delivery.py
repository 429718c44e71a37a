"""The Slack notifier through the real slack-sdk clients against a local aiohttp stand-in for Slack.

The stand-in serves `POST /api/chat.postMessage` (the Web API; slack-sdk sends it JSON with a Bearer
token) and `POST /services/T/B/X` (an incoming webhook). Every message that reaches it is checked against
Slack's Block Kit limits and for unescaped mentions; scripted handlers play Slack's failures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from rarewatch.clock import FakeClock
from rarewatch.delivery.config import NotifierDeps
from rarewatch.delivery.slack import SlackDestination, SlackNotifier, build
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, AlertKind, Item, Match, Severity

TOKEN = "xoxb-123-456-secretsecret"
CHANNEL = "C0RAREARTH"
WEBHOOK_PATH = "/services/T/B/X"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Slack control sequences a feed must never get into a message unescaped.
PINGS = ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C123>")
# The only angle-bracket syntax the notifier may send: http(s) links and date tokens.
_ALLOWED_TOKEN = re.compile(r"<(https?://[^|<>\s]+\|[^<>]*|!date\^\d+\^[^|<>]*\|[^<>]*)>")


def make_alert(
    title: str = "China adds rare-earth magnets to export licence list",
    summary: str = "MOFCOM announced new licensing.",
    source: str = "mofcom",
    snippet: str = "rare-earth permanent magnets require an export licence",
    terms: tuple[str, ...] = ("rare earth", "export licence"),
) -> Alert:
    now = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    item = Item("i1", source, title, "https://example.org/news/1?a=1&b=2", summary, "", now)
    match = Match("licensing", "export-licensing", Severity.HIGH, terms, snippet)
    return Alert("alert-1", item, (match,), now)


def hostile_alert() -> Alert:
    bad = " ".join(PINGS) + " <https://evil.example|https://bank.example> & more"
    return make_alert(title=bad, summary=bad, source=bad, snippet=bad, terms=(bad, "<!here>"))


# ---------------------------------------------------------------------------------------------------
# The Slack stand-in


def problems_in(message: dict[str, Any]) -> list[str]:
    """What Slack (or a careful reviewer) would object to in a posted message."""
    problems: list[str] = []
    blocks = message.get("blocks")
    if isinstance(blocks, str):  # the API accepts blocks as a JSON string too
        blocks = json.loads(blocks)
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [f"blocks must be a list of 1-50 blocks: {blocks!r:.100}"]
    text = message.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= 3000:
        problems.append("fallback text missing or too long")
    texts = [text or ""]
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            texts.append(block["text"]["text"])
            if block["text"]["type"] != "plain_text" or not 1 <= len(block["text"]["text"]) <= 150:
                problems.append("bad header")
        elif kind == "section":
            texts.append(block["text"]["text"])
            if not 1 <= len(block["text"]["text"]) <= 3000:
                problems.append("section text too long")
        elif kind == "context":
            elements = block["elements"]
            texts.extend(e["text"] for e in elements)
            if not 1 <= len(elements) <= 10 or any(not 1 <= len(e["text"]) <= 3000 for e in elements):
                problems.append("bad context")
        elif kind == "actions":
            problems.extend(_button_problems(block))
        elif kind != "divider":
            problems.append(f"unexpected block type {kind}")
    for t in texts:
        rest = _ALLOWED_TOKEN.sub("", t).replace("\n> ", "\n").removeprefix("> ")
        if "<" in rest or ">" in rest or any(p in t for p in PINGS):
            problems.append(f"unescaped control sequence in {t!r:.200}")
    return problems


def _button_problems(block: dict[str, Any]) -> list[str]:
    """Block Kit's limits on an actions block of buttons."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
        return ["an actions block needs 1-25 elements"]
    problems = []
    for button in elements:
        text = button.get("text", {})
        if button.get("type") != "button" or text.get("type") != "plain_text":
            problems.append(f"not a plain-text button: {button!r:.100}")
        elif not 1 <= len(text.get("text", "")) <= 75 or not 1 <= len(button.get("value", "")) <= 2000:
            problems.append("button text or value out of bounds")
        if not 1 <= len(button.get("action_id", "")) <= 255:
            problems.append("button action_id out of bounds")
    return problems


@dataclass
class FakeSlack:
    """Answers with the scripted handlers in turn, then validates the message and says ok."""

    script: list[Handler] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    server: TestServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    @property
    def api_url(self) -> str:
        return self.url("/api/")

    async def _receive(self, request: web.Request) -> dict[str, Any]:
        self.headers.append(dict(request.headers))
        assert request.content_type == "application/json"  # slack-sdk posts JSON for chat.postMessage
        message: dict[str, Any] = await request.json()
        self.messages.append(message)
        return message

    async def post_message(self, request: web.Request) -> web.StreamResponse:
        message = await self._receive(request)
        if self.script:
            return await self.script.pop(0)(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        problems = problems_in(message)
        if message.get("channel") != CHANNEL:
            problems.append(f"wrong channel {message.get('channel')!r}")
        if message.get("unfurl_links") is not False or message.get("unfurl_media") is not False:
            problems.append("unfurling not switched off")
        if problems:
            self.problems.extend(problems)
            return web.json_response({"ok": False, "error": "invalid_blocks"})
        return web.json_response({"ok": True, "channel": CHANNEL, "ts": "1769846400.000100"})

    async def incoming_webhook(self, request: web.Request) -> web.StreamResponse:
        message = await self._receive(request)
        if self.script:
            return await self.script.pop(0)(request)
        problems = problems_in(message)
        if problems:
            self.problems.extend(problems)
            return web.Response(status=400, text="invalid_blocks")
        return web.Response(text="ok")


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    """A scripted answer: JSON for a dict body, plain text for a string."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if isinstance(body, dict):
            return web.json_response(body, status=status, headers=headers)
        return web.Response(status=status, text=body or "", headers=headers)

    return handler


def slack_error(error: str, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    return reply(status, {"ok": False, "error": error}, headers)


def slow(seconds: float) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response({"ok": True, "ts": "1"})

    return handler


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack-sdk routes every request through HTTP(S)_PROXY when set, even to 127.0.0.1.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def slack(aiohttp_server: AiohttpServer) -> FakeSlack:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post("/api/chat.postMessage", fake.post_message)
    app.router.add_post(WEBHOOK_PATH, fake.incoming_webhook)
    fake.server = await aiohttp_server(app, host="127.0.0.1")
    return fake


@dataclass
class FakeSleep:
    """Records each wait and moves the fake clock by it instead of sleeping."""

    clock: FakeClock
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 2, 1, tzinfo=UTC))


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@dataclass
class Make:
    """Builds notifiers wired to the stand-in, the shared session, the fake clock and the fake sleep."""

    slack: FakeSlack
    session: aiohttp.ClientSession
    clock: FakeClock
    sleep: FakeSleep

    def api(self, channel: str = CHANNEL, token: str = TOKEN, **kwargs: Any) -> SlackNotifier:
        kwargs.setdefault("sleep", self.sleep)
        return SlackNotifier(
            "slack",
            channel=channel,
            token=token,
            api_url=self.slack.api_url,
            session=self.session,
            clock=self.clock,
            **kwargs,
        )

    def webhook(self, **kwargs: Any) -> SlackNotifier:
        return SlackNotifier(
            "slack-hook",
            webhook_url=self.slack.url(WEBHOOK_PATH),
            session=self.session,
            clock=self.clock,
            sleep=self.sleep,
            **kwargs,
        )


@pytest.fixture
def make(slack: FakeSlack, session: aiohttp.ClientSession, clock: FakeClock, sleep: FakeSleep) -> Make:
    return Make(slack, session, clock, sleep)


async def failure(notifier: SlackNotifier, alert: Alert | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await notifier.send(alert or make_alert())
    return info.value


# ---------------------------------------------------------------------------------------------------
# Web API: success


async def test_posts_a_valid_block_kit_message_with_the_bot_token(make: Make, slack: FakeSlack) -> None:
    await make.api().send(make_alert())
    assert slack.problems == []
    [message] = slack.messages
    assert slack.headers[0]["Authorization"] == f"Bearer {TOKEN}"
    assert message["channel"] == CHANNEL
    assert message["text"].startswith("[HIGH] export-licensing: China adds rare-earth magnets")
    assert message["blocks"][0]["text"]["text"] == "🔴 HIGH · export-licensing"
    assert message["blocks"][1]["text"]["text"].startswith(
        "*<https://example.org/news/1?a=1&amp;b=2|China adds rare-earth magnets"
    )


async def test_hostile_feed_text_arrives_escaped(make: Make, slack: FakeSlack) -> None:
    await make.api().send(hostile_alert())
    assert slack.problems == []
    raw = json.dumps(slack.messages[0], ensure_ascii=False)
    for ping in PINGS:
        assert ping not in raw
    assert "&lt;!channel&gt;" in raw


async def test_a_huge_alert_arrives_within_slack_limits(make: Make, slack: FakeSlack) -> None:
    huge = "稀土 <export> & licence " * 500
    await make.api().send(make_alert(title=huge, summary=huge, snippet=huge, terms=(huge,) * 30))
    assert slack.problems == []
    assert len(slack.messages) == 1


# ---------------------------------------------------------------------------------------------------
# Web API: failures


async def test_http_429_is_retryable_with_retry_after_and_not_slept_out(
    make: Make, slack: FakeSlack, sleep: FakeSleep
) -> None:
    slack.script.append(slack_error("ratelimited", status=429, headers={"Retry-After": "30"}))
    err = await failure(make.api())
    assert err.retryable and not err.disable
    assert err.retry_after == 30
    assert "ratelimited" in str(err)
    assert len(slack.messages) == 1  # slack-sdk's own rate-limit retry is off
    assert sleep.waits == []  # the outbox reschedules; send does not hold it up


async def test_a_ratelimited_error_without_429_is_retryable_too(make: Make, slack: FakeSlack) -> None:
    slack.script.append(slack_error("ratelimited", headers={"Retry-After": "7"}))
    err = await failure(make.api())
    assert err.retryable
    assert err.retry_after == 7


async def test_a_429_without_retry_after_is_retryable_without_a_hint(make: Make, slack: FakeSlack) -> None:
    slack.script.append(reply(429, "slow down"))
    err = await failure(make.api())
    assert err.retryable
    assert err.retry_after is None


@pytest.mark.parametrize("error", ["channel_not_found", "is_archived", "not_in_channel", "invalid_blocks"])
async def test_slack_errors_that_cannot_succeed_are_not_retryable(
    make: Make, slack: FakeSlack, error: str
) -> None:
    slack.script.append(slack_error(error))
    err = await failure(make.api())
    assert not err.retryable
    assert not err.disable
    assert error in str(err)
    assert CHANNEL in str(err)


async def test_a_wrong_token_is_invalid_auth_not_retryable_and_not_quoted(make: Make) -> None:
    err = await failure(make.api(token="xoxb-wrong-token"))
    assert not err.retryable
    assert not err.disable
    assert "invalid_auth" in str(err)
    assert "xoxb" not in str(err)


@pytest.mark.parametrize("error", ["token_revoked", "account_inactive"])
async def test_a_revoked_token_disables_the_destination(make: Make, slack: FakeSlack, error: str) -> None:
    slack.script.append(slack_error(error))
    err = await failure(make.api())
    assert not err.retryable
    assert err.disable


async def test_http_500_is_retryable_and_not_retried_by_the_sdk(make: Make, slack: FakeSlack) -> None:
    slack.script.append(reply(500, "<html>Internal Server Error</html>"))
    err = await failure(make.api())
    assert err.retryable
    assert "HTTP 500" in str(err)
    assert len(slack.messages) == 1


async def test_a_slack_side_error_code_is_retryable(make: Make, slack: FakeSlack) -> None:
    slack.script.append(slack_error("service_unavailable", status=503))
    err = await failure(make.api())
    assert err.retryable


async def test_an_unreadable_json_body_is_classified_by_status(make: Make, slack: FakeSlack) -> None:
    # slack-sdk then attaches the raw aiohttp response to its SlackApiError, not its own response type.
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="<html>bad gateway", content_type="application/json")

    slack.script.append(broken)
    err = await failure(make.api())
    assert err.retryable
    assert "HTTP 502" in str(err)


async def test_a_plain_text_ok_from_a_non_slack_server_is_not_retryable(make: Make, slack: FakeSlack) -> None:
    # A wrong api_url answering 200 text/plain makes slack-sdk fail oddly; it must still be classified.
    slack.script.append(reply(200, "ok"))
    err = await failure(make.api())
    assert not err.retryable
    assert "api_url" in str(err)


async def test_a_closed_port_is_connection_refused_and_retryable(
    session: aiohttp.ClientSession, clock: FakeClock, sleep: FakeSleep
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = SlackNotifier(
        "slack",
        channel=CHANNEL,
        token=TOKEN,
        api_url=f"http://127.0.0.1:{port}/api/",
        session=session,
        clock=clock,
        sleep=sleep,
    )
    err = await failure(notifier)
    assert err.retryable
    assert "connection refused" in str(err)


async def test_a_slow_answer_times_out_and_is_retryable(make: Make, slack: FakeSlack) -> None:
    slack.script.append(slow(5))
    err = await failure(make.api(timeout=0.2))
    assert err.retryable
    assert "timed out" in str(err)


# ---------------------------------------------------------------------------------------------------
# Incoming webhook


async def test_a_webhook_post_carries_text_and_blocks(make: Make, slack: FakeSlack) -> None:
    await make.webhook().send(hostile_alert())
    assert slack.problems == []
    [message] = slack.messages
    assert "channel" not in message
    assert message["unfurl_links"] is False
    assert "Authorization" not in slack.headers[0]


@pytest.mark.parametrize("way", ["api", "webhook"])
async def test_the_message_shows_publisher_materials_and_countries(
    make: Make, slack: FakeSlack, way: str
) -> None:
    plain = make_alert()
    alert = replace(
        plain,
        item=replace(plain.item, publisher="Metals & Mining Daily"),
        materials=("gallium", "germanium"),
        countries=("china",),
    )
    notifier = make.api() if way == "api" else make.webhook()
    await notifier.send(alert)
    assert slack.problems == []
    [message] = slack.messages
    facts = [e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert "Publisher: *Metals &amp; Mining Daily*" in facts
    assert "Materials: gallium, germanium" in facts
    assert "Countries: china" in facts


@pytest.mark.parametrize(
    ("status", "body", "retryable", "disable"),
    [
        (404, "no_service", False, True),
        (410, "", False, True),
        (403, "invalid_token", False, False),
        (404, "channel_not_found", False, False),
        (400, "invalid_payload", False, False),
        (500, "rollup_error", True, False),
        (503, "", True, False),
    ],
)
async def test_webhook_failures_are_classified(
    make: Make, slack: FakeSlack, status: int, body: str, retryable: bool, disable: bool
) -> None:
    slack.script.append(reply(status, body))
    err = await failure(make.webhook())
    assert (err.retryable, err.disable) == (retryable, disable)
    assert f"HTTP {status}" in str(err)
    assert body in str(err)
    assert WEBHOOK_PATH not in str(err)  # the path is the credential
    assert len(slack.messages) == 1


async def test_a_webhook_429_is_retryable_with_retry_after(
    make: Make, slack: FakeSlack, sleep: FakeSleep
) -> None:
    slack.script.append(reply(429, "rate_limited", headers={"Retry-After": "12"}))
    err = await failure(make.webhook())
    assert err.retryable
    assert err.retry_after == 12
    assert sleep.waits == []
    assert len(slack.messages) == 1


async def test_a_webhook_on_a_closed_port_does_not_leak_the_url(
    session: aiohttp.ClientSession, clock: FakeClock, sleep: FakeSleep
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/tokentokentoken"
    notifier = SlackNotifier("hook", webhook_url=url, session=session, clock=clock, sleep=sleep)
    err = await failure(notifier)
    assert err.retryable
    assert "tokentokentoken" not in str(err)


async def test_debug_logging_never_shows_the_webhook_url_or_the_token(
    make: Make, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger, as `log_level: debug` sets it
    await make.webhook().send(make_alert())
    await make.api().send(make_alert())
    assert len(slack.messages) == 2
    # aiohttp.access is the stand-in Slack's own access log, not the sender's.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert WEBHOOK_PATH not in logged
    assert TOKEN not in logged


# ---------------------------------------------------------------------------------------------------
# Rate limiting: one message per second per channel


async def test_back_to_back_posts_to_one_channel_wait_a_second(
    make: Make, slack: FakeSlack, sleep: FakeSleep, clock: FakeClock
) -> None:
    notifier = make.api()
    await notifier.send(make_alert())
    await notifier.send(make_alert())
    assert sleep.waits == [1.0]
    clock.advance(0.4)
    await notifier.send(make_alert())
    assert sleep.waits == [1.0, pytest.approx(0.6)]
    clock.advance(5)
    await notifier.send(make_alert())
    assert len(sleep.waits) == 2  # enough time had passed
    assert len(slack.messages) == 4


async def test_a_failed_post_still_counts_towards_the_rate(
    make: Make, slack: FakeSlack, sleep: FakeSleep
) -> None:
    notifier = make.api()
    slack.script.append(reply(500, "oops"))
    await failure(notifier)
    await notifier.send(make_alert())
    assert sleep.waits == [1.0]


async def test_different_channels_do_not_wait_for_each_other(
    make: Make, slack: FakeSlack, sleep: FakeSleep
) -> None:
    # The stand-in accepts only CHANNEL; the second channel's rejection still shows it was posted at once.
    await make.api(channel=CHANNEL).send(make_alert())
    await failure(make.api(channel="C0OTHER"))
    assert sleep.waits == []
    assert [m["channel"] for m in slack.messages] == [CHANNEL, "C0OTHER"]


async def test_concurrent_sends_queue_up_one_second_apart(make: Make, slack: FakeSlack) -> None:
    # All three start at the same instant (this sleep does not move the clock): each books the next slot.
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    notifier = make.api(sleep=record)
    await asyncio.gather(*(notifier.send(make_alert()) for _ in range(3)))
    assert sorted(waits) == [1.0, 2.0]
    assert len(slack.messages) == 3


async def test_the_webhook_is_rate_limited_too(make: Make, sleep: FakeSleep) -> None:
    notifier = make.webhook()
    await notifier.send(make_alert())
    await notifier.send(make_alert())
    assert sleep.waits == [1.0]


# ---------------------------------------------------------------------------------------------------
# Construction and closing


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token": TOKEN},
        {"channel": CHANNEL},
        {"webhook_url": "https://hooks.slack.com/services/T/B/X", "token": TOKEN},
        {"webhook_url": "https://hooks.slack.com/services/T/B/X", "channel": CHANNEL},
    ],
)
def test_exactly_one_way_in_is_required(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="slack destination"):
        SlackNotifier("slack", **kwargs)


async def test_close_leaves_a_shared_session_open(make: Make, session: aiohttp.ClientSession) -> None:
    notifier = make.api()
    await notifier.send(make_alert())
    await notifier.close()
    assert not session.closed


async def test_without_a_session_the_notifier_owns_and_closes_one(
    slack: FakeSlack, clock: FakeClock, sleep: FakeSleep
) -> None:
    notifier = SlackNotifier(
        "slack", channel=CHANNEL, token=TOKEN, api_url=slack.api_url, clock=clock, sleep=sleep
    )
    await notifier.send(make_alert())
    own = notifier._own_session  # no public handle: this is what close() must release
    assert own is not None and not own.closed
    await notifier.close()
    assert own.closed


# ---------------------------------------------------------------------------------------------------
# Feedback buttons


def _actions(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == "actions"]


async def test_feedback_buttons_arrive_as_a_valid_actions_block(make: Make, slack: FakeSlack) -> None:
    await make.api(feedback_buttons=True).send(make_alert())
    await make.webhook(feedback_buttons=True).send(make_alert())
    assert slack.problems == []
    for message in slack.messages:
        [actions] = _actions(message)
        assert [(b["action_id"], b["value"]) for b in actions["elements"]] == [
            ("rarewatch_feedback_relevant", "alert-1"),
            ("rarewatch_feedback_not_relevant", "alert-1"),
        ]


async def test_no_buttons_when_switched_off_nor_on_updates_and_digests(make: Make, slack: FakeSlack) -> None:
    alert = make_alert()
    await make.api().send(alert)
    notifier = make.api(feedback_buttons=True)
    await notifier.send(replace(alert, id="u1", kind=AlertKind.UPDATE, story="alert-1"))
    await notifier.send(replace(alert, id="d1", kind=AlertKind.DIGEST, children=(alert,)))
    assert slack.problems == []
    assert [_actions(m) for m in slack.messages] == [[], [], []]


@pytest.mark.parametrize(("setting", "expected"), [({}, 1), ({"feedback_buttons": False}, 0)])
async def test_a_configured_destination_has_buttons_unless_switched_off(
    make: Make, slack: FakeSlack, setting: dict[str, Any], expected: int
) -> None:
    config = SlackDestination.model_validate(
        {
            "type": "slack",
            "name": "s",
            "channel": CHANNEL,
            "token": TOKEN,
            "api_url": slack.api_url,
            **setting,
        }
    )
    notifier = build(config, NotifierDeps(make.session, make.clock, sys.stdout, lambda p: p))
    assert isinstance(notifier, SlackNotifier)
    await notifier.send(make_alert())
    assert slack.problems == []
    assert len(_actions(slack.messages[0])) == expected
