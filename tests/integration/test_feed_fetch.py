"""`FeedSource.fetch` against real aiohttp servers on 127.0.0.1: formats, HTTP behaviour, hostile bodies."""

from __future__ import annotations

import asyncio
import gzip
import random
import socket
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rarewatch.errors import SourceError
from rarewatch.httputil import MAX_RETRY_AFTER
from rarewatch.models import RawEntry, SourceState
from rarewatch.policies.backoff import next_source_state
from rarewatch.sources import FeedSource
from rarewatch.sources.feedparse import parse_feed
from rarewatch.sources.http import USER_AGENT

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
RSS = "application/rss+xml"
ETAG = '"v1-0123"'
LAST_MODIFIED = "Thu, 09 Oct 2025 08:30:00 GMT"
BOMB_BYTES = 100 * 1024 * 1024  # decompressed size of the gzip bomb
CAP = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fixture(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def serve(name: str, content_type: str = RSS) -> Handler:
    body = fixture(name)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text="nope", headers=headers)

    return handler


def redirect(location: str, code: int = 302) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, headers={"Location": location})

    return handler


async def busy_date(request: web.Request) -> web.StreamResponse:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    return web.Response(status=503, text="busy", headers={"Retry-After": later})


async def empty(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"", content_type=RSS)


async def conditional(request: web.Request) -> web.StreamResponse:
    request.app[HITS].append(dict(request.headers))
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers={"ETag": ETAG})
    return web.Response(
        body=fixture("rss2.xml"), headers={"Content-Type": RSS, "ETag": ETAG, "Last-Modified": LAST_MODIFIED}
    )


async def echo_user_agent(request: web.Request) -> web.StreamResponse:
    ua = request.headers.get("User-Agent", "")
    auth = request.headers.get("Authorization", "none")
    item = f"<item><title>{ua}</title><description>{auth}</description></item>"
    body = f'<rss version="2.0"><channel>{item}</channel></rss>'
    return web.Response(text=body, content_type=RSS)


async def relative_links(request: web.Request) -> web.StreamResponse:
    body = (
        '<rss version="2.0"><channel><item><title>a</title><link>/news/1</link></item>'
        "<item><title>b</title><link>2?x=1</link></item></channel></rss>"
    )
    return web.Response(text=body, content_type=RSS)


async def stalls(request: web.Request) -> web.StreamResponse:
    await request.app[RELEASE].wait()  # "too slow": never answers until the test is over
    return web.Response(text="late")


async def trickles(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": RSS})
    await resp.prepare(request)
    await resp.write(b'<rss version="2.0"><channel>')
    while not request.app[RELEASE].is_set():
        await resp.write(b" ")
        await asyncio.sleep(0.05)
    return resp


async def oversized_declared(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"<rss>" + b" " * (CAP * 4) + b"</rss>", content_type=RSS)


async def oversized_streamed(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": RSS})  # chunked: no Content-Length up front
    await resp.prepare(request)
    try:
        for _ in range(64):
            await resp.write(b"<!-- padding -->" * 1024)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass
    return resp


async def gzipped_feed(request: web.Request) -> web.StreamResponse:
    body = gzip.compress(fixture("rss2.xml"))
    return web.Response(body=body, headers={"Content-Type": RSS, "Content-Encoding": "gzip"})


async def small_bomb(request: web.Request) -> web.StreamResponse:
    body = gzip.compress(b"<rss>" + bytes(1024 * 1024))  # ~1 KB on the wire, 1 MB decompressed
    assert len(body) < CAP
    return web.Response(body=body, headers={"Content-Type": RSS, "Content-Encoding": "gzip"})


async def gzip_bomb(request: web.Request) -> web.StreamResponse:
    payload: bytes = request.app[BOMB]
    resp = web.StreamResponse(headers={"Content-Type": RSS, "Content-Encoding": "gzip"})
    await resp.prepare(request)
    try:
        for i in range(0, len(payload), 16 * 1024):
            await resp.write(payload[i : i + 16 * 1024])
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the client hung up: what we want
    return resp


def make_bomb() -> bytes:
    """~100 MB of zeros, gzip-compressed as it streams (never held decompressed in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(BOMB_BYTES // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


HITS = web.AppKey("hits", list[dict[str, str]])
RELEASE = web.AppKey("release", asyncio.Event)
BOMB = web.AppKey("bomb", bytes)

ROUTES: dict[str, Handler] = {
    "/rss2": serve("rss2.xml"),
    "/rss1": serve("rss1.rdf", "application/rdf+xml"),
    "/atom": serve("atom.xml", "application/atom+xml"),
    "/gb2312": serve("zh_gb2312.xml", "text/xml"),
    "/big5": serve("zh_big5.xml", "text/xml; charset=big5"),
    "/bom": serve("zh_utf8_bom.xml", "application/xml; charset=utf-8"),
    "/wrong-encoding": serve("wrong_declared_encoding.xml", "text/xml"),
    "/recoverable": serve("recoverable.xml"),
    "/malformed": serve("malformed.xml"),
    "/html": serve("html_page.html", "text/html; charset=utf-8"),
    "/billion-laughs": serve("billion_laughs.xml"),
    "/xxe": serve("xxe.xml"),
    "/conditional": conditional,
    "/ua": echo_user_agent,
    "/relative/feed": relative_links,
    "/gone": status(410),
    "/forbidden": status(403),
    "/error": status(500),
    "/busy-seconds": status(429, {"Retry-After": "120"}),
    "/busy-forever": status(503, {"Retry-After": "99999999999999999999"}),
    "/busy-date": busy_date,
    "/empty": empty,
    "/loop-a": redirect("/loop-b"),
    "/loop-b": redirect("/loop-a", 301),
    "/to-ftp": redirect("ftp://127.0.0.1/feed.xml"),
    "/to-rss2": redirect("/rss2", 308),
    "/no-location": status(302),
    "/stalls": stalls,
    "/trickles": trickles,
    "/big-declared": oversized_declared,
    "/big-streamed": oversized_streamed,
    "/gzip": gzipped_feed,
    "/bomb": gzip_bomb,
    "/small-bomb": small_bomb,
}
for _n in range(1, 8):  # /chain/N redirects to /chain/N-1, /chain/0 is the feed
    ROUTES[f"/chain/{_n}"] = redirect(f"/chain/{_n - 1}")
ROUTES["/chain/0"] = serve("rss2.xml")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return make_bomb()


@pytest.fixture
async def server(bomb: bytes) -> AsyncIterator[TestServer]:
    app = web.Application()
    app[HITS] = []
    app[RELEASE] = asyncio.Event()
    app[BOMB] = bomb
    for path, handler in ROUTES.items():
        app.router.add_get(path, handler)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    app[RELEASE].set()
    await srv.close()


def source(server: TestServer, path: str, **kwargs: Any) -> FeedSource:
    return FeedSource("test", str(server.make_url(path)), **kwargs)


async def fetch(
    server: TestServer, session: aiohttp.ClientSession, path: str, **kwargs: Any
) -> list[RawEntry]:
    result = await source(server, path, **kwargs).fetch(session, SourceState())
    assert not result.not_modified
    return list(result.entries)


# Formats and encodings over HTTP


async def test_rss2(server: TestServer, session: aiohttp.ClientSession) -> None:
    entries = await fetch(server, session, "/rss2")
    assert len(entries) == 3
    assert entries[0].title == "Beijing tightens licensing for heavy rare earth exports"
    assert {e.source for e in entries} == {"test"}


async def test_rss1(server: TestServer, session: aiohttp.ClientSession) -> None:
    entries = await fetch(server, session, "/rss1")
    assert [e.link for e in entries] == [
        "https://journal.example.net/notice/17",
        "https://journal.example.net/notice/18",
    ]


async def test_atom(server: TestServer, session: aiohttp.ClientSession) -> None:
    entries = await fetch(server, session, "/atom")
    assert entries[0].guid == "tag:ministry.example.gov,2025:press-1"
    assert entries[1].lang == "fr"


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/gb2312", "朱镕基同名测试：钕铁硼永磁体出口许可"),
        ("/big5", "稀土永磁材料出口管制措施說明"),
        ("/bom", "稀土供应紧张，部分磁材厂减产"),
        ("/wrong-encoding", "\u201cCaf\u00e9\u201d owners fret over magnet supply"),
    ],
)
async def test_encodings(server: TestServer, session: aiohttp.ClientSession, path: str, title: str) -> None:
    entries = await fetch(server, session, path)
    assert title in [e.title for e in entries]


async def test_recoverable_ill_formed_feed(server: TestServer, session: aiohttp.ClientSession) -> None:
    entries = await fetch(server, session, "/recoverable")
    assert len(entries) == 2


async def test_gzip_encoded_feed(server: TestServer, session: aiohttp.ClientSession) -> None:
    assert len(await fetch(server, session, "/gzip")) == 3


async def test_relative_links_resolve_against_the_feed_url(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    entries = await fetch(server, session, "/relative/feed")
    base = str(server.make_url("/"))
    assert [e.link for e in entries] == [base + "news/1", base + "relative/2?x=1"]


async def test_lang_is_passed_to_the_parser(server: TestServer, session: aiohttp.ClientSession) -> None:
    entries = await fetch(server, session, "/rss2", lang="en-us")
    assert {e.lang for e in entries} == {"en-us"}


# Conditional GET


async def test_conditional_get_returns_validators_then_304(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    src = source(server, "/conditional")
    first = await src.fetch(session, SourceState())
    assert len(first.entries) == 3
    assert (first.etag, first.last_modified) == (ETAG, LAST_MODIFIED)

    state = SourceState(etag=first.etag, last_modified=first.last_modified)
    second = await src.fetch(session, state)
    assert second.not_modified
    assert second.entries == ()
    assert (second.etag, second.last_modified) == (ETAG, LAST_MODIFIED)  # kept

    hits = server.app[HITS]
    assert hits[0]["Accept"].startswith("application/rss+xml, application/atom+xml")
    assert "If-None-Match" not in hits[0]
    assert hits[1]["If-None-Match"] == ETAG
    assert hits[1]["If-Modified-Since"] == LAST_MODIFIED


async def test_stale_validators_get_the_full_feed(server: TestServer, session: aiohttp.ClientSession) -> None:
    result = await source(server, "/conditional").fetch(session, SourceState(etag='"old"'))
    assert not result.not_modified
    assert result.etag == ETAG


# Headers


async def test_default_user_agent(server: TestServer, session: aiohttp.ClientSession) -> None:
    (entry,) = await fetch(server, session, "/ua")
    assert entry.title == USER_AGENT


async def test_configured_headers_override_the_user_agent(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    (entry,) = await fetch(server, session, "/ua", headers={"user-agent": "Custom/1.0", "Authorization": "t"})
    assert entry.title == "Custom/1.0"
    assert entry.summary == "t"


async def test_credentials_are_not_forwarded_to_another_host(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    other = TestServer(web.Application(), host="127.0.0.1")
    other.app.router.add_get("/ua", echo_user_agent)
    await other.start_server()
    try:
        target = str(other.make_url("/ua")).replace("127.0.0.1", "localhost")
        hop = web.Application()
        hop.router.add_get("/", redirect(target))
        async with TestServer(hop, host="127.0.0.1") as first:
            src = FeedSource("t", str(first.make_url("/")), headers={"Authorization": "Bearer secret"})
            (entry,) = (await src.fetch(session, SourceState())).entries
        assert entry.summary == "none"
    finally:
        await other.close()


# HTTP errors


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/missing", r"^HTTP 404 Not Found: the feed is not at http://127\.0\.0\.1:\d+/missing$"),
        ("/gone", r"^HTTP 410 Gone: the feed is not at"),
        ("/forbidden", r"^HTTP 403 Forbidden \(client error\)"),
        ("/error", r"^HTTP 500 Internal Server Error \(server error\)"),
    ],
)
async def test_http_errors(
    server: TestServer, session: aiohttp.ClientSession, path: str, pattern: str
) -> None:
    with pytest.raises(SourceError, match=pattern) as info:
        await fetch(server, session, path)
    assert info.value.retry_after is None


async def test_429_with_retry_after_seconds(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=r"^HTTP 429 Too Many Requests .*retry after 120s") as info:
        await fetch(server, session, "/busy-seconds")
    assert info.value.retry_after == 120


async def test_retry_after_survives_a_session_that_raises_for_status(server: TestServer) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as strict:
        with pytest.raises(SourceError, match=r"^HTTP 429") as info:
            await fetch(server, strict, "/busy-seconds")
    assert info.value.retry_after == 120


async def test_503_with_retry_after_http_date(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=r"^HTTP 503 Service Unavailable") as info:
        await fetch(server, session, "/busy-date")
    assert info.value.retry_after is not None
    assert 110 <= info.value.retry_after <= 120


async def test_a_retry_after_past_the_clock_is_capped_and_the_source_backs_off(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    # a hostile server's delay past what timedelta holds used to raise OverflowError in the backoff on
    # every poll; it is read as 30 days, and the source waits that long
    with pytest.raises(SourceError, match=r"^HTTP 503") as info:
        await fetch(server, session, "/busy-forever")
    assert info.value.retry_after == MAX_RETRY_AFTER
    now = datetime(2026, 1, 2, tzinfo=UTC)
    after = next_source_state(SourceState(), info.value, timedelta(minutes=15), now, random.Random(0))
    assert after.not_before == now + timedelta(days=30)


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = FeedSource("t", f"http://127.0.0.1:{port}/feed")
    with pytest.raises(SourceError, match=rf"^cannot connect to 127\.0\.0\.1:{port}: "):
        await src.fetch(session, SourceState())


# Redirects


async def test_redirect_is_followed(server: TestServer, session: aiohttp.ClientSession) -> None:
    assert len(await fetch(server, session, "/to-rss2")) == 3


async def test_five_redirects_are_followed(server: TestServer, session: aiohttp.ClientSession) -> None:
    assert len(await fetch(server, session, "/chain/5")) == 3


async def test_six_redirects_are_too_many(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=r"^too many redirects \(more than 5\)"):
        await fetch(server, session, "/chain/6")


async def test_redirect_loop_is_named(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=r"^redirect loop: .*/loop-a -> .*/loop-b -> .*/loop-a$"):
        await fetch(server, session, "/loop-a")


async def test_redirect_to_another_scheme_is_refused(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(SourceError, match=r"^refusing redirect to non-http\(s\) URL 'ftp://"):
        await fetch(server, session, "/to-ftp")


async def test_redirect_without_location(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=r"redirect without a Location header"):
        await fetch(server, session, "/no-location")


def test_other_schemes_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match=r"refusing non-http"):
        FeedSource("t", "file:///etc/passwd")


# Timeouts


async def test_server_too_slow_to_answer(server: TestServer, session: aiohttp.ClientSession) -> None:
    start = asyncio.get_running_loop().time()
    with pytest.raises(SourceError, match=r"^timed out after 0\.3s fetching http://127\.0\.0\.1:\d+/stalls$"):
        await fetch(server, session, "/stalls", timeout=0.3)
    assert asyncio.get_running_loop().time() - start < 2


async def test_body_too_slow_to_finish(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=r"^timed out after 0\.4s"):
        await fetch(server, session, "/trickles", timeout=0.4)


# Bad bodies


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/empty", r"^empty response$"),
        ("/html", r"^not a feed: got an HTML page$"),
        ("/malformed", r"^malformed XML: .*mismatch"),
        ("/billion-laughs", r"^refusing a feed that declares XML entities$"),
        ("/xxe", r"^refusing a feed that declares XML entities$"),
    ],
)
async def test_bad_bodies(
    server: TestServer, session: aiohttp.ClientSession, path: str, pattern: str
) -> None:
    with pytest.raises(SourceError, match=pattern) as info:
        await fetch(server, session, path)
    assert "root:" not in str(info.value)  # nothing of /etc/passwd, ever


@pytest.mark.parametrize("path", ["/big-declared", "/big-streamed"])
async def test_body_over_the_cap(server: TestServer, session: aiohttp.ClientSession, path: str) -> None:
    with pytest.raises(SourceError, match=rf"^response larger than {CAP} bytes$"):
        await fetch(server, session, path, max_bytes=CAP)


async def test_gzip_bomb_stops_early_with_bounded_memory(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=rf"^response larger than {CAP} bytes$"):
            await fetch(server, session, "/bomb", max_bytes=CAP)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < CAP + 4 * 1024 * 1024, f"peak {peak:,} bytes while reading a {BOMB_BYTES:,}-byte bomb"


async def test_the_cap_counts_decompressed_bytes(server: TestServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match=rf"^response larger than {CAP} bytes$"):
        await fetch(server, session, "/small-bomb", max_bytes=CAP)


async def test_decompression_happens_even_if_the_session_disables_it(server: TestServer) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        assert len(await fetch(server, raw, "/gzip")) == 3
        with pytest.raises(SourceError, match=rf"^response larger than {CAP} bytes$"):
            await fetch(server, raw, "/small-bomb", max_bytes=CAP)


async def test_gzip_bomb_with_the_default_cap_never_holds_it_all(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    cap = 10 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=rf"^response larger than {cap} bytes$"):
            await fetch(server, session, "/bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * cap + 4 * 1024 * 1024  # the kept chunks plus one join, never the 100 MB


# The executor


def record_thread_parse(body: bytes, content_type: str | None, name: str, lang: str | None) -> list[RawEntry]:
    RECORDED.append(threading.current_thread().name)
    return parse_feed(body, content_type, name, lang)


RECORDED: list[str] = []


async def test_parsing_runs_off_the_event_loop_thread(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    RECORDED.clear()
    entries = await fetch(server, session, "/rss2", parse=record_thread_parse)
    assert len(entries) == 3
    assert RECORDED and RECORDED[0] != threading.current_thread().name


async def test_the_parser_gets_bytes_and_the_content_type(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    seen: list[tuple[type, str | None, str, str | None]] = []

    def spy(body: bytes, content_type: str | None, name: str, lang: str | None) -> list[RawEntry]:
        seen.append((type(body), content_type, name, lang))
        return []

    await fetch(server, session, "/big5", parse=spy, lang="zh-tw")
    assert seen == [(bytes, "text/xml; charset=big5", "test", "zh-tw")]


async def test_process_pool_executor(server: TestServer, session: aiohttp.ClientSession) -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        entries = await fetch(server, session, "/gb2312", executor=pool)
        assert entries[0].title == "关于对部分稀土相关物项实施出口管制的公告"
        with pytest.raises(SourceError, match=r"^not a feed: got an HTML page$"):
            await fetch(server, session, "/html", executor=pool)
