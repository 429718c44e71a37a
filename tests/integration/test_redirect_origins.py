"""Fetches stay where they were configured: two real servers on two loopback ports (two origins).

A redirect to another origin keeps none of the configured headers (an `X-Api-Key` as much as
`Authorization`); a same-origin redirect keeps them all; a JSON next page on the configured host that
redirects elsewhere is refused at that hop, before the other origin is asked anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from rarewatch.models import SourceState
from rarewatch.sources.feed import FeedSource
from rarewatch.sources.json_api import JsonApiSource
from tests.support import rss, serve

KEY = "KEY-must-stay-home"
CONFIGURED = {"X-Api-Key": KEY, "Authorization": "Bearer TOKEN", "User-Agent": "custom-agent/1"}
FEED = rss([{"title": "Gallium export licence", "link": "https://news.example/1", "guid": "1"}])


class Recorder:
    """Remembers the headers of every request, by path."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []

    def seen(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]


@asynccontextmanager
async def origin(routes: dict[str, web.StreamResponse | bytes]) -> AsyncIterator[tuple[TestServer, Recorder]]:
    """A server answering each path with a fixed response (bytes: a 200 feed or JSON body)."""
    recorder = Recorder()

    async def handle(request: web.Request) -> web.StreamResponse:
        recorder.requests.append((request.path, dict(request.headers)))
        answer = routes.get(request.path)
        if answer is None:
            raise web.HTTPNotFound()
        if isinstance(answer, bytes):
            kind = "application/json" if answer.startswith(b"{") else "application/rss+xml"
            return web.Response(body=answer, content_type=kind)
        return answer

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    async with serve(app) as server:
        yield server, recorder


def redirect(to: str) -> web.Response:
    return web.Response(status=302, headers={"Location": to})


async def test_a_cross_origin_redirect_drops_every_configured_header(session: aiohttp.ClientSession) -> None:
    async with (
        origin({"/feed": FEED}) as (far, far_hits),
        origin({"/feed": redirect(str(far.make_url("/feed")))}) as (near, near_hits),
    ):
        assert near.port != far.port  # two origins on loopback
        source = FeedSource("f", str(near.make_url("/feed")), headers=CONFIGURED)
        result = await source.fetch(session, SourceState())
    assert [e.title for e in result.entries] == ["Gallium export licence"]
    [home] = near_hits.seen("/feed")
    assert home["X-Api-Key"] == KEY  # the configured origin gets what was configured
    [away] = far_hits.seen("/feed")
    assert "X-Api-Key" not in away
    assert "Authorization" not in away
    assert away["User-Agent"].startswith("rarewatch/")  # ours, not the configured one
    assert away["Accept"] == home["Accept"]  # the wanted format still goes


async def test_a_same_origin_redirect_keeps_the_configured_headers(session: aiohttp.ClientSession) -> None:
    async with origin({"/old": redirect("/feed"), "/feed": FEED}) as (server, hits):
        source = FeedSource("f", str(server.make_url("/old")), headers=CONFIGURED)
        await source.fetch(session, SourceState())
    [moved] = hits.seen("/feed")
    assert moved["X-Api-Key"] == KEY
    assert moved["User-Agent"] == "custom-agent/1"


def json_page(next_url: str | None) -> bytes:
    doc = {"results": [{"title": "Scandium rule", "url": "https://news.example/s"}], "next": next_url}
    return json.dumps(doc).encode()


async def test_a_next_page_redirecting_off_the_configured_host_is_refused(
    session: aiohttp.ClientSession,
) -> None:
    async with origin({"/p2": json_page(None)}) as (far, far_hits):
        routes: dict[str, web.StreamResponse | bytes] = {"/p2": redirect(str(far.make_url("/p2")))}
        async with origin(routes) as (near, near_hits):
            routes["/p1"] = json_page(str(near.make_url("/p2")))  # a next page on the same host
            source = JsonApiSource(
                "api",
                str(near.make_url("/p1")),
                items="results",
                fields={"title": "title", "link": "url"},
                next_page="next",
                headers=CONFIGURED,
            )
            result = await source.fetch(session, SourceState())
    assert [e.title for e in result.entries] == ["Scandium rule"]  # page 1 is kept
    assert result.error is not None
    assert "refusing next page" in str(result.error)
    assert near_hits.seen("/p2")  # the same-host next page was asked for...
    assert far_hits.requests == []  # ...but its redirect to the other origin was not followed
