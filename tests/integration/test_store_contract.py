"""The `Store` contract, run against both implementations: SQLite on a real file, and a real redis-server,
alone, as a three-master Redis Cluster (whose keys carry a hash tag: `keys.cluster_prefix`), and as the
master one redis-sentinel names.

Every Redis test works under its own key prefix (deleted afterwards), so tests never see each other's data.
The one place the backends differ is what a TTL is measured against: SQLite compares stored expiry times
with the `now` argument, Redis expires keys on its own clock. The TTL tests (claims, remembered keys,
window counters) say which.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from rarewatch.clock import FakeClock
from rarewatch.delivery.outbox import Outbox
from rarewatch.errors import StoreError
from rarewatch.models import (
    Alert,
    Delivery,
    DeliveryStatus,
    Item,
    Match,
    SeenItem,
    SeenListing,
    Severity,
    Silence,
    SourceState,
    Vote,
    VoteKind,
    item_json,
)
from rarewatch.policies.retention import OutboxRetention
from rarewatch.store import Store, keys, open_store
from rarewatch.store.base import ClaimRequest, ItemRetention, OutboxStats, StoreMarker, checking_marker
from rarewatch.store.redis import RedisStore
from rarewatch.store.redis_client import RedisClient, close, connect
from rarewatch.store.sqlite import SQLiteStore
from tests.support import replace_with_empty_file

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # on the hour: the start of an hour-long counting window
WEEK = timedelta(days=7)
HOUR = timedelta(hours=1)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
DAY = timedelta(days=1)
PENDING, DELIVERED, DEAD = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.DEAD

MakeStore = Callable[..., Awaitable[Store]]


def make_alert(n: int, created: datetime = T0) -> Alert:
    item = Item(
        id=f"item-{n}",
        source="mofcom",
        title=f"China tightens rare earth export licence rules ({n})",
        link=f"https://example.org/news/{n}",
        summary="Export licences now required for seven medium and heavy rare earths.",
        content="稀土 出口管制",
        published=created - timedelta(hours=1),
        lang="en",
    )
    matches = (
        Match("licensing", "export-licensing", Severity.HIGH, ("rare earth", "export licence"), "…licence…"),
        Match("shortage", "supply-disruption", Severity.MEDIUM, ("magnet",)),
    )
    return Alert(id=f"alert-{n}", item=item, matches=matches, created=created)


async def claim_alert(store: Store, n: int, now: datetime = T0, dests: tuple[str, ...] = ("hook",)) -> bool:
    return await store.claim([f"item:{n}", f"link:{n}"], WEEK, now, make_alert(n, now), dests)


def only(deliveries: list[Delivery], alert_id: str, destination: str) -> Delivery:
    [found] = [d for d in deliveries if d.alert_id == alert_id and d.destination == destination]
    return found


REDIS_BACKENDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=pytest.mark.redis),
    pytest.param("redis-sentinel", marks=pytest.mark.redis),
]


@pytest.fixture(params=["sqlite", *REDIS_BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=REDIS_BACKENDS)
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of one server (`redis://`), of the test cluster (`redis+cluster://`), or of the master
    behind the test sentinel (`redis+sentinel://`)."""
    return backend_url(request, str(request.param))


def backend_url(request: pytest.FixtureRequest, backend: str) -> str:
    name = {
        "redis": "redis_url",
        "redis-cluster": "redis_cluster_url",
        "redis-sentinel": "redis_sentinel_url",
    }[backend]
    return str(request.getfixturevalue(name))


def raw_client(url: str) -> RedisClient:
    """A plain client of the server or cluster a store URL names, to look at or damage what a store wrote."""
    return connect(url, connect_timeout=2.0, timeout=5.0)


async def delete_keys(client: RedisClient, prefix: str) -> None:
    """Delete the keys under `prefix` (on a cluster, every node is scanned)."""
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)


@pytest.fixture
async def make_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[MakeStore]:
    """Opens stores of the backend under test; all share one SQLite file, or one Redis key prefix."""
    redis_url = backend_url(request, backend) if backend != "sqlite" else ""
    prefix = f"rwtest:{uuid.uuid4().hex[:12]}:"
    opened: list[Store] = []

    async def make(**options: Any) -> Store:
        store: Store
        if backend == "sqlite":
            if "history_limit" in options or "items" in options:
                options["cleanup_interval"] = timedelta(0)  # trim on every write, as Redis does
            store = SQLiteStore(tmp_path / "state" / "rarewatch.db", **options)
        else:
            store = RedisStore(redis_url, prefix=prefix, **options)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if backend != "sqlite":
        client = raw_client(redis_url)
        await delete_keys(client, keys.cluster_prefix(prefix) if backend == "redis-cluster" else prefix)
        await close(client)


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


# --- claims -------------------------------------------------------------------------------------------------


async def test_first_claim_wins_and_repeats_lose(store: Store) -> None:
    assert await store.claim(["item:1"], WEEK, T0) is True
    assert await store.claim(["item:1"], WEEK, T0) is False
    assert await store.claim(["item:1", "link:1"], WEEK, T0 + SEC) is False


async def test_partial_overlap_is_refused_and_changes_nothing(store: Store) -> None:
    assert await store.claim(["item:1", "link:shared"], WEEK, T0) is True
    assert await store.claim(["item:2", "link:shared"], WEEK, T0, make_alert(2), ["hook"]) is False
    assert await store.get_alert("alert-2") is None
    assert await store.deliveries() == []
    assert await store.recent_alerts() == []
    assert await store.claim(["item:2"], WEEK, T0) is True  # the refused claim did not take item:2


async def test_claim_without_alert_only_marks_seen(store: Store) -> None:
    assert await store.claim(["item:1", "link:1"], WEEK, T0, None, ["hook"]) is True
    assert await store.recent_alerts() == []
    assert await store.deliveries() == []
    assert await claim_alert(store, 1) is False


async def test_claim_records_alert_and_pending_deliveries_due_now(store: Store) -> None:
    alert = make_alert(1)
    assert await store.claim(["item:1", "link:1"], WEEK, T0, alert, ["hook", "slack", "hook"]) is True
    assert await store.get_alert("alert-1") == alert
    assert await store.recent_alerts() == [alert]
    assert await store.due_deliveries(T0 - SEC) == []
    due = await store.due_deliveries(T0)
    assert [d.destination for d in due] == ["hook", "slack"]
    assert due[0] == Delivery("alert-1", "hook", PENDING, 0, T0, T0, None, None)
    assert await store.due_deliveries(T0, destination="slack") == [due[1]]
    assert await store.due_deliveries(T0, destination="hook") == [due[0]]
    assert await store.due_deliveries(T0, destination="hoo") == []  # a name, not a prefix or suffix
    assert await store.due_deliveries(T0, destination="ook") == []


async def test_concurrent_claims_of_one_story_have_one_winner(make_store: MakeStore) -> None:
    first, second = await make_store(), await make_store()  # two connections to the same state
    results = await asyncio.gather(
        *(
            s.claim([f"item:{i}", "link:same"], WEEK, T0, make_alert(i), ["hook"])
            for i in range(20)
            for s in (first, second)
        )
    )
    assert sum(results) == 1
    assert len(await first.deliveries()) == 1


async def test_claim_many_makes_each_claim_in_order(store: Store) -> None:
    alerts = [make_alert(n) for n in range(3)]
    requests = [
        ClaimRequest(("item:0", "link:0"), alerts[0], ("hook",), remember=("sim:a",)),
        ClaimRequest(("item:seen",)),  # no alert: only marked seen
        ClaimRequest(("item:2",), alerts[2], ("hook", "slack"), {"slack": T0 + HOUR}, ("sim:a", "sim:b")),
    ]
    assert await store.claim_many(requests, WEEK, T0) == 3
    assert await store.held(["item:0", "link:0", "item:seen", "item:2", "sim:a", "sim:b"], T0 + SEC) == {
        "item:0": "alert-0",
        "link:0": "alert-0",
        "item:seen": None,
        "item:2": "alert-2",
        "sim:a": "alert-0",  # remembered by the first claim of the batch, kept by the later one
        "sim:b": "alert-2",
    }
    assert sorted(a.id for a in await store.recent_alerts()) == ["alert-0", "alert-2"]
    assert await store.get_alert("alert-2") == alerts[2]
    assert [(d.alert_id, d.destination, d.digest) for d in await store.deliveries()] == [
        ("alert-0", "hook", False),
        ("alert-2", "hook", False),
        ("alert-2", "slack", True),
    ]
    assert await store.claim_many([], WEEK, T0) == 0


async def test_claim_many_stops_at_the_first_refused_claim(store: Store) -> None:
    assert await claim_alert(store, 1)
    requests = [
        ClaimRequest(("item:5",), make_alert(5), ("hook",)),
        ClaimRequest(("item:6", "link:1"), make_alert(6), ("hook",), remember=("sim:x",)),  # link:1 is held
        ClaimRequest(("item:7",), make_alert(7), ("hook",)),  # free, but after the refused one
    ]
    assert await store.claim_many(requests, WEEK, T0) == 1
    assert await store.held(["item:5", "item:6", "sim:x", "item:7"], T0 + SEC) == {"item:5": "alert-5"}
    assert await store.get_alert("alert-6") is None
    assert await store.get_alert("alert-7") is None
    assert {d.alert_id for d in await store.deliveries()} == {"alert-1", "alert-5"}
    # A later claim of the same keys in one batch is refused: the earlier one took them.
    twice = [ClaimRequest(("item:8",)), ClaimRequest(("item:9", "item:8"))]
    assert await store.claim_many(twice, WEEK, T0) == 1
    assert await store.held(["item:9"], T0) == {}


async def test_claims_of_polls_at_once_are_each_their_own(store: Store) -> None:
    """Polls admitting at the same moment: each batch stops at its own first held key, and a key two of
    them want goes to one only (which one is the store's order: SQLite makes the calls in the order they
    were made, one transaction for all; Redis as they reach the server)."""
    one = [ClaimRequest(("item:1",), make_alert(1), ("hook",)), ClaimRequest(("item:2", "link:x"))]
    two = [ClaimRequest(("item:3", "link:x"), make_alert(3), ("hook",)), ClaimRequest(("item:4",))]
    three = [ClaimRequest(("item:5",), make_alert(5), ("hook",), remember=("sim:a",))]
    made_one, made_two, made_three, single = await asyncio.gather(
        store.claim_many(one, WEEK, T0),
        store.claim_many(two, WEEK, T0),
        store.claim_many(three, WEEK, T0),
        store.claim(["item:1"], WEEK, T0),
    )
    assert made_three == 1
    assert (made_one >= 1) != single  # item:1 went to exactly one of them
    assert (made_one == 2) != (made_two == 2) and made_two in (0, 2)  # so did link:x
    held = await store.held(["item:1", "item:2", "link:x", "item:3", "item:4", "item:5", "sim:a"], T0)
    assert held["item:5"] == held["sim:a"] == "alert-5"
    assert held["link:x"] == ("alert-3" if made_two else None)
    alerts = {"alert-5"} | ({"alert-1"} if made_one else set()) | ({"alert-3"} if made_two else set())
    assert {a.id for a in await store.recent_alerts()} == alerts


async def test_claim_many_checks_each_request(store: Store) -> None:
    with pytest.raises(ValueError, match="key"):
        await store.claim_many([ClaimRequest(())], WEEK, T0)
    with pytest.raises(ValueError, match="alert"):
        await store.claim_many([ClaimRequest(("item:1",), remember=("sim:a",))], WEEK, T0)


# --- owners: held() and remember() -------------------------------------------------------------------------


async def test_claims_record_their_owner(store: Store) -> None:
    assert await claim_alert(store, 1)
    assert await store.claim(["item:seen"], WEEK, T0)  # no alert: no owner (Redis: the SET NX path)
    assert await store.claim(["item:a", "link:a"], WEEK, T0)  # no alert, several keys (Redis: the script)
    asked = ["item:free", "link:1", "item:seen", "item:1", "link:a", "item:1"]
    assert await store.held(asked, T0 + SEC) == {
        "link:1": "alert-1",
        "item:seen": None,
        "item:1": "alert-1",
        "link:a": None,
    }
    assert list(await store.held(asked, T0 + SEC)) == [
        "link:1",
        "item:seen",
        "item:1",
        "link:a",
    ]  # asked order
    assert await store.held([], T0) == {}
    assert await store.held(["item:free"], T0) == {}


async def test_a_refused_claim_keeps_the_first_owner(store: Store) -> None:
    assert await store.claim(["item:1", "link:shared"], WEEK, T0, make_alert(1), ["hook"])
    assert await store.claim(["item:2", "link:shared"], WEEK, T0, make_alert(2), ["hook"]) is False
    assert await store.held(["item:2", "link:shared"], T0) == {"link:shared": "alert-1"}


async def test_remember_sets_each_free_key_and_keeps_held_ones(store: Store) -> None:
    assert await claim_alert(store, 1)
    await store.remember(["sim:a", "sim:b"], "alert-1", WEEK, T0)
    # Not all-or-nothing: sim:c is free and taken although sim:b and item:1 are held, which keep their owner.
    await store.remember(["sim:b", "sim:c", "item:1", "sim:c"], "alert-2", WEEK, T0 + SEC)
    await store.remember([], "alert-3", WEEK, T0)
    assert await store.held(["sim:a", "sim:b", "sim:c", "item:1", "sim:z"], T0 + 2 * SEC) == {
        "sim:a": "alert-1",
        "sim:b": "alert-1",
        "sim:c": "alert-2",
        "item:1": "alert-1",
    }


async def test_remembered_keys_block_a_later_claim_of_the_same_key(store: Store) -> None:
    await store.remember(["sim:x"], "alert-1", WEEK, T0)
    assert await store.claim(["item:3", "sim:x"], WEEK, T0 + SEC, make_alert(3), ["hook"]) is False
    assert await store.get_alert("alert-3") is None
    assert await store.deliveries() == []
    assert await store.claim(["item:3"], WEEK, T0 + SEC, make_alert(3), ["hook"]) is True
    assert await store.held(["item:3", "sim:x"], T0 + SEC) == {"item:3": "alert-3", "sim:x": "alert-1"}


async def test_remember_checks_its_ttl(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        await store.remember(["sim:x"], "alert-1", timedelta(0), T0)


async def test_a_claim_remembers_its_keys_where_free(store: Store) -> None:
    await store.remember(["sim:b"], "alert-0", WEEK, T0)
    assert await claim_alert(store, 9)
    remember = ["sim:a", "sim:b", "item:9", "sim:c", "sim:a", "item:1"]  # held ones keep their owner
    assert await store.claim(["item:1", "link:1"], WEEK, T0, make_alert(1), ["hook"], remember=remember)
    assert await store.held(["item:1", "link:1", "sim:a", "sim:b", "sim:c", "item:9"], T0 + SEC) == {
        "item:1": "alert-1",
        "link:1": "alert-1",
        "sim:a": "alert-1",
        "sim:b": "alert-0",
        "sim:c": "alert-1",
        "item:9": "alert-9",
    }
    assert await store.get_delivery("alert-1", "hook") is not None
    # A remembered key blocks a later claim of the same key, as with remember().
    assert await store.claim(["item:2", "sim:c"], WEEK, T0 + SEC, make_alert(2), ["hook"]) is False


async def test_a_refused_claim_remembers_nothing(store: Store) -> None:
    assert await claim_alert(store, 1)
    similar = ["sim:a", "sim:b"]
    alert = make_alert(2)
    assert await store.claim(["item:2", "link:1"], WEEK, T0, alert, ["hook"], remember=similar) is False
    assert await store.held(["item:2", "sim:a", "sim:b", "link:1"], T0 + SEC) == {"link:1": "alert-1"}
    assert await store.get_alert("alert-2") is None
    # The keys are still free for the next claim (the SQLite cache learnt nothing wrong either).
    assert await store.claim(["item:3"], WEEK, T0 + SEC, make_alert(3), ["hook"], remember=["sim:a"])
    assert await store.held(["sim:a", "sim:b"], T0 + 2 * SEC) == {"sim:a": "alert-3"}


async def test_a_claim_remembers_only_for_an_alert(store: Store) -> None:
    with pytest.raises(ValueError, match="alert"):
        await store.claim(["item:1"], WEEK, T0, remember=["sim:a"])
    assert await store.claim(["item:1"], WEEK, T0, remember=[])  # nothing to remember: a plain claim


# --- TTL: the one difference between the backends ----------------------------------------------------------


async def test_claim_ttl(make_store: MakeStore, backend: str) -> None:
    store = await make_store()
    hour = timedelta(hours=1)
    if backend == "sqlite":
        # SQLite stores expiry times and compares them with the `now` argument: no sleeping.
        assert await store.claim(["item:1", "link:1"], hour, T0) is True
        assert await store.claim(["item:1"], hour, T0 + timedelta(minutes=59)) is False
        assert await store.claim(["link:1"], hour, T0 + timedelta(minutes=61)) is True
        assert await store.claim(["item:1", "link:1"], hour, T0 + timedelta(minutes=62)) is False  # link:1
        assert await store.claim(["item:1"], hour, T0 + timedelta(minutes=62)) is True
    else:
        # Redis expires keys on its own clock; `now` only dates the records. So a short real TTL.
        short = timedelta(milliseconds=300)
        assert await store.claim(["item:1", "link:1"], short, T0) is True
        assert await store.claim(["item:1"], short, T0 + hour) is False  # an hour of `now` changes nothing
        await asyncio.sleep(0.5)
        assert await store.claim(["link:1"], WEEK, T0) is True
        assert await store.claim(["item:1"], WEEK, T0) is True


async def test_held_and_remembered_keys_expire(make_store: MakeStore, backend: str) -> None:
    store = await make_store()
    if backend == "sqlite":
        # Expiry is compared with `now`: no sleeping.
        assert await store.claim(["item:1"], HOUR, T0, make_alert(1), ["hook"])
        await store.remember(["sim:x"], "alert-1", 30 * MIN, T0)
        assert await store.held(["item:1", "sim:x"], T0 + 29 * MIN) == {
            "item:1": "alert-1",
            "sim:x": "alert-1",
        }
        assert await store.held(["item:1", "sim:x"], T0 + 31 * MIN) == {"item:1": "alert-1"}
        await store.remember(["sim:x", "item:1"], "alert-2", HOUR, T0 + 31 * MIN)  # an expired key is free
        assert await store.held(["item:1", "sim:x"], T0 + 61 * MIN) == {"sim:x": "alert-2"}
    else:
        # Redis expires keys on its own clock, whatever `now` says.
        short = timedelta(milliseconds=300)
        assert await store.claim(["item:1"], WEEK, T0, make_alert(1), ["hook"])
        await store.remember(["sim:x"], "alert-1", short, T0)
        assert await store.held(["item:1", "sim:x"], T0 + WEEK) == {"item:1": "alert-1", "sim:x": "alert-1"}
        await asyncio.sleep(0.5)
        assert await store.held(["item:1", "sim:x"], T0) == {"item:1": "alert-1"}
        await store.remember(["sim:x", "item:1"], "alert-2", WEEK, T0)  # an expired key is free
        assert await store.held(["item:1", "sim:x"], T0) == {"item:1": "alert-1", "sim:x": "alert-2"}


async def test_counter_windows_expire(make_store: MakeStore, backend: str) -> None:
    store = await make_store()
    if backend == "sqlite":
        # A window is a span of `now`: counts last until `now` leaves it, however long that takes.
        window = MIN
        assert await store.count_in_window("rule:a", window, T0) == 1
        assert await store.count_in_window("rule:a", window, T0 + 59 * SEC) == 2
        assert await store.count_in_window("rule:a", window, T0 + 60 * SEC) == 1
        assert await store.count_in_window("rule:a", window, T0 + 61 * SEC) == 2
    else:
        # The window's number comes from `now`, but Redis drops its counter on its own clock, one window
        # after the first count: with a short window, real time alone restarts the count of the same `now`.
        window = timedelta(milliseconds=300)
        assert await store.count_in_window("rule:a", window, T0) == 1
        assert await store.count_in_window("rule:a", window, T0 + timedelta(milliseconds=299)) == 2
        assert await store.count_in_window("rule:a", window, T0 + window) == 1  # the next window: a new key
        await asyncio.sleep(0.5)
        assert await store.count_in_window("rule:a", window, T0) == 1


async def test_reclaim_after_expiry_creates_fresh_deliveries(make_store: MakeStore, backend: str) -> None:
    store = await make_store()
    ttl, later = (timedelta(hours=1), T0 + timedelta(hours=2)) if backend == "sqlite" else (0.3 * SEC, T0)
    assert await store.claim(["item:1"], ttl, T0, make_alert(1), ["hook"]) is True
    await store.mark_delivered("alert-1", "hook", T0 + SEC)
    if backend != "sqlite":
        await asyncio.sleep(0.5)
    assert await store.claim(["item:1"], ttl, later, make_alert(1, later), ["hook"]) is True
    [delivery] = await store.deliveries()
    assert (delivery.status, delivery.attempts, delivery.created, delivery.delivered_at) == (
        PENDING,
        0,
        later,
        None,
    )


# --- digests and window counters ----------------------------------------------------------------------------


async def test_held_until_makes_digest_deliveries_due_at_that_time(store: Store) -> None:
    later = T0 + 30 * MIN
    hold = {"slack": later, "unused": later}
    assert await store.claim(["item:1"], WEEK, T0, make_alert(1), ["hook", "slack"], held_until=hold)
    assert await store.get_delivery("alert-1", "hook") == Delivery("alert-1", "hook", PENDING, 0, T0, T0)
    held = Delivery("alert-1", "slack", PENDING, 0, T0, later, None, None, None, True)
    assert await store.get_delivery("alert-1", "slack") == held
    assert await store.get_delivery("alert-1", "unused") is None  # only the claim's destinations get one
    assert [d.destination for d in await store.due_deliveries(later - SEC)] == ["hook"]
    assert await store.due_deliveries(later) == [
        Delivery("alert-1", "hook", PENDING, 0, T0, T0),
        held,
    ]
    assert only(await store.deliveries(PENDING), "alert-1", "slack").digest is True
    # The flag stays with the record through a failed attempt.
    await store.mark_failed("alert-1", "slack", "HTTP 503", later + MIN, later)
    failed = await store.get_delivery("alert-1", "slack")
    assert failed is not None and (failed.digest, failed.attempts, failed.next_attempt) == (
        True,
        1,
        later + MIN,
    )


async def test_held_until_without_alert_creates_nothing(store: Store) -> None:
    assert await store.claim(["item:1", "link:1"], WEEK, T0, None, ["hook"], held_until={"hook": T0 + MIN})
    assert await store.deliveries() == []
    assert await store.held(["item:1", "link:1"], T0) == {"item:1": None, "link:1": None}


async def test_count_in_window_counts_within_fixed_windows(store: Store) -> None:
    assert [await store.count_in_window("rule:a", HOUR, T0 + m * MIN) for m in (0, 1, 59)] == [1, 2, 3]
    assert await store.count_in_window("rule:b", HOUR, T0 + MIN) == 1  # counters are per key
    # Fixed, not sliding: the window number is floor(now / window), so one second apart can be two windows.
    assert await store.count_in_window("rule:a", HOUR, T0 + HOUR) == 1
    assert await store.count_in_window("rule:a", HOUR, T0 + HOUR + 59 * MIN) == 2
    assert await store.count_in_window("rule:c", HOUR, T0 - SEC) == 1
    assert await store.count_in_window("rule:c", HOUR, T0) == 1
    with pytest.raises(ValueError, match="positive"):
        await store.count_in_window("rule:a", timedelta(0), T0)


# --- outbox -------------------------------------------------------------------------------------------------


async def test_mark_failed_pushes_next_attempt(store: Store) -> None:
    await claim_alert(store, 1, dests=("hook", "slack"))
    await store.mark_failed("alert-1", "hook", "HTTP 503", T0 + 30 * SEC, T0)
    await store.mark_failed("alert-1", "hook", "timeout", T0 + 90 * SEC, T0 + 30 * SEC)
    assert [d.destination for d in await store.due_deliveries(T0 + 60 * SEC)] == ["slack"]
    failed = only(await store.due_deliveries(T0 + 90 * SEC), "alert-1", "hook")
    assert (failed.status, failed.attempts, failed.last_error) == (PENDING, 2, "timeout")
    assert failed.next_attempt == T0 + 90 * SEC and failed.created == T0


async def test_mark_delivered(store: Store) -> None:
    await claim_alert(store, 1)
    await store.mark_failed("alert-1", "hook", "HTTP 500", T0 + SEC, T0)
    await store.mark_delivered("alert-1", "hook", T0 + 2 * SEC)
    assert await store.due_deliveries(T0 + timedelta(days=1)) == []
    [done] = await store.deliveries(DELIVERED)
    assert (done.status, done.attempts, done.delivered_at) == (DELIVERED, 2, T0 + 2 * SEC)


async def test_mark_delivered_many_is_mark_delivered_of_each(store: Store) -> None:
    """The outbox's record of a batch sent at once: each delivery as `mark_delivered` (no receipt) records
    it, others untouched; an empty batch and a record that is not there change nothing."""
    for n in (1, 2, 3):
        await claim_alert(store, n, dests=("slack", "hook"))
    await store.mark_delivered("alert-2", "slack", T0 + SEC, receipt="1740830400.000100")
    await store.mark_failed("alert-1", "hook", "HTTP 500", T0 + SEC, T0)
    await store.mark_delivered_many([], T0 + SEC)
    batch = [("alert-1", "hook"), ("alert-2", "slack"), ("alert-3", "hook"), ("nope", "hook")]
    await store.mark_delivered_many(batch, T0 + 2 * SEC)
    one = await store.get_delivery("alert-1", "hook")
    assert one is not None
    assert (one.status, one.attempts, one.delivered_at, one.receipt) == (DELIVERED, 2, T0 + 2 * SEC, None)
    assert one.last_error == "HTTP 500"
    again = await store.get_delivery("alert-2", "slack")
    assert again is not None
    assert (again.status, again.attempts, again.delivered_at, again.receipt) == (
        DELIVERED,
        2,
        T0 + 2 * SEC,
        None,
    )
    three = await store.get_delivery("alert-3", "hook")
    assert three is not None and (three.status, three.attempts) == (DELIVERED, 1)
    untouched = [
        await store.get_delivery(f"alert-{n}", d) for n, d in ((1, "slack"), (2, "hook"), (3, "slack"))
    ]
    assert [(d.status, d.attempts) for d in untouched if d is not None] == [(PENDING, 0)] * 3
    assert await store.get_delivery("nope", "hook") is None
    assert await store.delivered_since("hook", T0 + 2 * SEC) == 2


async def test_mark_delivered_stores_the_receipt(store: Store) -> None:
    await claim_alert(store, 1, dests=("slack", "hook"))
    await store.mark_delivered("alert-1", "slack", T0 + SEC, receipt="1740830400.000100")
    await store.mark_delivered("alert-1", "hook", T0 + SEC)
    assert await store.get_delivery("alert-1", "slack") == Delivery(
        "alert-1", "slack", DELIVERED, 1, T0, T0, None, T0 + SEC, "1740830400.000100", False
    )
    assert only(await store.deliveries(DELIVERED), "alert-1", "slack").receipt == "1740830400.000100"
    hook = await store.get_delivery("alert-1", "hook")
    assert hook is not None and hook.receipt is None
    # A later delivery records its own receipt; None clears the earlier one.
    await store.mark_delivered("alert-1", "slack", T0 + 2 * SEC, receipt="1740830401.000200")
    assert only(await store.deliveries(), "alert-1", "slack").receipt == "1740830401.000200"
    await store.mark_delivered("alert-1", "slack", T0 + 3 * SEC)
    again = await store.get_delivery("alert-1", "slack")
    assert again is not None and (again.receipt, again.attempts) == (None, 3)


async def test_get_delivery_of_an_unknown_record_is_none(store: Store) -> None:
    await claim_alert(store, 1)
    assert await store.get_delivery("alert-1", "nowhere") is None
    assert await store.get_delivery("missing", "hook") is None


async def test_delivered_since_counts_delivered_records_per_destination(store: Store) -> None:
    for n in (1, 2, 3, 4):
        await claim_alert(store, n, dests=("hook", "slack"))
    for n in (1, 2, 3):
        await store.mark_delivered(f"alert-{n}", "hook", T0 + n * MIN)
    await store.mark_delivered("alert-1", "slack", T0 + 2 * MIN)
    await store.mark_failed("alert-4", "hook", "HTTP 503", T0 + HOUR, T0 + 4 * MIN)
    await store.mark_dead("alert-4", "slack", "gone", T0 + 4 * MIN)
    assert await store.delivered_since("hook", T0) == 3
    assert await store.delivered_since("hook", T0 + 2 * MIN) == 2  # at or after
    assert await store.delivered_since("hook", T0 + 3 * MIN + SEC) == 0
    assert await store.delivered_since("slack", T0) == 1
    assert await store.delivered_since("nowhere", T0) == 0
    # Only records that exist and are delivered count: purged ones and re-created ones drop out.
    assert await store.purge(DELIVERED, destination="slack") == 1
    assert await store.delivered_since("slack", T0) == 0
    assert await store.delivered_since("hook", T0) == 3


async def test_delivered_since_forgets_a_reclaimed_story(make_store: MakeStore, backend: str) -> None:
    store = await make_store()
    ttl, later = (HOUR, T0 + 2 * HOUR) if backend == "sqlite" else (0.3 * SEC, T0 + 2 * MIN)
    assert await store.claim(["item:1"], ttl, T0, make_alert(1), ["hook"])
    await store.mark_delivered("alert-1", "hook", T0 + MIN)
    assert await store.delivered_since("hook", T0) == 1
    if backend != "sqlite":
        await asyncio.sleep(0.5)
    assert await store.claim(["item:1"], ttl, later, make_alert(1, later), ["hook"])  # a fresh record
    assert await store.delivered_since("hook", T0) == 0


async def test_defer_moves_a_pending_delivery_without_an_attempt(store: Store) -> None:
    await claim_alert(store, 1, dests=("hook", "slack"))
    await store.mark_failed("alert-1", "hook", "HTTP 503", T0 + SEC, T0)
    await store.defer("alert-1", "hook", T0 + 10 * MIN)
    await store.defer("alert-1", "slack", T0 + 5 * MIN)
    assert await store.due_deliveries(T0 + 4 * MIN) == []
    assert await store.due_deliveries(T0 + 10 * MIN) == [
        Delivery("alert-1", "slack", PENDING, 0, T0, T0 + 5 * MIN),
        Delivery("alert-1", "hook", PENDING, 1, T0, T0 + 10 * MIN, "HTTP 503"),
    ]
    await store.defer("alert-1", "hook", T0 + MIN)  # earlier works too
    assert [d.destination for d in await store.due_deliveries(T0 + MIN)] == ["hook"]


async def test_defer_of_a_record_not_pending_is_a_no_op(store: Store) -> None:
    await claim_alert(store, 1, dests=("hook", "slack"))
    await store.mark_delivered("alert-1", "hook", T0 + SEC)
    await store.mark_dead("alert-1", "slack", "gone", T0 + SEC)
    await store.defer("alert-1", "hook", T0 + HOUR)
    await store.defer("alert-1", "slack", T0 + HOUR)
    await store.defer("missing", "hook", T0 + HOUR)
    assert await store.due_deliveries(T0 + WEEK) == []
    hook, slack = await store.get_delivery("alert-1", "hook"), await store.get_delivery("alert-1", "slack")
    assert hook is not None and (hook.status, hook.next_attempt) == (DELIVERED, T0)
    assert slack is not None and (slack.status, slack.next_attempt) == (DEAD, T0)
    assert len(await store.deliveries()) == 2


async def test_mark_dead_keeps_the_record_and_its_error(store: Store) -> None:
    await claim_alert(store, 1)
    await store.mark_failed("alert-1", "hook", "HTTP 500", T0 + SEC, T0)
    await store.mark_dead("alert-1", "hook", "HTTP 400 bad payload", T0 + SEC)
    assert await store.due_deliveries(T0 + timedelta(days=1)) == []
    [dead] = await store.deliveries(DEAD)
    assert (dead.status, dead.last_error, dead.attempts) == (DEAD, "HTTP 400 bad payload", 2)


async def test_marks_of_an_unknown_delivery_are_no_ops(store: Store) -> None:
    await store.mark_delivered("nope", "hook", T0)
    await store.mark_failed("nope", "hook", "x", T0, T0)
    await store.mark_dead("nope", "hook", "x", T0)
    assert await store.deliveries() == []


async def test_retry_makes_dead_and_pending_due_now(store: Store) -> None:
    for n in (1, 2, 3):
        await claim_alert(store, n, dests=("hook", "slack"))
    await store.mark_dead("alert-1", "hook", "gone", T0)
    await store.mark_dead("alert-1", "slack", "gone", T0)
    await store.mark_failed("alert-2", "hook", "503", T0 + timedelta(hours=1), T0)
    await store.mark_delivered("alert-3", "hook", T0)
    later = T0 + timedelta(minutes=5)
    assert await store.retry(later, destination="hook") == 2  # alert-1 (dead) and alert-2 (pending)
    due = await store.due_deliveries(later)
    assert {(d.alert_id, d.destination) for d in due} == {
        ("alert-1", "hook"),
        ("alert-2", "hook"),
        ("alert-2", "slack"),
        ("alert-3", "slack"),
    }
    revived = only(due, "alert-1", "hook")
    assert (revived.status, revived.next_attempt, revived.last_error) == (PENDING, later, "gone")
    assert await store.retry(later) == 5  # everything not delivered, whatever the destination
    assert [d.alert_id for d in await store.deliveries(DEAD)] == []


async def test_retry_of_one_alert_leaves_the_others(store: Store) -> None:
    for n in (1, 2):
        await claim_alert(store, n, dests=("hook", "slack"))
        await store.mark_dead(f"alert-{n}", "hook", "gone", T0)
        await store.mark_dead(f"alert-{n}", "slack", "gone", T0)
    later = T0 + timedelta(minutes=5)
    assert await store.retry(later, destination="hook", alert_id="alert-2") == 1
    assert await store.retry(later, alert_id="alert-1") == 2
    assert await store.retry(later, alert_id="alert-9") == 0
    assert [(d.alert_id, d.destination) for d in await store.deliveries(DEAD)] == [("alert-2", "slack")]


async def test_purge_by_status_and_destination(store: Store) -> None:
    for n in (1, 2):
        await claim_alert(store, n, dests=("hook", "slack"))
    await store.mark_delivered("alert-1", "hook", T0)
    await store.mark_delivered("alert-1", "slack", T0)
    await store.mark_dead("alert-2", "hook", "gone", T0)
    await store.mark_dead("alert-2", "slack", "gone", T0)
    assert await store.purge(DEAD, destination="hook") == 1
    assert [(d.alert_id, d.destination) for d in await store.deliveries(DEAD)] == [("alert-2", "slack")]
    assert await store.purge(DELIVERED) == 2
    assert await store.purge(DELIVERED) == 0
    assert [d.status for d in await store.deliveries()] == [DEAD]
    assert await store.get_alert("alert-1") == make_alert(1)  # still in the history


async def test_deliveries_filters_order_and_limit(store: Store) -> None:
    for n in (1, 2, 3):
        await claim_alert(store, n, now=T0 + n * SEC, dests=("hook", "slack"))
    await store.mark_dead("alert-2", "slack", "gone", T0)
    everything = await store.deliveries()
    assert [(d.alert_id, d.destination) for d in everything] == [
        (f"alert-{n}", dest) for n in (1, 2, 3) for dest in ("hook", "slack")
    ]
    assert [d.alert_id for d in await store.deliveries(destination="slack")] == [
        "alert-1",
        "alert-2",
        "alert-3",
    ]
    assert [d.alert_id for d in await store.deliveries(PENDING, "slack")] == ["alert-1", "alert-3"]
    assert [(d.alert_id, d.destination) for d in await store.deliveries(DEAD)] == [("alert-2", "slack")]
    assert [d.alert_id for d in await store.deliveries(destination="hook", limit=2)] == ["alert-1", "alert-2"]
    assert len(await store.deliveries(limit=4)) == 4
    assert await store.deliveries(destination="nowhere") == []


async def test_due_deliveries_order_next_attempt_then_created(store: Store) -> None:
    # Claimed out of time order, so insertion order differs from creation order.
    await claim_alert(store, 3, now=T0 + 3 * SEC)
    await claim_alert(store, 1, now=T0 + 1 * SEC)
    await claim_alert(store, 2, now=T0 + 2 * SEC)
    await claim_alert(store, 4, now=T0 + 4 * SEC)
    await store.mark_failed("alert-4", "hook", "503", T0 + SEC / 2, T0 + 4 * SEC)  # due first
    due = await store.due_deliveries(T0 + timedelta(minutes=1))
    assert [d.alert_id for d in due] == ["alert-4", "alert-1", "alert-2", "alert-3"]
    assert [d.alert_id for d in await store.due_deliveries(T0 + timedelta(minutes=1), limit=2)] == [
        "alert-4",
        "alert-1",
    ]
    # A tie on next_attempt is broken by creation time, also at the limit's edge.
    for n in (3, 1, 2):
        await store.mark_failed(f"alert-{n}", "hook", "503", T0 + 10 * SEC, T0 + 5 * SEC)
    tied = await store.due_deliveries(T0 + 10 * SEC, limit=2)
    assert [d.alert_id for d in tied] == ["alert-4", "alert-1"]
    assert [d.alert_id for d in await store.due_deliveries(T0 + 10 * SEC, limit=1)] == ["alert-4"]
    await store.mark_delivered("alert-4", "hook", T0)
    assert [d.alert_id for d in await store.due_deliveries(T0 + 10 * SEC, limit=1)] == ["alert-1"]


# --- history and source state -----------------------------------------------------------------------------


async def test_recent_alerts_newest_first_with_limit(store: Store) -> None:
    for n in (2, 1, 3):
        await claim_alert(store, n, now=T0 + n * SEC)
    assert [a.id for a in await store.recent_alerts()] == ["alert-3", "alert-2", "alert-1"]
    assert [a.id for a in await store.recent_alerts(limit=2)] == ["alert-3", "alert-2"]
    assert await store.recent_alerts(limit=0) == []


async def test_get_alert_round_trips(store: Store) -> None:
    alert = make_alert(7, created=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))
    await store.claim(["item:7"], WEEK, T0, alert, [])
    assert await store.get_alert("alert-7") == alert
    assert await store.get_alert("missing") is None


async def test_get_alerts_reads_those_held_in_one_call(store: Store) -> None:
    alerts = [make_alert(n, created=datetime(2026, 3, 1, 12, 0, n, 123456, tzinfo=UTC)) for n in range(3)]
    for n, alert in enumerate(alerts):
        await store.claim([f"item:{n}"], WEEK, T0, alert, [])
    found = await store.get_alerts(["alert-2", "missing", "alert-0", "alert-2"])
    assert found == {"alert-2": alerts[2], "alert-0": alerts[0]}
    assert found == {i: a for i in found if (a := await store.get_alert(i)) is not None}
    assert await store.get_alerts([]) == {}
    many = [f"alert-{n}" for n in range(1200)]  # more ids than one query or MGET page takes
    assert set(await store.get_alerts(many)) == {"alert-0", "alert-1", "alert-2"}


async def test_history_is_capped_but_alerts_with_deliveries_survive(make_store: MakeStore) -> None:
    store = await make_store(history_limit=2)
    await claim_alert(store, 0, now=T0, dests=("hook",))
    for n in (1, 2, 3):
        await claim_alert(store, n, now=T0 + n * SEC, dests=())
    assert [a.id for a in await store.recent_alerts(10)] == ["alert-3", "alert-2"]
    assert await store.get_alert("alert-1") is None
    assert await store.get_alert("alert-0") == make_alert(0)  # its delivery still needs it
    await store.purge(PENDING)
    await claim_alert(store, 4, now=T0 + 4 * SEC, dests=())
    assert await store.get_alert("alert-0") is None


async def test_source_state_round_trips(store: Store) -> None:
    assert await store.get_source_state("mofcom") is None
    state = SourceState(
        etag='W/"abc"',
        last_modified="Sat, 01 Mar 2026 12:00:00 GMT",
        last_attempt=T0,
        last_success=T0 - SEC,
        last_error=None,
        consecutive_failures=0,
        not_before=T0 + timedelta(minutes=10),
        initialized=True,
        extra={"cursor": "2026-03-01", "pages": [1, 2]},
    )
    await store.put_source_state("mofcom", state)
    assert await store.get_source_state("mofcom") == state
    await store.put_source_state("mofcom", SourceState(consecutive_failures=3, last_error="HTTP 503"))
    assert await store.get_source_state("mofcom") == SourceState(
        consecutive_failures=3, last_error="HTTP 503"
    )
    assert await store.get_source_state("other") is None


async def test_open_and_close_are_idempotent(store: Store) -> None:
    await store.open()
    await store.open()
    assert await store.claim(["item:1"], WEEK, T0) is True
    await store.close()
    await store.close()


async def test_a_second_store_sees_the_first_ones_state(make_store: MakeStore) -> None:
    first = await make_store()
    assert await claim_alert(first, 1)
    second = await make_store()
    assert await claim_alert(second, 1) is False
    assert [d.alert_id for d in await second.due_deliveries(T0)] == ["alert-1"]
    # Owners too, also once the refused claim has cached the keys as held (SQLite's in-memory cache).
    assert await second.held(["item:1", "link:1"], T0) == {"item:1": "alert-1", "link:1": "alert-1"}
    await first.remember(["sim:1"], "alert-1", WEEK, T0)
    await second.remember(["sim:1", "sim:2"], "alert-2", WEEK, T0)
    assert await first.held(["sim:1", "sim:2"], T0) == {"sim:1": "alert-1", "sim:2": "alert-2"}
    assert await first.count_in_window("rule:a", HOUR, T0) == 1
    assert await second.count_in_window("rule:a", HOUR, T0) == 2


# --- SQLite specifics: the file, its schema, and other processes -------------------------------------------


# --- identity marker ----------------------------------------------------------------------------------------


async def test_a_new_store_has_no_marker_and_the_first_written_wins(make_store: MakeStore) -> None:
    store, other = await make_store(), await make_store()
    assert await store.get_marker() is None
    first, second = StoreMarker.new(T0), StoreMarker.new(T0 + SEC, previous="x")
    assert first.id != second.id
    assert await store.create_marker(first) == first
    assert await other.create_marker(second) == first  # another process lost the race: it gets the winner
    assert await other.get_marker() == first
    assert store.found_blank is False


async def test_reset_marker_replaces_it(store: Store) -> None:
    await store.create_marker(StoreMarker.new(T0))
    fresh = StoreMarker("init-abc", T0 + HOUR, previous="old")
    await store.reset_marker(fresh)
    assert await store.get_marker() == fresh
    assert await store.create_marker(StoreMarker.new(T0 + WEEK)) == fresh


async def test_the_marker_and_a_source_state_are_read_together(store: Store) -> None:
    assert await store.get_marker_and_source_state("mofcom") == (None, None)
    marker = await store.create_marker(StoreMarker.new(T0))
    assert await store.get_marker_and_source_state("mofcom") == (marker, None)
    state = SourceState(etag='"v1"', last_success=T0, initialized=True)
    await store.put_source_state("mofcom", state)
    assert await store.get_marker_and_source_state("mofcom") == (marker, state)
    reads = [store.get_marker_and_source_state(name) for name in ("mofcom", "other", "mofcom")]
    assert await asyncio.gather(*reads) == [(marker, state), (marker, None), (marker, state)]


async def test_a_state_write_checked_against_the_marker_is_refused_once_it_changed(store: Store) -> None:
    marker = await store.create_marker(StoreMarker.new(T0))
    first, second = SourceState(etag='"v1"'), SourceState(etag='"v2"')
    assert await store.put_source_state_if_marker("mofcom", first, marker.id) is True
    assert await store.get_source_state("mofcom") == first
    assert await store.put_source_state_if_marker("mofcom", second, "another") is False
    assert await store.get_source_state("mofcom") == first, "a refused write changes nothing"
    await store.reset_marker(StoreMarker("init-abc", T0 + HOUR, previous=marker.id))
    writes = [
        store.put_source_state_if_marker("mofcom", second, marker.id),
        store.put_source_state_if_marker("other", second, "init-abc"),
    ]
    assert await asyncio.gather(*writes) == [False, True]  # each write checks its own marker
    assert await store.get_source_state("mofcom") == first
    assert await store.get_source_state("other") == second


async def test_sqlite_state_reads_and_checked_writes_notice_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        marker = await store.create_marker(StoreMarker.new(T0))
        await store.put_source_state("mofcom", SourceState(etag='"v1"'))
        replace_with_empty_file(path)
        # Refused: the new file has no marker (not written into the old file through the old connection).
        assert await store.put_source_state_if_marker("mofcom", SourceState(etag='"v2"'), marker.id) is False
        assert await store.get_marker_and_source_state("mofcom") == (None, None)
        await store.create_marker(StoreMarker.new(T0 + SEC))
        await store.put_source_state("mofcom", SourceState(etag='"v3"'))
        replace_with_empty_file(path)
        assert await store.get_marker_and_source_state("mofcom") == (None, None)  # reopened on a read too
    finally:
        await store.close()


async def test_sqlite_notices_its_file_replaced_by_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        marker = await store.create_marker(StoreMarker.new(T0))
        assert await claim_alert(store, 1)
        assert await store.get_marker() == marker
        replace_with_empty_file(path)  # what `cp /dev/null state.db` via a temporary file, or a restore, does
        assert await store.get_marker() is None  # reopened: the new file has no marker...
        assert await claim_alert(store, 1)  # ...and none of the old claims (the guard marks all seen)
        assert await store.create_marker(StoreMarker.new(T0 + SEC)) != marker
    finally:
        await store.close()


async def test_sqlite_notices_its_file_truncated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.create_marker(StoreMarker.new(T0))
        assert await claim_alert(store, 1)
        await store.close()
        path.write_bytes(b"")
        store = SQLiteStore(path)
        await store.open()
        assert store.found_blank is True  # present but empty: it lost its contents while nobody held it
        assert await store.get_marker() is None
    finally:
        await store.close()


async def test_redis_marker_is_gone_after_flushall_and_recreated_with_the_layout(any_redis_url: str) -> None:
    store = RedisStore(any_redis_url, prefix=f"rwtest:{uuid.uuid4().hex[:12]}:")
    await store.open()
    prefix = store._keys.prefix  # with its hash tag on a cluster
    client = raw_client(any_redis_url)
    try:
        marker = await store.create_marker(StoreMarker.new(T0))
        assert await store.get_marker() == marker
        async for key in client.scan_iter(match=f"{prefix}*"):  # FLUSHALL, limited to this test's keys
            await client.delete(key)
        assert await store.get_marker() is None
        fresh = await store.create_marker(StoreMarker.new(T0 + SEC, previous=marker.id))
        assert fresh.previous == marker.id
        assert await client.get(f"{prefix}version") == str(keys.REDIS_LAYOUT_VERSION)
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await close(client)
        await store.close()


def sqlite_pragma(path: Path, name: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_sqlite_file_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.db"
    store = open_store(f"sqlite:///{path}")  # an absolute path: four slashes in all
    await store.open()
    try:
        assert sqlite_pragma(path, "journal_mode") == "wal"
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION
    finally:
        await store.close()


async def test_sqlite_second_store_on_same_file_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    await first.open()
    await first.claim(["item:1"], WEEK, T0)
    await second.open()  # migrations already applied: this must not re-run them (CREATE TABLE would fail)
    try:
        assert await second.claim(["item:1"], WEEK, T0) is False
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION
    finally:
        await first.close()
        await second.close()


async def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in keys.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {keys.CLAIMS} (key, expires) VALUES ('item:1', ?)", (keys.to_us(T0 + WEEK),)
        )
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION >= 7
        assert await store.claim(["item:1"], WEEK, T0) is False  # data kept
        assert await claim_alert(store, 2)
        assert [d.alert_id for d in await store.due_deliveries(T0)] == ["alert-2"]
        due_query = (
            f"EXPLAIN QUERY PLAN SELECT * FROM {keys.DELIVERIES}"
            " WHERE status = 'pending' AND next_attempt <= 0 ORDER BY next_attempt, created"
        )
        with sqlite3.connect(path) as conn:
            plan = " ".join(str(row) for row in conn.execute(due_query))
        conn.close()
        assert f"{keys.DELIVERIES}_due" in plan  # the v2 index exists and serves the due query
    finally:
        await store.close()


# Schema version 2 as shipped, verbatim (not built from `keys`, which moves on): the file a v2 rarewatch left.
V2_SCHEMA = (
    "CREATE TABLE claims (key TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE alerts (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL)",
    """CREATE TABLE deliveries (
        alert_id TEXT NOT NULL,
        destination TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        last_error TEXT,
        delivered_at INTEGER,
        UNIQUE (alert_id, destination)
    )""",
    "CREATE TABLE source_state (source TEXT PRIMARY KEY, data TEXT NOT NULL)",
    "CREATE INDEX deliveries_due ON deliveries (next_attempt, created) WHERE status = 'pending'",
    "CREATE INDEX alerts_created ON alerts (created)",
)
V2_ALERT_FIELDS = {"id", "created", "item", "matches"}  # what a v2 rarewatch wrote of an alert


def make_v2_file(path: Path) -> None:
    """A v2 file with one claim, one alert, one delivered and one pending delivery."""
    us = keys.to_us
    v2_alert = {name: value for name, value in make_alert(1).to_dict().items() if name in V2_ALERT_FIELDS}
    with sqlite3.connect(path) as conn:
        for statement in V2_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO claims VALUES ('item:1', ?)", (us(T0 + WEEK),))
        conn.execute("INSERT INTO alerts VALUES ('alert-1', ?, ?)", (us(T0), json.dumps(v2_alert)))
        conn.execute(
            "INSERT INTO deliveries VALUES ('alert-1', 'hook', 'delivered', 1, ?, ?, NULL, ?)",
            (us(T0), us(T0), us(T0 + SEC)),
        )
        conn.execute(
            "INSERT INTO deliveries VALUES ('alert-1', 'slack', 'pending', 2, ?, ?, 'HTTP 503', NULL)",
            (us(T0), us(T0 + MIN)),
        )
        conn.execute("PRAGMA user_version = 2")
    conn.close()


def query_plan(path: Path, sql: str, params: tuple[Any, ...]) -> str:
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    conn.close()
    return plan


async def test_sqlite_migrates_a_version_2_file_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_v2_file(path)
    store = SQLiteStore(path)
    await store.open()
    try:
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION >= 7
        # Old rows read with the new fields' defaults: no owner, no receipt, not held for a digest.
        assert await store.held(["item:1"], T0) == {"item:1": None}
        assert await store.claim(["item:1"], WEEK, T0) is False
        assert await store.get_alert("alert-1") == make_alert(1)
        assert await store.get_delivery("alert-1", "hook") == Delivery(
            "alert-1", "hook", DELIVERED, 1, T0, T0, None, T0 + SEC, None, False
        )
        assert await store.due_deliveries(T0 + MIN) == [
            Delivery("alert-1", "slack", PENDING, 2, T0, T0 + MIN, "HTTP 503", None, None, False)
        ]
        assert await store.delivered_since("hook", T0) == 1  # old deliveries count for the storm guard
        # And the new features work on the migrated file.
        hold = {"slack": T0 + HOUR}
        assert await store.claim(["item:2"], WEEK, T0, make_alert(2), ["hook", "slack"], held_until=hold)
        slack = await store.get_delivery("alert-2", "slack")
        assert slack is not None and (slack.digest, slack.next_attempt) == (True, T0 + HOUR)
        await store.mark_delivered("alert-2", "hook", T0 + MIN, receipt="r-2")
        assert (await store.get_delivery("alert-2", "hook")) == Delivery(
            "alert-2", "hook", DELIVERED, 1, T0, T0, None, T0 + MIN, "r-2", False
        )
        assert await store.delivered_since("hook", T0) == 2
        assert await store.held(["item:2"], T0) == {"item:2": "alert-2"}
        assert await store.count_in_window("rule:a", HOUR, T0) == 1
        # The storm guard's count is answered from the new index alone.
        plan = query_plan(
            path,
            f"SELECT count(*) FROM {keys.DELIVERIES} WHERE status = 'delivered'"
            " AND destination = ? AND delivered_at >= ?",
            ("hook", 0),
        )
        assert f"COVERING INDEX {keys.DELIVERIES}_delivered" in plan
    finally:
        await store.close()
    await _create_schema(path)  # opening the migrated file again changes nothing
    assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT owner FROM claims WHERE key = 'item:2'").fetchone() == ("alert-2",)
    conn.close()


async def _create_schema(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.close()


def test_sqlite_two_processes_never_claim_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    asyncio.run(_create_schema(path))  # first, so that the race is about claims only
    script = textwrap.dedent(f"""
        import asyncio
        from datetime import datetime, timedelta, UTC
        from pathlib import Path
        from rarewatch.store.sqlite import SQLiteStore

        async def main():
            store = SQLiteStore(Path({str(path)!r}), held_cache_size=0)
            await store.open()
            now = datetime(2026, 3, 1, tzinfo=UTC)
            won = []
            for i in range(300):
                if await store.claim([f"item:{{i}}", f"link:{{i % 150}}"], timedelta(days=1), now):
                    won.append(i)
            await store.close()
            print(" ".join(map(str, won)))

        asyncio.run(main())
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    wins = [int(i) for out in outputs for i in out.split()]
    assert len(wins) == 150  # each link key won exactly once, across both processes
    assert {i % 150 for i in wins} == set(range(150))


# --- Redis specifics: the key layout ------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_upgrades_a_layout_1_prefix_in_place(redis_url: str) -> None:
    prefix = f"rwtest:{uuid.uuid4().hex[:12]}:"
    names = keys.RedisKeys(prefix)
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        # Layout 1 as a v1 rarewatch left it: made with this store, then with the v2 additions taken out.
        writer = RedisStore(client, prefix=prefix)
        await writer.open()
        await claim_alert(writer, 1, dests=("hook", "slack"))
        await writer.mark_delivered("alert-1", "hook", T0 + SEC)
        await client.set(names.claim("item:v1"), "1", px=60_000)  # v1 claim key and value, no owner
        await client.delete(names.delivered("hook"))
        for dest in ("hook", "slack"):
            await client.hdel(names.delivery("alert-1", dest), "digest", "receipt")
        await client.set(names.version, 1)

        store = RedisStore(client, prefix=prefix)
        await store.open()
        assert await client.get(names.version) == str(keys.REDIS_LAYOUT_VERSION) == "3"
        assert await store.held(["item:v1", "link:1"], T0) == {"item:v1": None, "link:1": "alert-1"}
        assert await store.delivered_since("hook", T0) == 1  # the delivered index was rebuilt
        assert await store.get_delivery("alert-1", "slack") == Delivery(
            "alert-1", "slack", PENDING, 0, T0, T0
        )
        await store.open()  # idempotent
        assert await store.delivered_since("hook", T0) == 1
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await close(client)


async def test_outbox_stats_count_pending_and_dead_per_destination_with_the_oldest_pending(
    store: Store,
) -> None:
    assert await store.outbox_stats() == {}
    await claim_alert(store, 1, T0, dests=("hook", "slack"))
    await claim_alert(store, 2, T0 + HOUR, dests=("hook", "slack"))
    await claim_alert(store, 3, T0 + 2 * HOUR, dests=("hook",))
    await store.mark_delivered("alert-1", "hook", T0 + MIN)
    await store.mark_failed("alert-2", "hook", "HTTP 503", T0 + 2 * HOUR, T0 + HOUR)
    await store.mark_dead("alert-1", "slack", "gone", T0 + MIN)
    await store.mark_dead("alert-2", "slack", "gone", T0 + HOUR)
    assert await store.outbox_stats() == {
        "hook": OutboxStats(pending=2, dead=0, oldest_pending=T0 + HOUR),
        "slack": OutboxStats(pending=0, dead=2, oldest_pending=None),
    }
    assert await store.purge(DEAD, destination="slack") == 2
    assert set(await store.outbox_stats()) == {"hook"}


# --- unrouted alerts ----------------------------------------------------------------------------------------


async def test_unrouted_alerts_are_kept_newest_first_and_dropped_once(store: Store) -> None:
    first, second = make_alert(1), make_alert(2, T0 + MIN)
    assert await store.unrouted() == []
    await store.record_unrouted(first, T0)
    await store.record_unrouted(second, T0 + MIN)
    await store.record_unrouted(second, T0 + MIN)  # idempotent per id
    assert await store.unrouted() == [second, first]
    assert await store.unrouted(limit=1) == [second]
    assert await store.unrouted_ids(["alert-1", "alert-9", "alert-1"]) == {"alert-1"}
    assert await store.unrouted_ids([]) == set()
    assert await store.get_unrouted("alert-2") == second
    assert await store.get_unrouted("alert-9") is None
    assert await store.drop_unrouted("alert-2") is True
    assert await store.drop_unrouted("alert-2") is False
    assert await store.get_unrouted("alert-2") is None
    assert await store.unrouted() == [first]
    assert await store.deliveries() == [], "recording an unrouted alert delivers nothing"


async def test_unrouted_alerts_are_bounded(
    store: Store, backend: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(keys, "UNROUTED_LIMIT", 3)
    for n in range(5):
        await store.record_unrouted(make_alert(n, T0 + n * MIN), T0 + n * MIN)
    assert [a.id for a in await store.unrouted(limit=10)] == ["alert-4", "alert-3", "alert-2"]
    if backend != "sqlite":
        assert isinstance(store, RedisStore)
        client = raw_client(backend_url(request, backend))
        try:
            ttl_ms = await client.pttl(store._keys.unrouted)
            data_ttl_ms = await client.pttl(store._keys.unrouted_alert("alert-4"))
        finally:
            await close(client)
        limit_ms = keys.UNROUTED_TTL // timedelta(milliseconds=1)
        assert 0 < ttl_ms <= limit_ms and 0 < data_ttl_ms <= limit_ms, "the Redis records expire"


async def test_a_resend_claim_delivers_an_unrouted_alert_once(store: Store) -> None:
    alert = make_alert(1)
    await store.record_unrouted(alert, T0)
    key = keys.resend_key(alert.id)
    assert await store.claim([key], WEEK, T0 + MIN, alert, ["hook"]) is True
    assert await store.claim([key], WEEK, T0 + MIN, alert, ["hook"]) is False
    assert [(d.alert_id, d.destination) for d in await store.due_deliveries(T0 + MIN)] == [
        ("alert-1", "hook")
    ]


async def test_an_alert_claim_is_refused_once_redis_lost_the_marker_it_expects(any_redis_url: str) -> None:
    """A FLUSHALL between the pipeline's marker check and its claim must not re-send an old story: the
    claim script itself checks the marker the process last saw (on a cluster, the marker shares the
    claim keys' hash slot, so the script can read it)."""
    store = RedisStore(any_redis_url, prefix=f"rwtest:{uuid.uuid4().hex[:12]}:")
    await store.open()
    marker = await store.create_marker(StoreMarker.new(T0))
    store.expect_marker(marker.id)
    assert await store.claim(["story-1"], WEEK, T0, make_alert(1), ["hook"]) is True
    client = raw_client(any_redis_url)
    try:
        await client.flushall()
        with pytest.raises(StoreError, match="lost its data"):
            await store.claim(["story-1"], WEEK, T0 + MIN, make_alert(1), ["hook"])
        assert await store.due_deliveries(T0 + MIN) == [], "nothing was queued"
        # Another process noticed first and wrote a new marker that names the old one as previous:
        # still not the marker this process checked.
        await store.create_marker(StoreMarker.new(T0 + MIN, marker.id, after_loss=True))
        with pytest.raises(StoreError, match="lost its data"):
            await store.claim(["story-2"], WEEK, T0 + MIN, make_alert(2), ["hook"])
        # A bare key sends nothing, so it needs no check.
        assert await store.claim(["seen-1"], WEEK, T0 + MIN) is True
        # Once the process has checked again, claims go through.
        store.expect_marker((await store.get_marker()).id)  # type: ignore[union-attr]
        assert await store.claim(["story-2"], WEEK, T0 + MIN, make_alert(2), ["hook"]) is True
    finally:
        await client.flushall()
        await close(client)
        await store.close()


@pytest.mark.redis
async def test_a_cluster_store_keeps_every_key_of_its_prefix_in_one_hash_slot(redis_cluster_url: str) -> None:
    """The claim script touches claims, the alert, its outbox records and the marker at once: on a cluster
    they must share a slot, or the script fails with CROSSSLOT. A second prefix may live on another shard."""
    stores = [RedisStore(redis_cluster_url, prefix=f"rwtest:{uuid.uuid4().hex[:12]}:") for _ in range(2)]
    client = raw_client(redis_cluster_url)
    assert isinstance(client, RedisCluster)
    try:
        await client.initialize()
        assert len(client.get_primaries()) == 3, "the test cluster has three masters"
        for store in stores:
            await store.open()
            store.expect_marker((await store.create_marker(StoreMarker.new(T0))).id)
            assert await claim_alert(store, 1, dests=("hook", "slack"))
            await store.mark_delivered("alert-1", "hook", T0 + SEC)
            await store.record_unrouted(make_alert(2), T0)
            found = [key async for key in client.scan_iter(match=f"{store._keys.prefix}*")]
            assert len(found) >= 12 and store._keys.prefix.startswith("{rwtest:")
            assert len({client.keyslot(key) for key in found}) == 1
    finally:
        for store in stores:
            await delete_keys(client, store._keys.prefix)
            await store.close()
        await close(client)


async def test_a_source_state_write_is_refused_once_redis_lost_the_marker_it_expects(
    any_redis_url: str,
) -> None:
    """A poll that read a source's state before a FLUSHALL must not write it back after: the source's next
    poll would then not be its first, and would alert on everything the emptied store forgot."""
    store = RedisStore(any_redis_url, prefix=f"rwtest:{uuid.uuid4().hex[:12]}:")
    await store.open()
    client = raw_client(any_redis_url)
    try:
        marker = await store.create_marker(StoreMarker.new(T0))
        store.expect_marker(marker.id)
        await store.put_source_state("wire", SourceState(initialized=True))
        await client.flushall()
        with pytest.raises(StoreError, match="state of source 'wire' not recorded"):
            await store.put_source_state("wire", SourceState(initialized=True))
        assert await store.get_source_state("wire") is None, "the emptied store keeps no stale state"
        fresh = await store.create_marker(StoreMarker.new(T0 + MIN, marker.id, after_loss=True))
        store.expect_marker(fresh.id)
        await store.put_source_state("wire", SourceState())
        assert await store.get_source_state("wire") == SourceState()
    finally:
        await client.flushall()
        await close(client)
        await store.close()


async def test_a_task_checks_the_marker_it_began_with_not_one_adopted_meanwhile(any_redis_url: str) -> None:
    """`checking_marker`: a poll that began before a loss stays refused even after another poll of the same
    process adopted the new marker store-wide; a poll begun after it goes through."""
    store = RedisStore(any_redis_url, prefix=f"rwtest:{uuid.uuid4().hex[:12]}:")
    await store.open()
    client = raw_client(any_redis_url)
    try:
        old = await store.create_marker(StoreMarker.new(T0))
        store.expect_marker(old.id)
        began = asyncio.Event()
        adopted = asyncio.Event()

        async def poll_begun_before_the_loss() -> None:
            with checking_marker(old.id):
                began.set()
                await adopted.wait()
                with pytest.raises(StoreError, match="lost its data"):
                    await store.claim(["story-1"], WEEK, T0, make_alert(1), ["hook"])
                with pytest.raises(StoreError, match="not recorded"):
                    await store.put_source_state("wire", SourceState(initialized=True))

        task = asyncio.create_task(poll_begun_before_the_loss())
        await began.wait()
        await client.flushall()
        new = await store.create_marker(StoreMarker.new(T0 + MIN, old.id, after_loss=True))
        store.expect_marker(new.id)  # another poll noticed the loss and adopted the new marker
        adopted.set()
        await task
        assert await store.due_deliveries(T0 + MIN) == [] and await store.get_source_state("wire") is None
        with checking_marker(new.id):
            assert await store.claim(["story-2"], WEEK, T0 + MIN, make_alert(2), ["hook"]) is True
    finally:
        await client.flushall()
        await close(client)
        await store.close()


# --- seen items (`record_items`, for `rarewatch backtest`) --------------------------------------------------


def seen(n: int, fetched: datetime = T0, rules: tuple[str, ...] = (), version: str = "v1") -> SeenItem:
    return SeenItem(make_alert(n).item, fetched, version, rules)


async def test_seen_items_are_kept_once_newest_first(store: Store) -> None:
    assert await store.record_items([seen(1, T0, ("licensing",)), seen(2, T0 + MIN)], T0 + MIN) == 2
    # Seen again by a later fetch (or judged by another pack): the first record stands.
    assert await store.record_items([seen(1, T0 + HOUR, (), "v2"), seen(3, T0 + HOUR)], T0 + HOUR) == 1
    found = await store.seen_items(T0)
    assert found == [seen(3, T0 + HOUR), seen(2, T0 + MIN), seen(1, T0, ("licensing",))]
    assert await store.seen_items(T0 + MIN) == found[:2]  # since is inclusive
    assert await store.seen_items(T0, limit=1) == found[:1]
    assert await store.record_items([], T0 + HOUR) == 0


async def test_seen_items_keep_each_one_s_own_fetch_time(store: Store) -> None:
    """A batch of items fetched at one time (one object, converted once) or at times of their own, in
    zones of their own: each is read back with its own time, as written."""
    east = T0.astimezone(timezone(timedelta(hours=8)))  # the same instant as T0, written +08:00
    batch = [seen(1, T0), seen(2, T0), seen(3, east), seen(4, T0 + MIN), seen(5, T0)]
    assert await store.record_items(batch, T0 + MIN) == 5
    found = {s.item.id: s for s in await store.seen_items(T0)}
    assert [found[s.item.id] for s in batch] == batch
    assert [found[s.item.id].fetched.isoformat() for s in batch] == [s.fetched.isoformat() for s in batch]


async def test_seen_items_keep_any_text_a_source_gives(store: Store) -> None:
    odd = SeenItem(replace(make_alert(4).item, title="half a pair \ud800 稀土 \x00"), T0, "v1", ())
    assert await store.record_items([odd, seen(5)], T0) == 2
    assert sorted(await store.seen_items(T0), key=lambda s: s.item.id) == [odd, seen(5)]


async def test_a_listing_is_kept_and_read_back_as_the_seen_item_it_stands_for(store: Store) -> None:
    """An item worker's listing (its item as text already) is the seen item it stands for: kept once
    (beside seen items, or after one), any text included, read back whole."""
    odd = replace(make_alert(4).item, title="half a pair \ud800 稀土 \x00")
    items = [make_alert(1).item, odd, make_alert(2).item]
    listed = [SeenListing(item.id, item_json(item), T0, "v1") for item in items]
    assert await store.record_items([listed[0], seen(3, T0, ("licensing",)), *listed[1:]], T0) == 4
    assert await store.record_items([listed[0], seen(1)], T0 + MIN) == 0  # kept already, either way
    found = {s.item.id: s for s in await store.seen_items(T0)}
    assert [found[item.id] for item in items] == [SeenItem(item, T0, "v1", ()) for item in items]
    assert found[make_alert(3).item.id] == seen(3, T0, ("licensing",))


async def test_seen_items_of_polls_at_once_are_counted_per_call(store: Store) -> None:
    """Calls made at the same time (polls finishing together) each learn how many of their own items were
    new, an item two of them list counting for the first only."""
    counts = await asyncio.gather(
        store.record_items([seen(1), seen(2)], T0),
        store.record_items([seen(2), seen(3)], T0),
        store.record_items([seen(1)], T0),
        store.record_items([seen(4), seen(5), seen(6)], T0),
    )
    assert counts == [2, 1, 0, 3]
    assert sorted(s.item.id for s in await store.seen_items(T0)) == [f"item-{n}" for n in range(1, 7)]


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the `SQLiteStore` method that opened each write transaction, in order."""
    import rarewatch.store.sqlite as sqlite_module

    opened: list[str] = []
    real = sqlite_module._immediate

    def counting(conn: sqlite3.Connection) -> Any:
        opened.append(sys._getframe(1).f_code.co_name)
        return real(conn)

    monkeypatch.setattr(sqlite_module, "_immediate", counting)
    return opened


async def test_sqlite_writes_seen_items_of_polls_at_once_in_one_transaction(
    tmp_path: Path, transactions: list[str]
) -> None:
    """Each commit appends every page it changed to the WAL, and a fetch's ids fall all over the id
    index: the seen items of calls made while a write is on its way go in one transaction, not one each."""
    store = SQLiteStore(tmp_path / "items.db")
    await store.open()
    try:
        calls = [store.record_items([seen(n), seen(100 + n)], T0) for n in range(20)]
        assert await asyncio.gather(*calls) == [2] * 20
        # A batch leaves on the event loop's next turn: the 20 calls made in this one share it.
        assert transactions.count("_record_items") == 1
        assert len(await store.seen_items(T0)) == 40
    finally:
        await store.close()


async def test_sqlite_makes_claims_of_polls_at_once_in_one_transaction(
    tmp_path: Path, transactions: list[str]
) -> None:
    """As the seen items: the claims of calls made while a write is on its way share one transaction."""
    store = SQLiteStore(tmp_path / "claims.db")
    await store.open()
    try:
        calls = [
            store.claim_many([ClaimRequest((f"item:{n}",), make_alert(n), ("hook",))], WEEK, T0)
            for n in range(20)
        ]
        assert await asyncio.gather(*calls) == [1] * 20
        assert transactions.count("_claim") == 1
        assert len(await store.recent_alerts()) == 20
    finally:
        await store.close()


async def test_seen_items_are_forgotten_after_keep(make_store: MakeStore) -> None:
    store = await make_store(items=ItemRetention(keep=timedelta(days=30)))
    await store.record_items([seen(1, T0)], T0)
    await store.record_items([seen(2, T0 + timedelta(days=20))], T0 + timedelta(days=20))
    await store.record_items([seen(3, T0 + timedelta(days=31))], T0 + timedelta(days=31))
    assert [s.item.id for s in await store.seen_items(T0 - WEEK)] == ["item-3", "item-2"]


async def test_seen_items_are_bounded_in_count(make_store: MakeStore) -> None:
    store = await make_store(items=ItemRetention(max=3))
    for n in range(5):
        await store.record_items([seen(n, T0 + n * MIN)], T0 + n * MIN)
    assert [s.item.id for s in await store.seen_items(T0)] == ["item-4", "item-3", "item-2"]
    # A trimmed item is new again when a source lists it once more.
    assert await store.record_items([seen(0, T0 + HOUR)], T0 + HOUR) == 1


async def test_no_seen_items_are_kept_with_max_zero(make_store: MakeStore) -> None:
    store = await make_store(items=ItemRetention(max=0))
    assert await store.record_items([seen(1)], T0) == 0
    assert await store.seen_items(T0 - WEEK) == []


async def test_sqlite_migrates_a_version_5_file_keeping_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as conn:
        for statements in keys.MIGRATIONS[:5]:
            for statement in statements:
                conn.execute(statement)
        raw = json.dumps(make_alert(1).to_dict())
        conn.execute(f"INSERT INTO {keys.ALERTS} VALUES ('alert-1', ?, ?)", (keys.to_us(T0), raw))
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION
        assert await store.get_alert("alert-1") == make_alert(1)
        assert await store.record_items([seen(1)], T0) == 1
        assert await store.seen_items(T0) == [seen(1)]
    finally:
        await store.close()


# --- silences -----------------------------------------------------------------------------------------------


def make_silence(n: int, ends: datetime = T0 + WEEK, created: datetime = T0) -> Silence:
    return Silence(
        f"sil-{n}", (("source", "mofcom"), ("rule", "licensing")), created, ends, "noisy", "ana", created
    )


async def test_silences_are_kept_listed_oldest_first_and_expired(store: Store) -> None:
    second, first = make_silence(2, created=T0 + MIN), make_silence(1)
    await store.add_silence(second, T0 + MIN)
    await store.add_silence(first, T0 + MIN)
    assert await store.silences() == [first, second]
    ended = await store.expire_silence("sil-1", T0 + HOUR)
    assert ended == Silence("sil-1", first.matchers, T0, T0 + HOUR, "noisy", "ana", T0), (
        "ends now; the rest is kept"
    )
    assert await store.silences() == [ended, second]
    assert await store.expire_silence("sil-1", T0 + 2 * HOUR) == ended, "an ended silence keeps its end"
    assert await store.expire_silence("sil-9", T0) is None


async def test_silences_that_ended_long_ago_are_forgotten(store: Store) -> None:
    await store.add_silence(make_silence(1, ends=T0 + HOUR), T0)
    later = T0 + HOUR + keys.SILENCE_KEEP + SEC
    await store.add_silence(make_silence(2, ends=later + WEEK, created=later), later)
    assert [s.id for s in await store.silences()] == ["sil-2"]


async def test_sqlite_migrates_a_version_6_file_to_keep_silences(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    with sqlite3.connect(path) as conn:
        for statements in keys.MIGRATIONS[:6]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 6")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION >= 7
        await store.add_silence(make_silence(1), T0)
        assert await store.silences() == [make_silence(1)]
    finally:
        await store.close()


# --- outbox retention (`policies.retention`, swept by `Outbox.sweep`) --------------------------------------


async def test_retention_sweep_forgets_finished_records_and_their_alerts_never_pending(
    make_store: MakeStore,
) -> None:
    store = await make_store(history_limit=1)
    for n in (1, 2, 3):
        await claim_alert(store, n, now=T0 + n * SEC)
    await claim_alert(store, 4, now=T0 + 40 * DAY)  # the newest: the only one the history keeps
    await store.mark_delivered("alert-1", "hook", T0 + 2 * SEC)
    await store.mark_dead("alert-2", "hook", "gone", T0 + 3 * SEC)
    await store.mark_delivered("alert-4", "hook", T0 + 40 * DAY)
    # alert-3 stays pending (a receiver down since): work still to do, whatever its age.
    clock = FakeClock(T0 + 40 * DAY)
    outbox = Outbox(store, {}, clock=clock, batch=1, retention=OutboxRetention(30 * DAY, 90 * DAY))

    assert await outbox.sweep() == {DELIVERED: 1, DEAD: 0}
    remaining = [(d.alert_id, d.status) for d in await store.deliveries()]
    assert remaining == [("alert-2", DEAD), ("alert-3", PENDING), ("alert-4", DELIVERED)]
    assert await store.get_alert("alert-1") is None  # out of the history, and no record keeps it
    assert await store.get_alert("alert-3") == make_alert(3, T0 + 3 * SEC)

    clock.set(T0 + 100 * DAY)
    assert await outbox.sweep() == {DELIVERED: 1, DEAD: 1}
    assert [(d.alert_id, d.status) for d in await store.deliveries()] == [("alert-3", PENDING)]
    assert await store.get_alert("alert-2") is None
    assert await store.get_alert("alert-4") == make_alert(4, T0 + 40 * DAY)  # the history's newest
    assert await store.get_alert("alert-3") == make_alert(3, T0 + 3 * SEC)
    assert [d.alert_id for d in await store.due_deliveries(T0 + 100 * DAY)] == ["alert-3"]


async def test_forget_deliveries_oldest_first_within_limit_and_never_pending(store: Store) -> None:
    for n in (1, 2, 3):
        await claim_alert(store, n, now=T0 + n * SEC, dests=("hook", "slack"))
        await store.mark_delivered(f"alert-{n}", "hook", T0 + n * SEC)
    assert await store.forget_deliveries(DELIVERED, T0 + 3 * SEC, limit=1) == 1
    assert [d.alert_id for d in await store.deliveries(DELIVERED)] == ["alert-2", "alert-3"]
    assert await store.forget_deliveries(DELIVERED, T0 + 3 * SEC) == 1  # alert-3: not before T0 + 3 s
    assert [d.alert_id for d in await store.deliveries(DELIVERED)] == ["alert-3"]
    assert await store.forget_deliveries(DEAD, T0 + DAY) == 0
    with pytest.raises(ValueError, match="never forgotten"):
        await store.forget_deliveries(PENDING, T0 + DAY)
    assert len(await store.deliveries(PENDING)) == 3  # every slack record, however old


# --- votes ------------------------------------------------------------------------------------------------

RELEVANT, NOT_RELEVANT = VoteKind.RELEVANT, VoteKind.NOT_RELEVANT


def make_vote(alert: int, who: str, vote: VoteKind = RELEVANT, at: datetime = T0) -> Vote:
    return Vote(f"alert-{alert}", f"slack:{who}", vote, at, name=who, via="slack")


async def test_votes_are_kept_one_per_voter_and_alert_the_last_one_wins(store: Store) -> None:
    await store.record_vote(make_vote(1, "ana", RELEVANT, T0))
    await store.record_vote(make_vote(1, "bo", NOT_RELEVANT, T0 + MIN))
    await store.record_vote(make_vote(2, "ana", NOT_RELEVANT, T0 + 2 * MIN))
    changed = make_vote(1, "ana", NOT_RELEVANT, T0 + HOUR)
    await store.record_vote(changed)
    assert await store.votes(T0) == [
        make_vote(1, "bo", NOT_RELEVANT, T0 + MIN),
        make_vote(2, "ana", NOT_RELEVANT, T0 + 2 * MIN),
        changed,
    ], "oldest first; ana's second vote on alert-1 replaced her first"


async def test_votes_since_and_limit_give_the_newest(store: Store) -> None:
    for n in range(5):
        await store.record_vote(make_vote(n, "ana", at=T0 + n * MIN))
    assert [v.alert_id for v in await store.votes(T0 + 2 * MIN)] == ["alert-2", "alert-3", "alert-4"]
    assert [v.alert_id for v in await store.votes(T0, limit=2)] == ["alert-3", "alert-4"]
    assert await store.votes(T0, limit=0) == []


async def test_votes_are_forgotten_after_their_keep_and_beyond_their_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.record_vote(make_vote(1, "ana", at=T0))
    later = T0 + keys.VOTE_KEEP + SEC
    await store.record_vote(make_vote(2, "ana", at=later))
    assert [v.alert_id for v in await store.votes(T0 - WEEK)] == ["alert-2"], "older than VOTE_KEEP"
    monkeypatch.setattr(keys, "VOTE_LIMIT", 2)
    for n in (3, 4):
        await store.record_vote(make_vote(n, "ana", at=later + n * MIN))
    assert [v.alert_id for v in await store.votes(T0 - WEEK)] == ["alert-3", "alert-4"], "the newest 2"


async def test_sqlite_migrates_a_version_7_file_to_keep_votes(tmp_path: Path) -> None:
    path = tmp_path / "v7.db"
    with sqlite3.connect(path) as conn:
        for statements in keys.MIGRATIONS[:7]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 7")
        conn.execute(
            f"INSERT INTO {keys.SILENCES} (id, ends, data) VALUES (?, ?, ?)",
            ("sil-1", keys.to_us(T0 + WEEK), json.dumps(make_silence(1).to_dict())),
        )
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert sqlite_pragma(path, "user_version") == keys.SCHEMA_VERSION >= 8
        assert await store.silences() == [make_silence(1)], "what v7 kept is still there"
        await store.record_vote(make_vote(1, "ana"))
        assert await store.votes(T0) == [make_vote(1, "ana")]
    finally:
        await store.close()
