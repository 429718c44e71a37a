"""Articles: the page an item links to, fetched like a source and reduced to its lead paragraphs.

`ArticleReader.read(session, link)` fetches with the sources' own HTTP helper (`sources.http.fetch`:
User-Agent, an overall deadline, a body cap counted after decompression, http(s) only, redirects
followed by hand with loops named), decodes the page as the `html` kind does
(`sources.encoding.decode_html`: BOM, Content-Type charset, `<meta charset>`, GBK as GB18030), and extracts
the main text with trafilatura in an executor, keeping the first paragraphs (about 2,000 characters).

Politeness: at most `concurrency` article requests at once (one semaphore for every source), and every
result is cached by canonical link in an LRU: a page read once is not fetched again while cached, and a
failure is remembered for `failure_ttl`, so a dead page is not hammered every cycle. Two items with the
same link read at the same time share one request.

Article links come from feeds, which anyone can publish: unless `allow_private_hosts`, a link or redirect
to a literal private, loopback or link-local address (or `localhost`) is refused. Host names that
resolve to such addresses are not checked here; restrict egress at the network for that.

`read` never raises for a bad page: it returns an `Article` whose `error` says what went wrong.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from yarl import URL

from rarewatch.clock import Clock, SystemClock
from rarewatch.errors import SourceError
from rarewatch.httputil import redact_url
from rarewatch.sources import http
from rarewatch.sources.encoding import decode_html
from rarewatch.sources.html import HTML_ACCEPT

log = logging.getLogger(__name__)

LEAD_CHARS = 2000  # the most text kept from an article
LEAD_PARAGRAPHS = 5  # the most paragraphs kept (headings count as paragraphs)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF = 1024  # bytes looked at for NULs: a binary body is refused before any parsing

ExtractFn = Callable[[bytes, str | None, int], str]
"""`(body, content_type, max_chars) -> lead text`, raising `SourceError`; module-level, so a process
pool can pickle it."""


@dataclass(frozen=True, slots=True)
class Article:
    """What reading one link gave: its lead `text`, or the `error` that prevented it.

    `cached`: the answer came from the cache (no request was made for it).
    """

    link: str
    text: str = ""
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def extract_lead(body: bytes, content_type: str | None, max_chars: int = LEAD_CHARS) -> str:
    """The lead of an HTML article: its first paragraphs of main text, at most `max_chars` characters.

    Raises `SourceError` for an empty body, a body that is not HTML (by Content-Type, or NUL bytes), and
    a page with no article text (navigation only, no paragraphs).
    """
    if not body or body.isspace():
        raise SourceError("empty response")
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime and mime not in HTML_TYPES:
        raise SourceError(f"not an HTML page: {mime}")
    if b"\x00" in body[:_SNIFF]:
        raise SourceError("not an HTML page: binary content")
    import trafilatura  # here, not at the top: a run that reads no article never loads it (~0.1 s)

    text = trafilatura.extract(
        decode_html(body, content_type),
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        deduplicate=False,
    )
    lead = lead_paragraphs(text or "", max_chars)
    if not lead:
        raise SourceError("no article text found")
    return lead


def lead_paragraphs(text: str, max_chars: int = LEAD_CHARS, max_paragraphs: int = LEAD_PARAGRAPHS) -> str:
    """The first `max_paragraphs` non-empty lines of `text`, joined by newlines, cut to `max_chars`."""
    kept: list[str] = []
    size = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if size + len(line) > max_chars:
            room = max_chars - size
            if room > 0:
                kept.append(line[:room].rstrip())
            break
        kept.append(line)
        size += len(line) + 1
        if len(kept) == max_paragraphs:
            break
    return "\n".join(kept)


def refuse_private_host(url: URL) -> None:
    """Raise `SourceError` for `localhost` or a literal address that is not globally routable."""
    host = (url.host or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise SourceError(f"refusing to fetch an article from a local address: {redact_url(url)}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a host name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global:
        raise SourceError(f"refusing to fetch an article from a non-public address: {redact_url(url)}")


class _Cache:
    """An LRU of articles by canonical link; failures expire after `failure_ttl`, successes stay until
    evicted (an article's lead rarely changes once published)."""

    def __init__(self, size: int, failure_ttl: timedelta, clock: Clock) -> None:
        self._size = size
        self._failure_ttl = failure_ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Article, datetime | None]] = OrderedDict()

    def get(self, link: str) -> Article | None:
        entry = self._entries.get(link)
        if entry is None:
            return None
        article, expires = entry
        if expires is not None and self._clock.now() >= expires:
            del self._entries[link]
            return None
        self._entries.move_to_end(link)
        return article

    def put(self, article: Article) -> None:
        if self._size <= 0:
            return
        expires = None if article.ok else self._clock.now() + self._failure_ttl
        self._entries[article.link] = (article, expires)
        self._entries.move_to_end(article.link)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class ArticleReader:
    """Reads linked articles politely: bounded concurrency, a cache by link, the sources' limits."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        timeout: float = 15.0,
        connect_timeout: float = 10.0,
        max_bytes: int = 2 * 1024 * 1024,
        cache_size: int = 1000,
        failure_ttl: timedelta = timedelta(minutes=10),
        max_chars: int = LEAD_CHARS,
        allow_private_hosts: bool = False,
        clock: Clock | None = None,
        executor: concurrent.futures.Executor | None = None,
        extract: ExtractFn | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.limits = http.Limits(timeout=timeout, connect_timeout=connect_timeout, max_bytes=max_bytes)
        self.max_chars = max_chars
        self._limit = asyncio.Semaphore(concurrency)
        self._cache = _Cache(cache_size, failure_ttl, clock or SystemClock())
        self._check = None if allow_private_hosts else refuse_private_host
        self._executor = executor
        self._extract: ExtractFn = extract or extract_lead
        self._inflight: dict[str, asyncio.Future[Article]] = {}

    @property
    def cached(self) -> int:
        """How many links the cache holds."""
        return len(self._cache)

    async def read(self, session: aiohttp.ClientSession, link: str) -> Article:
        """The lead of the article at `link` (a canonical link), from the cache or fetched now."""
        article = self._cache.get(link)
        if article is not None:
            return Article(article.link, article.text, article.error, cached=True)
        pending = self._inflight.get(link)
        if pending is None:
            pending = self._inflight[link] = asyncio.ensure_future(self._fetch(session, link))
            pending.add_done_callback(lambda _: self._inflight.pop(link, None))
        # Shielded: one reader giving up (its source was cancelled) does not cancel the others' read.
        return await asyncio.shield(pending)

    async def _fetch(self, session: aiohttp.ClientSession, link: str) -> Article:
        async with self._limit:
            try:
                article = Article(link, text=await self._lead(session, link))
            except SourceError as exc:
                article = Article(link, error=str(exc))
            except Exception as exc:  # a bug in extraction must not cost the item: log it, remember it
                log.warning("article %s: extraction failed", link, exc_info=True)
                article = Article(link, error=f"extraction failed: {type(exc).__name__}: {exc}")
        self._cache.put(article)
        return article

    async def _lead(self, session: aiohttp.ClientSession, link: str) -> str:
        resp = await http.fetch(
            session,
            link,
            limits=self.limits,
            headers={"Accept": HTML_ACCEPT},
            check_target=self._check,
        )
        loop = asyncio.get_running_loop()
        try:
            # Extraction is CPU-bound (milliseconds to tens of ms a page): keep it off the event loop.
            async with asyncio.timeout(self.limits.timeout):
                return await loop.run_in_executor(
                    self._executor, self._extract, resp.body, resp.content_type, self.max_chars
                )
        except TimeoutError:
            raise SourceError(
                f"timed out after {self.limits.timeout:g}s extracting {redact_url(link)}"
            ) from None
