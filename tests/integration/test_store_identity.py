"""A store that lost its memory mid-run (a SQLite file replaced by an empty one, Redis FLUSHALL): nothing is
re-sent, one error is logged, one operational alert reaches every destination, and new stories alert again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from rarewatch.clock import FakeClock
from rarewatch.errors import StoreError
from rarewatch.models import FetchResult, SourceState
from rarewatch.pipeline import PolledSource
from rarewatch.runtime import open_runtime
from rarewatch.scheduler import Poller
from rarewatch.settings import Settings
from rarewatch.store_identity import OPERATIONAL_CATEGORY, OPERATIONAL_TITLE_PREFIX
from tests.support import (
    TEST_RULES,
    feed_server,
    replace_with_empty_file,
    rss,
    store_forgetter,
    webhook_receiver,
)

NOW = datetime.now(UTC).replace(microsecond=0)
TITLES = [
    "Rare earth export licence regime widened",
    "Magnet shortage halts production",
    "Rare earth export licence rules tightened for gallium",
    "Magnet shortage spreads to motor makers",
]


def item(n: int, title: str, age: timedelta) -> dict[str, str]:
    return {
        "title": title,
        "link": f"https://news.example/{n}",
        "guid": f"o-{n}",
        "date": format_datetime(NOW - age, usegmt=True),
    }


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_store_that_lost_its_memory_re_sends_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "state.db"
    if backend == "redis":
        redis_url = str(request.getfixturevalue("redis_url"))
        client = aioredis.from_url(redis_url)
        await client.flushdb()
        store_url = redis_url
    else:
        store_url = f"sqlite:///{db}"
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    # Recent stories, all well inside `initial_lookback`: a first poll alerts on every one of them.
    stories = [item(n, title, timedelta(minutes=n + 1)) for n, title in enumerate(TITLES)]
    async with feed_server() as feeds, webhook_receiver() as hook, webhook_receiver() as ops:
        feeds.feeds["/wire.xml"] = rss(stories)
        settings = Settings(
            store=store_url,
            rules=[str(tmp_path / "rules.yaml")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],
            destinations=[
                {"name": "tickets", "type": "webhook", "url": hook.url},
                {"name": "ops", "type": "webhook", "url": ops.url},
            ],
            routes=[{"to": ["tickets"], "match": {"category": ["export-licensing", "supply-disruption"]}}],
            config_dir=tmp_path,
        )
        clock = FakeClock(NOW)
        async with open_runtime(settings, clock=clock) as runtime:
            poller = Poller(runtime.pipeline, runtime.sources, runtime.outbox, clock)
            await poller.poll(runtime.sources[0])
            await poller.flush()
            first = hook.delivered_ids()
            assert len(first) == len(TITLES) and ops.delivered_ids() == []

            # The store forgets everything while the service runs.
            if backend == "redis":
                await client.flushall()
            else:
                replace_with_empty_file(db)
            clock.advance(timedelta(minutes=10))
            with caplog.at_level(logging.ERROR, logger="rarewatch"):
                await poller.poll(runtime.sources[0])
                await poller.flush()
                clock.advance(timedelta(minutes=10))
                await poller.poll(runtime.sources[0])  # a second poll: still nothing old is re-sent
                await poller.flush()
            kept = await runtime.store.seen_items(NOW - timedelta(days=1))
            assert len(kept) == len(TITLES), "the items the emptied store lost are kept again"
            lost = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(lost) == 1, "one clear error"
            assert "STORE LOST ITS MEMORY" in lost[0].getMessage()
            assert store_url.split("?")[0] in lost[0].getMessage()

            operational = [p for p in hook.payloads() if p["id"] not in first]
            assert len(operational) == 1, "nothing re-sent: the only new delivery is the operational alert"
            assert operational[0]["categories"] == [OPERATIONAL_CATEGORY]
            assert operational[0]["title"].startswith(OPERATIONAL_TITLE_PREFIX)
            assert [p["id"] for p in ops.payloads()] == [operational[0]["id"]], "sent to every destination"

            # And the service carries on: a story published after the loss alerts as usual.
            feeds.feeds["/wire.xml"] = rss(
                [*stories, item(9, "Rare earth stockpiles run out in magnet shortage", timedelta(0))]
            )
            clock.advance(timedelta(minutes=10))
            await poller.poll(runtime.sources[0])
            await poller.flush()
            assert len(hook.delivered_ids()) == len(TITLES) + 2
    if backend == "redis":
        await client.flushdb()
        await client.aclose()


class ForgetfulFetch:
    """A source that makes the store forget while it fetches (the loss lands between check and claims)."""

    def __init__(self, polled: PolledSource, forget: Callable[[], Awaitable[None]]) -> None:
        self.inner, self.name, self.forget = polled.source, polled.source.name, forget
        self.armed = False

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        result = await self.inner.fetch(session, state)
        if self.armed:
            self.armed = False
            await self.forget()
        return result


async def test_a_store_that_forgets_during_a_fetch_re_sends_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = tmp_path / "state.db"
    client = None
    if backend == "redis":
        redis_url = str(request.getfixturevalue("redis_url"))
        client = aioredis.from_url(redis_url)
        await client.flushdb()
        store_url = redis_url
    else:
        store_url = f"sqlite:///{db}"

    forget = store_forgetter(db, client)

    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    stories = [item(n, title, timedelta(minutes=n + 1)) for n, title in enumerate(TITLES)]
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(stories)
        settings = Settings(
            store=store_url,
            rules=[str(tmp_path / "rules.yaml")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],
            destinations=[{"name": "tickets", "type": "webhook", "url": hook.url}],
            routes=[{"to": ["tickets"]}],
            config_dir=tmp_path,
        )
        clock = FakeClock(NOW)
        async with open_runtime(settings, clock=clock) as runtime:
            source = ForgetfulFetch(runtime.sources[0], forget)
            polled = replace(runtime.sources[0], source=source)
            await runtime.pipeline.run_source(polled)
            await runtime.outbox.flush()
            first = hook.delivered_ids()
            assert len(first) == len(TITLES)

            source.armed = True
            clock.advance(timedelta(minutes=10))
            run = await runtime.pipeline.run_source(polled)
            assert run.status == "skipped" and run.alerts == ()
            clock.advance(timedelta(minutes=10))
            run = await runtime.pipeline.run_source(polled)  # the source's first poll on the new store
            assert run.alerts == ()
            await runtime.outbox.flush()
            new = [p for p in hook.payloads() if p["id"] not in first]
            assert [p["categories"] for p in new] == [[OPERATIONAL_CATEGORY]]
    if client is not None:
        await client.flushdb()
        await client.aclose()


class LosesItBeforeTheFirstClaim:
    """The real store, except that once armed, its next claim runs just after `lose()`: the loss lands after
    the poll's last marker check, and another poll of the same process has noticed it already."""

    def __init__(self, store: object, lose: Callable[[], Awaitable[None]]) -> None:
        self._store, self._lose, self.armed = store, lose, False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def claim(self, *args: Any, **kwargs: Any) -> bool:
        if self.armed:
            self.armed = False
            await self._lose()
        return bool(await self._store.claim(*args, **kwargs))  # type: ignore[attr-defined]

    async def claim_many(self, *args: Any, **kwargs: Any) -> int:
        """A fetch's admissions come as one batch (`Store.claim_many`): the loss lands before it."""
        if self.armed:
            self.armed = False
            await self._lose()
        return int(await self._store.claim_many(*args, **kwargs))  # type: ignore[attr-defined]


@pytest.mark.redis
async def test_a_poll_keeps_the_marker_it_began_with_when_another_poll_adopts_a_new_one(
    tmp_path: Path, redis_url: str
) -> None:
    """The poll read its source's state before the FLUSHALL and passed both marker checks; another poll then
    noticed the loss and adopted the new marker. This poll's claims must check the marker it began with
    (refused), not the new one (which would re-send every story the emptied store forgot)."""
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    stories = [item(n, title, timedelta(minutes=n + 1)) for n, title in enumerate(TITLES)]
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(stories)
        settings = Settings(
            store=redis_url,
            rules=[str(tmp_path / "rules.yaml")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],
            destinations=[{"name": "tickets", "type": "webhook", "url": hook.url}],
            routes=[{"to": ["tickets"]}],
            config_dir=tmp_path,
        )
        clock = FakeClock(NOW)
        async with open_runtime(settings, clock=clock) as runtime:
            pipeline, guard = runtime.pipeline, runtime.pipeline.guard
            assert guard is not None

            async def lose() -> None:
                await client.flushall()
                await asyncio.create_task(guard.check())  # another poll (its own task) notices first

            await pipeline.run_source(runtime.sources[0])
            await runtime.outbox.flush()
            first = hook.delivered_ids()
            assert len(first) == len(TITLES)

            later = item(9, "Rare earth export licence rules extended to magnets", timedelta(0))
            feeds.feeds["/wire.xml"] = rss([later, *stories])  # changed: no 304, the items are admitted
            store = LosesItBeforeTheFirstClaim(pipeline.store, lose)
            pipeline.store = store  # type: ignore[assignment]
            store.armed = True
            clock.advance(timedelta(minutes=10))
            with pytest.raises(StoreError, match="lost its data"):
                await pipeline.run_source(runtime.sources[0])
            clock.advance(timedelta(minutes=10))
            run = await pipeline.run_source(runtime.sources[0])  # the source's first poll on the new store
            assert run.alerts == ()
            await runtime.outbox.flush()
            new = [p for p in hook.payloads() if p["id"] not in first]
            assert [p["categories"] for p in new] == [[OPERATIONAL_CATEGORY]], "nothing re-sent"
    await client.flushdb()
    await client.aclose()
