"""Redis going away mid-service: polls and flushes log and carry on; every alert is delivered exactly once
when Redis answers again."""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from rarewatch.clock import FakeClock
from rarewatch.runtime import open_runtime
from rarewatch.scheduler import Poller
from rarewatch.settings import Settings
from tests.conftest import RedisServer
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver

NOW = datetime.now(UTC).replace(microsecond=0)


def item(n: int, title: str) -> dict[str, str]:
    return {
        "title": title,
        "link": f"https://news.example/{n}",
        "guid": f"o-{n}",
        "date": format_datetime(NOW - timedelta(minutes=n), usegmt=True),
    }


@pytest.mark.redis
async def test_service_survives_a_redis_outage_and_delivers_once(
    tmp_path: Path, redis_server: RedisServer | None, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if redis_server is None or redis_server.proc is None:
        pytest.skip("needs the suite's own redis-server (REDIS_URL is set): the test pauses the process")
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([item(1, "Rare earth export licence regime widened")])
        settings = Settings(
            store=f"{redis_url}?socket_timeout=0.5&socket_connect_timeout=0.5",
            rules=[str(tmp_path / "rules.yaml")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],
            destinations=[{"name": "tickets", "type": "webhook", "url": hook.url}],
            routes=[{"to": ["tickets"]}],
            config_dir=tmp_path,
        )
        clock = FakeClock(NOW)
        async with open_runtime(settings, clock=clock) as runtime:
            poller = Poller(runtime.pipeline, runtime.sources, runtime.outbox, clock)
            hook.script = [503]
            await poller.poll(runtime.sources[0])  # claimed and enqueued: polls never wait for delivery
            await poller.flush()  # the delivery failed: pending in Redis
            assert hook.delivered_ids() == []

            feeds.feeds["/wire.xml"] = rss(
                [
                    item(1, "Rare earth export licence regime widened"),
                    item(2, "Magnet shortage halts production"),
                ]
            )
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                with caplog.at_level(logging.ERROR, logger="rarewatch"):
                    clock.advance(timedelta(minutes=10))
                    await poller.poll(runtime.sources[0])  # must not raise
                    await poller.flush()  # must not raise
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
            assert "store unavailable" in caplog.text
            assert hook.delivered_ids() == [], "nothing was sent while the store was away"

            clock.advance(timedelta(minutes=10))
            await poller.poll(runtime.sources[0])
            await poller.flush()
            await poller.flush()
    ids = hook.delivered_ids()
    assert len(ids) == len(set(ids)) == 2, "both stories delivered, each exactly once"
