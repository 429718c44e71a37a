"""One fetch's admissions in two store round trips (a look-up, then one batch of claims), on a real SQLite
file: the decisions are those of admitting the items one by one, and a claim that loses a race hands the
rest of the fetch back to one-at-a-time admission."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rarewatch.clock import FakeClock
from rarewatch.models import AlertKind, RawEntry
from rarewatch.normalize import normalize
from rarewatch.policies.admission import story_keys
from rarewatch.store.base import ClaimRequest
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.test_policies_in_pipeline import (
    HEADLINE,
    NOW,
    OUTLETS,
    MemorySource,
    make_pipeline,
    polled,
)
from tests.integration.test_store_contract import make_alert

OTHER = RawEntry(
    "wire",
    "US adds gallium processor to the Entity List",
    "https://wire.example/2",
    "w-2",
    "The listing bars exports of gallium products to the company.",
    published=NOW,
)


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the admission calls made to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: Counter[str] = Counter()
        self.before_batch: SQLiteStore | None = None  # claims the mirror's link first ("another process")

    async def held(self, keys: Sequence[str], now: Any) -> dict[str, str | None]:
        self.calls["held"] += 1
        return await super().held(keys, now)

    async def claim(self, keys: Sequence[str], *args: Any, **kw: Any) -> bool:
        self.calls["claim"] += 1
        return await super().claim(keys, *args, **kw)

    async def claim_many(self, requests: Sequence[ClaimRequest], ttl: timedelta, now: Any) -> int:
        self.calls["claim_many"] += 1
        if self.before_batch is not None:
            mirror = normalize(OUTLETS["mining"], NOW)
            await self.before_batch.claim([story_keys(mirror)[1]], ttl, now, make_alert(7, now))
        return await super().claim_many(requests, ttl, now)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_a_fetch_is_admitted_in_one_look_up_and_one_batch(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = CountingStore(tmp_path / "state.db")
    await store.open()
    try:
        pipeline = await make_pipeline(store, session, FakeClock(NOW))
        source = MemorySource("wire")
        await pipeline.run_source(polled(source), force=True)  # first poll: nothing listed yet
        source.entries = [OUTLETS["wire"], OTHER, OUTLETS["mining"]]  # the mining copy: the wire's story
        store.calls.clear()
        run = await pipeline.run_source(polled(source), force=True)
        calls = dict(store.calls)
        stored = await store.held([k for e in source.entries for k in story_keys(normalize(e, NOW))], NOW)
    finally:
        await store.close()
    assert calls == {"held": 1, "claim_many": 1}, "no round trip per item"
    assert [(a.item.title, a.kind) for a in run.alerts] == [
        (HEADLINE, AlertKind.ALERT),
        (OTHER.title, AlertKind.ALERT),
        (OUTLETS["mining"].title, AlertKind.UPDATE),  # a near-duplicate of a claim earlier in the batch
    ]
    assert run.alerts[2].story == run.alerts[0].story
    assert set(stored.values()) == {a.id for a in run.alerts}, "every item's keys are claimed"


async def test_a_claim_that_loses_a_race_hands_the_rest_to_one_at_a_time_admission(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = CountingStore(tmp_path / "state.db")
    other = SQLiteStore(tmp_path / "state.db")  # another process on the same file
    await store.open()
    await other.open()
    try:
        pipeline = await make_pipeline(store, session, FakeClock(NOW))
        source = MemorySource("mining")
        await pipeline.run_source(polled(source), force=True)
        source.entries = [OTHER, OUTLETS["mining"], OUTLETS["metals"]]
        store.before_batch = other  # takes the mining copy's link after the look-up, before the batch
        store.calls.clear()
        run = await pipeline.run_source(polled(source), force=True)
        mining = normalize(OUTLETS["mining"], NOW)
        held = await store.held(story_keys(mining), NOW)
    finally:
        await store.close()
        await other.close()
    # The batch made the first claim and stopped at the lost one; the rest looked again, one by one: the
    # mining copy (its link taken by another process's alert) is an update of that story.
    assert store.calls["claim_many"] == 1 and store.calls["claim"] >= 1
    assert [(a.item.title, a.kind) for a in run.alerts][:2] == [
        (OTHER.title, AlertKind.ALERT),
        (OUTLETS["mining"].title, AlertKind.UPDATE),
    ]
    assert run.alerts[1].story == "alert-7"
    assert held == {story_keys(mining)[0]: run.alerts[1].id, story_keys(mining)[1]: "alert-7"}
