"""`rarewatch_replicas_live` on the real aiohttp app: two replicas on one real Redis each count two, and
the one left counts itself alone once the other has stopped (SIGTERM leaves the membership at once)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from rarewatch.app import build_web_app
from rarewatch.settings import Settings
from tests.conftest import IN_CI, RedisServer
from tests.e2e.test_metrics import value
from tests.support import TEST_RULES

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: no other test's replicas in its membership."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server
    server.stop()


def replica(tmp_path: Path, name: str, store: str) -> Settings:
    folder = tmp_path / name
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=store,
        rules=["rules/"],
        sources=[],
        destinations=[{"name": "log", "type": "console"}],  # type: ignore[list-item]
        routes=[{"to": ["log"]}],  # type: ignore[list-item]
        config_dir=folder,
    )


async def live(session: aiohttp.ClientSession, server: TestServer, want: float) -> float | None:
    """`rarewatch_replicas_live` as `server` reports it, scraped until it is `want` (a replica learns of
    the others at its next heartbeat) or 100 scrapes have passed."""
    got = None
    for _ in range(100):
        async with session.get(server.make_url("/metrics")) as resp:
            got = value(await resp.text(), "rarewatch_replicas_live")
        if got == want:
            break
        await asyncio.sleep(0.1)
    return got


async def test_each_replica_counts_the_replicas_sharing_its_store(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    first = TestServer(build_web_app(replica(tmp_path, "a", own_redis.url)), host="127.0.0.1")
    second = TestServer(build_web_app(replica(tmp_path, "b", own_redis.url)), host="127.0.0.1")
    async with first, aiohttp.ClientSession() as session:
        assert await live(session, first, 1) == 1, "alone on the store"
        async with second:
            assert await live(session, second, 2) == 2, "it joined and saw the first"
            assert await live(session, first, 2) == 2, "the first saw it at its next heartbeat"
        assert await live(session, first, 1) == 1, "the second left on shutdown"
