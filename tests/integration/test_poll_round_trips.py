"""A poll's store round trips: an unchanged source (304) reads its state with the identity marker and
writes it with the identity check after the fetch, one round trip each; a store that forgets during such a
poll still receives no state, and a poll about to claim a source-health alert checks the marker first."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from rarewatch.clock import FakeClock
from rarewatch.models import FetchResult, SourceState
from rarewatch.pipeline import PolledSource
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from rarewatch.store.base import Store
from rarewatch.store_identity import OPERATIONAL_CATEGORY, init_marker
from tests.support import TEST_RULES, FeedServer, feed_server, rss, store_forgetter, webhook_receiver

NOW = datetime.now(UTC).replace(microsecond=0)
STORY = {
    "title": "Rare earth export licence regime widened",
    "link": "https://news.example/1",
    "guid": "o-1",
    "date": format_datetime(NOW - timedelta(minutes=5), usegmt=True),
}


class Counting:
    """The real store, recording the name of every store method a poll calls."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not inspect.iscoroutinefunction(method):  # attributes, `expect_marker`
            return method

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted


class Forgetful:
    """A source that makes the store forget while it fetches (after the fetch, even a failed one), once
    armed; or does `then` instead, when given."""

    def __init__(self, polled: PolledSource, forget: Callable[[], Awaitable[None]]) -> None:
        self.inner, self.name, self.forget = polled.source, polled.source.name, forget
        self.armed = False
        self.then: Callable[[], Awaitable[None]] | None = None

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        try:
            return await self.inner.fetch(session, state)
        finally:
            if self.armed:
                self.armed = False
                await (self.then or self.forget)()


@dataclass
class Setup:
    runtime: Runtime
    feeds: FeedServer
    polled: PolledSource
    source: Forgetful
    store: Counting
    guard_store: Counting  # the same store, as the identity guard calls it
    clock: FakeClock


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    """One feed source on the backend under test, wrapped so the test sees every store call."""
    db, client = tmp_path / "state.db", None
    store_url = f"sqlite:///{db}"
    if request.param == "redis":
        store_url = str(request.getfixturevalue("redis_url"))
        client = aioredis.from_url(store_url)
        await client.flushdb()

    forget = store_forgetter(db, client)

    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([STORY])
        settings = Settings(
            store=store_url,
            rules=[str(tmp_path / "rules.yaml")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml"), "enrich": False}],
            destinations=[{"name": "tickets", "type": "webhook", "url": hook.url}],
            routes=[{"to": ["tickets"]}],
            source_health={"failures": 2},  # type: ignore[arg-type]
            config_dir=tmp_path,
        )
        clock = FakeClock(NOW)
        async with open_runtime(settings, clock=clock) as runtime:
            source = Forgetful(runtime.sources[0], forget)
            store = Counting(runtime.pipeline.store)
            runtime.pipeline.store = store  # type: ignore[assignment]
            guard = runtime.pipeline.guard
            assert guard is not None
            guard_store = Counting(guard.store)
            guard.store = guard_store  # type: ignore[assignment]
            polled = replace(runtime.sources[0], source=source)
            yield Setup(runtime, feeds, polled, source, store, guard_store, clock)
    if client is not None:
        await client.flushdb()
        await client.aclose()


async def test_an_unchanged_poll_makes_one_store_round_trip_before_and_one_after_its_fetch(
    setup: Setup,
) -> None:
    first = await setup.runtime.pipeline.run_source(setup.polled)
    assert first.status == "ok" and len(first.alerts) == 1
    setup.store.calls.clear()
    setup.guard_store.calls.clear()
    setup.clock.advance(timedelta(minutes=10))
    run = await setup.runtime.pipeline.run_source(setup.polled)
    assert run.status == "not_modified"
    assert setup.store.calls == ["get_marker_and_source_state", "put_source_state_if_marker"]
    assert setup.guard_store.calls == [], (
        "the marker read with the state was the one held: no read of its own"
    )
    state = await setup.store.get_source_state("wire")
    assert state is not None and state.last_success == NOW + timedelta(minutes=10), "the poll is recorded"


async def test_a_store_that_forgets_during_an_unchanged_poll_gets_no_state_from_it(setup: Setup) -> None:
    await setup.runtime.pipeline.run_source(setup.polled)
    setup.source.armed = True
    setup.clock.advance(timedelta(minutes=10))
    run = await setup.runtime.pipeline.run_source(setup.polled)
    assert run.status == "skipped", "the write was refused: the poll is as if it had not happened"
    assert setup.feeds.not_modified["/wire.xml"] == 1, "it was a 304: no claim, the check came with the write"
    assert await setup.store.get_source_state("wire") is None, "the new store has no state for it"
    guard = setup.runtime.pipeline.guard
    assert guard is not None and guard.lost_memory, "the loss was noticed by that poll"
    await setup.runtime.outbox.flush()
    run = await setup.runtime.pipeline.run_source(setup.polled)  # its first poll on the new store
    assert run.alerts == ()


async def test_a_poll_that_raises_a_health_alert_checks_the_marker_before_claiming_it(setup: Setup) -> None:
    await setup.runtime.pipeline.run_source(setup.polled)
    setup.feeds.statuses["/wire.xml"] = 503
    setup.clock.advance(timedelta(minutes=10))
    failed = await setup.runtime.pipeline.run_source(setup.polled, force=True)
    assert failed.status == "error" and failed.ops_alert is None  # one failure: below the threshold
    setup.source.armed = True
    setup.store.calls.clear()
    setup.clock.advance(timedelta(minutes=10))
    run = await setup.runtime.pipeline.run_source(setup.polled, force=True)  # the second: a RAISE
    assert run.status == "skipped"
    assert "claim" not in setup.store.calls, "no source-health alert claimed into the emptied store"
    assert await setup.store.get_source_state("wire") is None
    await setup.runtime.outbox.flush()
    sent = await setup.store.recent_alerts()
    assert [a.matches[0].category for a in sent] == [OPERATIONAL_CATEGORY], "only the store-loss alert"


async def test_a_store_that_forgets_during_a_poll_with_new_matching_items_claims_nothing(
    setup: Setup,
) -> None:
    await setup.runtime.pipeline.run_source(setup.polled)
    later = {
        **STORY,
        "title": "Magnet shortage halts production",
        "guid": "o-2",
        "link": "https://n.example/2",
    }
    setup.feeds.feeds["/wire.xml"] = rss([later, STORY])  # changed: a 200 and a new story that matches
    setup.source.armed = True
    setup.store.calls.clear()
    setup.clock.advance(timedelta(minutes=10))
    run = await setup.runtime.pipeline.run_source(setup.polled)
    assert run.status == "skipped" and run.alerts == ()
    assert not {"held", "claim", "claim_many"} & set(setup.store.calls), "checked before any admission"
    assert await setup.store.get_source_state("wire") is None


async def test_an_unchanged_poll_during_which_the_store_is_re_initialised_is_recorded(setup: Setup) -> None:
    """`rarewatch store init` replaces the marker on purpose: the refused write's check adopts the new
    marker quietly, and the state is written, checked against it."""
    await setup.runtime.pipeline.run_source(setup.polled)
    before = await setup.store.recent_alerts()
    guard = setup.runtime.pipeline.guard
    assert guard is not None and guard.marker is not None
    fresh = init_marker(NOW, guard.marker.id)

    async def init() -> None:
        await setup.store.reset_marker(fresh)

    setup.source.then, setup.source.armed = init, True
    setup.clock.advance(timedelta(minutes=10))
    run = await setup.runtime.pipeline.run_source(setup.polled)
    assert run.status == "not_modified"
    assert guard.marker == fresh and not guard.lost_memory
    state = await setup.store.get_source_state("wire")
    assert state is not None and state.last_success == NOW + timedelta(minutes=10)
    assert await setup.store.recent_alerts() == before, "no store-loss alert"


async def test_a_failed_poll_during_which_the_store_forgets_writes_no_state(setup: Setup) -> None:
    await setup.runtime.pipeline.run_source(setup.polled)
    setup.feeds.statuses["/wire.xml"] = 503
    setup.source.armed = True
    setup.clock.advance(timedelta(minutes=10))
    run = await setup.runtime.pipeline.run_source(setup.polled)  # one failure: no health alert to claim
    assert run.status == "skipped", "the failure is not recorded in the emptied store"
    assert await setup.store.get_source_state("wire") is None
    guard = setup.runtime.pipeline.guard
    assert guard is not None and guard.lost_memory
