"""Rules reload without a restart: POST /-/reload, SIGHUP, and (with watch_rules) a file change."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.e2e.test_cli import write_config
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver

TOKEN = "reload-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTTP_WITH_TOKEN = "http: {host: 127.0.0.1, port: %d, token: " + TOKEN + "}"

EXTRA_RULE = """
---
id: test-extra
title: Extra (test)
category: trade-restrictions
severity: low
match: {all: ["rare earth", "embargo"]}
"""


async def rules_version(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
        return str((await resp.json())["rules"])


async def wait_for_version_change(session: aiohttp.ClientSession, port: int, old: str) -> str:
    for _ in range(100):
        version = await rules_version(session, port)
        if version != old:
            return version
        await asyncio.sleep(0.1)
    raise AssertionError("the rules were not reloaded")


async def test_rules_reload_by_api_signal_and_file_watch(tmp_path: Path) -> None:
    port = free_port()
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([])
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url, port=port)
        text = config.read_text().replace(f"http: {{host: 127.0.0.1, port: {port}}}", HTTP_WITH_TOKEN % port)
        config.write_text(text + "watch_rules: true\n")
        rule_file = tmp_path / "rules" / "test.yaml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(100):
                    try:
                        first = await rules_version(session, port)
                        break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)

                # An invalid rule file: 400 naming file and line; the old rules stay in use.
                rule_file.write_text(TEST_RULES + "\n---\nid: broken\ntitle: x\ncategory: nope\n")
                async with session.post(f"http://127.0.0.1:{port}/-/reload", headers=AUTH) as resp:
                    assert resp.status == 400
                    error = (await resp.json())["error"]
                assert f"{rule_file}:" in error
                assert await rules_version(session, port) == first

                # A valid change through the API.
                rule_file.write_text(TEST_RULES + EXTRA_RULE)
                async with session.post(f"http://127.0.0.1:{port}/-/reload", headers=AUTH) as resp:
                    assert resp.status == 200
                    body = await resp.json()
                assert body["rules"] == 3
                second = body["version"]
                assert second != first

                # SIGHUP after another change (the watcher may also pick it up; either way it reloads).
                rule_file.write_text(TEST_RULES)
                proc.send_signal(signal.SIGHUP)
                third = await wait_for_version_change(session, port, second)
                assert third == first, "back to the original pack"

                # The file watcher alone.
                rule_file.write_text(TEST_RULES + EXTRA_RULE)
                assert await wait_for_version_change(session, port, third) == second
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert "rules not reloaded" in err.decode()
