"""Redis restarted mid-run with persistence (an append-only file): two `rarewatch run` replicas keep
running while it is down, and once it is back every expected alert reaches a real webhook receiver exactly
once: nothing lost (stories published before, during and after the restart), nothing sent twice, and no
"store lost its memory" alarm (the identity marker survived on disk)."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.e2e.test_replicas import FEEDS, INTERVAL, feed_farm, start, wait_for, write_config
from tests.support import TEST_RULES, WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.redis

ROUNDS = 3  # stories published before the restart, just before it (polls in flight), and while it is down


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    (tmp_path / "redis").mkdir()
    server = RedisServer(binary, tmp_path / "redis", persistent=True)
    server.start()
    yield server
    server.stop()


def notices(hook: WebhookReceiver) -> list[str]:
    """The `n-round` tag of each story delivered (2xx), duplicates kept."""
    found = []
    for (_headers, _body, status), payload in zip(hook.requests, hook.payloads(), strict=True):
        title = payload["alerts"][0]["title"] if "alerts" in payload else payload.get("title", "")
        if 200 <= status < 300 and (tag := re.search(r"\(notice (\d+-\d+)\)", title)):
            found.append(tag.group(1))
    return found


async def test_a_redis_restart_with_persistence_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, persistent_redis: RedisServer
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    procs = {}
    try:
        async with feed_farm() as (farm, base), webhook_receiver() as hook:
            for n in range(FEEDS):
                farm.add_story(n, 0)
            for name in ("r1", "r2"):
                config = write_config(tmp_path, name, persistent_redis.url, base, hook.url)
                procs[name] = await start(config, tmp_path / f"{name}.log")
            await wait_for(lambda: len(hook.delivered_ids()) >= FEEDS, 60, "the first round of alerts")

            for n in range(FEEDS):
                farm.add_story(n, 1)
            await asyncio.sleep(INTERVAL / 2)  # some of round 1 polled, claimed or in flight
            persistent_redis.shutdown_save()
            for n in range(FEEDS):
                farm.add_story(n, 2)  # published while Redis is down
            await asyncio.sleep(2 * INTERVAL)  # polls and flushes fail meanwhile; the replicas keep running
            assert all(proc.returncode is None for proc in procs.values()), "a replica exited"
            persistent_redis.start()

            await wait_for(lambda: len(hook.delivered_ids()) >= ROUNDS * FEEDS, 90, "every alert")
            await asyncio.sleep(3 * INTERVAL)  # room for a duplicate to show up
            ids, tags = hook.delivered_ids(), notices(hook)
            expected = {f"{n}-{r}" for n in range(FEEDS) for r in range(ROUNDS)}
            assert sorted(tags) == sorted(expected), "every story delivered exactly once"
            assert len(ids) == len(set(ids)) == ROUNDS * FEEDS, "distinct webhook-ids equal deliveries"
            assert not [i for i in ids if i.startswith("operational-store-")], "no store-loss alarm"
            logs = "".join((tmp_path / f"{name}.log").read_text(encoding="utf-8") for name in procs)
            assert "LOST ITS MEMORY" not in logs
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
