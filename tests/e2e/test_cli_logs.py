"""What the service says it is doing: `poll`, `alert` and `delivery` lines with ids, as text or JSON lines.

Real `rarewatch once` / `rarewatch run` processes against a local feed server and a local webhook
receiver; the JSON lines are parsed, never matched as strings.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.e2e.test_cli import rarewatch, story, write_config
from tests.support import feed_server, rss, webhook_receiver

PUBLISHER = 'Metals & "Mining" Daily'  # the feed's channel title: escaped in JSON, quoted in text


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every log line of `stderr` as parsed JSON; `once` also prints its summary there (not JSON)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == name]


def with_log_format(config: Path, fmt: str) -> Path:
    config.write_text(config.read_text(encoding="utf-8") + f"log_format: {fmt}\n", encoding="utf-8")
    return config


STORIES = [
    story(1, "Rare earth export licence regime widened"),
    story(2, "Magnet shortage halts production at motor plant"),
    story(3, "Bakery wins award"),
]


async def test_once_with_json_logs_says_each_poll_alert_and_delivery_with_ids(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(STORIES, title=PUBLISHER)
        hook.script = [503]  # the first webhook attempt fails: its outcome is logged too
        config = with_log_format(write_config(tmp_path, feeds.url("/wire.xml"), hook.url), "json")
        code, _, err = await rarewatch("once", "--config", str(config))
    assert code == 0, err
    lines = json_lines(err)
    assert lines, err
    for line in lines:  # every log record is a complete JSON object with the common keys
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("Z")

    polls = {p["source"]: p for p in events(lines, "poll")}
    assert set(polls) == {"wire", "gone"}
    wire = polls["wire"]
    assert (wire["status"], wire["items"], wire["matched"], wire["new"]) == ("ok", 3, 2, 2)
    assert isinstance(wire["duration_ms"], int) and wire["duration_ms"] >= 0
    assert wire["level"] == "info"
    assert polls["gone"]["status"] == "error" and "404" in polls["gone"]["error"]
    assert (polls["gone"]["items"], polls["gone"]["new"]) == (0, 0)

    alerts = {a["alert"]: a for a in events(lines, "alert")}
    assert len(alerts) == 2
    assert {a["rule"] for a in alerts.values()} == {"test-licensing", "test-shortage"}
    for alert in alerts.values():
        assert alert["source"] == "wire"
        assert alert["publisher"] == PUBLISHER
        assert alert["kind"] == "alert" and alert["story"] == alert["alert"]
        assert alert["destinations"] == ["tickets", "archive"]
        assert alert["category"] in {"export-licensing", "supply-disruption"}

    deliveries = events(lines, "delivery")
    for d in deliveries:
        assert d["delivery"] == f"{d['alert']}/{d['destination']}"
    [failed] = [d for d in deliveries if d["outcome"] == "failed"]
    assert failed["destination"] == "tickets" and failed["attempt"] == 1 and failed["alert"] in alerts
    assert failed["level"] == "warning" and "503" in failed["error"] and failed["retry_at"]
    # Every other delivery went through at its first attempt (the failed one's retry is not due yet).
    delivered = {
        (d["alert"], d["destination"], d["attempt"]) for d in deliveries if d["outcome"] == "delivered"
    }
    expected = {(a, dest, 1) for a in alerts for dest in ("tickets", "archive")}
    assert delivered == expected - {(failed["alert"], "tickets", 1)}
    # The ids in the log are the ids the receiver got, and the payload names the feed's publisher.
    assert set(hook.delivered_ids()) == set(alerts) - {failed["alert"]}
    assert {p["publisher"] for p in hook.payloads()} == {PUBLISHER}


async def test_once_with_text_logs_writes_one_key_value_line_per_event(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(STORIES[:1], title=PUBLISHER)
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url)  # log_format: text, the default
        code, _, err = await rarewatch("once", "--config", str(config))
    assert code == 0, err
    assert not json_lines(err)
    [alert_id] = hook.delivered_ids()
    [poll] = [line for line in err.splitlines() if "INFO rarewatch.pipeline: poll source=wire " in line]
    assert "status=ok items=1 new=1 matched=1 duration_ms=" in poll
    [alert] = [line for line in err.splitlines() if f": alert alert={alert_id} " in line]
    assert "rule=test-licensing" in alert and "source=wire" in alert
    assert 'publisher="Metals & \\"Mining\\" Daily"' in alert  # quoted: a value with spaces stays one field
    delivery = f"delivery delivery={alert_id}/tickets alert={alert_id} destination=tickets outcome=delivered"
    assert any(delivery in line and line.endswith("attempt=1") for line in err.splitlines()), err


async def test_run_with_json_logs_says_what_it_does(tmp_path: Path) -> None:
    port = free_port()
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(STORIES[:1], title=PUBLISHER)
        config = with_log_format(write_config(tmp_path, feeds.url("/wire.xml"), hook.url, port=port), "json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            for _ in range(300):
                if hook.delivered_ids():
                    break
                await asyncio.sleep(0.1)
            assert hook.delivered_ids()
            await asyncio.sleep(0.5)  # the delivery's log line follows the receiver's answer
        finally:
            proc.send_signal(signal.SIGTERM)
            _, raw = await asyncio.wait_for(proc.communicate(), 30)
    err = raw.decode()
    assert proc.returncode == 0, err
    lines = json_lines(err)
    assert all(line.startswith("{") for line in err.splitlines() if line), "run logs only JSON lines"
    [alert_id] = hook.delivered_ids()
    polls = {p["source"]: p for p in events(lines, "poll")}
    assert polls["wire"]["status"] == "ok" and polls["wire"]["new"] == 1
    assert [a["alert"] for a in events(lines, "alert")] == [alert_id]
    outcomes = {(d["delivery"], d["outcome"]) for d in events(lines, "delivery")}
    assert (f"{alert_id}/tickets", "delivered") in outcomes
    assert (f"{alert_id}/archive", "delivered") in outcomes
