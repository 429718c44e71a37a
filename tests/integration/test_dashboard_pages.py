"""The dashboard's pages over HTTP on the whole `rarewatch run` application (no browser: see
tests/e2e/test_dashboard_browser.py for that): the read token, escaping, links, headers, filters."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from rarewatch.app import build_web_app
from rarewatch.clock import FakeClock
from rarewatch.dashboard.views import CSP
from rarewatch.models import SeenItem, Severity
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.api_support import (
    READ,
    READ_TOKEN,
    T0,
    WRITE,
    WRITE_TOKEN,
    alert,
    api_settings,
    call,
    fill,
    served,
)

NOW = T0 + timedelta(days=1)
PAGES = ["/", "/items", "/silences", "/playground", "/backtest"]
MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_with_a_read_token_a_page_without_it_is_the_sign_in_form(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", [alert(0, title="Seeded gallium licence")])
    app = build_web_app(
        api_settings(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN), clock=FakeClock(NOW)
    )
    async with served(app) as base:
        for page in PAGES:
            status, html, resp = await call("GET", base + page)
            assert status == 200, page
            assert 'id="login"' in html and "Seeded gallium" not in html, page
            assert resp.headers["Cache-Control"] == "no-store"
        _, reader, resp = await call("GET", base + "/", headers=READ)
        _, writer, _ = await call("GET", base + "/", headers=WRITE)
        _, wrong, _ = await call("GET", base + "/", headers={"Authorization": "Bearer " + "x" * 30})
        script, js, _ = await call("GET", base + "/static/dashboard.js")
    assert "Seeded gallium licence" in reader and 'id="login"' not in reader
    assert "Seeded gallium licence" in writer
    assert 'id="login"' in wrong
    assert resp.headers["Content-Security-Policy"] == CSP
    assert script == 200 and "sessionStorage" in js, "the script carries no data: served to anyone"


async def test_titles_and_links_from_sources_are_escaped(tmp_path: Path) -> None:
    hostile = alert(0, title=MARKUP)
    hostile = replace(hostile, item=replace(hostile.item, link="javascript:alert(2)"))
    await fill(tmp_path / "state.db", [hostile])
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.record_items([SeenItem(replace(hostile.item, id="seen-1"), NOW)], NOW)
    await store.close()
    async with served(build_web_app(api_settings(tmp_path), clock=FakeClock(NOW))) as base:
        pages = [(await call("GET", base + page))[1] for page in ("/", "/items", "/playground?item=seen-1")]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "javascript:" not in html, "a link that is not http(s) is shown as text"
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;alert" in pages[2], "the playground is filled with the kept item, escaped"


async def test_the_overview_filters_alerts_and_charts_them(tmp_path: Path) -> None:
    await fill(
        tmp_path / "state.db",
        [
            alert(0, severity=Severity.LOW, title="Low licence"),
            alert(1, category="supply-disruption", title="Magnet shortage"),
            alert(2, severity=Severity.CRITICAL, source="gazette", title="Critical gazette"),
        ],
    )
    async with served(build_web_app(api_settings(tmp_path), clock=FakeClock(NOW))) as base:
        _, everything, _ = await call("GET", base + "/")
        _, high, _ = await call("GET", base + "/?severity=high&category=export-licensing")
        _, gazette, _ = await call("GET", base + "/?source=gazette&category=")
        _, bad, _ = await call("GET", base + "/?severity=urgent")
    assert all(t in everything for t in ("Low licence", "Magnet shortage", "Critical gazette"))
    assert "Critical gazette" in high and "Low licence" not in high and "Magnet shortage" not in high
    assert "Critical gazette" in gazette and "Low licence" not in gazette
    assert 'class="error"' in bad and "severity" in bad
    day = T0.date().isoformat()
    assert f'data-day="{day}" data-category="export-licensing" data-count="2"' in everything
    assert f'data-day="{day}" data-category="supply-disruption" data-count="1"' in everything


async def test_unknown_static_files_are_404(tmp_path: Path) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, _, _ = await call("GET", base + "/static/..%2fviews.py")
        other, _, _ = await call("GET", base + "/static/settings.py")
    assert (status, other) == (404, 404)


async def test_an_alerts_silence_link_fills_the_silence_form(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", [alert(0)])
    async with served(build_web_app(api_settings(tmp_path), clock=FakeClock(NOW))) as base:
        _, overview, _ = await call("GET", base + "/")
        _, form, _ = await call(
            "GET", base + "/silences?story=alert-0&category=prosecution&rule=%22%3E%3Cb%3E"
        )
    assert 'href="/silences?story=alert-0"' in overview
    assert 'name="story" value="alert-0"' in form
    assert "<option selected>prosecution</option>" in form
    assert 'name="rule" value="&#34;&gt;&lt;b&gt;"' in form, "a prefilled value is escaped"
