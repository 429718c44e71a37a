"""The Slack interactivity URL (`POST /slack/interactions`) on the whole `rarewatch run` application with a
real SQLite store, served on 127.0.0.1; every request is signed with slack-sdk's `SignatureVerifier` (the
independent implementation of Slack's scheme), and the votes are read back from the store."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from rarewatch import slack_interactions
from rarewatch.app import build_web_app
from rarewatch.clock import FakeClock
from rarewatch.models import Vote, VoteKind
from rarewatch.settings import Settings, SlackAppConfig
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.api_support import T0, alert, api_settings, fill, served

SECRET = "e3b0c44298fc1c149afbf4c8996fb924"
NOW = T0 + timedelta(days=1)
URL = "/slack/interactions"


def settings(tmp_path: Path, secret: str | None = SECRET) -> Settings:
    base = api_settings(tmp_path)
    slack = SlackAppConfig(signing_secret=SecretStr(secret) if secret else None)
    return base.model_copy(update={"slack": slack})


def click(
    action_id: str = "rarewatch_feedback_relevant", alert_id: str = "alert-1", user: str = "U1"
) -> bytes:
    """The form Slack posts for a click on a feedback button (the shape of a real block_actions)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": f"name-{user}", "name": f"name-{user}", "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": "1769846400.000100", "channel_id": "C1"},
        "channel": {"id": "C1", "name": "rare-earths"},
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
        "actions": [
            {
                "type": "button",
                "block_id": "rarewatch_feedback",
                "action_id": action_id,
                "value": alert_id,
                "text": {"type": "plain_text", "text": "Relevant"},
                "action_ts": "1769846401.000200",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, at: float, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode())
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def post(base: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + URL, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


async def votes(tmp_path: Path) -> list[Vote]:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        return await store.votes(T0)
    finally:
        await store.close()


async def serve(tmp_path: Path, clock: FakeClock, **kw: Any) -> Any:
    await fill(tmp_path / "state.db", [alert(1), alert(2)])
    return served(build_web_app(settings(tmp_path, **kw), clock=clock))


async def test_a_click_records_the_vote_and_the_readers_last_vote_wins(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    async with await serve(tmp_path, clock) as base:
        first = click()
        assert await post(base, first, signed(first, NOW.timestamp())) == (200, "")
        clock.advance(60)
        second = click("rarewatch_feedback_not_relevant")
        assert (await post(base, second, signed(second, clock.now().timestamp())))[0] == 200
        other = click(user="U2")
        assert (await post(base, other, signed(other, clock.now().timestamp())))[0] == 200
    assert await votes(tmp_path) == [
        Vote("alert-1", "slack:U1", VoteKind.NOT_RELEVANT, NOW + timedelta(seconds=60), "name-U1", "slack"),
        Vote("alert-1", "slack:U2", VoteKind.RELEVANT, NOW + timedelta(seconds=60), "name-U2", "slack"),
    ]


async def test_unsigned_forged_old_and_replayed_requests_are_refused(tmp_path: Path) -> None:
    body = click()
    now = NOW.timestamp()
    async with await serve(tmp_path, FakeClock(NOW)) as base:
        refused = [
            await post(base, body, {"Content-Type": "application/x-www-form-urlencoded"}),
            await post(base, body, signed(body, now, secret="not-the-signing-secret")),
            await post(base, body, signed(body, now - 301)),
            await post(base, body, signed(body, now + 301)),
            await post(base, body, {**signed(click(alert_id="alert-2"), now), "Content-Type": "x"}),
        ]
        good = signed(body, now - 299)
        taken = await post(base, body, good)
        replayed = await post(base, body, good)
    assert [status for status, _ in refused] == [401] * 5
    assert "5 minutes" in refused[2][1] and "does not match" in refused[1][1]
    assert SECRET not in "".join(text for _, text in refused)
    assert taken[0] == 200
    assert replayed == (401, "not a request signed by Slack: already taken (replayed)")
    assert len(await votes(tmp_path)) == 1


async def test_an_unknown_alert_is_404_and_other_interactions_are_acknowledged(tmp_path: Path) -> None:
    now = NOW.timestamp()
    unknown, foreign = click(alert_id="alert-9"), click(action_id="someone_elses_button")
    shortcut = urlencode({"payload": json.dumps({"type": "shortcut", "callback_id": "x"})}).encode()
    async with await serve(tmp_path, FakeClock(NOW)) as base:
        assert (await post(base, unknown, signed(unknown, now)))[0] == 404
        assert await post(base, foreign, signed(foreign, now)) == (200, "")
        assert await post(base, shortcut, signed(shortcut, now)) == (200, "")
    assert await votes(tmp_path) == []


async def test_a_body_that_is_no_slack_payload_is_400_and_a_huge_one_413(tmp_path: Path) -> None:
    now = NOW.timestamp()
    bad = [b"payload=not-json", b"nothing=here", b'payload={"type":"block_actions"}', b"\xff\xfe"]
    huge = b"payload=" + b"x" * (slack_interactions.BODY_MAX + 1)
    async with await serve(tmp_path, FakeClock(NOW)) as base:
        statuses = [
            (await post(base, b, signed(b, now) if b != b"\xff\xfe" else _raw(b, now)))[0] for b in bad
        ]
        too_large = await post(base, huge, signed(huge, now))
    assert statuses == [400] * 4
    assert too_large[0] == 413


def _raw(body: bytes, at: float) -> dict[str, str]:
    """Headers for a body that is not UTF-8 (slack-sdk cannot sign it: signed here the same way)."""
    from rarewatch.slack_signature import signature

    ts = str(int(at))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(SECRET, ts, body)}


async def test_without_a_signing_secret_there_is_no_interactivity_url(tmp_path: Path) -> None:
    body = click()
    async with await serve(tmp_path, FakeClock(NOW), secret=None) as base:
        status, _ = await post(base, body, signed(body, NOW.timestamp()))
    assert status == 404


def test_buttons_without_a_signing_secret_are_warned_about_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slack = {"name": "team", "type": "slack", "channel": "C1", "token": "xoxb-1-2-abc"}
    quiet = {**slack, "name": "quiet", "feedback_buttons": False}
    base = settings(tmp_path, secret=None)
    with_slack = Settings.model_validate(
        {
            **base.model_dump(exclude={"config_dir"}),
            "destinations": [slack, quiet],
            "routes": [{"to": ["team"]}],
        }
        | {"config_dir": tmp_path}
    )
    with caplog.at_level(logging.WARNING, logger="rarewatch.app"):
        build_web_app(with_slack)
    [warning] = [r.getMessage() for r in caplog.records if "signing_secret" in r.getMessage()]
    assert "team" in warning and "quiet" not in warning
    caplog.clear()
    build_web_app(settings(tmp_path))
    assert not [r for r in caplog.records if "signing_secret" in r.getMessage()]
