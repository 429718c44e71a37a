"""`GET /api/v1/alerts` is bounded in count and in bytes, whatever the store holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from rarewatch import api
from rarewatch.app import build_web_app
from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.test_api_guard import served, settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def fill(path: Path, count: int, summary: str = "s") -> None:
    """`count` alerts in the SQLite store at `path`, alert-0 the oldest."""
    store = SQLiteStore(path)
    await store.open()
    try:
        for n in range(count):
            when = T0 + timedelta(seconds=n)
            item = Item(f"i{n}", "wire", f"Gallium licence {n}", f"https://n.example/{n}", summary, "", when)
            alert = Alert(f"alert-{n}", item, (Match("r", "export-licensing", Severity.HIGH),), when)
            assert await store.claim([f"k{n}"], timedelta(days=1), when, alert)
    finally:
        await store.close()


async def get_alerts(base: str, query: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/api/v1/alerts?{query}") as resp:
        return resp.status, await resp.read()


async def test_the_count_is_capped_at_500(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", 501)
    async with served(build_web_app(settings(tmp_path))) as base:
        status, body = await get_alerts(base, "limit=100000")
    doc = json.loads(body)
    assert status == 200
    assert len(doc["alerts"]) == api.ALERTS_MAX == 500
    assert doc["alerts"][0]["id"] == "alert-500"  # newest first
    assert doc["truncated"] is False


async def test_the_bytes_are_capped_and_the_cut_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(tmp_path / "state.db", 30, summary="x" * 400)  # each payload about 1 KB
    monkeypatch.setattr(api, "ALERTS_MAX_BYTES", 10_000)
    async with served(build_web_app(settings(tmp_path))) as base:
        _, body = await get_alerts(base, "limit=500")
        _, small = await get_alerts(base, "limit=2")
    doc = json.loads(body)
    assert len(body) <= 10_000
    assert doc["truncated"] is True
    assert 5 <= len(doc["alerts"]) < 30
    assert [a["id"] for a in doc["alerts"]] == [f"alert-{n}" for n in range(29, 29 - len(doc["alerts"]), -1)]
    assert json.loads(small)["truncated"] is False
