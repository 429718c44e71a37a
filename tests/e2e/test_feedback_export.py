"""Readers' feedback end to end, as operators and readers use it: `rarewatch once` raises two alerts from a
local feed into a real SQLite store, `rarewatch run` takes votes from Slack (requests signed with
slack-sdk's `SignatureVerifier`) and from a webhook receiver (the API), then `rarewatch feedback export`
writes them as a labelled set and `rarewatch eval` on it names the rule behind the "not relevant" votes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.conftest import free_port
from tests.e2e.test_cli import rarewatch
from tests.e2e.test_unrouted_and_once import config, story
from tests.support import feed_server, rss, webhook_receiver

SIGNING_SECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "write-t0ken-for-the-feedback-test"
LICENSING_TITLE = "Rare earth export licence regime widened"
SHORTAGE_TITLE = "Magnet shortage halts production at motor plant"


def with_service(path: Path, port: int) -> None:
    """The `once` configuration plus the HTTP API (write token) and the Slack app's signing secret."""
    extra = (
        f'http: {{host: 127.0.0.1, port: {port}, token: "{TOKEN}"}}\n'
        f'slack: {{signing_secret: "{SIGNING_SECRET}"}}\n'
    )
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")


def slack_click(alert_id: str, user: str, action: str) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "actions": [
            {"type": "button", "block_id": "rarewatch_feedback", "action_id": action, "value": alert_id}
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body.encode(), headers


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_ready(session: aiohttp.ClientSession, base: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.returncode is None, "rarewatch run exited"
        try:
            async with session.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("rarewatch run did not come up")


async def vote_through_the_service(path: Path, port: int, log: Path) -> dict[str, str]:
    """Start `rarewatch run`, cast the votes, stop it; the alert ids by title."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(path),
            stdout=out, stderr=out, env=env, cwd=path.parent,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base, proc)
            async with session.get(f"{base}/api/v1/alerts") as resp:
                ids = {a["title"]: a["id"] for a in (await resp.json())["alerts"]}
            licensing, shortage = ids[LICENSING_TITLE], ids[SHORTAGE_TITLE]
            statuses: list[Any] = []
            for alert_id, user, action in [
                (shortage, "U1", "rarewatch_feedback_not_relevant"),
                (licensing, "U1", "rarewatch_feedback_relevant"),
                (licensing, "U2", "rarewatch_feedback_not_relevant"),
            ]:
                body, headers = slack_click(alert_id, user, action)
                async with session.post(f"{base}/slack/interactions", data=body, headers=headers) as resp:
                    statuses.append(resp.status)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            for alert_id, who, vote in [
                (shortage, "bo@example.org", "not_relevant"),
                (licensing, "cy", "relevant"),
            ]:
                url = f"{base}/api/v1/alerts/{alert_id}/feedback"
                async with session.post(url, json={"vote": vote, "who": who}, headers=auth) as resp:
                    statuses.append(resp.status)
            assert statuses == [200] * 5, _text(log)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    return ids


async def test_votes_from_slack_and_the_api_become_an_eval_set(tmp_path: Path) -> None:
    port = free_port()
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [story(1, LICENSING_TITLE, timedelta(minutes=5)), story(2, SHORTAGE_TITLE, timedelta(minutes=6))]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, "routes:\n  - {to: [tickets]}")
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        with_service(path, port)
        ids = await vote_through_the_service(path, port, tmp_path / "run.log")

    exported = tmp_path / "votes.jsonl"
    code, out, err = await rarewatch(
        "feedback", "export", "--config", str(path), "--since", "1d", "-o", str(exported)
    )
    assert code == 0, err
    assert out == ""
    assert (
        "2 alerts labelled" in err
        and "from 5 votes" in err
        and "1 relevant" in err
        and "1 not relevant" in err
    )
    records = {r["id"]: r for r in map(json.loads, exported.read_text(encoding="utf-8").splitlines())}
    assert records[ids[LICENSING_TITLE]]["labels"] == ["export-licensing"], "2 of 3 voters: relevant"
    assert records[ids[SHORTAGE_TITLE]]["labels"] == [], "both voters: not relevant"
    assert records[ids[SHORTAGE_TITLE]]["title"] == SHORTAGE_TITLE

    code, out, err = await rarewatch("eval", "--rules", str(tmp_path / "rules"), str(exported))
    assert code == 0, err
    assert f"test-shortage [supply-disruption]: 1 (1 negative): {ids[SHORTAGE_TITLE]}" in out
    assert "negatives: 1, alerting: 1" in out

    code, out, err = await rarewatch("feedback", "export", "--config", str(path), "--since", "nonsense")
    assert code == 2 and "--since" in err
    nowhere = tmp_path / "no-such-dir" / "votes.jsonl"
    code, out, err = await rarewatch("feedback", "export", "--config", str(path), "-o", str(nowhere))
    assert code == 2 and "cannot write" in err and "Traceback" not in err
