"""The `rarewatch` command as a user runs it: real processes, local servers, real files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def rarewatch(*args: str, stdin: bytes | None = None, limit: float = 60) -> tuple[int, str, str]:
    """Run `python -m rarewatch ARGS` without blocking the event loop that serves the test's servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rarewatch",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_demo_runs_offline_and_prints_alerts() -> None:
    code, out, err = await rarewatch("demo")
    assert code == 0, err
    assert "serving sample feeds at http://127.0.0.1:" in out
    assert "export-licensing" in out
    assert "broken-source" in out and "error" in out, "the broken sample source is reported"
    assert "fishing licence" not in out.split("\n\n")[1], "a trap story never alerts"
    assert "matched in: article" in out, "the sample article is read and its story alerts"
    summary = [line for line in out.splitlines() if "alerts delivered to the console" in line]
    assert summary and int(summary[0].split()[0]) >= 3


def write_config(tmp_path: Path, feed_url: str, hook_url: str, *, port: int = 8080) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    (tmp_path / "out").mkdir(exist_ok=True)  # a jsonl destination's folder must exist
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        f"""\
store: sqlite:///state.db
rules: [rules/]
sources:
  - {{name: wire, type: feed, url: "{feed_url}", interval: 1m}}
  - {{name: gone, type: feed, url: "{feed_url}.missing", interval: 1m}}
destinations:
  - {{name: tickets, type: webhook, url: "{hook_url}", secret: "{SECRET}"}}
  - {{name: archive, type: jsonl, path: out/alerts.jsonl}}
routes:
  - {{to: [tickets, archive]}}
http: {{host: 127.0.0.1, port: {port}}}
""",
        encoding="utf-8",
    )
    return config


def story(n: int, title: str) -> dict[str, str]:
    return {
        "title": title,
        "link": f"https://news.example.org/{n}",
        "guid": f"g-{n}",
        "date": format_datetime(datetime.now(UTC) - timedelta(minutes=n), usegmt=True),
    }


async def test_once_twice_delivers_nothing_the_second_time(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [
                story(1, "Rare earth export licence regime widened"),
                story(2, "Magnet shortage halts production at motor plant"),
                story(3, "Bakery wins award"),
            ]
        )
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url)
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err
        assert "1 failed" in err and "source gone" in err and "404" in err
        assert len(hook.delivered_ids()) == 2
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err
        assert "0 new alerts" in err
        assert len(hook.requests) == 2, "nothing is delivered twice"
    lines = (tmp_path / "out" / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(x)["title"] for x in lines) == [
        "Magnet shortage halts production at motor plant",
        "Rare earth export licence regime widened",
    ]


async def test_once_delivers_more_than_one_batch_and_counts_what_is_left(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [story(n, f"Rare earth export licence regime widened for magnet grade {n}") for n in range(1, 8)]
        )
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url)
        config.write_text(config.read_text() + "outbox: {batch: 2}\n", encoding="utf-8")
        hook.script = [503]  # one failed attempt: its retry is not due before once ends
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err
        alerts = int(err.split(" new alerts")[0].rsplit(" ", 1)[1])
        assert alerts >= 5, err
        # Every alert reached the archive (batch 2 is no limit for once), all but one the webhook.
        assert f"{2 * alerts - 1} delivered, 1 to retry, 0 dead" in err
        assert len(set(hook.delivered_ids())) == alerts - 1


async def test_bad_config_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("store: sqlite:///x.db\nsources:\n  - {name: a, type: rss, url: 'https://x.org/'}\n")
    code, _, err = await rarewatch("once", "--config", str(config))
    assert code == 2
    assert f"{config}:3" in err


async def test_run_serves_healthz_delivers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([story(1, "Rare earth export licence regime widened")])
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url, port=port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            health = None
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                            health = (resp.status, await resp.json())
                            if hook.delivered_ids():
                                break
                    except aiohttp.ClientConnectionError:
                        continue
                assert health is not None and health[0] == 200 and health[1]["status"] == "ok"
                assert len(hook.delivered_ids()) == 1
                for _ in range(50):  # both sources were polled at start; wait until "gone" has failed
                    async with session.get(f"http://127.0.0.1:{port}/api/v1/sources") as resp:
                        sources = {s["name"]: s for s in (await resp.json())["sources"]}
                    if sources["gone"].get("consecutive_failures"):
                        break
                    await asyncio.sleep(0.1)
                assert sources["wire"]["consecutive_failures"] == 0
                assert sources["gone"]["consecutive_failures"] >= 1 and "404" in sources["gone"]["last_error"]
                delivered = 'rarewatch_deliveries_total{destination="tickets",outcome="delivered"}'
                for _ in range(50):  # the flush is counted once it has recorded the delivery
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        metrics = await resp.text()
                    if delivered in metrics:
                        break
                    await asyncio.sleep(0.1)
                assert 'rarewatch_alerts_total{source="wire"} 1.0' in metrics
                assert delivered in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()


async def test_rules_check_passes_on_the_bundled_pack() -> None:
    code, out, err = await rarewatch("rules", "check")
    assert code == 0, out + err


async def test_match_reads_jsonl_and_writes_one_line_per_input(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES, encoding="utf-8")
    items = (
        json.dumps({"id": "x1", "title": "Rare-earth export licences tightened"})
        + "\n"
        + "not json\n"
        + json.dumps({"title": "稀土出口管制升级"})
        + "\n"
        + json.dumps({"id": "x4", "title": "Nothing to see"})
        + "\n"
    )
    code, out, err = await rarewatch("match", "--rules", str(rules), "--explain", stdin=items.encode())
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["id"] for x in lines] == ["x1", 2, 3, "x4"]
    assert lines[0]["matches"][0]["rule"] == "test-licensing"
    assert lines[0]["matches"][0]["terms"]
    assert lines[1]["matches"] == [] and "error" in lines[1]
    assert [m["rule"] for m in lines[2]["matches"]] == ["test-licensing"]
    assert lines[3]["matches"] == []


async def test_match_writes_back_an_id_holding_a_lone_surrogate(tmp_path: Path) -> None:
    # JSON lets an id hold "\\ud800", which no UTF-8 output takes: written back escaped, never a traceback.
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES, encoding="utf-8")
    items = b'{"id": "\\ud800", "title": "Rare-earth export licences tightened"}\n{"id": "ok"}\n'
    for jobs in ("1", "2"):
        code, out, err = await rarewatch("match", "--rules", str(rules), "--jobs", jobs, stdin=items)
        assert code == 0, err
        assert "Traceback" not in err
        first, second = (json.loads(x) for x in out.splitlines())
        assert first["id"] == "\ud800" and [m["rule"] for m in first["matches"]] == ["test-licensing"]
        assert second == {"id": "ok", "matches": []}


async def test_match_with_invalid_rules_exits_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("id: x\ntitle: t\ncategory: nonsense\nseverity: high\nmatch: {any: [a]}\n")
    code, _, err = await rarewatch("match", "--rules", str(rules), stdin=b"{}\n")
    assert code == 2
    assert str(rules) in err


async def test_eval_by_lang_prints_the_scores_the_confusion_table_and_a_report_per_language(
    tmp_path: Path,
) -> None:
    data = tmp_path / "set.jsonl"
    lines = [
        {
            "id": "en-1",
            "title": "China tightens rare earth export licence rules",
            "summary": "",
            "lang": "en",
            "labels": ["export-licensing"],
        },
        {
            "id": "zh-1",
            "title": "稀土出口管制升级",
            "summary": "",
            "lang": "zh",
            "labels": ["export-licensing"],
            "script": "hans",
            "origin": "synthetic",
        },
        {"id": "en-2", "title": "Nothing to see", "summary": "", "lang": "en", "labels": []},
    ]
    data.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES, encoding="utf-8")
    code, out, err = await rarewatch("eval", "--rules", str(rules), "--by", "lang", str(data))
    assert code == 0, err
    assert out.index("precision") < out.index("confusion (items;") < out.index("== lang = en: 2 items")
    assert "== lang = zh: 1 item, 0 wrong" in out
    row = next(line for line in out.splitlines() if line.startswith("(negative)"))
    assert row.split()[1:] == [".", ".", ".", ".", ".", "1"]
    code, _, err = await rarewatch("eval", "--by", "title", str(data))
    assert code == 2 and "invalid choice" in err
