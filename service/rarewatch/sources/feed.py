"""`FeedSource`: one RSS or Atom feed, fetched politely and parsed off the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal, Unpack
from urllib.parse import urljoin

import aiohttp

from rarewatch.errors import SourceError
from rarewatch.models import FetchResult, RawEntry, SourceState
from rarewatch.sources import http
from rarewatch.sources.base import HttpOptions, HttpSource, Source, SourceConfigBase, SourceDeps, http_options
from rarewatch.sources.feedparse import parse_feed

ParseFn = Callable[[bytes, str | None, str, str | None], list[RawEntry]]
"""`(body, content_type, source_name, lang) -> entries`; module-level, so a process pool can pickle it."""

# Servers that negotiate content get a feed rather than a page; configured headers may override it.
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.8"
)


class FeedSource(HttpSource):
    """An RSS 0.9x/1.0/2.0 or Atom feed, implementing the `Source` protocol.

    Each `fetch` makes one conditional GET (see `rarewatch.sources.http.fetch` for timeouts, redirects,
    the size cap and error mapping), then parses the body in `executor` (None: the loop's default
    thread pool; a ProcessPoolExecutor works too). `parse` replaces the parser, e.g. in tests.
    """

    accept = FEED_ACCEPT

    def __init__(
        self, name: str, url: str, *, parse: ParseFn | None = None, **options: Unpack[HttpOptions]
    ) -> None:
        super().__init__(name, url, **options)
        self._parse: ParseFn = parse or parse_feed

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        """Fetch and parse the feed. A 304 gives no entries and keeps the stored validators.

        Raises `SourceError` for network and HTTP failures (with `retry_after` on 429/503), an
        oversized, empty or non-feed body, and XML too broken to recover any entry from.
        """
        resp = await self.fetch_body(session, state)
        if resp.not_modified:
            return http.unchanged(resp, state)
        return await self.parsed(resp)

    @property
    def default_parser(self) -> bool:
        """Whether the source parses with `parse_feed` (what `rarewatch.item_workers` runs)."""
        return self._parse is parse_feed

    async def parsed(self, resp: http.HttpResponse) -> FetchResult:
        """The `FetchResult` of a fetched body (not a 304), parsed in the executor."""
        loop = asyncio.get_running_loop()
        # Parsing is CPU-bound (tens of ms for a large feed): keep it off the event loop.
        entries = await loop.run_in_executor(
            self._executor, self._parse, resp.body, resp.content_type, self.name, self.lang
        )
        return FetchResult(
            entries=tuple(absolute_links(entries, resp.url)),
            etag=resp.etag,
            last_modified=resp.last_modified,
        )

    async def fetch_body(self, session: aiohttp.ClientSession, state: SourceState) -> http.HttpResponse:
        """The conditional GET of `fetch`, its body not parsed (for `rarewatch.item_workers`): a 304, or
        a non-empty body. Raises `SourceError` as `fetch` does, and for an empty body."""
        resp = await self._get(session, state)
        if not resp.not_modified and (not resp.body or resp.body.isspace()):
            raise SourceError("empty response")  # spare the parser's round trip
        return resp


def absolute_links(entries: Iterable[RawEntry], base: str) -> Iterable[RawEntry]:
    """Resolve relative item links against the URL the feed was finally fetched from."""
    for entry in entries:
        if entry.link and "://" not in entry.link:
            yield dataclasses.replace(entry, link=urljoin(base, entry.link))
        else:
            yield entry


class FeedSourceConfig(SourceConfigBase):
    """RSS 0.9x/1.0/2.0 or Atom."""

    type: Literal["feed"]
    enrich: bool = True  # read the linked article of items that name a watched term but fire no rule


def build(config: FeedSourceConfig, deps: SourceDeps) -> Source:
    """The `FeedSource` of a configured `feed` source."""
    return FeedSource(config.name, config.url, **http_options(config, deps))
