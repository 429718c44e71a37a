"""`JsonApiSource` and `HtmlListSource` against real aiohttp servers on 127.0.0.1, and `build_sources`.

The JSON server imitates the Federal Register documents API (two pages, `next_page_url` pointing back at
the server, an ETag on the first page); the HTML server serves MOFCOM-shaped and GBK list pages.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from rarewatch.errors import SourceError
from rarewatch.models import SourceState
from rarewatch.runtime import build_sources
from rarewatch.settings import load_settings
from rarewatch.sources.feed import FeedSource
from rarewatch.sources.html import PRESETS as HTML_PRESETS
from rarewatch.sources.html import HtmlListSource
from rarewatch.sources.json_api import PRESETS as JSON_PRESETS
from rarewatch.sources.json_api import JsonApiSource

DATA = Path(__file__).resolve().parents[1] / "data"
API = "/api/v1/documents.json"
ETAG = '"fr-page-1-v7"'
PARAMS: dict[str, str | list[str]] = {
    "conditions[agencies][]": ["industry-and-security-bureau", "commerce-department"],
    "order": "newest",
    "per_page": "2",
}
HITS = web.AppKey("hits", list[web.Request])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def fr_page(name: str, base: str | None = None) -> Handler:
    """A Federal-Register-shaped page; `__BASE__` in its URLs becomes `base` (default: this server)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        origin = base or f"http://{request.host}"
        body = data(f"json/{name}").replace(b"__BASE__", origin.encode())
        return web.Response(body=body, content_type="application/json")

    return handler


async def documents(request: web.Request) -> web.StreamResponse:
    """The documents endpoint: page 1 carries an ETag and honours If-None-Match; `page=2` is page 2."""
    request.app[HITS].append(request)
    if request.query.get("page") == "2":
        return await fr_page("fr_page2.json")(request)
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers={"ETag": ETAG})
    resp = await fr_page("fr_page1.json")(request)
    resp.headers["ETag"] = ETAG
    return resp


async def endless(request: web.Request) -> web.StreamResponse:
    """Every page links to the next one: only `max_pages` stops a client."""
    request.app[HITS].append(request)
    n = int(request.query.get("page", "1"))
    doc = (
        f'{{"results": [{{"title": "Notice {n}", "html_url": "/d/{n}"}}], '
        f'"next_page_url": "/endless?page={n + 1}"}}'
    )
    return web.Response(text=doc, content_type="application/json")


async def loops(request: web.Request) -> web.StreamResponse:
    request.app[HITS].append(request)
    doc = '{"results": [{"title": "Same page again", "html_url": "/d/1"}], "next_page_url": "/loops"}'
    return web.Response(text=doc, content_type="application/json")


async def page2_fails(request: web.Request) -> web.StreamResponse:
    """Page 1 links to this endpoint's own page 2, which fails."""
    if request.query.get("page") == "2":
        return web.Response(status=500, text="boom")
    here = f"http://{request.host}/page2-fails".encode()
    body = data("json/fr_page1.json").replace(b"__BASE__" + API.encode(), here)
    return web.Response(body=body, content_type="application/json", headers={"ETag": ETAG})


def serve(name: str, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        request.app[HITS].append(request)
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304, headers={"ETag": ETAG})
        return web.Response(body=data(name), headers={"Content-Type": content_type, "ETag": ETAG})

    return handler


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text="nope", headers=headers)

    return handler


async def moved(request: web.Request) -> web.StreamResponse:
    return web.Response(status=301, headers={"Location": "/zwgk/zcfb/index.html"})


ROUTES: dict[str, Handler] = {
    API: documents,
    "/cross-host": fr_page("fr_page1.json", base="http://elsewhere.example"),
    "/endless": endless,
    "/loops": loops,
    "/page2-fails": page2_fails,
    "/invalid": serve("json/invalid.json", "application/json"),
    "/renamed": serve("json/renamed_results.json", "application/json"),
    "/wrong-fields": serve("json/wrong_fields.json", "application/json"),
    "/busy": status(429, {"Retry-After": "90"}),
    "/zwgk/zcfb/index.html": serve("html/mofcom_list.html", "text/html; charset=utf-8"),
    "/old/zcfb.html": moved,
    "/gbk/list.html": serve("html/gbk_list.html", "text/html"),
    "/gbk-header/list.html": serve("html/gbk_list.html", "text/html; charset=GBK"),
    "/redesigned/index.html": serve("html/layout_changed.html", "text/html; charset=utf-8"),
    "/missing.html": status(404),
    "/broken.html": status(502),
}


@pytest.fixture
async def server(aiohttp_server: AiohttpServer) -> TestServer:
    app = web.Application()
    app[HITS] = []
    for path, handler in ROUTES.items():
        app.router.add_get(path, handler)
    return await aiohttp_server(app, host="127.0.0.1")


def hits(server: TestServer) -> list[web.Request]:
    return server.app[HITS]


def fr_source(server: TestServer, path: str = API, **kwargs: Any) -> JsonApiSource:
    options: dict[str, Any] = {**JSON_PRESETS["federal-register"], "params": PARAMS, **kwargs}
    return JsonApiSource("bis", str(server.make_url(path)), **options)


def mofcom(server: TestServer, path: str = "/zwgk/zcfb/index.html", **kwargs: Any) -> HtmlListSource:
    options: dict[str, Any] = {**HTML_PRESETS["mofcom"], **kwargs}
    return HtmlListSource("mofcom", str(server.make_url(path)), **options)


# JSON API


async def test_two_pages_are_followed(server: TestServer, session: aiohttp.ClientSession) -> None:
    result = await fr_source(server).fetch(session, SourceState())
    assert [e.guid for e in result.entries] == ["2026-20418", "2026-20377", "2026-19802", "2026-19755"]
    assert result.entries[3].summary == ""  # "abstract": null
    assert result.entries[0].published == datetime(2026, 10, 9, tzinfo=UTC)
    assert result.etag == ETAG  # the first page's validators
    first, second = hits(server)
    assert first.query.getall("conditions[agencies][]") == [
        "industry-and-security-bureau",
        "commerce-department",
    ]
    assert first.query["per_page"] == "2"
    assert second.query["page"] == "2"
    assert second.headers["Accept"].startswith("application/json")


async def test_first_page_304_ends_the_poll(server: TestServer, session: aiohttp.ClientSession) -> None:
    source = fr_source(server)
    first = await source.fetch(session, SourceState())
    again = await source.fetch(
        session, SourceState(etag=first.etag, last_modified="Thu, 08 Oct 2026 10:00:00 GMT")
    )
    assert again.not_modified and again.entries == ()
    assert again.etag == ETAG and again.last_modified == "Thu, 08 Oct 2026 10:00:00 GMT"
    requests = hits(server)
    assert len(requests) == 3  # two pages, then one conditional request and no second page
    assert requests[2].headers["If-None-Match"] == ETAG


async def test_validators_go_with_the_first_page_only(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    await fr_source(server).fetch(session, SourceState(etag='"stale"'))
    first, second = hits(server)
    assert first.headers["If-None-Match"] == '"stale"'
    assert "If-None-Match" not in second.headers


async def test_max_pages_is_honoured(server: TestServer, session: aiohttp.ClientSession) -> None:
    result = await fr_source(server, "/endless", max_pages=3).fetch(session, SourceState())
    assert [e.title for e in result.entries] == ["Notice 1", "Notice 2", "Notice 3"]
    assert result.entries[2].link == str(server.make_url("/d/3"))  # relative links resolved
    assert len(hits(server)) == 3
    one = await fr_source(server, API, max_pages=1).fetch(session, SourceState())
    assert len(one.entries) == 2 and len(hits(server)) == 4


async def test_a_next_page_loop_stops(server: TestServer, session: aiohttp.ClientSession) -> None:
    result = await fr_source(server, "/loops", params={}).fetch(session, SourceState())
    assert len(result.entries) == 1
    assert len(hits(server)) == 1


async def test_cross_host_pagination_is_refused(server: TestServer, session: aiohttp.ClientSession) -> None:
    refused = await fr_source(server, "/cross-host").fetch(session, SourceState())
    assert refused.error is not None
    assert re.search(
        r"^page 2: refusing next page 'http://elsewhere.example/.*not on the configured host",
        str(refused.error),
    )
    assert len(refused.entries) == 2, "the first page's items are kept"
    # Reading the first page only is the way out, and then nothing leaves the host.
    result = await fr_source(server, "/cross-host", max_pages=1).fetch(session, SourceState())
    assert len(result.entries) == 2


async def test_a_failing_later_page_keeps_the_earlier_pages_items_and_reports_the_failure(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    result = await fr_source(server, "/page2-fails").fetch(session, SourceState())
    assert isinstance(result.error, SourceError) and "HTTP 500" in str(result.error)
    assert str(result.error).startswith("page 2: ")
    first_page = await fr_source(server, "/page2-fails", max_pages=1).fetch(session, SourceState())
    assert first_page.entries and result.entries == first_page.entries
    assert result.etag is None and result.last_modified is None, "no validators over an incomplete read"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/invalid", r"invalid JSON: .* line 4"),
        (
            "/renamed",
            r"items path 'results' not found in the response \(top level: count, description, data\)",
        ),
        ("/wrong-fields", r"field mapping matches nothing: title path 'title'"),
    ],
)
async def test_bad_bodies(
    server: TestServer, session: aiohttp.ClientSession, path: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        await fr_source(server, path).fetch(session, SourceState())


async def test_http_errors_come_from_the_shared_helper(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(SourceError, match="HTTP 429") as info:
        await fr_source(server, "/busy").fetch(session, SourceState())
    assert info.value.retry_after == 90


# HTML list pages


async def test_mofcom_list_page(server: TestServer, session: aiohttp.ClientSession) -> None:
    result = await mofcom(server).fetch(session, SourceState())
    assert len(result.entries) == 4
    first = result.entries[0]
    assert first.title.endswith(
        "关于对部分中重稀土相关物项实施出口管制的决定"
    )  # the title attribute, not "..."
    assert first.link == str(server.make_url("/zwgk/zcfb/art/2026/art_3f1c9a0b5d7e4a2c8b6d0e1f2a3b4c5d.html"))
    assert result.entries[1].link == str(
        server.make_url("/zwgk/zcfb/art/2026/art_0a1b2c3d4e5f60718293a4b5c6d7e8f9.html")
    )
    assert result.etag == ETAG
    assert hits(server)[0].headers["Accept"].startswith("text/html")


async def test_links_resolve_against_the_final_url(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    result = await mofcom(server, "/old/zcfb.html").fetch(session, SourceState())
    # Redirected to /zwgk/zcfb/index.html: "art/2026/..." is relative to that folder, not /old/.
    assert result.entries[1].link == str(
        server.make_url("/zwgk/zcfb/art/2026/art_0a1b2c3d4e5f60718293a4b5c6d7e8f9.html")
    )


async def test_html_conditional_get(server: TestServer, session: aiohttp.ClientSession) -> None:
    result = await mofcom(server).fetch(session, SourceState(etag=ETAG))
    assert result.not_modified and result.entries == () and result.etag == ETAG


@pytest.mark.parametrize("path", ["/gbk/list.html", "/gbk-header/list.html"])
async def test_gbk_list_page(server: TestServer, session: aiohttp.ClientSession, path: str) -> None:
    source = HtmlListSource(
        "province",
        str(server.make_url(path)),
        item="div.list li",
        title="a",
        date="span.date",
        summary="p.summary",
    )
    result = await source.fetch(session, SourceState())
    titles = [e.title for e in result.entries]
    assert titles[1] == "赣州镕鑫材料有限公司列入出口管控名单的公示"
    assert result.entries[0].published == datetime(2026, 10, 9, tzinfo=UTC)
    assert result.entries[1].link == str(server.make_url("/tzgg/202610/t20261008_5519.html"))


async def test_a_redesigned_page_is_a_source_error(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(
        SourceError, match=r"selector 'ul\.txtList_01 li' matched nothing: the page layout may have"
    ):
        await mofcom(server, "/redesigned/index.html").fetch(session, SourceState())


@pytest.mark.parametrize(("path", "message"), [("/missing.html", "HTTP 404"), ("/broken.html", "HTTP 502")])
async def test_html_http_errors(
    server: TestServer, session: aiohttp.ClientSession, path: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        await mofcom(server, path).fetch(session, SourceState())


# From configuration to fetched entries


async def test_build_sources_builds_each_kind(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base = str(server.make_url("")).rstrip("/")
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: news, type: feed, url: 'https://news.example.org/rss.xml'}\n"
        f"  - name: bis\n    type: json\n    preset: federal-register\n    url: '{base}{API}'\n"
        "    params: {'conditions[agencies][]': industry-and-security-bureau, order: newest, per_page: '2'}\n"
        f"  - {{name: mofcom, type: html, preset: mofcom, url: '{base}/zwgk/zcfb/index.html', lang: zh}}\n"
        f"  - {{name: off, type: html, preset: mofcom, url: '{base}/x', enabled: false}}\n",
        encoding="utf-8",
    )
    polled = build_sources(load_settings(config))
    kinds = {p.source.name: type(p.source) for p in polled}
    assert kinds == {"news": FeedSource, "bis": JsonApiSource, "mofcom": HtmlListSource}
    fetched = {
        p.source.name: await p.source.fetch(session, SourceState()) for p in polled if p.source.name != "news"
    }
    assert len(fetched["bis"].entries) == 4
    assert hits(server)[0].query["conditions[agencies][]"] == "industry-and-security-bureau"
    assert {e.lang for e in fetched["mofcom"].entries} == {"zh"}
    assert len(fetched["mofcom"].entries) == 4
    # The publisher each kind reads: the agency of a Federal Register document (the preset's
    # `fields.publisher`), the list page's og:site_name.
    assert fetched["bis"].entries[0].publisher == "Industry and Security Bureau"
    assert {e.publisher for e in fetched["mofcom"].entries} == {"测试部委网站"}
