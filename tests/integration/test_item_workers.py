"""Feeds parsed, normalised and matched in worker processes (`pipeline.workers`, `once --jobs N`):
the same runs and alerts as in process, over real HTTP and a real SQLite file; a worker that dies costs
at most the fetch whose body killed it (every body in the broken pool is tried again alone; the one
that kills that worker too is its source's retryable error); closing the pool, or the service process
going away, ends the workers.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rarewatch import startup_gc
from rarewatch.clock import FakeClock
from rarewatch.item_workers import ItemWorkers
from rarewatch.models import SeenItem, SeenRecord
from rarewatch.pipeline import Pipeline, PolledSource, SourceRun, run_cycle
from rarewatch.ruleset.loader import load_ruleset
from rarewatch.sources import feedparse
from rarewatch.sources.feed import FeedSource
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.test_policies_in_pipeline import NOW, RULES, make_pipeline

REPO = Path(__file__).resolve().parents[2]
HITS = [
    "China tightens export licence rules for rare earth magnets",
    "US adds gallium processor to the Entity List",
    "Beijing bans exports of germanium technology",
    "Antimony export quota cut by a third",
]
MISSES = ["Central bank holds rates steady", "Local team wins the regional final"]
NAMED = "Rare earth prices edge higher"  # names a watched material, fires no rule: its article may tell more


def feed(n: int, items: int = 12) -> bytes:
    """An RSS feed whose items are hits and misses, some with relative links, one story repeated."""
    parts = []
    for i in range(items):
        title = HITS[(n + i) % len(HITS)] if i % 3 == 0 else f"{MISSES[i % 2]} ({n}-{i})"
        title = f"{NAMED} ({n}-{i})" if i % 6 == 2 else title  # never a hit
        link = f"/news/{n}/{i}" if i % 4 == 1 else f"https://news.example/{n}/{i}"
        parts.append(
            f"<item><title>{title}</title><link>{link}</link><guid>{n}-{i}</guid>"
            "<pubDate>Fri, 20 Nov 2026 12:00:00 GMT</pubDate>"
            f"<description>{title}. Exporters will need a licence.</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


BODIES: dict[str, bytes] = {f"/f{n}.xml": feed(n) for n in range(6)}
BODIES["/broken.xml"] = b"<html><body>not a feed at all</body></html>"
BODIES["/blank.xml"] = b"   \n"
BODIES["/enrich.xml"] = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>e</title>'
    f"<item><title>{NAMED}</title><link>/article/1</link><guid>e-1</guid>"
    "<pubDate>Fri, 20 Nov 2026 12:00:00 GMT</pubDate><description>Prices moved.</description></item>"
    f"<item><title>{MISSES[0]}</title><link>/article/2</link><guid>e-2</guid>"
    "<pubDate>Fri, 20 Nov 2026 12:00:00 GMT</pubDate><description>Rates.</description></item>"
    "</channel></rss>"
).encode()
BODIES["/article/1"] = (
    b"<html><body><article><p>The commerce ministry said exporters of rare earth magnets will need an "
    b"export licence from next month, tightening its controls on the sector.</p>"
    b"<p>Traders said prices edged higher on the news.</p></article></body></html>"
)
BODIES["/crash.xml"] = feed(99).replace(b"<title>t</title>", b"<title>crash-the-parser</title>")


@pytest.fixture
async def farm() -> AsyncIterator[str]:
    """A feed server on loopback: the base URL."""

    async def handle(request: web.Request) -> web.Response:
        body = BODIES.get(request.path)
        if body is None:
            return web.Response(status=404)
        kind = "text/html" if request.path.startswith("/article/") else "application/rss+xml"
        return web.Response(body=body, content_type=kind)

    app = web.Application()
    app.router.add_get("/{name}", handle)
    app.router.add_get("/article/{n}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def workers() -> Iterator[ItemWorkers]:
    pool = ItemWorkers(RULES, 2)
    yield pool
    pool.close()


def sources(base: str, paths: list[str]) -> list[PolledSource]:
    return [
        PolledSource(FeedSource(p.strip("/"), base.rstrip("/") + p), timedelta(minutes=15), timedelta(days=2))
        for p in paths
    ]


def outcome(runs: list[SourceRun]) -> tuple[list[tuple[Any, ...]], list[str]]:
    """What a cycle of polls at once did: each source's counts, and every alerted item (which poll
    claimed a shared story first, the alert and which the update, is the machine's timing)."""
    counts = [(r.source, r.status, r.entries, r.matched, r.error) for r in runs]
    return counts, sorted(a.item.id for r in runs for a in r.alerts)


def summary(runs: list[SourceRun]) -> list[tuple[Any, ...]]:
    """What a cycle did, source by source, without the fetch times."""
    return [
        (
            r.source,
            r.status,
            r.entries,
            r.matched,
            r.error,
            r.matched_by,
            [(a.id, a.kind, a.story, a.item, a.matches, a.materials, a.countries) for a in r.alerts],
        )
        for r in runs
    ]


async def cycle(
    tmp_path: Path,
    name: str,
    session: aiohttp.ClientSession,
    polls: list[PolledSource],
    concurrency: int = 1,
    **kw: Any,
) -> tuple[list[SourceRun], Pipeline]:
    """One forced cycle of `polls` against a new SQLite file, then a second (all seen: nothing new).
    One poll at a time by default: the feeds share stories, and which poll claims one first is then the
    order of the sources, not of the machine's timing."""
    runs, pipeline, _ = await cycle_and_seen(tmp_path, name, session, polls, concurrency, **kw)
    return runs, pipeline


async def cycle_and_seen(
    tmp_path: Path,
    name: str,
    session: aiohttp.ClientSession,
    polls: list[PolledSource],
    concurrency: int = 1,
    **kw: Any,
) -> tuple[list[SourceRun], Pipeline, list[SeenItem]]:
    """`cycle`, and the seen items the store kept, newest first (a fetch's items in feed order
    reversed)."""
    store = SQLiteStore(tmp_path / f"{name}.db")
    await store.open()
    try:
        pipeline = await make_pipeline(store, session, FakeClock(NOW), **kw)
        runs = await run_cycle(pipeline, polls, force=True, concurrency=concurrency)
        again = await run_cycle(pipeline, polls, force=True, concurrency=concurrency)
        seen = await store.seen_items(NOW - timedelta(days=1))
    finally:
        await store.close()
    return runs + again, pipeline, seen


FEEDS = [*(f"/f{n}.xml" for n in range(6)), "/broken.xml", "/blank.xml", "/missing.xml"]


async def test_workers_give_the_runs_and_alerts_of_one_process(
    farm: str, session: aiohttp.ClientSession, workers: ItemWorkers, tmp_path: Path
) -> None:
    here, _, seen_here = await cycle_and_seen(tmp_path, "here", session, sources(farm, FEEDS))
    pooled, _, seen_pooled = await cycle_and_seen(
        tmp_path, "pooled", session, sources(farm, FEEDS), workers=workers
    )
    assert summary(pooled) == summary(here)
    # The same seen items in the same order, whether a worker listed them as text or sent them whole.
    assert seen_pooled == seen_here and len(seen_here) == 6 * 12
    assert {s.rules for s in seen_here} > {()}, "matching and non-matching items both"
    first = {r.source: r for r in here[: len(FEEDS)]}
    assert sum(len(r.alerts) for r in here) >= 6, "the feeds raise alerts (and updates of one story)"
    assert first["broken.xml"].status == first["blank.xml"].status == first["missing.xml"].status == "error"
    links = [a.item.link for r in pooled for a in r.alerts]
    assert any("/news/" in link and link.startswith(farm.rstrip("/")) for link in links), "made absolute"
    assert workers.restarts == 0


async def test_with_workers_an_item_worth_its_article_is_read_and_alerts_as_in_one_process(
    farm: str, session: aiohttp.ClientSession, workers: ItemWorkers, tmp_path: Path
) -> None:
    """An item that names a watched material and fires no rule comes back whole from the worker when
    its source reads articles, so its article is read and matched, as in process."""
    from rarewatch.sources.article import ArticleReader

    polls = [replace(p, enrich=True) for p in sources(farm, ["/enrich.xml", "/f0.xml"])]
    here, _, seen_here = await cycle_and_seen(
        tmp_path, "here", session, polls, articles=ArticleReader(allow_private_hosts=True)
    )
    pooled, _, seen_pooled = await cycle_and_seen(
        tmp_path, "pooled", session, polls, workers=workers, articles=ArticleReader(allow_private_hosts=True)
    )
    assert summary(pooled) == summary(here) and seen_pooled == seen_here
    (read,) = [a for a in pooled[0].alerts if a.item.title == NAMED]
    assert {m.matched_in for m in read.matches} == {"article"} and "export licence" in read.item.content


async def test_after_a_rule_reload_the_fetch_is_parsed_in_process_until_the_workers_restart(
    farm: str, session: aiohttp.ClientSession, workers: ItemWorkers, tmp_path: Path
) -> None:
    reloaded = load_ruleset([REPO / "rules"])
    body = BODIES["/f0.xml"]
    assert await workers.parse_and_match(reloaded, body, None, "f0", None, farm, NOW, False) is None
    workers.restart(reloaded)
    done = await workers.parse_and_match(reloaded, body, None, "f0", None, farm, NOW, False)
    assert done is not None and done[0] == 12
    here, _ = await cycle(tmp_path, "here", session, sources(farm, FEEDS[:2]))
    store = SQLiteStore(tmp_path / "reload.db")
    await store.open()
    try:
        pipeline = await make_pipeline(store, session, FakeClock(NOW), workers=workers)
        pipeline.ruleset = RULES  # the workers hold `reloaded`: these fetches are parsed here
        runs = await run_cycle(pipeline, sources(farm, FEEDS[:2]), force=True, concurrency=1)
    finally:
        await store.close()
    assert summary(runs) == summary(here[:2])


def _crashing(real: Callable[..., Any]) -> Callable[..., Any]:
    def parse(body: bytes, *args: Any) -> Any:
        if b"crash-the-parser" in body:
            os._exit(70)  # as a C parser's crash would: no exception, the process is gone
        return real(body, *args)

    return parse


async def test_a_body_that_kills_its_worker_is_that_sources_retryable_error_and_the_others_go_on(
    farm: str, session: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedparse, "parse_feed", _crashing(feedparse.parse_feed))  # forked into the workers
    pool = ItemWorkers(RULES, 2)
    try:
        here, _ = await cycle(tmp_path, "here", session, sources(farm, FEEDS[:6]), concurrency=8)
        paths = [*FEEDS[:3], "/crash.xml", *FEEDS[3:6]]  # polled at once: the others' bodies are in the pool
        runs, _ = await cycle(tmp_path, "pooled", session, sources(farm, paths), 8, workers=pool)
        crashed = [r for r in runs if r.source == "crash.xml"]
        assert pool.restarts >= 2, "each death replaced the pool"
        healthy = await pool.parse_and_match(RULES, BODIES["/f0.xml"], None, "f0", None, farm, NOW, False)
    finally:
        pool.close()
    assert [r.status for r in crashed] == ["error", "error"]
    assert all("killed the parsing worker that read it alone" in (r.error or "") for r in crashed)
    assert [r.consecutive_failures for r in crashed] == [1, 2], "an error of the source, counted"
    others = [r for r in runs if r.source != "crash.xml"]
    assert outcome(others) == outcome(here), "the fetches beside it were sent again: nothing lost"
    assert healthy is not None and healthy[0] == 12, "the pool works after the deaths"


async def test_a_worker_killed_between_fetches_costs_nothing(
    farm: str, session: aiohttp.ClientSession, workers: ItemWorkers, tmp_path: Path
) -> None:
    os.kill(workers.pids()[0], signal.SIGKILL)
    here, _ = await cycle(tmp_path, "here", session, sources(farm, FEEDS))
    pooled, _ = await cycle(tmp_path, "pooled", session, sources(farm, FEEDS), workers=workers)
    assert summary(pooled) == summary(here)
    assert workers.restarts == 1


def _gone(pids: list[int], within: float = 20.0) -> bool:
    """Whether every process of `pids` has exited (reaped or a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in pids if _running(p)]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _collector_state() -> tuple[bool, int]:
    return gc.isenabled(), gc.get_freeze_count()


def test_a_worker_forked_during_a_paused_start_up_collects_with_what_it_inherited_frozen() -> None:
    # `once --jobs N` forks its workers while the collector waits for the start-up (`startup_gc`).
    with startup_gc.paused():
        pool = ItemWorkers(RULES, 1)
        try:
            enabled, frozen = pool._pool.submit(_collector_state).result()
        finally:
            pool.close()
    assert enabled and frozen > 0


def test_closing_the_pool_ends_its_workers() -> None:
    pool = ItemWorkers(RULES, 2)
    pids = pool.pids()
    assert len(pids) == 2 and all(_running(p) for p in pids)
    pool.close()
    assert _gone(pids)


SERVICE_KILLED = """
import os, signal, sys
from pathlib import Path
from rarewatch.item_workers import ItemWorkers
from rarewatch.ruleset.loader import load_ruleset
pool = ItemWorkers(load_ruleset([Path(sys.argv[1])]), 2)
print(*pool.pids(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_workers_leave_when_the_service_process_is_killed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVICE_KILLED, str(REPO / "rules")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    assert _gone(pids), "orphaned workers stay"


def test_a_worker_sends_its_matches_located(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker says which text completed each match, so the service's one busy core need not."""
    from rarewatch import item_workers

    monkeypatch.setattr(item_workers, "_ruleset", RULES)
    entries, matched, _ = item_workers.parse_and_match(
        feed(0, items=6), "application/rss+xml", "f0", None, "https://news.example/f0.xml", NOW, True
    )
    located = [m.matched_in for _, matches, _ in matched for m in matches]
    assert entries == 6 and located and set(located) == {"title"}
    assert all(not matches for item, matches, _ in matched if item.title.startswith(NAMED))


def test_a_worker_sends_each_matching_items_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Title signatures and entities come with each matching item, the same as admission would work
    out, so the service's one busy core need not; a non-matching item carries none (nothing asks)."""
    from rarewatch import item_workers
    from rarewatch.item_facts import item_facts

    monkeypatch.setattr(item_workers, "_ruleset", RULES)
    _, matched, _ = item_workers.parse_and_match(
        feed(0, items=6), "application/rss+xml", "f0", None, "https://news.example/f0.xml", NOW, True
    )
    sent = [(item, facts) for item, matches, facts in matched if matches]
    assert sent and all(facts == item_facts(RULES, item) for item, facts in sent)
    assert all(facts.similar and facts.entities.materials for _, facts in sent if facts is not None)
    assert all(facts is None for _, matches, facts in matched if not matches)


@pytest.mark.parametrize("enrich", [True, False])
def test_a_worker_lists_the_items_that_want_no_more_than_their_seen_record(
    monkeypatch: pytest.MonkeyPatch, enrich: bool
) -> None:
    """An item no rule fired on comes back as its id and seen-item text, placed in the feed's order,
    unless its article is worth reading and its source reads articles: then it comes back whole, as a
    matching item does."""
    from rarewatch import item_workers
    from rarewatch.models import item_json
    from rarewatch.normalize import normalized_and_matched
    from rarewatch.sources.feed import absolute_links
    from rarewatch.sources.feedparse import parse_feed

    monkeypatch.setattr(item_workers, "_ruleset", RULES)
    body, url = feed(0, items=15), "https://news.example/f0.xml"
    entries, matched, listed = item_workers.parse_and_match(body, None, "f0", None, url, NOW, enrich)
    here = [
        pair
        for chunk in normalized_and_matched(
            list(absolute_links(parse_feed(body, None, "f0", None), url)), NOW, RULES.match_many
        )
        for pair in chunk
    ]
    whole = [item for item, matches in here if matches or (enrich and item.title.startswith(NAMED))]
    assert entries == 15 and [item for item, _, _ in matched] == whole
    assert any(item.title.startswith(NAMED) for item, _ in here)
    assert [(item_id, text) for _, item_id, text in listed] == [
        (item.id, item_json(item)) for item in (i for i, _ in here) if item not in whole
    ]
    order: list[str] = [item.id for item, _, _ in matched]
    for before, item_id, _ in reversed(listed):  # each goes before the whole item at its position
        order.insert(before, item_id)
    assert order == [item.id for item, _ in here]


class _CountingStore(SQLiteStore):
    """A SQLite store that counts the seen items each `record_items` call is given."""

    written: list[int]

    async def record_items(self, items: Sequence[SeenRecord], now: datetime) -> int:
        self.written.append(len(items))
        return await super().record_items(items, now)


@pytest.mark.parametrize("pooled", [False, True], ids=["in-process", "workers"])
async def test_items_recorded_once_are_not_written_again(
    farm: str, session: aiohttp.ClientSession, tmp_path: Path, request: pytest.FixtureRequest, pooled: bool
) -> None:
    """Each fetch's new items go to the store in one write; a fetch whose items this process recorded
    already writes none, whether the items came whole or as a worker's listings."""
    store = _CountingStore(tmp_path / "count.db")
    store.written = []
    await store.open()
    kw = {"workers": request.getfixturevalue("workers")} if pooled else {}
    try:
        pipeline = await make_pipeline(store, session, FakeClock(NOW), **kw)
        await run_cycle(pipeline, sources(farm, FEEDS[:6]), force=True, concurrency=1)
        first, store.written = store.written, []
        await run_cycle(pipeline, sources(farm, FEEDS[:6]), force=True, concurrency=1)
    finally:
        await store.close()
    assert first == [12] * 6 and store.written == []
