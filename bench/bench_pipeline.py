"""End to end: fetch → parse → normalise → match → claim → outbox, against feeds served on 127.0.0.1.

Two figures, each with a baseline measured in the same run:

* cold throughput (items/s): a fresh SQLite store polls every feed once (the lxml fast path), against
  the same cycle parsed by feedparser alone;
* steady state: a second cycle over the same feeds, all unchanged (304 Not Modified thanks to the stored
  ETags), in seconds, against a cycle that re-downloads and re-parses every feed (no validators).

The feed server runs in its own process, so the CPU seconds printed (user + sys of this process, its
SQLite worker thread included) are rarewatch's own. Run:
python bench/bench_pipeline.py [--feeds 1000 --items 20] [--no-enrich] [--concurrency 32] [--steady 1]

`--concurrency` is how many polls run at once (`rarewatch once` polls 8 at a time); `--steady N` runs N
steady cycles one after another and prints the median with the range (CPU and wall), as the machine's load
varies from one cycle to the next.

`--steady-only` skips the two baselines (the feedparser cycle and the full re-fetch) for quicker paired
runs of the steady cycles.

`--deliver` times the cold cycle alone (without the outbox pass it otherwise includes) and then the
delivery of every alert it raised, all passes until nothing is due (what `rarewatch once` does after its
cycle), and prints both; the jsonl destination's deliveries are most of that.

`--no-enrich` turns off reading linked articles (on by default for feeds). The generated items link to
news.example: each item that names a watched term but fires no rule tries that host, so where DNS answers
slowly, or drops queries, the cold cycle measures the resolver (5 s stalls) rather than rarewatch.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import resource
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from rarewatch.clock import FakeClock
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import open_runtime
from rarewatch.settings import Settings
from rarewatch.sources.feedparse import parse_with_feedparser

NOW = datetime.now(UTC).replace(microsecond=0)
HITS = [
    "China requires export licences for {m} products",
    "Magnet makers warn of {m} shortage as shipments stall",
    "US adds {m} processor to the Entity List",
]
MISSES = [
    "Central bank holds rates steady",
    "Local team wins the regional final",
    "New smartphone goes on sale next week",
    "City council approves budget for parks",
]
MATERIALS = ["dysprosium", "terbium", "gallium", "germanium", "antimony", "rare earth"]


def feed_body(n: int, items: int, rng: random.Random) -> bytes:
    parts = []
    for i in range(items):
        hit = rng.random() < 0.05
        title = rng.choice(HITS).format(m=rng.choice(MATERIALS)) if hit else rng.choice(MISSES)
        title = f"{title} ({n}-{i})"
        date = format_datetime(NOW - timedelta(minutes=i), usegmt=True)
        parts.append(
            f"<item><title>{escape(title)}</title><link>https://news.example/{n}/{i}</link>"
            f"<guid>{n}-{i}</guid><pubDate>{date}</pubDate>"
            f"<description>{escape(title)}. More text about markets and policy.</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>f</title>'
        "<link>https://news.example/</link><description>d</description>" + "".join(parts) + "</channel></rss>"
    ).encode()


def serve(port: int, feeds: int, items: int) -> None:
    rng = random.Random(7)
    bodies = {f"/f{n}.xml": feed_body(n, items, rng) for n in range(feeds)}

    async def handle(request: web.Request) -> web.Response:
        body = bodies[request.path]
        etag = f'"{len(body)}-{request.path}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/rss+xml", headers={"ETag": etag})

    app = web.Application()
    app.router.add_get("/{name}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


ENRICH = True


def settings(workdir: Path, port: int, feeds: int) -> Settings:
    return Settings(
        store=f"sqlite:///{workdir / 'bench.db'}",
        sources=[
            {"name": f"f{n}", "type": "feed", "url": f"http://127.0.0.1:{port}/f{n}.xml", "enrich": ENRICH}
            for n in range(feeds)
        ],
        destinations=[{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],
        routes=[{"to": ["archive"]}],
        config_dir=workdir,
    )


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


CPU: dict[str, float] = {}  # CPU seconds of the last cold and steady cycles
STEADY: list[tuple[float, float]] = []  # (wall, CPU) seconds of each steady cycle
CONCURRENCY = 32
STEADY_CYCLES = 1
BASELINES = True
DELIVER = False
DELIVERED: dict[str, float] = {}  # with --deliver: wall and CPU seconds of delivering the cold cycle's alerts


async def timed_cycle(
    workdir: Path, port: int, feeds: int, *, feedparser: bool, twice: bool
) -> tuple[float, int, float]:
    """(seconds of the first cycle, items, seconds of the second cycle or 0); CPU seconds in `CPU`."""
    async with open_runtime(settings(workdir, port, feeds), clock=FakeClock(NOW)) as rt:
        sources = rt.sources
        if feedparser:
            for polled in sources:
                polled.source._parse = parse_with_feedparser  # type: ignore[attr-defined]
        start, cpu = time.perf_counter(), cpu_seconds()
        runs = await run_cycle(rt.pipeline, sources, force=True, concurrency=CONCURRENCY)
        if DELIVER:  # the cycle alone, then every alert delivered (as `once` does), timed apart
            first = time.perf_counter() - start
            CPU["cold"] = cpu_seconds() - cpu
            start, cpu = time.perf_counter(), cpu_seconds()
            report = await rt.outbox.drain_due()
            DELIVERED.update(
                wall=time.perf_counter() - start, cpu=cpu_seconds() - cpu, alerts=report.delivered
            )
        else:
            await rt.outbox.flush()
            first = time.perf_counter() - start
            CPU["cold"] = cpu_seconds() - cpu
        items = sum(r.entries for r in runs)
        second = 0.0
        if twice:
            for _ in range(STEADY_CYCLES):
                start, cpu = time.perf_counter(), cpu_seconds()
                await run_cycle(rt.pipeline, sources, force=True, concurrency=CONCURRENCY)
                STEADY.append((time.perf_counter() - start, cpu_seconds() - cpu))
            second = statistics.median(wall for wall, _ in STEADY)
            CPU["steady"] = statistics.median(cpu for _, cpu in STEADY)
    return first, items, second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main_async(feeds: int, items: int) -> None:
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port, feeds, items), daemon=True)
    server.start()
    await asyncio.sleep(1.5)
    try:
        with (
            tempfile.TemporaryDirectory() as a,
            tempfile.TemporaryDirectory() as b,
            tempfile.TemporaryDirectory() as c,
        ):
            fast, n, steady = await timed_cycle(Path(a), port, feeds, feedparser=False, twice=True)
            cpu = dict(CPU)
            if DELIVER:
                rate = f"{n / fast:9,.0f} items/s"
                print(f"cold cycle, lxml fast path:   {fast:6.2f} s  {rate}   CPU {cpu['cold']:.2f} s")
                print(
                    f"delivering its {DELIVERED['alerts']:.0f} alerts (every pass, as once): "
                    f"{DELIVERED['wall']:.2f} s, CPU {DELIVERED['cpu']:.2f} s"
                )
            if not BASELINES:
                print_steady(feeds, steady, cpu)
                return
            slow, _, _ = await timed_cycle(Path(b), port, feeds, feedparser=True, twice=False)
            refetch, _, _ = await timed_cycle(Path(c), port, feeds, feedparser=False, twice=False)
    finally:
        server.terminate()
    print(f"feeds: {feeds} x {items} items = {n} items, ~5% matching, SQLite store, jsonl destination")
    enrich = "articles read" if ENRICH else "no article reading"
    print(f"cold cycle, lxml fast path:   {fast:6.2f} s  {n / fast:9,.0f} items/s   ({enrich})")
    print(f"  CPU of the cold cycle:      {cpu['cold']:6.2f} s  {n / cpu['cold']:9,.0f} items per CPU second")
    print(f"cold cycle, feedparser only:  {slow:6.2f} s  {n / slow:9,.0f} items/s   (baseline)")
    print(f"  ratio: {slow / fast:.1f}x")
    print_steady(feeds, steady, cpu)
    print(f"full re-fetch, no validators: {refetch:6.2f} s  (baseline)")
    print(f"  ratio: {refetch / steady:.1f}x")


def print_steady(feeds: int, steady: float, cpu: dict[str, float]) -> None:
    unchanged = f"for {feeds} unchanged feeds, CPU {cpu['steady']:.2f} s"
    print(f"steady cycle, all 304:        {steady:6.2f} s  {unchanged}")
    if len(STEADY) > 1:
        walls, cpus = sorted(w for w, _ in STEADY), sorted(c for _, c in STEADY)
        print(
            f"  median of {len(STEADY)} steady cycles, {CONCURRENCY} polls at a time: wall "
            f"{walls[0]:.2f}-{walls[-1]:.2f} s, CPU {cpus[0]:.2f}-{cpus[-1]:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--no-enrich", action="store_true", help="do not read linked articles")
    parser.add_argument("--concurrency", type=int, default=32, help="polls at a time (once: 8)")
    parser.add_argument("--steady", type=int, default=1, help="steady cycles to run (median printed)")
    parser.add_argument(
        "--steady-only", action="store_true", help="skip the feedparser and re-fetch baselines"
    )
    parser.add_argument(
        "--deliver",
        action="store_true",
        help="time the cold cycle alone, then the delivery of all its alerts (as once) apart",
    )
    args = parser.parse_args()
    global ENRICH, CONCURRENCY, STEADY_CYCLES, BASELINES, DELIVER
    ENRICH, BASELINES, DELIVER = not args.no_enrich, not args.steady_only, args.deliver
    CONCURRENCY, STEADY_CYCLES = args.concurrency, max(1, args.steady)
    asyncio.run(main_async(args.feeds, args.items))


if __name__ == "__main__":
    main()
