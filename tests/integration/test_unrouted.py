"""Unrouted alerts on real parts, with both stores: a local feed server, a real webhook receiver, a real
SQLite file or a real redis-server. What no route takes is recorded, and resent exactly once."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from rarewatch.commands.alerts import resend
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import open_runtime
from rarewatch.settings import Settings
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = datetime.now(UTC)
STORIES = [
    {
        "title": "Rare earth export licence regime widened",
        "link": "https://news.example.org/1",
        "date": format_datetime(NOW - timedelta(hours=1), usegmt=True),
    },
    {
        "title": "Magnet shortage halts production at motor plant",
        "link": "https://news.example.org/2",
        "date": format_datetime(NOW - timedelta(hours=2), usegmt=True),
    },
]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url = str(request.getfixturevalue("redis_url"))
    client = aioredis.from_url(url)
    await client.flushdb()  # the default key prefix: start from an empty server, as test_pipeline does
    await client.aclose()
    return url


async def test_an_unrouted_alert_is_recorded_counted_and_resent_once(tmp_path: Path, store_url: str) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(STORIES)
        settings = Settings(
            store=store_url,
            rules=[str(tmp_path / "rules")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml"), "enrich": False}],  # type: ignore[list-item]
            destinations=[{"name": "tickets", "type": "webhook", "url": hook.url, "secret": SECRET}],  # type: ignore[list-item]
            routes=[{"match": {"category": ["export-licensing"]}, "to": ["tickets"]}],  # type: ignore[list-item]
            config_dir=tmp_path,
        )
        async with open_runtime(settings) as runtime:
            [run] = await run_cycle(runtime.pipeline, runtime.sources, force=True)
            await runtime.outbox.drain_due()
            assert [a.item.title for a in run.alerts] == ["Rare earth export licence regime widened"]
            [unrouted] = run.unrouted
            assert unrouted.item.title == "Magnet shortage halts production at motor plant"
            assert await runtime.store.unrouted() == [unrouted]
            assert await runtime.store.get_alert(unrouted.id) == unrouted, "in the history too"
            [again] = await run_cycle(runtime.pipeline, runtime.sources, force=True)
            assert again.unrouted == () and again.alerts == (), "claimed: never raised twice"
        assert len(hook.requests) == 1

        out, err = io.StringIO(), io.StringIO()
        assert await resend(settings, unrouted.id, "tickets", out, err) == 0, err.getvalue()
        assert hook.delivered_ids() == [run.alerts[0].id, unrouted.id]
        assert await resend(settings, unrouted.id, "tickets", out, err) == 1
        assert len(hook.requests) == 2, "exactly once"
        async with open_runtime(settings) as runtime:
            assert await runtime.store.unrouted() == []


async def test_a_source_health_alert_no_route_takes_is_recorded_unrouted(tmp_path: Path) -> None:
    from rarewatch.clock import FakeClock

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    clock = FakeClock(NOW)
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.statuses["/wire.xml"] = 503
        settings = Settings(
            store=f"sqlite:///{tmp_path / 'state.db'}",
            rules=[str(tmp_path / "rules")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],  # type: ignore[list-item]
            destinations=[{"name": "tickets", "type": "webhook", "url": hook.url, "secret": SECRET}],  # type: ignore[list-item]
            routes=[{"match": {"category": ["export-licensing"]}, "to": ["tickets"]}],  # type: ignore[list-item]
            source_health={"failures": 2},  # type: ignore[arg-type]
            config_dir=tmp_path,
        )
        async with open_runtime(settings, clock=clock) as runtime:
            for _ in range(3):
                clock.advance(timedelta(hours=1))
                await run_cycle(runtime.pipeline, runtime.sources, force=True)
            [ops] = await runtime.store.unrouted()
            assert ops.categories == ("ops",) and "wire is failing" in ops.item.title
        assert hook.requests == [], "no route takes it: recorded, not sent"
