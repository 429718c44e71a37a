"""`FeedSource`: one RSS or Atom feed, fetched politely and parsed off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from urllib.parse import urljoin

import aiohttp

from rarewatch.errors import SourceError
from rarewatch.models import FetchResult, RawEntry, SourceState
from rarewatch.sources import http
from rarewatch.sources.feedparse import parse_feed

ParseFn = Callable[[bytes, str | None, str, str | None], list[RawEntry]]
"""`(body, content_type, source_name, lang) -> entries`; module-level, so a process pool can pickle it."""

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
# Servers that negotiate content get a feed rather than a page; configured headers may override it.
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.8"
)


class FeedSource:
    """An RSS 0.9x/1.0/2.0 or Atom feed, implementing the `Source` protocol.

    Each `fetch` makes one conditional GET (see `rarewatch.sources.http.fetch` for timeouts, redirects,
    the size cap and error mapping), then parses the body in `executor` (None: the loop's default
    thread pool; a ProcessPoolExecutor works too). `parse` replaces the parser, e.g. in tests.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 30,
        connect_timeout: float = 10,
        max_bytes: int = 10 * 1024 * 1024,
        headers: Mapping[str, str] = _NO_HEADERS,
        lang: str | None = None,
        parse: ParseFn | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        try:
            http.check_url(url)
        except SourceError as exc:
            raise ValueError(f"source {name}: {exc}") from None
        self.name = name
        self.url = url
        self.headers = {"Accept": FEED_ACCEPT, **headers}
        self.lang = lang
        self.limits = http.Limits(timeout=timeout, connect_timeout=connect_timeout, max_bytes=max_bytes)
        self._parse: ParseFn = parse or parse_feed
        self._executor = executor

    def __repr__(self) -> str:
        return f"FeedSource({self.name!r}, {self.url!r})"

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        """Fetch and parse the feed. A 304 gives no entries and keeps the stored validators.

        Raises `SourceError` for network and HTTP failures (with `retry_after` on 429/503), an
        oversized, empty or non-feed body, and XML too broken to recover any entry from.
        """
        resp = await http.conditional_get(session, self.url, state, limits=self.limits, headers=self.headers)
        if resp.not_modified:
            return http.unchanged(resp, state)
        if not resp.body or resp.body.isspace():
            raise SourceError("empty response")  # spare the executor round trip
        loop = asyncio.get_running_loop()
        # Parsing is CPU-bound (tens of ms for a large feed): keep it off the event loop.
        entries = await loop.run_in_executor(
            self._executor, self._parse, resp.body, resp.content_type, self.name, self.lang
        )
        return FetchResult(
            entries=tuple(_absolute_links(entries, resp.url)),
            etag=resp.etag,
            last_modified=resp.last_modified,
        )


def _absolute_links(entries: Iterable[RawEntry], base: str) -> Iterable[RawEntry]:
    """Resolve relative item links against the URL the feed was finally fetched from."""
    for entry in entries:
        if entry.link and "://" not in entry.link:
            yield dataclasses.replace(entry, link=urljoin(base, entry.link))
        else:
            yield entry
