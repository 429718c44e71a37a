"""Bytes of Redis memory per tracked item, as the pipeline stores them, on a fresh redis-server.

    python bench/bench_redis_memory.py [--n 5000]

The dedup keys first, in both layouts, side by side (the baseline is layout 2, as rarewatch 2026.x before
layout 3 stored them: one `claim:<key>` string with its own PX TTL per key, written here with the very
commands that layout's scripts ran; layout 3 is the store as it is now: the keys as 16-byte fields of
bucketed hashes split into listpack-sized shards, `keys.RedisKeys`):

- dedup key, no owner: a story marked seen (item and link keys), per key;
- dedup key, owned: a story's claim and band keys held for its alert (the value names the alert), per key.

Then the cases below. Each figure is the growth of `INFO memory` `used_memory` over n items divided by n
(per key: by the keys of one item), so it includes Redis's per-key overhead and the sorted-set and hash
encodings in use at that size:

- seen: a story marked seen without an alert (its item and link claim keys, with TTLs);
- alerted: a story alerted to one destination and delivered, with 10 near-duplicate band keys remembered
  (`stories.BANDS`): the claim keys, the alert JSON, the delivery hash and its index entries;
- kept: one item's record as `store_items` keeps it (every item a source lists, matched or not: its
  text, source, fetch time and rules), written in batches of 20 as a poll does;
- the same on a Redis Cluster key layout (the hash-tagged prefix: two bytes longer per key);
- retention: alerted and delivered as above, measured before and after the outbox retention sweep
  (`outbox.retention`, `Store.forget_deliveries`) forgets the delivered records, for alerts beyond the
  history (`history_limit`, 10 000 newest by default): what remains is the claim and band keys, which
  expire on their own with the dedup window. Before retention existed, the "before" figure was the
  steady state: every delivered alert stayed until `rarewatch outbox purge`.

Uses $REDIS_URL if set (keys under `rwbench:` and `{rwbench}:`, deleted after; the figures are only as
exact as that server is quiet), else starts its own.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis

from bench_store import NOW, alert, start_redis, story_keys
from rarewatch.models import DeliveryStatus, SeenItem
from rarewatch.policies.retention import OutboxRetention
from rarewatch.store import keys
from rarewatch.store.redis import RedisStore
from rarewatch.stories import BANDS

TTL = timedelta(days=7)
TTL_MS = 7 * 86_400_000


def band_keys(i: int) -> list[str]:
    """The near-duplicate band keys an alerted story remembers (`stories.BANDS` of them)."""
    return [keys.similar_key(b, f"{i:08x}{b:08x}") for b in range(BANDS)]


async def dedup_layouts(url: str, raw: Redis, n: int) -> dict[str, float]:
    """Bytes per dedup key, layout 2 (the baseline) and layout 3, without and with an owner."""
    results: dict[str, float] = {}
    old = keys.RedisKeys("rwbench:old:")

    async def old_seen(i: int) -> object:
        pipe = raw.pipeline(transaction=False)
        for key in story_keys(40_000_000 + i):
            pipe.set(old.claim(key), keys.claim_value(None), px=TTL_MS)
        return await pipe.execute()

    async def old_owned(i: int) -> object:
        pipe = raw.pipeline(transaction=False)
        owner = keys.claim_value(alert(50_000_000 + i).id)
        for key in [*story_keys(50_000_000 + i), *band_keys(i)]:
            pipe.set(old.claim(key), owner, px=TTL_MS)
        return await pipe.execute()

    store = RedisStore(url, prefix="rwbench:new:")
    await store.open()
    # Load the scripts first: the server's script cache is paid once, not per key.
    await store.claim(["warm-up"], TTL, NOW)
    await store.remember(["warm-up:owned"], "warm-up", TTL, NOW)

    async def new_seen(i: int) -> object:
        return await store.claim(story_keys(40_000_000 + i), TTL, NOW)

    async def new_owned(i: int) -> object:
        return await store.remember(
            [*story_keys(50_000_000 + i), *band_keys(i)], alert(50_000_000 + i).id, TTL, NOW
        )

    owned = 2 + BANDS
    results["dedup key, no owner: layout 2 (baseline, one string each)"] = (
        await per_item(raw, n, old_seen) / 2
    )
    results["dedup key, no owner: layout 3 (bucketed listpack shards)"] = await per_item(raw, n, new_seen) / 2
    results["dedup key, owned: layout 2 (baseline)"] = await per_item(raw, n, old_owned) / owned
    results["dedup key, owned: layout 3"] = await per_item(raw, n, new_owned) / owned
    await store.close()
    for prefix in ("rwbench:old:", "rwbench:new:"):
        async for key in raw.scan_iter(match=f"{prefix}*", count=1000):
            await raw.delete(key)
    return results


async def used_memory(raw: Redis) -> int:
    info = await raw.info("memory")
    return int(info["used_memory"])


async def per_item(raw: Redis, n: int, add: Callable[[int], Awaitable[object]]) -> float:
    before = await used_memory(raw)
    for i in range(n):
        await add(i)
    return (await used_memory(raw) - before) / n


async def bench(url: str, n: int) -> None:
    raw = Redis.from_url(url, decode_responses=True)
    results = await dedup_layouts(url, raw, n)
    # "rwbench:" is as long as the default "rarewatch:", and never a real store's prefix.
    for label, prefix in (("", "rwbench:"), (" (cluster key layout)", keys.cluster_prefix("rwbench:"))):
        store = RedisStore(url, prefix=prefix)
        await store.open()

        async def seen(i: int, store: RedisStore = store) -> object:
            return await store.claim(story_keys(i), TTL, NOW)

        async def alerted(i: int, store: RedisStore = store) -> object:
            a = alert(10_000_000 + i)
            bands = band_keys(i)
            await store.claim(story_keys(10_000_000 + i), TTL, NOW, a, ["webhook"], remember=bands)
            return await store.mark_delivered(a.id, "webhook", NOW)

        async def kept(i: int, store: RedisStore = store) -> object:
            if i % 20:
                return None
            batch = [SeenItem(alert(20_000_000 + j).item, NOW, "pack-1", ()) for j in range(i, i + 20)]
            return await store.record_items(batch, NOW)

        results[f"seen, no alert{label}"] = await per_item(raw, n, seen)
        results[f"kept item record (store_items){label}"] = await per_item(raw, n, kept)
        results[f"alerted to 1 destination, delivered{label}"] = await per_item(raw, n, alerted)
        await store.close()
        if not label:
            results.update(await retention(url, prefix + "ret:", raw, n))
        async for key in raw.scan_iter(match=f"{prefix}*", count=1000):
            await raw.delete(key)
    await raw.aclose()
    print(f"\nRedis memory per tracked item ({n} items per case; {url})")
    for name, value in results.items():
        print(f"  {name:<62} {value:>8,.0f} bytes")


async def retention(url: str, prefix: str, raw: Redis, n: int) -> dict[str, float]:
    """Bytes per delivered alert beyond the history, before and after the retention sweep."""
    store = RedisStore(url, prefix=prefix, history_limit=0)  # every alert here is beyond the history
    await store.open()
    before = await used_memory(raw)
    for i in range(n):
        a = alert(30_000_000 + i)
        bands = band_keys(i)
        await store.claim(story_keys(30_000_000 + i), TTL, NOW, a, ["webhook"], remember=bands)
        await store.mark_delivered(a.id, "webhook", NOW)
    kept = (await used_memory(raw) - before) / n
    cutoff = NOW + OutboxRetention().delivered + timedelta(seconds=1)
    while await store.forget_deliveries(DeliveryStatus.DELIVERED, cutoff, 1000):
        pass
    swept = (await used_memory(raw) - before) / n
    await store.close()
    return {
        "delivered, beyond the history, before the retention sweep": kept,
        "delivered, beyond the history, after the retention sweep": swept,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="items per case")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory(prefix="rarewatch-bench-") as tmp:
        server = start_redis(Path(tmp))
        if server is None:
            print("Redis: skipped (no REDIS_URL and no redis-server on PATH)")
            return
        url, proc = server
        try:
            await bench(url, n)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
