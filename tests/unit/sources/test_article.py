"""`sources.article`: lead extraction, the private-address guard, the cache, and the reader's own
policies (its User-Agent, a hop check on every redirect, the extraction deadline) against a local server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from rarewatch.clock import FakeClock
from rarewatch.errors import SourceError
from rarewatch.sources import http
from rarewatch.sources.article import (
    LEAD_CHARS,
    Article,
    ArticleReader,
    _Cache,
    extract_lead,
    lead_paragraphs,
    refuse_private_host,
)
from rarewatch.sources.http import USER_AGENT

ARTICLE = (
    b"<html><head><title>T</title></head><body><nav><a href='/'>Home</a></nav><article>"
    b"<p>First paragraph about gallium export licences, long enough to be an article's text.</p>"
    b"<p>Second paragraph with more detail.</p></article><footer>Contact us</footer></body></html>"
)


# Extraction


def test_the_lead_is_the_main_text_without_navigation() -> None:
    lead = extract_lead(ARTICLE, "text/html; charset=utf-8")
    assert lead.splitlines()[0].startswith("First paragraph about gallium")
    assert "Home" not in lead and "Contact us" not in lead


def test_the_lead_keeps_the_first_paragraphs_up_to_max_chars() -> None:
    body = "".join(f"<p>Paragraph {n} " + "word " * 60 + "</p>" for n in range(20))
    lead = extract_lead(f"<html><body><article>{body}</article></body></html>".encode(), None)
    assert len(lead) <= LEAD_CHARS
    assert lead.startswith("Paragraph 0") and "Paragraph 19" not in lead
    assert len(extract_lead(f"<html><body>{body}</body></html>".encode(), None, max_chars=300)) <= 300


def test_lead_paragraphs() -> None:
    text = "\n\n  one  \n\ntwo\nthree\nfour\nfive\nsix\n"
    assert lead_paragraphs(text) == "one\ntwo\nthree\nfour\nfive"
    assert lead_paragraphs(text, max_chars=9) == "one\ntwo\nt"
    assert lead_paragraphs(text, max_chars=3) == "one"
    assert lead_paragraphs("") == ""


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "text/html", "^empty response$"),
        (b"  \n ", "text/html", "^empty response$"),
        (b"%PDF-1.7 ...", "application/pdf", "^not an HTML page: application/pdf$"),
        (b"{}", "application/json; charset=utf-8", "^not an HTML page: application/json$"),
        (b"<html>\x00\x00binary", "text/html", "^not an HTML page: binary content$"),
        (b"<html><body><div></div></body></html>", "text/html", "^no article text found$"),
    ],
)
def test_what_is_not_an_article(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        extract_lead(body, content_type)


def test_xhtml_and_a_missing_content_type_are_read() -> None:
    assert extract_lead(ARTICLE, "application/xhtml+xml")
    assert extract_lead(ARTICLE, None)


# Private addresses


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a",
        "http://localhost:8080/a",
        "http://api.localhost/a",
        "http://10.1.2.3/a",
        "http://192.168.0.1/a",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a",
        "http://[::ffff:127.0.0.1]/a",
        "http://0.0.0.0/a",
    ],
)
def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(SourceError, match="refusing to fetch an article"):
        refuse_private_host(URL(url))


@pytest.mark.parametrize(
    "url", ["https://example.org/a", "http://93.184.216.34/a", "https://[2606:4700::1]/"]
)
def test_public_addresses_and_host_names_pass(url: str) -> None:
    refuse_private_host(URL(url))


# The cache


def test_the_cache_is_lru_and_failures_expire() -> None:
    clock = FakeClock()
    cache = _Cache(2, timedelta(minutes=10), clock)
    cache.put(Article("a", text="A"))
    cache.put(Article("b", error="HTTP 404"))
    assert cache.get("a") == Article("a", text="A")  # a is now the most recently used
    cache.put(Article("c", text="C"))
    assert cache.get("b") is None, "the least recently used went"
    assert cache.get("a") is not None and len(cache) == 2
    cache.put(Article("d", error="HTTP 500"))
    clock.advance(timedelta(minutes=9))
    assert cache.get("d") == Article("d", error="HTTP 500")
    clock.advance(timedelta(minutes=1))
    assert cache.get("d") is None, "a failure is remembered for failure_ttl only"
    clock.advance(timedelta(days=365))
    assert cache.get("a") == Article("a", text="A"), "a page read stays until evicted"


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = _Cache(0, timedelta(minutes=10), FakeClock())
    cache.put(Article("a", text="A"))
    assert cache.get("a") is None


# The reader against a local server

SEEN = web.AppKey("seen", list[dict[str, str]])


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    seen: list[dict[str, str]] = []

    async def article(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return web.Response(body=ARTICLE, content_type="text/html")

    async def hop(request: web.Request) -> web.StreamResponse:
        target = request.url.with_host("localhost").with_path("/article")
        return web.Response(status=302, headers={"Location": str(target)})

    app = web.Application()
    app.router.add_get("/article", article)
    app.router.add_get("/hop", hop)
    srv = TestServer(app, host="127.0.0.1")
    srv.app[SEEN] = seen
    await srv.start_server()
    yield srv
    await srv.close()


async def test_the_reader_sends_our_user_agent_and_asks_for_html(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    reader = ArticleReader(allow_private_hosts=True)
    article = await reader.read(session, str(server.make_url("/article")))
    assert article.ok and not article.cached and article.text.startswith("First paragraph")
    (headers,) = server.app[SEEN]
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Accept"].startswith("text/html")
    again = await reader.read(session, str(server.make_url("/article")))
    assert again.cached and again.text == article.text and len(server.app[SEEN]) == 1


async def test_every_redirect_target_is_checked(server: TestServer, session: aiohttp.ClientSession) -> None:
    refused: list[str] = []

    def no_localhost(url: URL) -> None:
        if url.host == "localhost":
            refused.append(str(url))
            raise SourceError(f"refusing {url}")

    with pytest.raises(SourceError, match="refusing http://localhost"):
        await http.fetch(session, str(server.make_url("/hop")), check_target=no_localhost)
    assert server.app[SEEN] == [], "the refused target was never requested"
    assert len(refused) == 1


async def test_a_slow_extraction_is_given_up(server: TestServer, session: aiohttp.ClientSession) -> None:
    def slow(body: bytes, content_type: str | None, max_chars: int) -> str:
        time.sleep(0.5)
        return "late"

    reader = ArticleReader(allow_private_hosts=True, timeout=0.2, extract=slow)
    article = await reader.read(session, str(server.make_url("/article")))
    assert article.error is not None and article.error.startswith("timed out after 0.2s extracting")


async def test_a_bug_in_extraction_is_a_failed_read(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    def broken(body: bytes, content_type: str | None, max_chars: int) -> str:
        raise RuntimeError("boom")

    reader = ArticleReader(allow_private_hosts=True, extract=broken)
    article = await reader.read(session, str(server.make_url("/article")))
    assert article.error == "extraction failed: RuntimeError: boom"


async def test_extraction_runs_off_the_event_loop(server: TestServer, session: aiohttp.ClientSession) -> None:
    threads: list[str] = []

    def spy(body: bytes, content_type: str | None, max_chars: int) -> str:
        threads.append(threading.current_thread().name)
        return extract_lead(body, content_type, max_chars)

    reader = ArticleReader(allow_private_hosts=True, extract=spy)
    assert (await reader.read(session, str(server.make_url("/article")))).ok
    assert threads and threads[0] != threading.current_thread().name


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ArticleReader(concurrency=0)


async def test_a_cancelled_reader_does_not_cancel_the_shared_read(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    reader = ArticleReader(allow_private_hosts=True)
    url = str(server.make_url("/article"))
    first = asyncio.ensure_future(reader.read(session, url))
    second = asyncio.ensure_future(reader.read(session, url))
    await asyncio.sleep(0)
    first.cancel()
    article = await second
    assert article.ok and len(server.app[SEEN]) == 1
