"""One bad item must not stop a source: lone surrogates, parser crashes and a failing later page.

Real servers on 127.0.0.1 (an RSS feed, a JSON API), a real SQLite file, the jsonl destination, and the
HTTP API's `/api/v1/sources` view.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rarewatch.api import RUNTIME, add_routes
from rarewatch.clock import FakeClock
from rarewatch.commands.service import run_once
from rarewatch.pipeline import SourceRun, run_cycle
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from tests.support import TEST_RULES, serve

NOW = datetime.now(UTC).replace(microsecond=0)
DATE = format_datetime(NOW, usegmt=True)
TITLE = "China widens rare earth export licence regime"


def rss_item(title_xml: str, n: int) -> str:
    return (
        f"<item><title>{title_xml}</title><link>https://wire.example/{n}</link><guid>w-{n}</guid>"
        f"<pubDate>{DATE}</pubDate></item>"
    )


def rss_doc(*items: str, broken: bool = False) -> bytes:
    tail = "" if broken else "</channel></rss>"  # broken: the feedparser fallback path
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
        "<link>https://wire.example/</link><description>t</description>" + "".join(items) + tail
    ).encode()


def json_page(titles: list[str], next_url: str | None) -> bytes:
    results = [
        {
            "title": t,
            "html_url": f"https://api.example/d/{zlib.crc32(t.encode('utf-8', 'surrogatepass'))}",
            "publication_date": NOW.date().isoformat(),
        }
        for t in titles
    ]
    # `ensure_ascii` writes a lone surrogate as the JSON escape "\ud800", as a real API would.
    return json.dumps({"results": results, "next_page_url": next_url}).encode()


class Api:
    """A JSON API with scriptable pages; `fail_page_2` makes page 2 answer 500."""

    def __init__(self) -> None:
        self.pages: dict[str, list[str]] = {"1": [], "2": []}
        self.fail_page_2 = False

    async def handle(self, request: web.Request) -> web.Response:
        page = request.query.get("page", "1")
        if page == "2" and self.fail_page_2:
            return web.Response(status=500, text="boom")
        nxt = str(request.url.with_query(page="2")) if page == "1" else None
        body = json_page(self.pages[page], nxt)
        headers = {"ETag": self.etag()} if page == "1" else {}
        return web.Response(body=body, content_type="application/json", headers=headers)

    def etag(self) -> str:
        """Page 1's validator: changes with what page 1 lists."""
        return f'"{zlib.crc32(json.dumps(self.pages["1"]).encode())}"'


@pytest.fixture
async def servers() -> AsyncIterator[tuple[dict[str, bytes], Api, TestServer]]:
    feeds: dict[str, bytes] = {}
    api = Api()

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=feeds[request.path], content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/api/docs.json", api.handle)
    app.router.add_get("/{name}.xml", feed)
    async with serve(app) as server:
        yield feeds, api, server


def settings(tmp_path: Path, server: TestServer) -> Settings:
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    base: dict[str, Any] = {
        "store": f"sqlite:///{tmp_path / 'state.db'}",
        "rules": [str(tmp_path / "rules.yaml")],
        "sources": [
            {"name": "wire", "type": "feed", "url": str(server.make_url("/wire.xml")), "enrich": False},
            {
                "name": "api",
                "type": "json",
                "preset": "federal-register",
                "url": str(server.make_url("/api/docs.json")),
            },
        ],
        "destinations": [{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],
        "routes": [{"to": ["archive"]}],
        "config_dir": tmp_path,
    }
    return Settings(**base)


async def cycle(runtime: Runtime) -> dict[str, SourceRun]:
    runs = await run_cycle(runtime.pipeline, runtime.sources, force=True)
    await runtime.outbox.flush()
    return {r.source: r for r in runs}


async def api_sources(runtime: Runtime) -> dict[str, dict[str, Any]]:
    app = web.Application()
    app[RUNTIME] = runtime
    add_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/api/v1/sources")
        return {s["name"]: s for s in (await resp.json())["sources"]}


def archived(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("broken", [False, True], ids=["lxml", "feedparser"])
@pytest.mark.parametrize("ref", ["&#55296;", "&#xD800;", "&#xdfff;", "&#057343;"])
async def test_a_surrogate_reference_in_rss_is_replaced_and_the_story_alerted(
    ref: str, broken: bool, tmp_path: Path, servers: tuple[dict[str, bytes], Api, TestServer]
) -> None:
    feeds, _, server = servers
    feeds["/wire.xml"] = rss_doc(rss_item("Old item", 0))
    async with open_runtime(settings(tmp_path, server), clock=FakeClock(NOW)) as runtime:
        await cycle(runtime)  # the first poll: nothing alerts
        feeds["/wire.xml"] = rss_doc(
            rss_item(f"{TITLE} {ref}", 1), rss_item(TITLE + " again, now", 2), broken=broken
        )
        runs = await cycle(runtime)
        sources = await api_sources(runtime)
    assert runs["wire"].status == "ok", runs["wire"]
    assert sources["wire"]["consecutive_failures"] == 0 and sources["wire"]["last_error"] is None
    titles = [a["title"] for a in archived(tmp_path)]
    assert f"{TITLE} \ufffd" in titles, titles


async def test_a_lone_surrogate_in_a_json_api_is_replaced_and_the_story_alerted(
    tmp_path: Path, servers: tuple[dict[str, bytes], Api, TestServer]
) -> None:
    feeds, api, server = servers
    feeds["/wire.xml"] = rss_doc()
    async with open_runtime(settings(tmp_path, server), clock=FakeClock(NOW)) as runtime:
        await cycle(runtime)
        api.pages["1"] = [f"{TITLE} \ud800 today"]
        runs = await cycle(runtime)
        sources = await api_sources(runtime)
        pending = await runtime.store.due_deliveries(datetime.now(UTC))
    assert runs["api"].status == "ok", runs["api"]
    assert sources["api"]["consecutive_failures"] == 0
    assert [a["title"] for a in archived(tmp_path)] == [f"{TITLE} \ufffd today"]
    assert pending == [], "nothing stuck in the outbox"


async def test_a_failing_page_2_keeps_page_1s_items_and_is_the_sources_error(
    tmp_path: Path, servers: tuple[dict[str, bytes], Api, TestServer]
) -> None:
    feeds, api, server = servers
    feeds["/wire.xml"] = rss_doc()
    async with open_runtime(settings(tmp_path, server), clock=FakeClock(NOW)) as runtime:
        await cycle(runtime)
        empty = api.etag()
        api.pages = {
            "1": [TITLE + " on page one"],
            "2": ["Magnet shortage halts production at a rare earth plant"],
        }
        api.fail_page_2 = True
        runs = await cycle(runtime)
        sources = await api_sources(runtime)
        assert runs["api"].status == "error" and runs["api"].error is not None
        assert runs["api"].error.startswith("page 2: ") and "500" in runs["api"].error
        assert [a.item.title for a in runs["api"].alerts] == [TITLE + " on page one"]
        assert sources["api"]["consecutive_failures"] == 1
        assert sources["api"]["last_error"] == runs["api"].error
        assert sources["api"]["etag"] == empty, "no validators stored over an incomplete read"

        api.fail_page_2 = False  # recovered: page 2's item alerts, page 1's does not again
        runs = await cycle(runtime)
        sources = await api_sources(runtime)
    assert runs["api"].status == "ok"
    assert [a.item.title for a in runs["api"].alerts] == [
        "Magnet shortage halts production at a rare earth plant"
    ]
    assert sources["api"]["consecutive_failures"] == 0
    assert [a["title"] for a in archived(tmp_path)] == [
        TITLE + " on page one",
        "Magnet shortage halts production at a rare earth plant",
    ]


async def test_once_lists_a_partly_read_source_as_failed_and_alerts_its_first_page(
    tmp_path: Path, servers: tuple[dict[str, bytes], Api, TestServer]
) -> None:
    feeds, api, server = servers
    feeds["/wire.xml"] = rss_doc(rss_item(f"{TITLE} &#55296;", 1))
    api.pages = {
        "1": [TITLE + " on page one"],
        "2": ["Magnet shortage halts production at a rare earth plant"],
    }
    api.fail_page_2 = True
    out, err = io.StringIO(), io.StringIO()
    assert await run_once(settings(tmp_path, server), out, err) == 0
    report = err.getvalue()
    assert "once: 2 sources (1 failed), 2 new alerts" in report, report
    assert re.search(r"^  source api: page 2: HTTP 500", report, re.M), report
    assert "source wire" not in report
    assert sorted(a["title"] for a in archived(tmp_path)) == [TITLE + " on page one", f"{TITLE} \ufffd"]
