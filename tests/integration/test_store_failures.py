"""How the stores fail: always a readable `StoreError`, never a hang or a raw driver exception, and
recovery without re-creating the store once the backend is back."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from rarewatch.errors import StoreError
from rarewatch.models import Alert, DeliveryStatus, Item, SourceState
from rarewatch.store import keys
from rarewatch.store.redis import RedisStore
from rarewatch.store.sqlite import SQLiteStore
from tests.conftest import RedisServer, free_port

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
ITEM = Item(
    id="i", source="src", title="t", link="https://example.org/", summary="", content="", published=T0
)
ALERT = Alert(id="a", item=ITEM, matches=(), created=T0)

# Every protocol call, with arguments, so a failure test can prove that none of them leaks or hangs.
CALLS: list[tuple[str, Callable[[Any], Awaitable[object]]]] = [
    ("claim", lambda s: s.claim(["item:1"], WEEK, T0)),
    ("claim many", lambda s: s.claim(["item:1", "link:1"], WEEK, T0)),
    ("claim held", lambda s: s.claim(["item:2"], WEEK, T0, ALERT, ["hook"], held_until={"hook": T0})),
    ("held", lambda s: s.held(["item:1", "sim:1"], T0)),
    ("remember", lambda s: s.remember(["sim:1", "sim:2"], "a", WEEK, T0)),
    ("count_in_window", lambda s: s.count_in_window("rule:1", WEEK, T0)),
    ("get_source_state", lambda s: s.get_source_state("src")),
    ("put_source_state", lambda s: s.put_source_state("src", SourceState())),
    ("get_alert", lambda s: s.get_alert("a")),
    ("get_alerts", lambda s: s.get_alerts(["a", "b"])),
    ("recent_alerts", lambda s: s.recent_alerts()),
    ("due_deliveries", lambda s: s.due_deliveries(T0)),
    ("deliveries", lambda s: s.deliveries()),
    ("get_delivery", lambda s: s.get_delivery("a", "hook")),
    ("delivered_since", lambda s: s.delivered_since("hook", T0)),
    ("mark_delivered", lambda s: s.mark_delivered("a", "hook", T0, "receipt")),
    ("defer", lambda s: s.defer("a", "hook", T0)),
    ("mark_failed", lambda s: s.mark_failed("a", "hook", "x", T0, T0)),
    ("mark_dead", lambda s: s.mark_dead("a", "hook", "x", T0)),
    ("retry", lambda s: s.retry(T0)),
    ("purge", lambda s: s.purge(DeliveryStatus.DEAD)),
]


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, prefix=f"rwfail:{uuid.uuid4().hex[:12]}:", connect_timeout=1.0, timeout=2.0)
    await store.open()
    yield store
    await store.close()


# --- Redis --------------------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_down_is_a_store_error_then_the_same_store_recovers(
    redis_server: RedisServer | None, redis_store: RedisStore
) -> None:
    if redis_server is None:
        pytest.skip("REDIS_URL names an external server; this test must stop and start its own")
    assert await redis_store.claim(["item:1"], WEEK, T0) is True
    redis_server.stop()
    try:
        for name, call in CALLS:
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"unreachable|timed out") as caught:
                await call(redis_store)
            assert time.monotonic() - started < 5, f"{name} took too long to fail"
            assert f"127.0.0.1:{redis_server.port}" in str(caught.value), name
        with pytest.raises(StoreError):
            await redis_store.open()
    finally:
        redis_server.start()
    # The server came back empty (no persistence): the same store object works again.
    await redis_store.open()
    assert await redis_store.claim(["item:1"], WEEK, T0) is True
    assert await redis_store.claim(["item:1"], WEEK, T0) is False
    assert await redis_store.get_source_state("src") is None
    await redis_store.remember(["sim:1"], "a", WEEK, T0)
    assert await redis_store.held(["item:1", "sim:1"], T0) == {"item:1": None, "sim:1": "a"}
    assert await redis_store.count_in_window("rule:1", WEEK, T0) == 1
    assert await redis_store.claim(["item:2"], WEEK, T0, ALERT, ["hook"], held_until={"hook": T0 + WEEK})
    await redis_store.defer("a", "hook", T0)
    await redis_store.mark_delivered("a", "hook", T0, "receipt")
    delivery = await redis_store.get_delivery("a", "hook")
    assert delivery is not None and (delivery.receipt, delivery.digest) == ("receipt", True)
    assert await redis_store.delivered_since("hook", T0) == 1


async def test_redis_that_never_answers_times_out() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, read, never reply
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", connect_timeout=0.3, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="timed out"):
            await store.claim(["item:1"], WEEK, T0)
        assert time.monotonic() - started < 3
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


async def test_redis_nothing_listening_fails_fast() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5, timeout=0.5)
    with pytest.raises(StoreError, match="unreachable"):
        await store.open()
    await store.close()


@pytest.mark.redis
async def test_redis_newer_key_layout_is_refused(redis_url: str) -> None:
    prefix = f"rwfail:{uuid.uuid4().hex[:12]}:"
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        await client.set(keys.RedisKeys(prefix).version, keys.REDIS_LAYOUT_VERSION + 1)
        store = RedisStore(client, prefix=prefix)
        with pytest.raises(StoreError, match="newer than this rarewatch supports"):
            await store.open()
        await store.close()  # a client passed in stays open: the caller owns it
        assert await client.ping()
    finally:
        await client.delete(keys.RedisKeys(prefix).version)
        await client.aclose()


async def test_redis_client_must_decode_responses() -> None:
    client = Redis(host="127.0.0.1", port=1)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStore(client)
    await client.aclose()


async def test_claim_arguments_are_checked(tmp_path: Path) -> None:
    sqlite_store = SQLiteStore(tmp_path / "s.db")
    await sqlite_store.open()
    redis_store = RedisStore("redis://127.0.0.1:1/0")  # never contacted: the arguments fail first
    try:
        for store in (sqlite_store, redis_store):
            with pytest.raises(ValueError, match="at least one key"):
                await store.claim([], WEEK, T0)
            with pytest.raises(ValueError, match="positive"):
                await store.claim(["item:1"], timedelta(0), T0)
            with pytest.raises(ValueError, match="positive"):
                await store.remember(["sim:1"], "a", timedelta(0), T0)
            with pytest.raises(ValueError, match="positive"):
                await store.count_in_window("rule:1", timedelta(microseconds=999), T0)
    finally:
        await sqlite_store.close()
        await redis_store.close()


# --- SQLite -------------------------------------------------------------------------------------------------


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {keys.SCHEMA_VERSION + 1}")
    conn.close()
    store = SQLiteStore(path)
    newer, supported = keys.SCHEMA_VERSION + 1, keys.SCHEMA_VERSION
    with pytest.raises(
        StoreError, match=rf"schema version {newer}, newer than this rarewatch supports \({supported}\)"
    ):
        await store.open()
    with pytest.raises(StoreError, match="not open"):  # a failed open leaves the store closed
        await store.claim(["item:1"], WEEK, T0)


async def test_sqlite_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not an SQLite file" * 200)
    with pytest.raises(StoreError, match=r"junk\.db"):
        await SQLiteStore(path).open()


async def test_sqlite_directory_that_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="file"):
        await SQLiteStore(tmp_path / "file" / "sub" / "state.db").open()


async def test_sqlite_calls_before_open_or_after_close(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    for _, call in CALLS:
        with pytest.raises(StoreError, match="not open"):
            await call(store)
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.due_deliveries(T0)
    await store.open()  # and it can be opened again
    assert await store.claim(["item:1"], WEEK, T0) is True
    await store.close()


async def test_sqlite_locked_by_another_process_times_out_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, busy_timeout=0.2)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            await store.claim(["item:1"], WEEK, T0)
        assert time.monotonic() - started < 3
        other.execute("ROLLBACK")
        assert await store.claim(["item:1"], WEEK, T0) is True  # nothing was half-done
    finally:
        other.close()
        await store.close()
