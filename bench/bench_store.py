"""Claims per second of the stores, against baselines measured in the same run.

    python bench/bench_store.py [--n 5000]

SQLite runs on a file in a temporary directory. Redis runs against $REDIS_URL, or a redis-server started
on a free port if one is installed, or is skipped. The pipeline claims one story at a time (two keys: the
item id and the link), so the sequential figures are the ones that matter; most of its claims are repeats
of stories already seen (every poll re-reads the whole feed).

Baselines: for SQLite, a naive store (autocommit per statement, rollback journal, synchronous=FULL, in the
event loop thread); for Redis, bare `SET NX PX` round trips with redis.asyncio. For Redis it then prints the
server's CPU time per call (from `INFO cpu`): what bounds one Redis shared by many processes, where
the figures above are bound by the client's round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from redis.asyncio import Redis

from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.store import Store, keys
from rarewatch.store.base import ClaimRequest
from rarewatch.store.keys import item_key, link_key, similar_key
from rarewatch.store.redis import RedisStore
from rarewatch.store.sqlite import SQLiteStore

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
TTL = timedelta(days=7)
DESTS = ("webhook", "slack")


def alert(i: int) -> Alert:
    item = Item(
        id=f"{i:032x}",
        source="bench",
        title=f"China adds rare earth magnets to export licence list ({i})",
        link=f"https://example.org/news/{i}",
        summary="Exports of seven medium and heavy rare earths now need a licence. " * 4,
        content="",
        published=NOW,
    )
    match = Match("licensing", "export-licensing", Severity.HIGH, ("rare earth", "export licence"), "…")
    return Alert(id=item.id, item=item, matches=(match,), created=NOW)


def story_keys(i: int) -> list[str]:
    return [item_key(f"{i:032x}"), link_key(f"https://bench.example/{(i * 2654435761) % 2**32:x}")]


async def rate(n: int, claim: Callable[[int], Awaitable[object]], concurrency: int = 1) -> float:
    """Calls per second of `claim(0..n-1)`, `concurrency` in flight at a time."""
    started = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            await claim(i)
    else:
        for base in range(0, n, concurrency):
            await asyncio.gather(*(claim(i) for i in range(base, min(n, base + concurrency))))
    return n / (time.perf_counter() - started)


async def store_cases(store: Store, n: int, offset: int) -> dict[str, float]:
    """The claim shapes the pipeline makes, on fresh keys (`offset` keeps each case's keys apart)."""
    alerts = [alert(offset + i) for i in range(n)]
    results = {
        "new story + alert, 2 destinations": await rate(
            n, lambda i: store.claim(story_keys(offset + i), TTL, NOW, alerts[i], DESTS)
        ),
        "new story, no alert (first poll)": await rate(
            n, lambda i: store.claim(story_keys(offset + n + i), TTL, NOW)
        ),
        "repeat of a claimed story": await rate(
            n, lambda i: store.claim(story_keys(offset + i), TTL, NOW, alerts[i], DESTS)
        ),
        "new story + alert, 16 in flight": await rate(
            n,
            lambda i: store.claim(story_keys(offset + 2 * n + i), TTL, NOW, alerts[i], DESTS),
            concurrency=16,
        ),
    }
    # A fetch's admissions (the pipeline): one look-up of every key, then one batch of claims per fetch;
    # one per fetch is what each matching item cost before batching (a look-up, a claim).
    for k, per_fetch in enumerate((1, 3, 20), start=3):
        start = offset + k * n
        name = f"look-up + claims, {per_fetch} new per fetch"
        results[name] = per_fetch * await rate(
            n // per_fetch, lambda f, p=per_fetch, s=start: admit_fetch(store, s + f * p, p, alerts[f * p :])
        )
    return results


async def admit_fetch(store: Store, first: int, count: int, alerts: list[Alert]) -> int:
    """One fetch's admissions: look up the story keys of `count` new stories, then claim them in a batch."""
    keys = [story_keys(first + i) for i in range(count)]
    await store.held([k for pair in keys for k in pair], NOW)
    requests = [ClaimRequest(tuple(pair), alerts[i], DESTS) for i, pair in enumerate(keys)]
    return await store.claim_many(requests, TTL, NOW)


# --- SQLite -----------------------------------------------------------------------------------------------


class NaiveSQLite:
    """What a first attempt looks like: each statement its own fsynced transaction, on the event loop."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("CREATE TABLE claims (key TEXT PRIMARY KEY, expires INTEGER)")
        self.conn.execute("CREATE TABLE alerts (id TEXT PRIMARY KEY, data TEXT)")
        self.conn.execute("CREATE TABLE deliveries (alert_id TEXT, destination TEXT, status TEXT)")

    async def claim(self, keys: list[str], a: Alert, dests: tuple[str, ...]) -> bool:
        for key in keys:
            if self.conn.execute("SELECT 1 FROM claims WHERE key = ?", (key,)).fetchone():
                return False
        for key in keys:
            self.conn.execute("INSERT OR REPLACE INTO claims VALUES (?, 0)", (key,))
        self.conn.execute("INSERT OR REPLACE INTO alerts VALUES (?, ?)", (a.id, str(a.to_dict())))
        for dest in dests:
            self.conn.execute("INSERT INTO deliveries VALUES (?, ?, 'pending')", (a.id, dest))
        return True


async def bench_sqlite(n: int, tmp: Path) -> None:
    store = SQLiteStore(tmp / "bench.db")
    await store.open()
    results = await store_cases(store, n, 0)
    # The floor under every SQLite call: one round trip to the worker thread doing nothing.
    hop = await rate(n, lambda i: store._submit(int))
    await store.close()

    naive = NaiveSQLite(tmp / "naive.db")
    naive_n = max(50, n // 20)  # it is slow: fewer calls, same rate arithmetic
    alerts = [alert(i) for i in range(naive_n)]
    baseline = await rate(naive_n, lambda i: naive.claim(story_keys(i), alerts[i], DESTS))
    naive.conn.close()

    print(f"\nSQLite ({n} claims per case; file in {tmp})")
    print(f"  baseline: naive store, new story + alert     {baseline:>10,.0f} claims/s")
    for name, value in results.items():
        print(f"  {name:<42} {value:>10,.0f} claims/s   x{value / baseline:,.1f} baseline")
    print(f"  (floor: empty round trip to the worker       {hop:>10,.0f} calls/s)")


# --- Redis ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[str, subprocess.Popen[bytes] | None] | None:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"redis://127.0.0.1:{port}/0", proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("redis-server did not start")


async def bench_redis(n: int, url: str) -> None:
    prefix = f"bench:{time.time_ns()}:"
    raw = Redis.from_url(url, decode_responses=True)
    baseline = await rate(n, lambda i: raw.set(f"{prefix}raw:{i}", "1", nx=True, px=60_000))
    store = RedisStore(url, prefix=prefix)
    await store.open()
    results = await store_cases(store, n, 0)
    results["one key, no alert"] = await rate(n, lambda i: store.claim([f"single:{i}"], TTL, NOW))
    server = await server_costs(raw, store, n)
    await store.close()
    async for key in raw.scan_iter(match=f"{prefix}*", count=1000):
        await raw.delete(key)
    await raw.aclose()

    print(f"\nRedis ({n} claims per case; {url})")
    print(f"  baseline: bare SET NX PX round trips         {baseline:>10,.0f} claims/s")
    for name, value in results.items():
        print(f"  {name:<42} {value:>10,.0f} claims/s   x{value / baseline:,.2f} baseline")
    print("  redis-server CPU per call (INFO cpu, user + system):")
    for name, value in server.items():
        print(f"  {name:<42} {value:>10,.1f} µs")


async def server_us(raw: Redis, n: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Microseconds of redis-server CPU per `call` (`INFO cpu`, user + system: the scripts, the commands and
    the network I/O): what bounds one Redis's throughput when many processes share it, unlike a round
    trip. Only as exact as the server is otherwise idle (the benchmark's own server is)."""

    async def cpu() -> float:
        info = cast("dict[str, float]", await raw.info("cpu"))
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    before = await cpu()
    for i in range(n):
        await call(i)
    return (await cpu() - before) * 1e6 / n


async def server_costs(raw: Redis, store: RedisStore, n: int) -> dict[str, float]:
    """Server time of the pipeline's Redis calls, on fresh keys: a new story alerted to 2 destinations
    with its 10 near-duplicate band keys remembered, a new story seen (2 keys), a repeat, a look-up."""
    alerts = [alert(60_000_000 + i) for i in range(n)]
    await store.claim(["warm-up"], TTL, NOW)  # load the scripts first
    costs = await server_cases(raw, store, n, alerts, 60_000_000)
    if hasattr(keys, "dedup_width_ms"):
        # Dedup layout 3 with a full window behind it: every bucket of the window holds keys, as after a
        # window of polling, so a look-up of a new key reads one shard in each (the cases above, on a
        # fresh store, find one bucket).
        await fill_window(raw, store)
        full = await server_cases(raw, store, n, alerts, 90_000_000)
        costs.update({f"{name}, full window": value for name, value in full.items()})
    return costs


async def fill_window(raw: Redis, store: RedisStore) -> None:
    """Give every bucket of the TTL's window 90 keys (one unsplit shard each), as a window of claims
    would have, by writing the layout directly (Redis time cannot be moved on)."""
    seconds, micros = await raw.time()
    now = int(seconds) * 1000 + int(micros) // 1000
    ttl = int(TTL.total_seconds() * 1000)
    width = keys.dedup_width_ms(ttl)
    names = store._keys
    registry: dict[str, str] = {str(width): str(now + ttl)}
    for bucket in range(now // width, (now + ttl) // width + 1):
        shard = names.dedup_shard(width, bucket, 0)
        offset = max(0, now + 1000 - bucket * width)  # expiring after now: live
        fields = {keys.dedup_field(f"fill:{bucket}:{j}"): str(offset) for j in range(90)}
        await raw.hset(shard, mapping=fields)  # type: ignore[arg-type]
        await raw.pexpireat(shard, (bucket + 1) * width)
        registry[f"{width}:{bucket}"] = "0:0"
    await raw.hset(names.dedup, mapping=registry)  # type: ignore[arg-type]
    await raw.pexpireat(names.dedup, now + ttl)


async def server_cases(
    raw: Redis, store: RedisStore, n: int, alerts: list[Alert], base: int
) -> dict[str, float]:
    """The four calls of `server_costs` on keys of their own (`base` keeps them apart)."""
    bands = [[similar_key(b, f"{base}:{i}:{b}") for b in range(10)] for i in range(n)]

    def seen(i: int) -> Awaitable[bool]:
        return store.claim(story_keys(base + 10_000_000 + i), TTL, NOW)

    return {
        "new story + alert + 10 band keys": await server_us(
            raw,
            n,
            lambda i: store.claim(
                story_keys(base + i), TTL, NOW, replace(alerts[i], id=f"{base}:{i}"), DESTS, remember=bands[i]
            ),
        ),
        "new story, no alert (2 keys)": await server_us(raw, n, seen),
        "repeat of a claimed story": await server_us(raw, n, seen),
        "look-up of 2 keys (held)": await server_us(
            raw, n, lambda i: store.held(story_keys(base + 20_000_000 + i), NOW)
        ),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="claims per case")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory(prefix="rarewatch-bench-") as tmp:
        await bench_sqlite(n, Path(tmp))
        server = start_redis(Path(tmp))
        if server is None:
            print("\nRedis: skipped (no REDIS_URL and no redis-server on PATH)")
            return
        url, proc = server
        try:
            await bench_redis(n, url)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
