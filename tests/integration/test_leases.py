"""Leases on a real Redis: one holder at a time, only the holder extends or releases, a lease lapses within
its period, sources spread over the live replicas and move when one leaves, and every key has a TTL. Each
test runs on one redis-server, on a three-master Redis Cluster and through one redis-sentinel."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from rarewatch.clock import FakeClock, SystemClock
from rarewatch.delivery.jsonl import JsonlNotifier
from rarewatch.delivery.outbox import Outbox
from rarewatch.errors import StoreError
from rarewatch.models import Alert, DeliveryStatus, Item, Match, Severity
from rarewatch.store import NoLeases, leases_for, open_store
from rarewatch.store.keys import RedisKeys, cluster_prefix
from rarewatch.store.leases import TAKEOVER_GRACE
from rarewatch.store.redis import RedisStore
from rarewatch.store.redis_client import RedisClient
from rarewatch.store.redis_leases import RedisLeases
from tests.integration.test_outbox_unrecorded import failing_once

pytestmark = pytest.mark.redis

LONG = timedelta(seconds=30)
NAMES = [f"feed-{n}" for n in range(40)]


@pytest.fixture
def url(redis_any_url: str) -> str:
    return redis_any_url


@pytest.fixture
def client(redis_any_client: RedisClient) -> RedisClient:
    return redis_any_client


@pytest.fixture
def keys(client: RedisClient) -> RedisKeys:
    prefix = f"leases-{secrets.token_hex(4)}:"  # the suite shares one server
    return RedisKeys(cluster_prefix(prefix) if isinstance(client, RedisCluster) else prefix)


def replica(client: RedisClient, keys: RedisKeys, name: str) -> RedisLeases:
    return RedisLeases(client, keys, "test", token=name)


async def test_one_holder_at_a_time_and_only_the_holder_extends_or_releases(
    client: RedisClient, keys: RedisKeys
) -> None:
    a, b = replica(client, keys, "a"), replica(client, keys, "b")
    assert await a.hold("destination", "tickets", timedelta(seconds=5))
    assert not await b.hold("destination", "tickets", LONG)
    assert await client.get(keys.lease("destination", "tickets")) == "a"

    assert await a.hold("destination", "tickets", LONG), "the holder extends its own lease"
    assert await client.pttl(keys.lease("destination", "tickets")) > 5_000

    await b.stop()  # b holds nothing: its compare-and-delete leaves a's lease alone
    assert await client.get(keys.lease("destination", "tickets")) == "a"
    await a.stop()  # SIGTERM: released at once
    assert await client.exists(keys.lease("destination", "tickets")) == 0
    assert await b.hold("destination", "tickets", LONG)


async def test_a_lapsed_lease_is_taken_over_and_never_freed_by_its_old_holder(
    client: RedisClient, keys: RedisKeys
) -> None:
    a, b = replica(client, keys, "a"), replica(client, keys, "b")
    assert await a.hold("source", "mofcom", timedelta(milliseconds=200))
    await asyncio.sleep(0.3)  # a pauses past its lease (say, a long GC or a frozen VM)
    assert await b.hold("source", "mofcom", LONG), "a lease lapses within its period, and a source's is used"
    assert not await a.hold("source", "mofcom", LONG), "a cannot extend a lease it lost"
    assert await client.get(keys.lease("source", "mofcom")) == "b"

    assert await a.hold("destination", "tickets", timedelta(milliseconds=200))
    await asyncio.sleep(0.3)
    assert not await b.hold("destination", "tickets", LONG), "taken over: b waits its grace"
    assert await client.get(keys.lease("destination", "tickets")) == "b", "b holds it meanwhile"
    assert not await a.hold("destination", "tickets", LONG), "a cannot extend a lease it lost"

    a.held.add(("destination", "tickets"))  # as if a still believed it held it
    await a.stop()
    assert await client.get(keys.lease("destination", "tickets")) == "b", "compare-and-delete"


async def test_a_destination_taken_over_is_used_only_after_its_grace(
    client: RedisClient, keys: RedisKeys
) -> None:
    clock = FakeClock()
    grace = timedelta(seconds=12)
    a = replica(client, keys, "a")
    b = RedisLeases(client, keys, "test", token="b", grace=grace, clock=clock)
    assert await a.hold("destination", "tickets", LONG)
    await client.delete(keys.lease("destination", "tickets"))  # a's lease lapses, a unreleased
    assert not await b.hold("destination", "tickets", LONG)
    clock.advance(11.9)
    assert not await b.hold("destination", "tickets", LONG), "still within the grace"
    assert await client.pttl(keys.lease("destination", "tickets")) > 20_000, "extended meanwhile"
    clock.advance(0.2)
    assert await b.hold("destination", "tickets", LONG), "the grace has passed"
    assert await client.get(keys.lease_holder("destination", "tickets")) == "b"
    await client.pexpire(keys.lease_holder("destination", "tickets"), 1_000)
    assert await b.hold("destination", "tickets", LONG)
    assert await client.pttl(keys.lease_holder("destination", "tickets")) > 86_400_000, (
        "the record of who holds it lives as long as the holder extends it"
    )


async def test_a_destination_first_taken_released_or_taken_back_is_used_at_once(
    client: RedisClient, keys: RedisKeys
) -> None:
    a, b = replica(client, keys, "a"), replica(client, keys, "b")
    assert await a.hold("destination", "tickets", LONG), "no holder on record: used at once"
    await client.delete(keys.lease("destination", "tickets"))
    assert await a.hold("destination", "tickets", LONG), "its own last holder takes it back at once"
    await a.stop()  # SIGTERM: the lease and the record naming a go
    assert await client.exists(keys.lease_holder("destination", "tickets")) == 0
    assert await b.hold("destination", "tickets", LONG), "a released lease is used at once"

    clock = FakeClock()
    d = RedisLeases(client, keys, "test", token="d", clock=clock)
    await client.delete(keys.lease("destination", "tickets"))
    assert not await d.hold("destination", "tickets", LONG), "d took it over from b: its grace begins"
    await client.delete(keys.lease("destination", "tickets"))
    c = replica(client, keys, "c")
    assert not await c.hold("destination", "tickets", LONG), "c took it over from d"
    assert not await d.hold("destination", "tickets", LONG), "d lost it"
    await c.stop()
    assert await d.hold("destination", "tickets", LONG), "released by c: d's earlier grace is forgotten"


async def test_a_sent_delivery_the_old_holder_could_not_record_is_not_sent_again_by_the_new_one(
    client: RedisClient, keys: RedisKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore(client, prefix=keys.prefix)
    await store.open()
    clock, lease_clock = SystemClock(), FakeClock()
    now = clock.now()
    item = Item("item-1", "mofcom", "Story", "https://example.org/1", "", "", now)
    alert = Alert("a-1", item, (Match("licensing", "export-licensing", Severity.HIGH),), now)
    assert await store.claim(["k:1"], LONG, now, alert=alert, destinations=["archive"])
    path = tmp_path / "alerts.jsonl"
    a = replica(client, keys, "a")
    b = RedisLeases(client, keys, "test", token="b", clock=lease_clock)
    first = Outbox(store, {"archive": JsonlNotifier("archive", path)}, clock=clock, leases=a)
    second = Outbox(store, {"archive": JsonlNotifier("archive", path)}, clock=clock, leases=b)
    monkeypatch.setattr(store, "mark_delivered", failing_once(store.mark_delivered))
    with pytest.raises(StoreError):
        await first.flush()  # a sent it as Redis went away: its record failed
    await client.delete(keys.lease("destination", "archive"))  # a's lease lapsed during the outage

    assert (await second.flush()).delivered == 0, "b took the lease over and waits"
    await first.flush()  # a's store retry: its delivery goes on record; b holds the lease
    lease_clock.advance(TAKEOVER_GRACE)
    assert (await second.flush()).attempted == 0, "nothing due: recorded by a"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1, "sent once"
    assert [d.alert_id for d in await store.deliveries(DeliveryStatus.DELIVERED)] == ["a-1"]
    await a.stop()
    await b.stop()


async def test_sources_spread_over_live_replicas_and_move_when_one_leaves(
    client: RedisClient, keys: RedisKeys
) -> None:
    a, b, c = (replica(client, keys, name) for name in "abc")
    for r in (a, b, c):
        await r.start()
    for r in (a, b, c):
        await r.beat()
    assert set(a.members) == {"a", "b", "c"}

    owners: dict[str, list[str]] = {}
    for name in NAMES:
        for r in (a, b, c):
            if await r.hold("source", name, LONG):
                owners.setdefault(name, []).append(r.token)
    assert all(len(held_by) == 1 for held_by in owners.values()) and len(owners) == len(NAMES)
    share = {token: sum(1 for held_by in owners.values() if held_by == [token]) for token in "abc"}
    assert min(share.values()) >= 6, share  # each replica does a share

    await c.stop()  # leaves and releases its leases
    await a.beat()
    await b.beat()
    assert set(a.members) == {"a", "b"}
    for name, held_by in owners.items():
        if held_by == ["c"]:
            took = [r.token for r in (a, b) if await r.hold("source", name, LONG)]
            assert len(took) == 1, f"{name}: taken over by exactly one replica, got {took}"
    await a.stop()
    await b.stop()


async def test_a_replica_that_stops_beating_drops_out_of_the_membership(
    client: RedisClient, keys: RedisKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rarewatch.store.redis_leases.MEMBER_TTL", timedelta(milliseconds=300))
    a, b = replica(client, keys, "a"), replica(client, keys, "b")
    await a.beat()
    await b.beat()
    assert set(b.members) == {"a", "b"}
    await asyncio.sleep(0.4)  # a was SIGKILLed: no more heartbeats
    assert await b.beat() == ("b",)


async def test_every_key_has_a_ttl(client: RedisClient, keys: RedisKeys) -> None:
    a = replica(client, keys, "host:123:0123456789abcdef")
    await a.start()
    assert await a.hold("source", "ministry-of-commerce-announcements", LONG)
    assert await a.hold("destination", "tickets", LONG)
    found = [key async for key in client.scan_iter(match=f"{keys.prefix}*")]
    assert sorted(found) == sorted(
        [
            keys.replicas,
            keys.lease("source", "ministry-of-commerce-announcements"),
            keys.lease("destination", "tickets"),
            keys.lease_holder("destination", "tickets"),
        ]
    )
    for key in found:
        assert await client.pttl(key) > 0, key
    await a.stop()
    assert [key async for key in client.scan_iter(match=f"{keys.prefix}*")] == []


async def test_sqlite_needs_no_leases_and_redis_gets_them(tmp_path: object, url: str) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path}/state.db")
    assert isinstance(leases_for(sqlite), NoLeases)
    assert await NoLeases().hold("source", "any", LONG)
    redis_store = open_store(url)
    assert isinstance(leases_for(redis_store), RedisLeases)
    await redis_store.close()


async def test_one_replica_at_a_time_drains_a_destination(
    client: RedisClient, keys: RedisKeys, tmp_path: Path
) -> None:
    store = RedisStore(client, prefix=keys.prefix)
    await store.open()
    clock = SystemClock()
    now = clock.now()
    item = Item("item-1", "mofcom", "Story", "https://example.org/1", "", "", now)
    alert = Alert("a-1", item, (Match("licensing", "export-licensing", Severity.HIGH),), now)
    assert await store.claim(["k:1"], LONG, now, alert=alert, destinations=["archive"])
    a, b = replica(client, keys, "a"), replica(client, keys, "b")
    path = tmp_path / "alerts.jsonl"
    second = Outbox(store, {"archive": JsonlNotifier("archive", path)}, clock=clock, leases=b)

    assert await a.hold("destination", "archive", LONG)  # replica a is draining "archive"
    assert (await second.flush()).delivered == 0, "b leaves a's destination alone"
    assert not path.exists()
    await a.stop()  # a stops (SIGTERM): its destination lease is released
    assert (await second.flush()).delivered == 1
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    await b.stop()
