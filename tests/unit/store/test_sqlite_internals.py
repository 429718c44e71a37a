"""SQLiteStore details the contract suite does not see: lazy cleanup and the in-memory held-key cache."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.store import keys
from rarewatch.store.sqlite import SQLiteStore, _HeldKeys

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_US = keys.to_us(T0)
HOUR = timedelta(hours=1)


def count_rows(path: Path, table: str = keys.CLAIMS) -> int:
    with sqlite3.connect(path) as conn:
        count = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    conn.close()
    return count


def count_claims(path: Path) -> int:
    return count_rows(path, keys.CLAIMS)


async def test_expired_claims_are_deleted_lazily(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, cleanup_interval=timedelta(minutes=10))
    await store.open()
    try:
        for i in range(50):
            await store.claim([f"item:{i}"], HOUR, T0)
        assert count_claims(path) == 50
        await store.claim(["item:late"], HOUR, T0 + timedelta(minutes=5))  # before the interval: kept
        assert count_claims(path) == 51
        await store.claim(["item:later"], HOUR, T0 + 2 * HOUR)  # past it: the 51 expired rows go
        assert count_claims(path) == 1
    finally:
        await store.close()


async def test_the_cache_never_hides_a_claim_made_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    mine, theirs = SQLiteStore(path), SQLiteStore(path)
    await mine.open()
    await theirs.open()
    try:
        assert await mine.claim(["item:1"], HOUR, T0) is True
        assert await theirs.claim(["item:2"], HOUR, T0) is True
        assert await mine.claim(["item:2"], HOUR, T0) is False  # not cached here: asks the file
        assert await mine.claim(["item:2"], HOUR, T0 + 2 * HOUR) is True  # expired: asks the file again
        assert await theirs.claim(["item:2"], HOUR, T0 + 2 * HOUR) is False  # and the file agrees
    finally:
        await mine.close()
        await theirs.close()


async def test_ended_counter_windows_are_deleted_lazily(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, cleanup_interval=timedelta(minutes=10))
    await store.open()
    try:
        await store.count_in_window("rule:a", HOUR, T0)
        await store.count_in_window("rule:b", HOUR, T0)
        assert count_rows(path, keys.COUNTERS) == 2
        assert await store.count_in_window("rule:a", HOUR, T0 + HOUR) == 1  # rule:a's ended window goes
        assert count_rows(path, keys.COUNTERS) == 2
        await store.claim(["item:1"], HOUR, T0 + 2 * HOUR)  # the periodic cleanup takes the rest
        assert count_rows(path, keys.COUNTERS) == 0
    finally:
        await store.close()


async def test_remembered_keys_are_cleaned_up_like_claims(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, cleanup_interval=timedelta(minutes=10))
    await store.open()
    try:
        await store.remember(["sim:1", "sim:2"], "alert-1", HOUR, T0)
        assert count_claims(path) == 2
        await store.claim(["item:1"], HOUR, T0 + 2 * HOUR)
        assert count_claims(path) == 1
    finally:
        await store.close()


async def test_the_cache_answers_held_keys_with_their_owners(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    mine, theirs = SQLiteStore(path), SQLiteStore(path)
    await mine.open()
    await theirs.open()
    try:
        await theirs.remember(["sim:1"], "alert-1", HOUR, T0)
        assert await mine.held(["sim:1", "sim:2"], T0) == {"sim:1": "alert-1"}  # from the file, then cached
        assert mine._held.owners(["sim:1", "sim:2"], T0_US) == {"sim:1": "alert-1"}
        await mine.remember(["sim:1", "sim:2"], "alert-2", HOUR, T0)  # sim:1 skipped: known held
        assert mine._held.owners(["sim:1", "sim:2"], T0_US) == {"sim:1": "alert-1", "sim:2": "alert-2"}
        assert await theirs.held(["sim:1", "sim:2"], T0) == {"sim:1": "alert-1", "sim:2": "alert-2"}
        assert await mine.claim(["sim:2"], HOUR, T0) is False  # answered by the cache
        assert await mine.held(["sim:1"], T0 + 2 * HOUR) == {}  # expired: asks the file again
    finally:
        await mine.close()
        await theirs.close()


def test_held_keys_answer_by_expiry() -> None:
    held = _HeldKeys(10)
    held.add({"a": (100, "alert-1"), "b": (200, None)}, now_us=0)
    assert held.any_held(["x", "a"], 99)
    assert not held.any_held(["a"], 100)  # expiry is exclusive, as in the database
    assert held.any_held(["a", "b"], 150)
    assert held.owners(["x", "a", "b"], 99) == {"a": "alert-1", "b": None}
    assert held.owners(["a", "b"], 150) == {"b": None}


@pytest.mark.parametrize("capacity", [0, 4])
def test_held_keys_stay_bounded(capacity: int) -> None:
    held = _HeldKeys(capacity)
    for i in range(100):
        held.add({f"k{i}": (1000, None)}, now_us=0)
        assert len(held._entries) <= max(capacity, 1)
    if capacity:
        assert held.any_held(["k99"], 0)  # the newest survive
        assert not held.any_held(["k0"], 0)
