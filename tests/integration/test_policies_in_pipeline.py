"""The policies through the real pipeline: the bundled rules, a real SQLite file, sources in memory.

One story, one alert whatever the arrival order; the update cap; a source that raises anything is that
source's error with backoff, never a silent one.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from rarewatch.clock import FakeClock
from rarewatch.models import AlertKind, FetchResult, RawEntry, SourceState
from rarewatch.pipeline import Pipeline, PolledSource, run_cycle
from rarewatch.routing import Router, RouteRule
from rarewatch.ruleset.loader import load_ruleset
from rarewatch.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)
HEADLINE = "China tightens export licence rules for rare earth magnets"
RULES = load_ruleset([REPO / "rules"])

# The same headline from three outlets; their summaries name different materials.
OUTLETS = {
    "wire": RawEntry(
        "wire", HEADLINE, "https://wire.example/1", "w-1", "Exporters will need a licence.", published=NOW
    ),
    "mining": RawEntry(
        "mining",
        HEADLINE + " - Mining Daily",
        "https://mining.example/8",
        "m-8",
        "The rules also cover gallium and germanium products.",
        published=NOW,
    ),
    "metals": RawEntry(
        "metals",
        HEADLINE + " | Metal News",
        "https://metals.example/3",
        "x-3",
        "Neodymium magnet makers face new paperwork.",
        published=NOW,
    ),
}


@dataclass
class MemorySource:
    """A source in memory: returns its entries, or raises what it is told to."""

    name: str
    entries: list[RawEntry] = field(default_factory=list)
    fail: Callable[[], BaseException] | None = None
    polls: int = 0

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        self.polls += 1
        if self.fail is not None:
            raise self.fail()
        return FetchResult(tuple(self.entries))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


async def make_pipeline(
    store: SQLiteStore, session: aiohttp.ClientSession, clock: FakeClock, **kw: int
) -> Pipeline:
    return Pipeline(
        store=store,
        ruleset=RULES,
        router=Router([RouteRule(to=("console",))]),
        session=session,
        clock=clock,
        dedup_window=timedelta(days=30),
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    )


def polled(source: MemorySource, interval: timedelta = timedelta(minutes=15)) -> PolledSource:
    return PolledSource(source, interval, initial_lookback=timedelta(hours=48))


def test_the_outlets_name_different_materials() -> None:
    from rarewatch.normalize import normalize

    materials = [set(RULES.entities(normalize(e, NOW)).materials) for e in OUTLETS.values()]
    assert all(RULES.match(normalize(e, NOW)) for e in OUTLETS.values()), "every copy fires a rule"
    assert len({frozenset(m) for m in materials}) == 3, materials


@pytest.mark.parametrize("order", list(itertools.permutations(OUTLETS)), ids="-".join)
async def test_the_same_headline_from_three_outlets_is_one_alert_and_two_updates_in_any_order(
    order: Sequence[str], tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        clock = FakeClock(NOW)
        pipeline = await make_pipeline(store, session, clock)
        sources = {name: MemorySource(name) for name in OUTLETS}
        # First polls: nothing yet (so the stories are not a new source's back catalogue).
        await run_cycle(pipeline, [polled(s) for s in sources.values()], force=True)
        kinds = []
        for name in order:
            clock.advance(timedelta(minutes=5))
            sources[name].entries = [OUTLETS[name]]
            run = await pipeline.run_source(polled(sources[name]), force=True)
            assert run.status == "ok", run
            kinds += [(a.kind, a.story) for a in run.alerts]
    finally:
        await store.close()
    assert [k for k, _ in kinds] == [AlertKind.ALERT, AlertKind.UPDATE, AlertKind.UPDATE], order
    assert len({story for _, story in kinds}) == 1, "one story"


async def test_updates_beyond_the_cap_are_recorded_not_sent(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        clock = FakeClock(NOW)
        pipeline = await make_pipeline(store, session, clock, max_updates_per_story=1)
        sources = {name: MemorySource(name) for name in OUTLETS}
        await run_cycle(pipeline, [polled(s) for s in sources.values()], force=True)
        sent = []
        for name in OUTLETS:
            sources[name].entries = [OUTLETS[name]]
            run = await pipeline.run_source(polled(sources[name]), force=True)
            sent += [a.kind for a in run.alerts]
        history = await store.recent_alerts()
    finally:
        await store.close()
    assert sent == [AlertKind.ALERT, AlertKind.UPDATE], "the second update is over the cap"
    assert len(history) == 3, "but it is recorded in the history"


@pytest.mark.parametrize(
    "error",
    [
        lambda: UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        lambda: KeyError("title"),
        lambda: RuntimeError("parser crashed"),
    ],
    ids=["unicode", "keyerror", "runtime"],
)
async def test_any_exception_while_polling_is_that_sources_error_with_backoff(
    error: Callable[[], BaseException], tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        clock = FakeClock(NOW)
        pipeline = await make_pipeline(store, session, clock)
        bad, good = MemorySource("bad", fail=error), MemorySource("good", [OUTLETS["wire"]])
        interval = timedelta(minutes=15)
        runs = await run_cycle(pipeline, [polled(bad, interval), polled(good, interval)])
        assert [r.status for r in runs] == ["error", "ok"]
        assert runs[0].error is not None and type(error()).__name__ in runs[0].error
        state = await store.get_source_state("bad")
        assert state is not None and state.consecutive_failures == 1
        assert state.last_error == runs[0].error
        # The second failure in a row backs off: the next scheduled poll is skipped.
        clock.advance(interval)
        await pipeline.run_source(polled(bad, interval))
        state = await store.get_source_state("bad")
        assert state is not None and state.consecutive_failures == 2 and state.not_before is not None
        assert state.not_before > clock.now() + interval
        clock.advance(interval)
        skipped = await pipeline.run_source(polled(bad, interval))
        assert skipped.status == "skipped" and bad.polls == 2
    finally:
        await store.close()


async def test_a_report_is_matched_against_every_report_of_a_story_not_only_the_first(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    # B is a near-duplicate of A, C of B but not of A (Jaccard 0.69): C joins the story through B.
    titles = [HEADLINE, HEADLINE + " and gallium", HEADLINE + " and gallium, germanium and antimony"]
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        pipeline = await make_pipeline(store, session, FakeClock(NOW))
        source = MemorySource("wire")
        await pipeline.run_source(polled(source), force=True)
        kinds = []
        for n, title in enumerate(titles):
            source.entries = [
                RawEntry("wire", title, f"https://outlet{n}.example/1", f"g-{n}", published=NOW)
            ]
            run = await pipeline.run_source(polled(source), force=True)
            kinds += [a.kind for a in run.alerts]
    finally:
        await store.close()
    assert kinds == [AlertKind.ALERT, AlertKind.UPDATE, AlertKind.UPDATE]
