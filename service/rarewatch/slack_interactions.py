"""`POST /slack/interactions`: the Slack app's interactivity URL, where Slack posts a click on an alert's
"Relevant" / "Not relevant" button (`delivery.slack_blocks.feedback_block`).

Served by `rarewatch run` only when `slack.signing_secret` is set (else the path is a 404). A request:

| What                                                          | Answer                               |
|---------------------------------------------------------------|--------------------------------------|
| body larger than `BODY_MAX`                                   | 413                                  |
| missing, wrong, or more than 5 minutes old/ahead signature;   | 401 (`slack_signature`)              |
| the same signed request again (replay)                        |                                      |
| not a form with a JSON `payload`, or not Slack's shape        | 400                                  |
| another interaction (not our buttons)                         | 200, ignored                         |
| a click on an alert the store does not hold                   | 404 (Slack marks the click failed)   |
| the store does not answer                                     | 503 (Slack marks the click failed)   |
| a click on a known alert                                      | 200, the vote recorded (who, when)   |

Slack wants an answer within 3 seconds: the vote is one store write, done before answering, so a 200
means the vote is kept. The message itself is left as it is (every reader sees the same buttons; each
reader's last click is their vote).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from aiohttp import web

from rarewatch.api_base import RUNTIME
from rarewatch.errors import StoreError
from rarewatch.feedback import PayloadError, SlackClick, find_alert, parse_click
from rarewatch.models import Vote
from rarewatch.slack_signature import ReplayGuard, SignatureError, check_signature
from rarewatch.store import Store

PATH = "/slack/interactions"
BODY_MAX = 2 * 1024 * 1024  # a payload carries the whole message (up to 50 blocks); Slack's are far less

log = logging.getLogger(__name__)


@dataclass
class SlackApp:
    """The Slack app's signing secret, and the requests already taken (replay check)."""

    signing_secret: str
    replays: ReplayGuard = field(default_factory=ReplayGuard)


SLACK_APP = web.AppKey("slack_app", SlackApp)


async def interactions(request: web.Request) -> web.Response:
    """One interaction from Slack (see the module docstring for every answer)."""
    slack, runtime = request.app[SLACK_APP], request.app[RUNTIME]
    body = await _body(request)
    now = runtime.clock.now()
    given = request.headers.get("X-Slack-Signature")
    try:
        sent = check_signature(
            slack.signing_secret, request.headers.get("X-Slack-Request-Timestamp"), given, body, now
        )
    except SignatureError as exc:
        log.warning("slack interaction refused from %s: %s", request.remote, exc)
        return web.Response(status=401, text=f"not a request signed by Slack: {exc}")
    assert given is not None  # checked with the signature
    if not slack.replays.first_time(given, sent, now):
        log.warning("slack interaction refused from %s: replayed", request.remote)
        return web.Response(status=401, text="not a request signed by Slack: already taken (replayed)")
    try:
        click = parse_click(_payload(body))
    except PayloadError as exc:
        return web.Response(status=400, text=str(exc))
    if click is None:
        return web.Response(status=200)
    return await _record(runtime.store, click, request)


async def _record(store: Store, click: SlackClick, request: web.Request) -> web.Response:
    now = request.app[RUNTIME].clock.now()
    try:
        if await find_alert(store, click.alert_id) is None:
            log.warning("slack feedback on unknown alert %s by %s", click.alert_id, click.who)
            return web.Response(status=404, text=f"no alert {click.alert_id!r} (forgotten?)")
        vote = Vote(click.alert_id, click.who, click.vote, now, name=click.user_name, via="slack")
        await store.record_vote(vote)
    except StoreError as exc:
        log.error("slack feedback not recorded: %s", exc)
        return web.Response(status=503, text="store unavailable, vote not recorded")
    log.info("feedback: %s voted %s on alert %s", click.who, click.vote.value, click.alert_id)
    return web.Response(status=200)


async def _body(request: web.Request) -> bytes:
    """The raw body (the signature covers its bytes), refused (413) past `BODY_MAX`."""
    if request.content_length is not None and request.content_length > BODY_MAX:
        raise _too_large()
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > BODY_MAX:
            raise _too_large()
    return bytes(body)


def _too_large() -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=BODY_MAX, actual_size=BODY_MAX + 1, text=f"the body is larger than {BODY_MAX // 1024} KiB"
    )


def _payload(body: bytes) -> object:
    """The JSON of the form field `payload` (Slack posts application/x-www-form-urlencoded)."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
        [raw] = form["payload"]
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise PayloadError("expected a form with one JSON field 'payload'") from exc


def add_routes(app: web.Application, signing_secret: str | None) -> None:
    """Serve the interactivity URL when a signing secret is configured."""
    if signing_secret is None:
        return
    app[SLACK_APP] = SlackApp(signing_secret)
    app.router.add_post(PATH, interactions)
