"""`rarewatch run`'s /metrics answers the operator's questions, and `promtool check metrics` accepts it.

A real `rarewatch run` subprocess polls a local feed server (one source fine, one failing) and delivers
to two local webhook receivers: one refuses for good (dead letter), one keeps failing (pending)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import IN_CI, free_port
from tests.e2e.test_cli import story
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool is not installed; .ci/run must install it (Debian package prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def write_config(tmp_path: Path, feed_url: str, refusing: str, failing: str, port: int) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        f"""\
store: sqlite:///state.db
rules: [rules/]
sources:
  - {{name: wire, type: feed, url: "{feed_url}", interval: 1h}}
  - {{name: gone, type: feed, url: "{feed_url}.missing", interval: 1h}}
destinations:
  - {{name: refusing, type: webhook, url: "{refusing}"}}
  - {{name: failing, type: webhook, url: "{failing}"}}
routes:
  - {{to: [refusing, failing]}}
http: {{host: 127.0.0.1, port: {port}}}
""",
        encoding="utf-8",
    )
    return config


def value(text: str, name: str, **labels: str) -> float | None:
    """A sample's value from the exposition (labels in any order), or None."""
    for line in text.splitlines():
        metric, _, rest = line.partition(" ")
        base, _, inner = metric.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', inner))
        if base == name and found == labels:
            return float(rest)
    return None


async def test_metrics_answer_the_operators_questions_and_pass_promtool(tmp_path: Path) -> None:
    checker = promtool()
    port = free_port()
    async with feed_server() as feeds, webhook_receiver() as refusing, webhook_receiver() as failing:
        feeds.feeds["/wire.xml"] = rss([story(1, "Rare earth export licence regime widened")])
        refusing.script = [400] * 100
        failing.script = [503] * 100
        config = write_config(tmp_path, feeds.url("/wire.xml"), refusing.url, failing.url, port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            text = ""
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                            text = await resp.text()
                    except aiohttp.ClientConnectionError:
                        continue
                    dead = value(text, "rarewatch_outbox_dead", destination="refusing")
                    gone = value(text, "rarewatch_source_consecutive_failures", source="gone")
                    # the failed delivery as the scraped text shows it, not as the receiver saw it: the
                    # receiver can hold the request before the service has counted its answer
                    failed = value(
                        text, "rarewatch_deliveries_total", destination="failing", outcome="failed"
                    )
                    if dead == 1 and gone == 1 and (failed or 0) >= 1:
                        break
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()

    check = await asyncio.create_subprocess_exec(
        checker, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE
    )  # fmt: skip
    out, lint = await check.communicate(text.encode())
    assert check.returncode == 0, out.decode() + lint.decode()

    assert value(text, "rarewatch_source_fetches_total", source="wire", outcome="ok") == 1
    assert value(text, "rarewatch_source_fetches_total", source="gone", outcome="error") == 1
    assert value(text, "rarewatch_source_fetch_duration_seconds_count", source="wire") == 1
    assert value(text, "rarewatch_source_consecutive_failures", source="wire") == 0
    assert value(text, "rarewatch_source_consecutive_failures", source="gone") == 1
    assert value(text, "rarewatch_items_seen_total", source="wire") == 1
    assert value(text, "rarewatch_items_new_total", source="wire") == 1
    matched = {"source": "wire", "rule": "test-licensing", "category": "export-licensing"}
    assert value(text, "rarewatch_items_matched_total", **matched) == 1
    assert value(text, "rarewatch_deliveries_total", destination="refusing", outcome="dead") == 1
    assert (value(text, "rarewatch_deliveries_total", destination="failing", outcome="failed") or 0) >= 1
    assert value(text, "rarewatch_outbox_dead", destination="refusing") == 1
    assert value(text, "rarewatch_outbox_pending", destination="refusing") == 0
    assert value(text, "rarewatch_outbox_pending", destination="failing") == 1
    age = value(text, "rarewatch_outbox_oldest_pending_age_seconds", destination="failing")
    assert age is not None and 0 < age < 120
    assert value(text, "rarewatch_store_up") == 1
    assert value(text, "rarewatch_replicas_live") == 1, "SQLite: one process, no leases"
    assert value(text, "rarewatch_rules_last_reload_successful") == 1
    assert value(text, "rarewatch_rules_loaded") == 2
    assert (value(text, "rarewatch_rules_last_reload_success_timestamp_seconds") or 0) > 1.7e9
