"""The `rarewatch run` web application with a known history, for the `/api/v1` tests: a real SQLite store
filled before the app opens it, the test rule pack, a source (never polled: its feed is down) and a
jsonl destination."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from rarewatch.httpserver import HeaderDeadline
from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.settings import Settings
from rarewatch.store.sqlite import SQLiteStore
from tests.support import TEST_RULES

WRITE_TOKEN = "write-t0ken-for-the-api-tests"
READ_TOKEN = "read-t0ken-for-the-api-tests"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def api_settings(tmp_path: Path, store: str | None = None, **http: Any) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=store or f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(rules)],
        # Port 9 (discard) on 127.0.0.1: refused at once, and polled only at start (interval 1h).
        sources=[{"name": "wire", "type": "feed", "url": "http://127.0.0.1:9/feed.xml", "interval": "1h"}],  # type: ignore[list-item]
        destinations=[{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],  # type: ignore[list-item]
        routes=[{"to": ["archive"]}],  # type: ignore[list-item]
        http={"port": 0, **http},  # type: ignore[arg-type]
        # The fixtures' records are dated at a fixed day in the past: keep them from the outbox's
        # retention sweep at start (`policies.retention`), whatever today's date.
        outbox={"retention": {"delivered": "36500d", "dead": "36500d"}},  # type: ignore[arg-type]
        config_dir=tmp_path,
    )


def alert(
    n: int,
    *,
    category: str = "export-licensing",
    severity: Severity = Severity.HIGH,
    source: str = "wire",
    materials: Sequence[str] = (),
    countries: Sequence[str] = (),
    title: str = "",
) -> Alert:
    """Alert `alert-n`, raised at T0 + n hours."""
    when = T0 + timedelta(hours=n)
    item = Item(f"i{n}", source, title or f"Gallium licence {n}", f"https://n.example/{n}", "s", "", when)
    return Alert(
        f"alert-{n}",
        item,
        (Match(f"rule-{category}", category, severity, ("rare earth",)),),
        when,
        materials=tuple(materials),
        countries=tuple(countries),
    )


async def fill(path: Path, alerts: Sequence[Alert], destinations: Sequence[str] = ()) -> None:
    """Record `alerts` in the SQLite store at `path`, each with a pending delivery per destination."""
    store = SQLiteStore(path)
    await store.open()
    try:
        for a in alerts:
            assert await store.claim([f"k-{a.id}"], timedelta(days=30), a.created, a, destinations)
    finally:
        await store.close()


async def call(
    method: str, url: str, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:  # status, JSON body, response
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as resp:
        is_json = resp.content_type == "application/json"
        return resp.status, await (resp.json() if is_json else resp.text()), resp


@asynccontextmanager
async def served(app: web.Application, header_timeout: float = 10) -> AsyncIterator[str]:
    """Serve `app` as `rarewatch run` does (every connection behind a header deadline); yield its URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: HeaderDeadline(server(), header_timeout), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    finally:
        listener.close()
        await runner.cleanup()
