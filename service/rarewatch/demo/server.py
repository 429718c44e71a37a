"""A tiny local feed server for the demo: the bundled sample feeds, an article page one of them links to
(`{base}` in a feed is the server's own address), plus one source that is broken."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from rarewatch.paths import demo_articles_dir, demo_feeds_dir


def _feed_app() -> web.Application:
    app = web.Application()
    feeds = demo_feeds_dir()

    async def feed(request: web.Request) -> web.Response:
        path = feeds / request.match_info["name"]
        if path.suffix != ".xml" or not path.is_file():
            raise web.HTTPNotFound()
        body = path.read_bytes().replace(b"{base}", str(request.url.origin()).encode())
        return web.Response(body=body, content_type="application/xml", charset="utf-8")

    async def article(request: web.Request) -> web.Response:
        path = demo_articles_dir() / request.match_info["name"]
        if path.suffix != ".html" or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type="text/html", charset="utf-8")

    async def broken(request: web.Request) -> web.Response:
        # Shows that one failing source is reported and leaves the others alone.
        return web.Response(status=500, text="internal error")

    app.router.add_get("/feeds/{name}", feed)
    app.router.add_get("/articles/{name}", article)
    app.router.add_get("/broken.xml", broken)
    return app


@asynccontextmanager
async def serve_demo_feeds() -> AsyncIterator[str]:
    """Serve the sample feeds on 127.0.0.1 (a free port); yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runner = web.AppRunner(_feed_app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def demo_feed_names() -> list[str]:
    return sorted(p.name for p in demo_feeds_dir().glob("*.xml"))
