"""SQLiteStore details the contract suite does not see: lazy cleanup and the in-memory held-key cache."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.store import keys
from rarewatch.store.sqlite import SQLiteStore, _HeldKeys

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def count_claims(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        count = int(conn.execute(f"SELECT count(*) FROM {keys.CLAIMS}").fetchone()[0])
    conn.close()
    return count


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


def test_held_keys_answer_by_expiry() -> None:
    held = _HeldKeys(10)
    held.add({"a": 100, "b": 200}, now_us=0)
    assert held.any_held(["x", "a"], 99)
    assert not held.any_held(["a"], 100)  # expiry is exclusive, as in the database
    assert held.any_held(["a", "b"], 150)


@pytest.mark.parametrize("capacity", [0, 4])
def test_held_keys_stay_bounded(capacity: int) -> None:
    held = _HeldKeys(capacity)
    for i in range(100):
        held.add({f"k{i}": 1000}, now_us=0)
        assert len(held._expires) <= max(capacity, 1)
    if capacity:
        assert held.any_held(["k99"], 0)  # the newest survive
        assert not held.any_held(["k0"], 0)
