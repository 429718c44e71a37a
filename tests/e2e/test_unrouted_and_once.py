"""No silent loss, as an operator sees it: real `rarewatch` processes, a real feed server and a real
webhook receiver on 127.0.0.1, a real SQLite file.

An alert no route takes is recorded and resent exactly once; `once` says per source what a first poll
marked seen without an alert, and `--backfill` alerts on those on purpose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.e2e.test_cli import SECRET, rarewatch
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver


def story(n: int, title: str, age: timedelta) -> dict[str, str]:
    published = datetime.now(UTC) - age
    return {
        "title": title,
        "link": f"https://news.example.org/{n}",
        "guid": f"g-{n}",
        "date": format_datetime(published, usegmt=True),
    }


def config(tmp_path: Path, feed_url: str, hook_url: str, routes: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    path = tmp_path / "rarewatch.yaml"
    path.write_text(
        f"""\
store: sqlite:///state.db
rules: [rules/]
sources:
  - {{name: wire, type: feed, url: "{feed_url}", interval: 1m, enrich: false}}
destinations:
  - {{name: tickets, type: webhook, url: "{hook_url}", secret: "{SECRET}"}}
{routes}
""",
        encoding="utf-8",
    )
    return path


LICENSING_ONLY = "routes:\n  - {match: {category: [export-licensing]}, to: [tickets]}"


async def test_an_unrouted_alert_is_recorded_and_resent_exactly_once(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [
                story(1, "Rare earth export licence regime widened", timedelta(minutes=5)),
                story(2, "Magnet shortage halts production at motor plant", timedelta(minutes=6)),
            ]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, LICENSING_ONLY)
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        assert len(hook.requests) == 1, "only the licensing story has a route"
        [logged] = [x for x in err.splitlines() if "WARNING rarewatch.pipeline: unrouted alert=" in x]
        assert "source=wire" in logged and "category=supply-disruption" in logged, (
            "logged at warning, with ids"
        )
        assert "1 new alerts were taken by no route" in err

        code, out, err = await rarewatch("alerts", "unrouted", "--config", str(path))
        assert code == 0, err
        [line] = [x for x in out.splitlines() if "Magnet shortage" in x]
        alert_id = line.split()[0]
        assert "1 unrouted alerts" in out

        code, out, err = await rarewatch(
            "alerts", "resend", alert_id, "--to", "tickets", "--config", str(path)
        )
        assert code == 0, err
        assert f"alert {alert_id} delivered to tickets" in out
        assert hook.delivered_ids().count(alert_id) == 1
        assert [p["title"] for p in hook.payloads()][-1] == "Magnet shortage halts production at motor plant"

        code, _, err = await rarewatch("alerts", "resend", alert_id, "--to", "tickets", "--config", str(path))
        assert code == 1 and "already sent to tickets" in err
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        assert len(hook.requests) == 2, "resent exactly once, and never again by a later poll"
        code, out, _ = await rarewatch("alerts", "unrouted", "--config", str(path))
        assert "0 unrouted alerts" in out

        code, _, err = await rarewatch("alerts", "resend", "nope", "--to", "tickets", "--config", str(path))
        assert code == 2 and "no unrouted alert 'nope'" in err
        code, _, err = await rarewatch("alerts", "resend", alert_id, "--to", "nowhere", "--config", str(path))
        assert code == 2 and "no destination named 'nowhere'" in err


async def test_fallback_to_takes_what_no_route_took(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [story(2, "Magnet shortage halts production at motor plant", timedelta(minutes=6))]
        )
        routes = LICENSING_ONLY + "\nfallback_to: [tickets]"
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, routes)
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        assert len(hook.requests) == 1 and " unrouted alert=" not in err
    bad = path.read_text(encoding="utf-8").replace("fallback_to: [tickets]", "fallback_to: [tikets]")
    path.write_text(bad, encoding="utf-8")
    code, _, err = await rarewatch("once", "--config", str(path))
    assert code == 2 and "fallback_to names unknown destination(s): tikets" in err


def table(err: str) -> dict[str, list[str]]:
    lines = err.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("source "))
    header = lines[start].split()
    assert header == ["source", "status", "fetched", "new", "matched", "seen-without-alert", "unrouted"]
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("once:"):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


async def test_once_counts_per_source_and_backfill_delivers_old_matches_once(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [
                story(1, "Rare earth export licence regime widened", timedelta(hours=1)),
                story(2, "Rare earth export licence rules for magnets", timedelta(days=3)),
                story(3, "Magnet shortage halts production at motor plant", timedelta(days=5)),
                story(4, "Magnet shortage halts production again", timedelta(days=20)),
                story(5, "Bakery wins award", timedelta(hours=2)),
            ]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, "routes: [{to: [tickets]}]")
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        assert table(err)["wire"] == ["ok", "5", "1", "4", "3", "0"]
        assert "3 matching items older than the first poll's initial_lookback (2d" in err
        assert len(hook.requests) == 1

        code, _, err = await rarewatch("once", "--config", str(path), "--backfill", "7d")
        assert code == 0, err
        assert table(err)["wire"] == ["ok", "5", "2", "4", "0", "0"], "the two within 7 days, not day 20"
        titles = sorted(p["title"] for p in hook.payloads())
        assert titles == [
            "Magnet shortage halts production at motor plant",
            "Rare earth export licence regime widened",
            "Rare earth export licence rules for magnets",
        ]
        code, _, err = await rarewatch("once", "--config", str(path), "--backfill", "7d")
        assert code == 0, err
        assert table(err)["wire"][2] == "0" and len(hook.requests) == 3, "a backfill delivers once"

    code, _, err = await rarewatch("once", "--config", str(path), "--backfill", "soon")
    assert code == 2 and "--backfill" in err and "Traceback" not in err


async def test_a_first_poll_with_backfill_alerts_within_the_span(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [
                story(2, "Rare earth export licence rules for magnets", timedelta(days=3)),
                story(4, "Magnet shortage halts production again", timedelta(days=20)),
            ]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, "routes: [{to: [tickets]}]")
        code, _, err = await rarewatch("once", "--config", str(path), "--backfill", "7d")
        assert code == 0, err
        assert table(err)["wire"] == ["ok", "2", "1", "2", "1", "0"]
        assert [p["title"] for p in hook.payloads()] == ["Rare earth export licence rules for magnets"]
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("SELECT count(*) FROM unrouted").fetchone() == (0,)
    conn.close()


async def test_run_counts_unrouted_alerts_and_the_api_shows_them(tmp_path: Path) -> None:
    port = free_port()
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [
                story(1, "Rare earth export licence regime widened", timedelta(minutes=5)),
                story(2, "Magnet shortage halts production at motor plant", timedelta(minutes=6)),
            ]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, LICENSING_ONLY)
        path.write_text(path.read_text() + f"http: {{host: 127.0.0.1, port: {port}}}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                metrics = ""
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    try:
                        async with session.get(f"{base}/metrics") as resp:
                            metrics = await resp.text()
                    except aiohttp.ClientConnectionError:
                        continue
                    if "rarewatch_alerts_unrouted_total{" in metrics:
                        break
                assert 'rarewatch_alerts_unrouted_total{source="wire"} 1.0' in metrics
                async with session.get(f"{base}/api/v1/alerts") as resp:
                    listed = {a["title"]: a["unrouted"] for a in (await resp.json())["alerts"]}
                assert listed == {
                    "Rare earth export licence regime widened": False,
                    "Magnet shortage halts production at motor plant": True,
                }
                async with session.get(f"{base}/api/v1/alerts?unrouted=true") as resp:
                    only = (await resp.json())["alerts"]
                assert [(a["title"], a["unrouted"]) for a in only] == [
                    ("Magnet shortage halts production at motor plant", True)
                ]
                async with session.get(f"{base}/api/v1/alerts?unrouted=maybe") as resp:
                    assert resp.status == 400
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert len(hook.requests) == 1
