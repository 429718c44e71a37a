"""`redis+sentinel://`: the store finds its master through a redis-sentinel and follows a failover to the
replica the sentinel promotes, with no restart and nothing claimed twice. Real processes: a master, its
replica and one sentinel (`redis-server --sentinel`), each on a free loopback port."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.errors import StoreError
from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.store import open_store
from rarewatch.store.redis import RedisStore
from tests.conftest import RedisSentinel, RedisServer

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, RedisSentinel]]:
    """A master, a replica of it and a sentinel monitoring the master, all of this test's own."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    assert binary is not None and cli is not None, "redis-server is not installed"
    for name in ("master", "replica", "sentinel"):
        (tmp_path / name).mkdir()
    master = RedisServer(binary, tmp_path / "master")
    replica = RedisServer(binary, tmp_path / "replica", args=("--replicaof", "127.0.0.1", str(master.port)))
    sentinel = RedisSentinel(binary, cli, tmp_path / "sentinel", master.port)
    started: list[RedisServer | RedisSentinel] = []
    try:
        for server in (master, replica, sentinel):
            server.start()
            started.append(server)
        yield master, replica, sentinel
    finally:
        for server in reversed(started):
            server.stop()


def alert(n: int) -> Alert:
    item = Item(f"item-{n}", "wire", f"Rare earth export licence story {n}", f"https://e.org/{n}", "", "", T0)
    return Alert(f"alert-{n}", item, (Match("licensing", "export-licensing", Severity.HIGH),), T0)


def cli(port: int, *args: str) -> str:
    redis_cli = shutil.which("redis-cli")
    assert redis_cli is not None
    return subprocess.run(
        [redis_cli, "-p", str(port), *args], capture_output=True, text=True, timeout=5
    ).stdout


def wait_until(predicate: Callable[[], bool], what: str, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


async def test_the_store_follows_a_sentinel_failover_and_claims_nothing_twice(
    replicated: tuple[RedisServer, RedisServer, RedisSentinel],
) -> None:
    master, replica, sentinel = replicated
    store = open_store(sentinel.url)
    assert isinstance(store, RedisStore)
    assert "sentinel service rwtest" in store.where
    await store.open()
    try:
        assert await store.claim(["item:1"], WEEK, T0, alert(1), ["hook"])
        assert cli(master.port, "dbsize").strip() != "0", "written to the master the sentinel named"
        wait_until(lambda: "master_link_status:up" in cli(replica.port, "info", "replication"), "replication")
        wait_until(lambda: cli(replica.port, "dbsize").strip() == cli(master.port, "dbsize").strip(), "sync")

        assert "OK" in cli(sentinel.port, "sentinel", "failover", sentinel.SERVICE)
        promoted = str(replica.port)
        ask = ("sentinel", "get-master-addr-by-name", sentinel.SERVICE)
        wait_until(lambda: promoted in cli(sentinel.port, *ask), "the sentinel to name the replica")
        wait_until(lambda: "role:master" in cli(replica.port, "info", "replication"), "the promotion")

        claimed: bool | None = None
        for _ in range(50):  # a connection to the old master fails once, then the pool asks the sentinel
            try:
                claimed = await store.claim(["item:2"], WEEK, T0, alert(2), ["hook"])
                break
            except StoreError:
                await asyncio.sleep(0.2)
        assert claimed is True, "the store writes to the promoted replica"
        assert await store.claim(["item:1"], WEEK, T0, alert(1), ["hook"]) is False, "item 1 stays claimed"
        assert sorted(d.alert_id for d in await store.deliveries()) == ["alert-1", "alert-2"]
        assert "role:master" in cli(replica.port, "info", "replication")
    finally:
        await store.close()
