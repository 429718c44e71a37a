"""The Redis dedup-key layout (v3): bucketed, sharded hashes (`keys.RedisKeys`, `redis_scripts.DEDUP_LIB`).

What the contract suite cannot see from outside: a key is held by its own expiry, not by its bucket's; every
bucket expires on its own (no sweeper), never before the keys in it; shards are split so they stay compact
listpacks; and a store written in layout 2 (one `claim:<key>` string each) is still honoured after the
upgrade, until those keys expire. Run on one server, on the test cluster and behind the test sentinel.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio.cluster import RedisCluster

from rarewatch.models import Alert, Item
from rarewatch.store import keys
from rarewatch.store.redis import RedisStore
from rarewatch.store.redis_client import RedisClient

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
HOUR = timedelta(hours=1)
WEEK_MS, HOUR_MS = 7 * 86_400_000, 3_600_000


@pytest.fixture
def url(redis_any_url: str) -> str:
    return redis_any_url


@pytest.fixture
def client(redis_any_client: RedisClient) -> RedisClient:
    return redis_any_client


@pytest.fixture
async def store(url: str, client: RedisClient) -> AsyncIterator[RedisStore]:
    prefix = f"rwtest:{uuid.uuid4().hex[:12]}:"
    made = RedisStore(url, prefix=prefix)
    await made.open()
    yield made
    await made.close()
    await _delete(client, made._keys.prefix)


async def _delete(client: RedisClient, prefix: str) -> None:
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)


async def _redis_ms(client: RedisClient) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _dedup_keys(client: RedisClient, store: RedisStore) -> list[str]:
    """Every bucket shard of the store (not the registry)."""
    return [key async for key in client.scan_iter(match=f"{store._keys.dedup_prefix}*")]


def _alert(n: int) -> Alert:
    item = Item(f"item-{n}", "s", f"t{n}", f"https://example.org/{n}", "", "", T0)
    return Alert(id=f"alert-{n}", item=item, matches=(), created=T0)


async def test_a_key_is_held_by_its_own_expiry_not_its_buckets(
    client: RedisClient, store: RedisStore
) -> None:
    """A bucket lives up to one width past the keys in it: a key whose own expiry has passed is free even
    while its bucket still holds it (the window check), and one whose expiry is ahead is held."""
    names, width = store._keys, 10**12  # one bucket spans decades: the current one holds both fields
    now = await _redis_ms(client)
    bucket = now // width
    assert (now - 5_000) // width == bucket == (now + 60_000) // width
    shard = names.dedup_shard(width, bucket, 0)  # an unsplit bucket has one shard, 0
    await client.hset(
        shard,
        mapping={
            keys.dedup_field("item:gone"): str(now - 5_000 - bucket * width),  # expired 5 s ago
            keys.dedup_field("item:live"): f"{now + 60_000 - bucket * width}=alert-1",
        },
    )
    await client.pexpire(shard, 120_000)
    # The registry: the series of that width, and the bucket (level 0, split pointer 0: unsplit).
    await client.hset(names.dedup, mapping={str(width): str(now + 60_000), f"{width}:{bucket}": "0:0"})
    await client.pexpire(names.dedup, 120_000)
    assert await store.held(["item:gone", "item:live"], T0) == {"item:live": "alert-1"}
    assert await store.claim(["item:gone"], WEEK, T0) is True
    assert await store.claim(["item:live"], WEEK, T0) is False


async def test_every_bucket_expires_on_its_own_after_the_keys_it_holds(
    client: RedisClient, store: RedisStore
) -> None:
    """No sweeper: each shard, bucket and the registry carries an expiry, no earlier than the expiry of any
    key in it (held for at least its TTL) and less than one bucket width later."""
    before = await _redis_ms(client)
    assert await store.claim(["item:1", "link:1"], WEEK, T0, _alert(1), ["hook"], remember=["sim:1"])
    await store.remember(["sim:2"], "alert-1", HOUR, T0)
    assert await store.claim(["item:2"], WEEK, T0)
    after = await _redis_ms(client)
    found = await _dedup_keys(client, store)
    assert found
    for key in found:
        expires = int(await client.pexpiretime(key))
        ttl, width = (
            (HOUR_MS, keys.dedup_width_ms(HOUR_MS))
            if key.startswith(store._keys.dedup_prefix + f"{keys.dedup_width_ms(HOUR_MS)}:")
            else (WEEK_MS, keys.dedup_width_ms(WEEK_MS))
        )
        assert before + ttl <= expires <= after + ttl + width, key
    registry = int(await client.pexpiretime(store._keys.dedup))
    assert before + WEEK_MS <= registry <= after + WEEK_MS
    assert await store.held(["item:1", "link:1", "sim:1", "sim:2", "item:2"], T0) == {
        "item:1": "alert-1",
        "link:1": "alert-1",
        "sim:1": "alert-1",
        "sim:2": "alert-1",
        "item:2": None,
    }


async def test_the_registry_forgets_what_ended(client: RedisClient, store: RedisStore) -> None:
    """The registry, read whole by every look-up, holds only live series and buckets: the next write drops
    those whose keys all expired, so a store written to for years keeps a registry of a few fields."""
    assert await store.claim(["item:0"], WEEK, T0)  # keeps the registry alive past the short key
    await store.remember(["sim:short"], "alert-1", timedelta(milliseconds=200), T0)
    short = keys.dedup_width_ms(200)
    assert any(f == str(short) or f.startswith(f"{short}:") for f in await client.hkeys(store._keys.dedup))
    await asyncio.sleep(0.5)  # the key, its bucket and its series end on Redis's clock
    assert await store.claim(["item:1"], WEEK, T0)
    fields = await client.hkeys(store._keys.dedup)
    assert fields and not any(f == str(short) or f.startswith(f"{short}:") for f in fields)
    assert await store.held(["sim:short", "item:1", "item:0"], T0) == {"item:1": None, "item:0": None}


async def test_buckets_split_into_listpack_shards_and_every_key_stays_found(
    client: RedisClient, store: RedisStore
) -> None:
    """1,500 keys in one bucket: linear hashing splits its shards as they fill, so none grows past Redis's
    default `hash-max-listpack-entries` (128) and each stays a compact listpack; every key is still found
    and still refuses a second claim."""
    many = [f"item:{n}" for n in range(1500)]
    for start in range(0, len(many), 300):
        await store.remember(many[start : start + 300], "alert-1", WEEK, T0)
    shards = await _dedup_keys(client, store)
    assert len(shards) >= 1500 // keys.DEDUP_SHARD_LIMIT
    for shard in shards:
        assert await client.hlen(shard) <= 128, shard
        assert await client.object("encoding", shard) == "listpack", shard
    assert sum([await client.hlen(shard) for shard in shards]) == 1500
    # More keys than one look-up script takes (`_HELD_PAGE`): every page answers, in the order asked.
    asked = [*many[::-1], "item:other", *many[:10]]
    found = await store.held(asked, T0)
    assert found == dict.fromkeys(many[::-1], "alert-1") and list(found) == many[::-1]
    assert await store.claim(["item:other", "item:1499"], WEEK, T0) is False
    assert await store.claim(["item:other"], WEEK, T0) is True


async def test_a_layout_2_store_is_honoured_after_the_upgrade_until_its_keys_expire(
    client: RedisClient, url: str
) -> None:
    """Stories seen before the upgrade (one `claim:<key>` string each, as layout 2 wrote them) are not
    alerted again: claims, look-ups and remembered keys read the old keys, with their owners, until they
    expire; the upgrade records how long that is, so look-ups stop reading them after."""
    prefix = f"rwtest:{uuid.uuid4().hex[:12]}:"
    names = keys.RedisKeys(keys.cluster_prefix(prefix) if isinstance(client, RedisCluster) else prefix)
    try:
        await client.set(names.version, 2)
        await client.set(names.claim("item:old"), keys.claim_value("alert-old"), px=WEEK_MS)
        await client.set(names.claim("link:old"), keys.claim_value(None), px=WEEK_MS)
        await client.set(names.claim("sim:short"), keys.claim_value("alert-old"), px=400)
        before = await _redis_ms(client)
        store = RedisStore(url, prefix=prefix)
        await store.open()
        assert await client.get(names.version) == "3"
        legacy = int(await client.hget(names.dedup, "legacy") or 0)
        assert before + WEEK_MS - 60_000 <= legacy <= await _redis_ms(client) + WEEK_MS
        assert await client.pexpiretime(names.dedup) >= legacy

        assert await store.claim(["item:old"], WEEK, T0) is False
        assert await store.claim(["item:new", "link:old"], WEEK, T0, _alert(2), ["hook"]) is False
        assert await store.get_alert("alert-2") is None
        await store.remember(["item:old", "sim:new"], "alert-3", WEEK, T0)
        assert await store.held(["item:old", "link:old", "sim:short", "sim:new", "item:new"], T0) == {
            "item:old": "alert-old",
            "link:old": None,
            "sim:short": "alert-old",
            "sim:new": "alert-3",
        }
        await store.open()  # idempotent: the version is 3 now, nothing is scanned again
        await asyncio.sleep(0.6)  # the short-lived old key expires on Redis's clock, and is free
        assert await store.claim(["sim:short"], WEEK, T0, _alert(4), ["hook"]) is True
        assert await store.held(["sim:short"], T0) == {"sim:short": "alert-4"}
        await store.close()
    finally:
        await _delete(client, names.prefix)


async def test_a_new_store_reads_no_layout_2_keys(client: RedisClient, store: RedisStore) -> None:
    """A prefix that starts in layout 3 records no legacy time: its look-ups never read `claim:` keys."""
    await client.set(store._keys.claim("item:stray"), "1", px=60_000)
    assert await store.claim(["item:1"], WEEK, T0)
    assert await client.hget(store._keys.dedup, "legacy") is None
    assert await store.held(["item:stray"], T0) == {}
