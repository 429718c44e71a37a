"""Parsing and normalisation throughput: the lxml fast path against feedparser, in the same run.

Generates a 50-item RSS 2.0 feed and a 50-item Atom feed in code (no network, no files), parses each
repeatedly with `parse_feed` (the lxml path) and with the feedparser fallback, and prints items/s (the
best of five rounds, as timeit does) and the ratio; then times `normalize` per item. One thread.
Run: `python bench/bench_parse.py [--seconds N]`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

from rarewatch.models import RawEntry
from rarewatch.normalize import _canonical_link_full, canonical_link, normalize
from rarewatch.sources.feedparse import parse_feed, parse_with_feedparser

ITEMS = 50
_START = datetime(2025, 10, 1, tzinfo=UTC)
_SUMMARY = (
    "<p>Exporters of <b>dysprosium</b>, terbium and NdFeB magnets will need a licence &amp; an "
    "end-user certificate under the announcement, item {i}.</p><p>稀土出口管制 第{i}号公告。</p>"
)


def rss_feed(n: int = ITEMS) -> bytes:
    items = "".join(
        "<item>"
        f"<title>Rare earth export controls: update {i}</title>"
        f"<link>https://news.example.org/2025/10/story-{i}?utm_source=rss&amp;id={i}</link>"
        f'<guid isPermaLink="false">story-{i}</guid>'
        f"<pubDate>{format_datetime(_START + timedelta(minutes=i), usegmt=True)}</pubDate>"
        f"<description>{escape(_SUMMARY.format(i=i))}</description>"
        "</item>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Bench</title>'
        f"<link>https://news.example.org/</link><description>bench</description>{items}</channel></rss>"
    ).encode()


def atom_feed(n: int = ITEMS) -> bytes:
    entries = "".join(
        "<entry>"
        f"<title>Rare earth export controls: update {i}</title>"
        f'<link rel="alternate" href="https://news.example.org/2025/10/story-{i}"/>'
        f"<id>tag:news.example.org,2025:story-{i}</id>"
        f"<updated>{(_START + timedelta(minutes=i)).isoformat()}</updated>"
        f'<summary type="html">{escape(_SUMMARY.format(i=i))}</summary>'
        "</entry>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Bench</title><id>urn:bench</id><updated>{_START.isoformat()}</updated>{entries}</feed>"
    ).encode()


def best_rate(run: Callable[[], int], seconds: float, rounds: int = 5) -> float:
    """Units per second of `run` (which returns how many units it did): the best of `rounds` rounds,
    as timeit does, so that other load on the machine does not drag the figure down."""
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / rounds:
            done += run()
        best = max(best, done / elapsed)
    return best


def items_per_second(parse: Callable[[bytes], list[RawEntry]], body: bytes, seconds: float) -> float:
    count = len(parse(body))  # warm up, and check the parser found every item
    assert count == ITEMS, count
    return best_rate(lambda: len(parse(body)), seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement (default 2)")
    args = ap.parse_args()

    def fast(body: bytes) -> list[RawEntry]:
        return parse_feed(body, "application/xml", "bench", None)

    def slow(body: bytes) -> list[RawEntry]:
        return parse_with_feedparser(body, "application/xml", "bench", None)

    print(f"{ITEMS}-item feeds, {args.seconds:g}s per measurement")
    rates: dict[str, float] = {}
    for name, body in (("RSS 2.0", rss_feed()), ("Atom", atom_feed())):
        rates[name] = lxml_rate = items_per_second(fast, body, args.seconds)
        fp_rate = items_per_second(slow, body, args.seconds)
        print(
            f"{name:8} {len(body):7,d} bytes  lxml {lxml_rate:10,.0f} items/s   "
            f"feedparser {fp_rate:8,.0f} items/s   ratio {lxml_rate / fp_rate:5.1f}x"
        )

    per_item = normalize_seconds_per_item(fast(rss_feed()), args.seconds)
    print(f"normalize {per_item * 1e6:6.1f} µs/item   ({1 / per_item:,.0f} items/s)")
    combined = 1 / (1 / rates["RSS 2.0"] + per_item)
    print(f"parse + normalize (RSS 2.0, lxml path): {combined:,.0f} items/s on one core")
    links = [e.link for e in fast(rss_feed())]  # a query with a tracking parameter: the new fast path
    fast_link = 1 / best_rate(lambda: len([canonical_link(u) for u in links]), args.seconds)
    full_link = 1 / best_rate(lambda: len([_canonical_link_full(u) for u in links]), args.seconds)
    print(
        f"canonical_link {fast_link * 1e6:5.2f} µs/link   taking the URL apart (baseline) "
        f"{full_link * 1e6:5.2f} µs/link   ratio {full_link / fast_link:4.1f}x"
    )


def normalize_seconds_per_item(entries: list[RawEntry], seconds: float) -> float:
    first_seen = datetime.now(UTC)

    def run() -> int:
        for entry in entries:
            normalize(entry, first_seen)
        return len(entries)

    return 1 / best_rate(run, seconds)


if __name__ == "__main__":
    main()
