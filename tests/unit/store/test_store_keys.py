"""The storage layout helpers: timestamp encoding, TTLs, Redis key names, the migration list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rarewatch.models import DeliveryStatus
from rarewatch.store import keys


def test_timestamps_round_trip_exactly_to_the_microsecond() -> None:
    when = datetime(2026, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC)
    assert keys.from_us(keys.to_us(when)) == when
    assert keys.to_us(when) < 2**53  # an exact Redis sorted-set score


def test_timestamps_are_utc_and_naive_means_utc() -> None:
    cst = timezone(timedelta(hours=8))
    assert keys.to_us(datetime(2026, 3, 1, 20, tzinfo=cst)) == keys.to_us(
        datetime(2026, 3, 1, 12, tzinfo=UTC)
    )
    assert keys.to_us(datetime(2026, 3, 1, 12)) == keys.to_us(datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert keys.from_us(0).tzinfo is UTC


def test_ttl_in_milliseconds_must_be_positive() -> None:
    assert keys.ttl_ms(timedelta(days=7)) == 7 * 86_400_000
    for bad in (timedelta(0), timedelta(microseconds=999), timedelta(seconds=-1)):
        with pytest.raises(ValueError, match="positive"):
            keys.ttl_ms(bad)


def test_redis_keys_live_under_the_prefix() -> None:
    k = keys.RedisKeys("rw:")
    names = [
        k.claim("item:1"), k.alert("a"), k.alerts, k.alert_refs, k.delivery("a", "hook"), k.outbox_all,
        k.outbox(DeliveryStatus.DEAD), k.outbox_due, k.seq, k.source("mofcom"), k.version,
        k.counter("rule:a", 7), k.delivered("hook"), k.lease("destination", "hook"),
        k.lease_holder("destination", "hook"),
    ]  # fmt: skip
    assert all(name.startswith("rw:") for name in names)
    assert len(set(names)) == len(names)


def _every_key(k: keys.RedisKeys) -> list[str]:
    return [
        k.claim("item:{x}"), k.claim("link:1"), k.alert("a"), k.alerts, k.alert_refs, k.delivery("a", "hook"),
        k.outbox_all, k.outbox(DeliveryStatus.DEAD), k.outbox_due, k.seq, k.source("{mofcom}"), k.version,
        k.counter("rule:a", 7), k.delivered("hook"), k.marker, k.unrouted, k.unrouted_alert("a"),
        k.lease("source", "s"), k.lease_holder("destination", "d"), k.replicas, k.delivery_prefix + "b",
        k.alert_prefix + "c",
    ]  # fmt: skip


def test_on_a_cluster_every_key_of_one_store_shares_one_hash_slot() -> None:
    from redis.crc import key_slot

    for prefix in ("rarewatch:", "team-a", "app:{shard-7}:"):
        names = _every_key(keys.RedisKeys(keys.cluster_prefix(prefix)))
        assert len({key_slot(name.encode()) for name in names}) == 1, prefix
    assert keys.cluster_prefix("rarewatch:") == "{rarewatch}:"
    assert keys.cluster_prefix("team-a") == "{team-a}"
    assert keys.cluster_prefix("app:{shard-7}:") == "app:{shard-7}:"  # the operator's own tag is kept
    assert keys.cluster_prefix("odd{}:") == "{odd{}}:"  # an empty tag is no tag


def test_on_one_server_key_names_carry_no_tag_and_stay_as_they_were() -> None:
    k = keys.RedisKeys()
    assert k.claim("item:1") == "rarewatch:claim:item:1"
    assert k.marker == "rarewatch:marker" and k.lease("source", "s") == "rarewatch:lease:source:s"
    assert all("{" not in name for name in _every_key(k) if "{x}" not in name and "{mofcom}" not in name)


def test_an_outbox_member_names_its_record() -> None:
    k = keys.RedisKeys("rw:")
    sep, width = keys.MEMBER_SEPARATOR, keys.MEMBER_SEQ_WIDTH
    member = f"{42:0{width}d}{sep}alert-1{sep}hook"  # as the claim script builds it
    assert k.delivery_of_member(member) == k.delivery("alert-1", "hook")
    assert f"{9:0{width}d}" < f"{10:0{width}d}"  # zero-padding keeps insertion order in string order


def test_claim_values_carry_the_owner_and_read_layout_1_as_ownerless() -> None:
    for owner in ("alert-1", "", "=odd", "1", None):
        assert keys.claim_owner(keys.claim_value(owner)) == owner
    assert keys.claim_owner("1") is None  # all that layout 1 ever stored


def test_window_buckets_are_fixed_and_exact() -> None:
    t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    bucket, end = keys.window_bucket(hour, t)
    assert bucket == int(t.timestamp() // 3600) and keys.from_us(end) == t + hour
    assert keys.window_bucket(hour, t + timedelta(minutes=59, seconds=59, microseconds=999_999))[0] == bucket
    assert keys.window_bucket(hour, t - timedelta(microseconds=1))[0] == bucket - 1
    with pytest.raises(ValueError, match="counter window must be positive"):
        keys.window_bucket(timedelta(0), t)


def test_schema_version_is_the_number_of_migrations() -> None:
    assert keys.SCHEMA_VERSION == len(keys.MIGRATIONS) >= 3
    assert all(statements for statements in keys.MIGRATIONS)


def test_logical_keys_are_minted_here_and_stable() -> None:
    import hashlib

    assert keys.item_key("abc") == "item:abc"
    assert keys.similar_key(3, "00ff") == "sim:3:00ff"
    assert keys.throttle_key("rule-1") == "throttle:rule-1"
    assert keys.updates_key("story-1") == "updates:story-1"
    link = "https://example.org/a?b=1"
    # The layout every existing store holds: never change it without a migration.
    assert keys.link_key(link) == "link:" + hashlib.sha256(link.encode()).hexdigest()[:32]
    assert keys.link_key("https://example.org/\ud800").startswith("link:"), "never raises"


def test_a_takeover_grace_outlasts_the_old_holders_store_retry_after_a_timed_out_call() -> None:
    import inspect

    from rarewatch.delivery.workers import _STORE_RETRY
    from rarewatch.store.leases import DESTINATION_LEASE, TAKEOVER_GRACE
    from rarewatch.store.redis import RedisStore

    timeout = inspect.signature(RedisStore).parameters["timeout"].default
    assert TAKEOVER_GRACE.total_seconds() > _STORE_RETRY + timeout
    assert TAKEOVER_GRACE < DESTINATION_LEASE, "a dead replica's destinations wait less than twice a lease"
