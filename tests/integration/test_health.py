"""Liveness and readiness on the real aiohttp app (`build_web_app`, the app `rarewatch run` serves), with a
real redis-server of its own that the test stops and starts, a real feed server and a real rule reload."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from rarewatch.app import build_web_app
from rarewatch.health import POLLER
from rarewatch.settings import Settings
from tests.conftest import IN_CI, RedisServer
from tests.support import TEST_RULES, FeedServer, feed_server, rss

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with feed_server() as fs:
        yield fs


RELOAD_TOKEN = "health-test-reload-token"


def settings_for(tmp_path: Path, feeds: FeedServer, redis: RedisServer) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=redis.url,
        rules=[str(rules)],
        sources=[  # type: ignore[list-item]
            {"name": "wire", "type": "feed", "url": feeds.url("/wire.xml"), "interval": "1h"},
            {"name": "gone", "type": "feed", "url": feeds.url("/gone.xml"), "interval": "1h"},
        ],
        destinations=[{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],  # type: ignore[list-item]
        routes=[{"to": ["archive"]}],  # type: ignore[list-item]
        http={"token": RELOAD_TOKEN},  # type: ignore[arg-type]
        config_dir=tmp_path,
    )


async def get(session: aiohttp.ClientSession, server: TestServer, path: str) -> tuple[int, Any]:
    async with session.get(server.make_url(path)) as resp:
        return resp.status, await resp.json()


async def ready_with_failing_source(session: aiohttp.ClientSession, server: TestServer) -> dict[str, Any]:
    for _ in range(100):  # both sources are polled at start; wait until "gone" has failed once
        status, body = await get(session, server, "/readyz")
        if status == 200 and body["sources_failing"]:
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready with the failing source listed: {status} {body}")


async def test_liveness_stays_up_while_readiness_follows_the_store_rules_and_scheduler(
    tmp_path: Path, feeds: FeedServer, own_redis: RedisServer
) -> None:
    feeds.feeds["/wire.xml"] = rss([])
    app = build_web_app(settings_for(tmp_path, feeds, own_redis))
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        body = await ready_with_failing_source(session, server)
        assert body["status"] == "ready"
        assert {name: check["status"] for name, check in body["checks"].items()} == {
            "store": "ok",
            "rules": "ok",
            "scheduler": "ok",
        }
        [gone] = body["sources_failing"]
        assert gone["name"] == "gone" and gone["consecutive_failures"] == 1 and "404" in gone["last_error"]
        assert body["checks"]["rules"]["last_reload_error"] is None
        assert (await get(session, server, "/-/ready"))[0] == 200

        # A broken rule file: the reload fails, the old rules stay, readiness shows the error's file:line.
        rule_file = tmp_path / "rules" / "test.yaml"
        rule_file.write_text(TEST_RULES + "\n---\nid: Bad Id\n", encoding="utf-8")
        auth = {"Authorization": f"Bearer {RELOAD_TOKEN}"}
        async with session.post(server.make_url("/-/reload"), headers=auth) as resp:
            assert resp.status == 400
        status, body = await get(session, server, "/readyz")
        assert status == 200, "the rules in use stay in use: still ready"
        assert f"{rule_file}:" in body["checks"]["rules"]["last_reload_error"]

        # The store goes away: alive, not ready, and readiness says why.
        own_redis.stop()
        status, body = await get(session, server, "/readyz")
        assert status == 503
        assert body["status"] == "not ready"
        assert body["checks"]["store"]["status"] == "fail" and body["checks"]["store"]["error"]
        assert body["checks"]["scheduler"]["status"] == "ok"
        assert (await get(session, server, "/-/ready"))[0] == 503
        for path in ("/healthz", "/-/healthy"):
            status, alive = await get(session, server, path)
            assert (status, alive["status"]) == (200, "ok")
        async with session.get(server.make_url("/metrics")) as resp:
            assert resp.status == 200
            assert "rarewatch_store_up 0.0" in await resp.text()

        # Back: ready again, without a restart.
        own_redis.start()
        status, body = await get(session, server, "/readyz")
        assert status == 200, body

        # The scheduler stops: not ready.
        await app[POLLER].stop()
        status, body = await get(session, server, "/readyz")
        assert status == 503
        assert body["checks"]["scheduler"] == {
            "status": "fail",
            "scheduling": False,
            "delivery_workers": False,
        }
