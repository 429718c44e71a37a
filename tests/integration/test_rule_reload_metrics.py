"""The rule-reload metrics on the real aiohttp app (`build_web_app`, what `rarewatch run` serves) with a
real SQLite store: a failed reload shows (gauge and counter) while the pack in use, its version and its
load time stay; a good reload moves them. The exposition passes `promtool check metrics`."""

from __future__ import annotations

import asyncio
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from rarewatch.app import build_web_app
from rarewatch.settings import Settings
from tests.e2e.test_metrics import promtool, value
from tests.k8s_layout import project_configmap, update_configmap
from tests.support import TEST_RULES

TOKEN = "rule-reload-metrics-token"
EXTRA_RULE = """
---
id: test-extra
title: Extra
category: export-licensing
severity: high
match: {all: [gallium]}
"""


def settings_for(tmp_path: Path, **extra: Any) -> Settings:
    if not (tmp_path / "rules").exists():
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store="sqlite:///state.db",
        rules=["rules/"],
        sources=[],
        destinations=[{"name": "log", "type": "console"}],  # type: ignore[list-item]
        routes=[{"to": ["log"]}],  # type: ignore[list-item]
        http={"token": TOKEN},  # type: ignore[arg-type]
        config_dir=tmp_path,
        **extra,
    )


async def scrape(session: aiohttp.ClientSession, server: TestServer) -> str:
    async with session.get(server.make_url("/metrics")) as resp:
        assert resp.status == 200
        return await resp.text()


async def reload(session: aiohttp.ClientSession, server: TestServer) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.post(server.make_url("/-/reload"), headers=headers) as resp:
        return resp.status


def packs(text: str) -> list[str]:
    """The versions of `rarewatch_rules_pack_info` series in the exposition."""
    prefix = 'rarewatch_rules_pack_info{version="'
    return [line[len(prefix) :].split('"')[0] for line in text.splitlines() if line.startswith(prefix)]


async def test_a_failed_reload_shows_and_keeps_the_pack_in_use_a_good_one_moves_it(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules" / "test.yaml"
    async with (
        TestServer(build_web_app(settings_for(tmp_path)), host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
    ):
        start = await scrape(session, server)
        [first] = packs(start)
        loaded_at = value(start, "rarewatch_rules_last_reload_success_timestamp_seconds")
        assert value(start, "rarewatch_rules_last_reload_successful") == 1
        assert value(start, "rarewatch_rules_loads_total", outcome="success") == 1
        assert value(start, "rarewatch_rules_loads_total", outcome="failure") == 0, "exposed before any"
        assert value(start, "rarewatch_rules_loaded") == 2

        rule_file.write_text(TEST_RULES + "\n---\nid: Bad Id\n", encoding="utf-8")
        assert await reload(session, server) == 400
        failed = await scrape(session, server)
        assert value(failed, "rarewatch_rules_last_reload_successful") == 0
        assert value(failed, "rarewatch_rules_loads_total", outcome="failure") == 1
        assert value(failed, "rarewatch_rules_last_reload_success_timestamp_seconds") == loaded_at
        assert packs(failed) == [first], "the pack in use stays in use"
        assert value(failed, "rarewatch_rules_loaded") == 2

        rule_file.write_text(TEST_RULES + EXTRA_RULE, encoding="utf-8")
        assert await reload(session, server) == 200
        fixed = await scrape(session, server)
    assert value(fixed, "rarewatch_rules_last_reload_successful") == 1
    assert value(fixed, "rarewatch_rules_loads_total", outcome="success") == 2
    assert value(fixed, "rarewatch_rules_loads_total", outcome="failure") == 1, "a counter: the failure stays"
    assert (value(fixed, "rarewatch_rules_last_reload_success_timestamp_seconds") or 0) > (loaded_at or 0)
    [second] = packs(fixed)
    assert second != first, "one series, the new pack's version"
    assert value(fixed, "rarewatch_rules_loaded") == 3

    check = await asyncio.create_subprocess_exec(
        promtool(), "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, lint = await check.communicate(fixed.encode())
    assert check.returncode == 0, out.decode() + lint.decode()


async def test_watched_rules_follow_a_configmap_update(tmp_path: Path) -> None:
    """With `watch_rules`, the kubelet's update of a mounted ConfigMap (new folder, `..data` swapped, old
    folder deleted) reloads the rules: a rules ConfigMap change needs no restart."""
    project_configmap({"test.yaml": TEST_RULES}, tmp_path / "rules")
    settings = settings_for(tmp_path, watch_rules=True)
    async with (
        TestServer(build_web_app(settings), host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
    ):
        [first] = packs(await scrape(session, server))
        for attempt in range(100):
            if attempt % 20 == 0:  # again, in case the watcher was not watching yet (it starts with the app)
                update_configmap({"test.yaml": TEST_RULES + EXTRA_RULE}, tmp_path / "rules")
            text = await scrape(session, server)
            if value(text, "rarewatch_rules_loaded") == 3:
                break
            await asyncio.sleep(0.1)
    assert value(text, "rarewatch_rules_loaded") == 3, "the update was reloaded"
    assert value(text, "rarewatch_rules_last_reload_successful") == 1
    assert value(text, "rarewatch_rules_loads_total", outcome="failure") == 0, "never half an update"
    assert packs(text) != [first]
