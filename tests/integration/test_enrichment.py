"""Article enrichment end to end: a feed and its article pages served on 127.0.0.1, the real pipeline,
a real SQLite file. Which items get their article read, what the alert says, the cache, the concurrency
bound, and hostile article pages (each leaves the item processed and the source healthy)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rarewatch.clock import FakeClock
from rarewatch.metrics import Metrics
from rarewatch.pipeline import SourceRun, run_cycle
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from tests.support import rss, serve

NOW = datetime.now(UTC).replace(microsecond=0)
CAP = 64 * 1024

RULES = """\
vocabulary: materials
kind: materials
entities:
  rare earths: [rare earth, 稀土]
  gallium: [镓]
exclude: [Rare Earth band]
---
vocabulary: watch-terms
kind: watch
terms: [MOFCOM, entity list, 商务部]
---
id: test-licensing
title: Export licensing of a material (test)
category: export-licensing
severity: high
match:
  all:
    - {vocab: materials}
    - any: ["export licence", "出口管制"]
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(*paragraphs: str, charset: str = "utf-8") -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    html = (
        f'<html><head><meta charset="{charset}"><title>News</title></head><body>'
        f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<article><h1>Report</h1>{body}</article><footer>(c) News Ltd</footer></body></html>"
    )
    return html.encode(charset)


SIGNAL = page(
    "China's commerce ministry said on Thursday that exporters of rare earth magnets must now apply "
    "for an export licence for every shipment, with immediate effect.",
    "The rules extend controls announced earlier this year to processing technology.",
    "Traders said shipments could be delayed while the first applications are reviewed.",
)
QUIET = page(
    "Rare earth prices were steady this week as buyers waited for new quotations from suppliers.",
    "Analysts expect demand to pick up before the end of the quarter.",
)


def item(path: str, title: str, summary: str = "", guid: str | None = None) -> dict[str, str]:
    return {
        "title": title,
        "link": path,  # filled in with the server's address by `Site.feed`
        "guid": guid or path,
        "description": summary,
        "date": format_datetime(NOW - timedelta(hours=1), usegmt=True),
    }


@dataclass
class Site:
    """A feed at /feed.xml (rendered afresh on each request, no validators) and article pages."""

    items: list[dict[str, str]] = field(default_factory=list)
    pages: dict[str, Handler] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    active: int = 0
    most_active: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        if path == "/feed.xml":
            items = [{**it, "link": urljoin(self.url("/"), it["link"])} for it in self.items]
            return web.Response(body=rss(items), content_type="application/rss+xml")
        handler = self.pages.get(path)
        if handler is None:
            raise web.HTTPNotFound()
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            return await handler(request)
        finally:
            self.active -= 1


SITE = web.AppKey("site", Site)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    app = web.Application()
    app[SITE] = s
    app.router.add_route("GET", "/{tail:.*}", s.handle)
    try:
        async with serve(app) as s.server:
            yield s
            s.release.set()
    finally:
        s.release.set()


def html(body: bytes, content_type: str = "text/html; charset=utf-8") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler


def settings(tmp_path: Path, site: Site, *, enrich: bool | None = None, **enrichment: Any) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(RULES, encoding="utf-8")
    source: dict[str, Any] = {"name": "wire", "type": "feed", "url": site.url("/feed.xml")}
    if enrich is not None:
        source["enrich"] = enrich
    return Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(rules)],
        sources=[source],  # type: ignore[list-item]
        destinations=[{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],  # type: ignore[list-item]
        routes=[{"to": ["archive"]}],  # type: ignore[list-item]
        enrichment={"allow_private_hosts": True, **enrichment},  # type: ignore[arg-type]
        config_dir=tmp_path,
    )


async def cycle(runtime: Runtime) -> SourceRun:
    (run,) = await run_cycle(runtime.pipeline, runtime.sources, force=True)
    await runtime.outbox.flush()
    return run


def archived(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def one_cycle(tmp_path: Path, site: Site, **kwargs: Any) -> SourceRun:
    async with open_runtime(settings(tmp_path, site, **kwargs), clock=FakeClock(NOW)) as runtime:
        return await cycle(runtime)


# Which items are read, and what the alert says


async def test_an_item_whose_signal_is_only_in_its_article_alerts_as_matched_in_article(
    tmp_path: Path, site: Site
) -> None:
    site.items = [item("/a/signal", "Rare earth market update", "Prices were steady.")]
    site.pages["/a/signal"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site)

    assert run.status == "ok" and len(run.alerts) == 1
    assert (run.articles.fetched, run.articles.matched, run.articles.failed) == (1, 1, 0)
    (payload,) = archived(tmp_path)
    assert payload["matched_in"] == "article"
    (match,) = payload["matches"]
    assert match["rule"] == "test-licensing" and match["matched_in"] == "article"
    assert "export licence" in match["terms"]
    assert "must now apply for an export licence" in match["snippet"], "the evidence is the article's"
    assert payload["title"] == "Rare earth market update"
    assert run.alerts[0].item.content.startswith("Report\nChina's commerce ministry said")


async def test_a_watched_agency_alone_is_enough_to_read_the_article(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/mofcom", "MOFCOM publishes its weekly bulletin")]
    site.pages["/a/mofcom"] = html(page("MOFCOM said gallium exporters now need an export licence."))

    run = await one_cycle(tmp_path, site)

    assert [a.matched_in for a in run.alerts] == ["article"]
    assert run.alerts[0].materials == ("gallium",)


@pytest.mark.parametrize(
    ("title", "summary", "matched_in"),
    [
        ("Export licence now needed for rare earth magnets", "", "title"),
        ("Rare earth market update", "Beijing requires an export licence from Monday.", "summary"),
    ],
)
async def test_items_that_already_match_are_not_read(
    tmp_path: Path, site: Site, title: str, summary: str, matched_in: str
) -> None:
    site.items = [item("/a/1", title, summary)]
    site.pages["/a/1"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site)

    assert site.hits["/a/1"] == 0
    assert [a.matched_in for a in run.alerts] == [matched_in]
    assert archived(tmp_path)[0]["matches"][0]["matched_in"] == matched_in


async def test_items_naming_nothing_watched_are_not_read(tmp_path: Path, site: Site) -> None:
    site.items = [
        item("/a/weather", "Sunny weekend ahead in Paris"),
        item("/a/band", "Rare Earth band announces a reunion tour"),  # an excluded name is no material
    ]
    site.pages["/a/weather"] = site.pages["/a/band"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site)

    assert site.hits["/a/weather"] == site.hits["/a/band"] == 0
    assert run.alerts == () and run.articles.fetched == 0


async def test_a_source_with_enrich_false_is_not_read(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/signal", "Rare earth market update")]
    site.pages["/a/signal"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site, enrich=False)

    assert site.hits["/a/signal"] == 0
    assert run.status == "ok" and run.alerts == ()


async def test_an_article_that_does_not_match_leaves_the_item_as_it_was(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/quiet", "Rare earth market update")]
    site.pages["/a/quiet"] = html(QUIET)

    run = await one_cycle(tmp_path, site)

    assert site.hits["/a/quiet"] == 1
    assert run.alerts == () and run.matched == 0
    assert (run.articles.fetched, run.articles.matched) == (1, 0)


async def test_links_to_private_addresses_are_refused_by_default(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/signal", "Rare earth market update")]
    site.pages["/a/signal"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site, allow_private_hosts=False)

    assert site.hits["/a/signal"] == 0, "refused before any request"
    assert run.status == "ok" and run.alerts == () and run.articles.failed == 1


# Chinese pages in their own encodings


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (page("商务部宣布对稀土相关物项实施出口管制，即日起生效。", charset="gbk"), "text/html"),
        (
            page("商務部宣布對稀土相關物項實施出口管制，即日起生效。", charset="big5"),
            "text/html; charset=big5",
        ),
        # The header says UTF-8, the bytes and the page's own <meta> say GBK: the page is believed.
        (
            page("商务部宣布对稀土相关物项实施出口管制，即日起生效。", charset="gbk"),
            "text/html; charset=utf-8",
        ),
    ],
    ids=["gbk-meta", "big5-header", "wrong-header"],
)
async def test_chinese_articles_in_legacy_encodings(
    tmp_path: Path, site: Site, body: bytes, content_type: str
) -> None:
    site.items = [item("/a/zh", "稀土行业动态")]
    site.pages["/a/zh"] = html(body, content_type)

    run = await one_cycle(tmp_path, site)

    assert [a.matched_in for a in run.alerts] == ["article"]
    assert "出口管制" in run.alerts[0].matches[0].terms


async def test_a_mislabelled_page_is_read_without_error_or_alert(tmp_path: Path, site: Site) -> None:
    # GBK bytes that claim to be UTF-8 everywhere: decoded with replacement characters, nothing matches.
    body = page("商务部宣布对稀土相关物项实施出口管制。", charset="gbk").replace(
        b'charset="gbk"', b'charset="utf-8"'
    )
    site.items = [item("/a/zh", "稀土行业动态")]
    site.pages["/a/zh"] = html(body)

    run = await one_cycle(tmp_path, site)

    assert run.status == "ok" and run.entries == 1 and run.alerts == ()


# The cache and the concurrency bound


async def test_a_second_cycle_reads_nothing_again_until_a_failure_expires(tmp_path: Path, site: Site) -> None:
    site.items = [
        item("/a/quiet", "Rare earth market update"),
        item("/a/dead", "Rare earth prices slip"),
        item("/a/signal", "Rare earth outlook"),
    ]
    site.pages["/a/quiet"] = html(QUIET)
    site.pages["/a/signal"] = html(SIGNAL)  # /a/dead is a 404
    clock = FakeClock(NOW)

    async with open_runtime(settings(tmp_path, site, failure_ttl="10m"), clock=clock) as runtime:
        first = await cycle(runtime)
        clock.advance(timedelta(minutes=5))
        second = await cycle(runtime)
        assert site.hits["/feed.xml"] == 2, "the feed itself was fetched twice"
        assert (site.hits["/a/quiet"], site.hits["/a/dead"], site.hits["/a/signal"]) == (1, 1, 1)
        clock.advance(timedelta(minutes=6))
        third = await cycle(runtime)

    assert (first.articles.fetched, first.articles.failed, first.articles.cached) == (2, 1, 0)
    assert (second.articles.fetched, second.articles.failed, second.articles.cached) == (0, 0, 3)
    assert len(first.alerts) == 1 and second.alerts == (), "the article's story alerted once"
    assert site.hits["/a/dead"] == 2, "a failure is remembered for failure_ttl, then tried again"
    assert (site.hits["/a/quiet"], site.hits["/a/signal"]) == (1, 1), "a page read stays cached"
    assert third.articles.failed == 1


async def test_a_cache_of_size_zero_reads_every_cycle(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/quiet", "Rare earth market update")]
    site.pages["/a/quiet"] = html(QUIET)

    async with open_runtime(settings(tmp_path, site, cache_size=0), clock=FakeClock(NOW)) as runtime:
        await cycle(runtime)
        await cycle(runtime)

    assert site.hits["/a/quiet"] == 2


async def test_the_cache_holds_at_most_cache_size_links(tmp_path: Path, site: Site) -> None:
    site.items = [item(f"/a/{n}", f"Rare earth note {n}") for n in range(3)]
    for n in range(3):
        site.pages[f"/a/{n}"] = html(QUIET)
    cfg = settings(tmp_path, site, cache_size=2, concurrency=1)  # one at a time: read in feed order

    async with open_runtime(cfg, clock=FakeClock(NOW)) as runtime:
        await cycle(runtime)
        assert runtime.pipeline.articles is not None and runtime.pipeline.articles.cached == 2
        await cycle(runtime)

    # Three links through a cache of two: the first, evicted by the third, is read again; not the others.
    assert [site.hits[f"/a/{n}"] for n in range(3)] == [2, 1, 1]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_concurrent_article_requests_are_bounded(tmp_path: Path, site: Site, concurrency: int) -> None:
    site.items = [item(f"/a/{n}", f"Rare earth note {n}") for n in range(8)]

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return web.Response(body=QUIET, content_type="text/html")

    for n in range(8):
        site.pages[f"/a/{n}"] = slow

    run = await one_cycle(tmp_path, site, concurrency=concurrency)

    assert run.articles.fetched == 8
    assert site.most_active == concurrency, "as many at once as allowed, and never more"


async def test_one_link_read_by_two_sources_at_once_is_fetched_once(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/signal", "Rare earth market update")]

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.1)
        return web.Response(body=SIGNAL, content_type="text/html")

    site.pages["/a/signal"] = slow
    cfg = settings(tmp_path, site)
    twin = cfg.sources[0].model_copy(update={"name": "mirror"})
    cfg = cfg.model_copy(update={"sources": [cfg.sources[0], twin]})

    async with open_runtime(cfg, clock=FakeClock(NOW)) as runtime:
        runs = await run_cycle(runtime.pipeline, runtime.sources, force=True, concurrency=2)

    assert site.hits["/a/signal"] == 1
    assert sorted(r.articles.matched for r in runs) == [1, 1]


async def test_article_reads_are_counted_in_the_metrics(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/signal", "Rare earth market update"), item("/a/dead", "Rare earth prices slip")]
    site.pages["/a/signal"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site)
    metrics = Metrics()
    await metrics.record(run)
    text = metrics.exposition().decode()

    assert 'rarewatch_article_reads_total{outcome="fetched",source="wire"} 1.0' in text
    assert 'rarewatch_article_reads_total{outcome="failed",source="wire"} 1.0' in text
    assert 'rarewatch_article_matches_total{source="wire"} 1.0' in text


# Hostile article pages: each leaves the item processed without enrichment and the source healthy


def status(code: int) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text="nope")

    return handler


def redirect(location: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    return handler


async def stalls(request: web.Request) -> web.StreamResponse:
    await request.app[SITE].release.wait()  # never in time: answers only once the test is over
    return web.Response(body=SIGNAL, content_type="text/html")


async def trickles(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/html"})
    await resp.prepare(request)
    await resp.write(b"<html><body><p>Rare earth export licence")
    while not request.app[SITE].release.is_set():
        await resp.write(b" ")
        await asyncio.sleep(0.05)
    return resp


def closed_port() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/article"


async def cross_host(request: web.Request) -> web.StreamResponse:
    """Bounces between 127.0.0.1 and localhost (another origin) on the same path: a loop across hosts."""
    other = "localhost" if request.url.host == "127.0.0.1" else "127.0.0.1"
    return web.Response(status=302, headers={"Location": str(request.url.with_host(other))})


async def oversized(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/html"})  # chunked: no length up front
    await resp.prepare(request)
    try:
        await resp.write(b"<html><body>")
        for _ in range(64):
            await resp.write(b"<p>rare earth export licence padding</p>" * 100)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return resp


async def gzip_bomb(request: web.Request) -> web.StreamResponse:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
    await resp.prepare(request)
    try:
        await resp.write(compressor.compress(b"<html><body><p>"))
        for _ in range(32):  # 32 MB of zeros, a few KB on the wire
            await resp.write(compressor.compress(bytes(1024 * 1024)))
        await resp.write(compressor.flush())
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return resp


async def small_gzip_page(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=gzip.compress(SIGNAL), headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}
    )


HOSTILE: dict[str, Handler] = {
    "403": status(403),
    "404": status(404),
    "410": status(410),
    "429": status(429),
    "500": status(500),
    "503": status(503),
    "body-too-slow": trickles,
    "slow": stalls,
    "over-cap": oversized,
    "gzip-bomb": gzip_bomb,
    "redirect-loop": redirect("/bad/redirect-loop-2"),
    "too-many-redirects": redirect("/chain/7"),
    "redirect-to-ftp": redirect("ftp://127.0.0.1/article"),
    "cross-host-loop": cross_host,
    "pdf": html(b"%PDF-1.7\n" + bytes(range(256)) * 8, "application/pdf"),
    "binary-as-html": html(b"<html>\x00\x01\x02" + bytes(range(256)) * 8),
    "image": html(b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"),
    "empty": html(b""),
    "whitespace": html(b"  \n\t "),
    "no-paragraphs": html(b"<html><head><script>var x = 1;</script></head><body><div></div></body></html>"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_article_pages(tmp_path: Path, site: Site, kind: str) -> None:
    site.items = [item(f"/bad/{kind}", "Rare earth market update", "Prices were steady.")]
    site.pages.update({f"/bad/{k}": h for k, h in HOSTILE.items()})
    site.pages["/bad/redirect-loop-2"] = redirect(f"/bad/{kind}")
    for n in range(1, 8):
        site.pages[f"/chain/{n}"] = redirect(f"/chain/{n - 1}")
    site.pages["/chain/0"] = html(SIGNAL)
    cfg = settings(tmp_path, site, timeout=0.5, max_bytes=CAP)

    start = asyncio.get_running_loop().time()
    async with open_runtime(cfg, clock=FakeClock(NOW)) as runtime:
        run = await cycle(runtime)
        state = await runtime.store.get_source_state("wire")

    assert asyncio.get_running_loop().time() - start < 10
    assert run.status == "ok" and run.error is None, "the source is healthy"
    assert run.entries == 1 and run.alerts == (), "the item was processed, without enrichment"
    assert run.articles.failed == 1 and run.articles.matched == 0
    assert state is not None and state.consecutive_failures == 0 and state.last_error is None
    if kind == "too-many-redirects":
        assert site.hits["/chain/0"] == 0, "the redirect limit counts every hop"


async def test_an_article_host_that_refuses_connections(tmp_path: Path, site: Site) -> None:
    site.items = [item(closed_port(), "Rare earth market update")]

    run = await one_cycle(tmp_path, site, timeout=0.5)

    assert run.status == "ok" and run.entries == 1 and run.alerts == () and run.articles.failed == 1


ODD: dict[str, Handler] = {
    "navigation-only": html(
        b"<html><body><nav><a href='/'>Home</a> <a href='/n'>News</a></nav></body></html>"
    ),
    "entity-bomb": html(
        b'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY a "rare earth export licence">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<html><body><p>&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;</p></body></html>",
        "application/xhtml+xml",
    ),
    "script-only": html(
        b"<html><body><script>document.write('rare earth export licence')</script></body></html>"
    ),
    "huge-single-line": html(b"<html><body><p>" + b"word " * 10_000 + b"</p></body></html>"),
}


@pytest.mark.parametrize("kind", sorted(ODD))
async def test_odd_article_pages_do_not_alert_or_harm_the_source(
    tmp_path: Path, site: Site, kind: str
) -> None:
    # Whether these count as read or failed, nothing of them can fire a rule: entities are not expanded,
    # scripts are not run, and navigation is not an article.
    site.items = [item(f"/odd/{kind}", "Rare earth market update")]
    site.pages[f"/odd/{kind}"] = ODD[kind]

    run = await one_cycle(tmp_path, site)

    assert run.status == "ok" and run.entries == 1 and run.alerts == ()


async def test_a_gzipped_article_is_read(tmp_path: Path, site: Site) -> None:
    site.items = [item("/a/gz", "Rare earth market update")]
    site.pages["/a/gz"] = small_gzip_page

    run = await one_cycle(tmp_path, site)

    assert [a.matched_in for a in run.alerts] == ["article"]


async def test_a_failing_article_does_not_hold_up_the_others(tmp_path: Path, site: Site) -> None:
    site.items = [item("/bad/slow", "Rare earth market update"), item("/a/signal", "Rare earth outlook")]
    site.pages["/bad/slow"] = stalls
    site.pages["/a/signal"] = html(SIGNAL)

    run = await one_cycle(tmp_path, site, timeout=0.5, concurrency=2)

    assert [a.item.title for a in run.alerts] == ["Rare earth outlook"]
    assert (run.articles.fetched, run.articles.failed) == (1, 1)
