"""Real local servers for tests: a feed server and a webhook receiver, both aiohttp on 127.0.0.1."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.test_utils import TestServer

TEST_RULES = """\
id: test-licensing
title: Rare-earth export licensing (test)
category: export-licensing
severity: high
description: Test rule, written for the suite.
match:
  all:
    - any: ["rare earth", "稀土"]
    - any: ["export licence", "出口管制"]
---
id: test-shortage
title: Rare-earth shortage (test)
category: supply-disruption
severity: medium
description: Test rule, written for the suite.
match:
  all:
    - any: ["rare earth", "magnet"]
    - any: ["shortage", "halts production"]
"""


def replace_with_empty_file(db: Path) -> None:
    """Move a zero-byte file over the SQLite file `db`, as `cp /dev/null` through a temporary file, or a
    restore, does (the store's open connection still reads the old file)."""
    empty = db.with_name("empty.db")
    empty.write_bytes(b"")
    empty.replace(db)


def store_forgetter(db: Path, client: Any | None) -> Callable[[], Awaitable[None]]:
    """A coroutine function that makes a store forget everything, as an operator's mistake would: FLUSHALL
    on the Redis `client`, else a zero-byte file moved over the SQLite file `db`."""

    async def forget() -> None:
        if client is not None:
            await client.flushall()
        else:
            replace_with_empty_file(db)

    return forget


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    """An RSS 2.0 document; each item has title, link, guid and optional description and date."""
    parts = []
    for it in items:
        date = it.get("date") or format_datetime(datetime.now(UTC), usegmt=True)
        parts.append(
            "<item>"
            f"<title>{escape(it['title'])}</title>"
            f"<link>{escape(it['link'])}</link>"
            f"<guid>{escape(it.get('guid', it['link']))}</guid>"
            f"<pubDate>{date}</pubDate>"
            f"<description>{escape(it.get('description', ''))}</description>"
            "</item>"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.org/</link><description>t</description>"
        + "".join(parts)
        + "</channel></rss>"
    )
    return body.encode()


@dataclass
class FeedServer:
    """Serves feeds by path; honours If-None-Match with a 304; can be told to fail a path."""

    feeds: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    not_modified: Counter[str] = field(default_factory=Counter)
    server: TestServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        if path in self.statuses:
            return web.Response(status=self.statuses[path], text="failing on purpose")
        body = self.feeds.get(path)
        if body is None:
            raise web.HTTPNotFound()
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified[path] += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/rss+xml", headers={"ETag": etag})


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[TestServer]:
    """Serve `app` on 127.0.0.1 (a free port) for the duration of the block."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@asynccontextmanager
async def feed_server() -> AsyncIterator[FeedServer]:
    fs = FeedServer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fs.handle)
    async with serve(app) as fs.server:
        yield fs


@dataclass
class WebhookReceiver:
    """Records every POST with the status it answered: the scripted statuses first, then 200."""

    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.script.pop(0) if self.script else 200
        self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body, status))
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def delivered_ids(self) -> list[str]:
        """The webhook-ids of the requests answered 2xx, in order (duplicates kept, to catch them)."""
        return [headers["webhook-id"] for headers, _, status in self.requests if 200 <= status < 300]

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, _ in self.requests]


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    rx = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    async with serve(app) as rx.server:
        yield rx


@dataclass
class SlackApi:
    """A stand-in for Slack's Web API `chat.postMessage`: records posts, answers with increasing ts."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def api_url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/api/"))

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization", "").startswith("Bearer xoxb-")
        body = await request.json()
        self.posts.append(body)
        return web.json_response({"ok": True, "channel": body["channel"], "ts": f"{len(self.posts)}.0001"})


@asynccontextmanager
async def slack_api() -> AsyncIterator[SlackApi]:
    api = SlackApi()
    app = web.Application()
    app.router.add_post("/api/chat.postMessage", api.handle)
    async with serve(app) as api.server:
        yield api
