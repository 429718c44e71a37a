"""The Redis store: several rarewatch processes can share one Redis.

Atomicity comes from Redis running one command or Lua script at a time: a claim, with an alert or not, is
one script that checks every key, claims them, records the alert and creates the outbox records, all or
nothing. Dedup keys are fields of bucketed, sharded hashes (layout v3, `keys.RedisKeys`): the scripts read
Redis time, check each key's own expiry, and let whole buckets expire. Key names come from `keys.RedisKeys`;
the scripts (`redis_scripts.py`) receive every name they use, or the prefix to build it from, as an
argument. (History trimming, purging and the dedup buckets use keys computed from a prefix: on Redis
Cluster that prefix is a hash tag, `keys.cluster_prefix`, so every key of one store, named in KEYS or built
from the prefix, is in one hash slot and each script runs on one node.)

Every Redis failure (down, timeout, a script error) becomes a `StoreError`. The client reconnects on its
own, so the same store works again once Redis is back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rarewatch.errors import StoreError
from rarewatch.models import (
    Alert,
    Delivery,
    DeliveryStatus,
    SeenItem,
    SeenRecord,
    Silence,
    SourceState,
    Vote,
)
from rarewatch.store import keys as k
from rarewatch.store import redis_scripts as lua
from rarewatch.store.base import (
    ClaimRequest,
    ItemRetention,
    OutboxStats,
    StoreMarker,
    by_creation,
    claim_in_turn,
    expired,
    task_marker,
)
from rarewatch.store.redis_client import (
    RedisClient,
    close,
    connect,
    decodes_responses,
    describe,
    is_cluster_url,
)
from rarewatch.store.redis_leases import RedisLeases

P = ParamSpec("P")
R = TypeVar("R")

_PENDING, _DELIVERED, _DEAD = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.DEAD
_PAGE = 500  # outbox records read per round trip when filtering by destination
_HELD_PAGE = 200  # dedup keys looked up per script (about 1,000 shard reads with a full window)


def _translated(
    fn: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """Report any Redis failure of a store method as a `StoreError` naming the server."""

    async def wrapper(self: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(self, *args, **kwargs)
        except RedisTimeoutError as exc:
            raise StoreError(f"Redis store at {self.where} timed out: {exc}") from exc
        except RedisConnectionError as exc:
            raise StoreError(f"Redis store at {self.where} is unreachable: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"Redis store at {self.where} failed: {exc}") from exc

    functools.update_wrapper(wrapper, fn)
    return wrapper


class RedisStore:
    """The `Store` on Redis, every key under `prefix`."""

    def __init__(
        self,
        client_or_url: RedisClient | str,
        prefix: str = "rarewatch:",
        *,
        history_limit: int = 10_000,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        items: ItemRetention | None = None,
    ) -> None:
        """A URL makes a client this store owns (and closes), with the given timeouts in seconds, so a
        dead server fails fast instead of hanging. A client passed in must use `decode_responses=True`.
        On Redis Cluster (`redis+cluster://`, or a `RedisCluster` client) the prefix becomes a hash tag
        (`keys.cluster_prefix`)."""
        if isinstance(client_or_url, str):
            cluster = is_cluster_url(client_or_url)
            client_or_url = connect(client_or_url, connect_timeout=connect_timeout, timeout=timeout)
            self._owns_client = True
        elif not decodes_responses(client_or_url):
            raise ValueError("RedisStore needs a client created with decode_responses=True")
        else:
            cluster = isinstance(client_or_url, RedisCluster)
            self._owns_client = False
        if cluster:
            prefix = k.cluster_prefix(prefix)
        self._redis = client_or_url
        self.found_blank = False  # an empty Redis looks like a new one
        self._expected_marker: str | None = None  # see expect_marker
        self._keys = k.RedisKeys(prefix)
        self._history_limit = history_limit
        self._items = items or ItemRetention()
        self._claim_script = client_or_url.register_script(lua.CLAIM)
        self._transition_script = client_or_url.register_script(lua.TRANSITION)
        self._defer_script = client_or_url.register_script(lua.DEFER)
        self._count_script = client_or_url.register_script(lua.COUNT)
        self._retry_script = client_or_url.register_script(lua.RETRY)
        self._purge_script = client_or_url.register_script(lua.PURGE)
        self._set_version_script = client_or_url.register_script(lua.SET_VERSION)
        self._put_source_script = client_or_url.register_script(lua.PUT_SOURCE)
        self._held_script = client_or_url.register_script(lua.HELD)
        self._remember_script = client_or_url.register_script(lua.REMEMBER)
        self._legacy_script = client_or_url.register_script(lua.LEGACY)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """A store on `redis://host:port/db` (or `rediss://`, `unix://`, a cluster's
        `redis+cluster://host:port`, or `redis+sentinel://host:26379/service`), owning its client."""
        return cls(url, **options)

    @property
    def where(self) -> str:
        """The server, for messages: host:port/db, the socket path or the cluster, and the prefix."""
        return f"{describe(self._redis)} (prefix {self._keys.prefix!r})"

    def __repr__(self) -> str:
        return f"RedisStore({self.where})"

    # --- lifecycle ----------------------------------------------------------------------------------------

    @_translated
    async def open(self) -> None:
        """Check the server answers and the key layout is one this version understands, upgrading an older
        layout in place. Idempotent."""
        version = cast("str | None", await self._redis.get(self._keys.version))
        if version is None:
            await self._redis.set(self._keys.version, k.REDIS_LAYOUT_VERSION, nx=True)
        elif int(version) > k.REDIS_LAYOUT_VERSION:
            raise StoreError(
                f"Redis store at {self.where} has key layout version {version}, newer than this rarewatch "
                f"supports ({k.REDIS_LAYOUT_VERSION}); upgrade rarewatch or use another prefix"
            )
        else:
            if int(version) < 2:
                await self._upgrade_from_v1()
            if int(version) < 3:
                await self._upgrade_from_v2()

    async def _upgrade_from_v1(self) -> None:
        """Layout v1 -> v2: index the delivered records by destination (v1 claim values already read as
        ownerless, and v1 delivery hashes as no receipt, not held). Safe to run twice or concurrently."""
        kk, start = self._keys, 0
        newest: dict[str, int] = {}
        while members := _strs(await self._redis.zrange(kk.outbox(_DELIVERED), start, start + _PAGE - 1)):
            pipe = self._redis.pipeline(transaction=False)
            for member in members:
                pipe.hmget(kk.delivery_of_member(member), ["alert_id", "destination", "delivered_at"])
            rows = cast("list[list[str | None]]", await pipe.execute())
            pipe = self._redis.pipeline(transaction=False)
            for alert_id, destination, delivered_at in rows:
                if alert_id is not None and destination is not None and delivered_at is not None:
                    pipe.zadd(kk.delivered(destination), {alert_id: int(delivered_at)})
                    newest[destination] = max(newest.get(destination, 0), int(delivered_at))
            await pipe.execute()
            start += len(members)
        span = k.DELIVERED_INDEX_SPAN // timedelta(microseconds=1)
        for destination, last in newest.items():
            await self._redis.zremrangebyscore(kk.delivered(destination), "-inf", f"({last - span}")
        await self._set_version_script(keys=[kk.version], args=[2])

    async def _upgrade_from_v2(self) -> None:
        """Layout v2 -> v3: find how long the longest-lived `claim:` key still lives, and record that look-ups
        read those keys until then (no story seen before the upgrade is claimed again). Safe to run twice
        or concurrently: the later time wins."""
        longest = 0
        page: list[str] = []
        pattern = _glob_escape(self._keys.claim_prefix) + "*"
        async for key in self._redis.scan_iter(match=pattern, count=1000):
            page.append(key)
            if len(page) >= _PAGE:
                longest = max(longest, await self._longest_ttl(page))
                page = []
        longest = max(longest, await self._longest_ttl(page))
        if longest > 0:
            await self._legacy_script(keys=[self._keys.dedup], args=[longest])
        await self._set_version_script(keys=[self._keys.version], args=[3])

    async def _longest_ttl(self, names: Sequence[str]) -> int:
        """The longest remaining TTL (ms) among `names`; one without a TTL counts as `_FOREVER`."""
        if not names:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.pttl(name)
        ttls = [int(t) for t in await pipe.execute()]
        return max(_FOREVER if t == -1 else t for t in ttls)

    @_translated
    async def close(self) -> None:
        """Close the connections of a client this store created. Idempotent."""
        if self._owns_client:
            await close(self._redis)

    # --- identity marker ---------------------------------------------------------------------------------

    @_translated
    async def get_marker(self) -> StoreMarker | None:
        """The marker (one GET), or None."""
        raw = await self._redis.get(self._keys.marker)
        return StoreMarker.from_dict(json.loads(raw)) if raw is not None else None

    @_translated
    async def create_marker(self, marker: StoreMarker) -> StoreMarker:
        """`SET NX` the marker (and the layout version an emptied server lost); returns the stored one."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._keys.version, k.REDIS_LAYOUT_VERSION, nx=True)
        pipe.set(self._keys.marker, json.dumps(marker.to_dict()), nx=True)
        pipe.get(self._keys.marker)
        *_, raw = await pipe.execute()
        return StoreMarker.from_dict(json.loads(raw))

    @_translated
    async def reset_marker(self, marker: StoreMarker) -> None:
        """Replace the marker."""
        await self._redis.set(self._keys.marker, json.dumps(marker.to_dict()))

    # --- claims -------------------------------------------------------------------------------------------

    @_translated
    async def claim(
        self,
        keys: Sequence[str],
        ttl: timedelta,
        now: datetime,
        alert: Alert | None = None,
        destinations: Sequence[str] = (),
        *,
        held_until: Mapping[str, datetime] | None = None,
        remember: Sequence[str] = (),
    ) -> bool:
        """Claim `keys` for `ttl` (Redis time: `now` dates the records, not the expiry), then hold each free
        key of `remember`, in one script; see `Store.claim`."""
        if not keys:
            raise ValueError("claim needs at least one key")
        if remember and alert is None:
            raise ValueError("claim can only remember keys for an alert")
        ms = k.ttl_ms(ttl)
        unique = list(dict.fromkeys(keys))
        remember_keys = [key for key in dict.fromkeys(remember) if key not in unique]
        # Nothing is sent for one bare key, so a lost server costs nothing there: no marker check (as the
        # `SET NX` of layout 2 had none).
        marker = "" if alert is None and len(unique) == 1 else task_marker(self._expected_marker) or ""
        dests = list(dict.fromkeys(destinations)) if alert is not None else []
        kk = self._keys
        fixed = [kk.seq, kk.alerts, kk.alert_refs, kk.outbox_all, *self._status_sets(_PENDING), kk.outbox_due]
        alert_id = alert.id if alert is not None else ""
        script_keys = [
            *fixed,
            kk.alert(alert_id),
            *(kk.delivery(alert_id, d) for d in dests),
            *(kk.delivered(d) for d in dests),
            kk.dedup,
            kk.marker,
        ]
        now_us, hold = k.to_us(now), held_until or {}
        per_dest: list[str | int] = []
        for dest in dests:
            per_dest += [dest, k.to_us(hold[dest]), 1] if dest in hold else [dest, now_us, 0]
        args: list[str | int | bytes] = [
            ms,
            len(dests),
            json.dumps(alert.to_dict()) if alert is not None else "",
            alert_id,
            k.to_us(alert.created) if alert is not None else 0,
            now_us,
            self._history_limit,
            kk.alert_prefix,
            k.MEMBER_SEPARATOR,
            k.MEMBER_SEQ_WIDTH,
            _PENDING.value,
            k.claim_value(alert.id if alert is not None else None),
            len(remember_keys),
            *per_dest,
            *self._dedup_args(),
            k.dedup_width_ms(ms),
            len(unique),
            *_fields(unique),
            *_fields(remember_keys),
            marker,
        ]
        result = int(await self._claim_script(keys=script_keys, args=args))
        if result < 0:
            raise self._lost("claim refused")
        return result == 1

    def _lost(self, what: str) -> StoreError:
        return StoreError(
            f"Redis store at {self.where} lost its data (identity marker "
            f"{task_marker(self._expected_marker)} is gone or replaced): {what}; the next check marks what "
            "the sources list as seen"
        )

    async def claim_many(self, requests: Sequence[ClaimRequest], ttl: timedelta, now: datetime) -> int:
        """One claim script after another (each is one round trip already); see `Store.claim_many`."""
        return await claim_in_turn(self, requests, ttl, now)

    def expect_marker(self, marker_id: str | None) -> None:
        """Make every alert claim and source-state write check, in its script, that the identity marker is
        still `marker_id`, so a server emptied after the last marker check cannot make a claim re-send an
        old story (`base.checking_marker` overrides it for one task)."""
        self._expected_marker = marker_id

    @_translated
    async def held(self, keys: Sequence[str], now: datetime) -> dict[str, str | None]:
        """The keys among `keys` held now (Redis time: `now` is not used), with owners, in `keys` order.
        One script per `_HELD_PAGE` keys: each key reads a shard in every live bucket, and a fetch's
        thousands of keys in one script would hold up every other client of the server meanwhile."""
        unique = list(dict.fromkeys(keys))
        values: list[str | None] = []
        for start in range(0, len(unique), _HELD_PAGE):
            page = unique[start : start + _HELD_PAGE]
            args = [self._keys.dedup_prefix, self._keys.claim_prefix, *_fields(page)]
            values += cast("list[str | None]", await self._held_script(keys=[self._keys.dedup], args=args))
        return {key: k.claim_owner(v) for key, v in zip(unique, values, strict=True) if v is not None}

    @_translated
    async def remember(self, keys: Sequence[str], owner: str, ttl: timedelta, now: datetime) -> None:
        """Hold each free key of `keys` for `owner` during `ttl` (Redis time), in one script; held keys keep
        their owner."""
        ms = k.ttl_ms(ttl, "remember ttl")
        unique = list(dict.fromkeys(keys))
        if not unique:
            return
        args = [*self._dedup_args(), k.dedup_width_ms(ms), ms, k.claim_value(owner), *_fields(unique)]
        await self._remember_script(keys=[self._keys.dedup], args=args)

    def _dedup_args(self) -> list[str | int]:
        """The arguments every dedup write starts with: bucket prefix, layout-2 claim prefix, shard limit."""
        return [self._keys.dedup_prefix, self._keys.claim_prefix, k.DEDUP_SHARD_LIMIT]

    # --- counters -----------------------------------------------------------------------------------------

    @_translated
    async def count_in_window(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one for `key` in the fixed window containing `now` and return the window's count. The
        window's number comes from `now`; its counter expires one `window` (Redis time) after its first
        count, so never before the window ends when `now` is the current time."""
        bucket, _ = k.window_bucket(window, now)
        counter = self._keys.counter(key, bucket)
        return int(await self._count_script(keys=[counter], args=[k.ttl_ms(window, "counter window")]))

    def _status_sets(self, first: DeliveryStatus) -> list[str]:
        """The three status sets, `first`'s first (then pending, delivered, dead order for the rest)."""
        others = [s for s in DeliveryStatus if s is not first]
        return [self._keys.outbox(first), *(self._keys.outbox(s) for s in others)]

    # --- source state -------------------------------------------------------------------------------------

    @_translated
    async def get_source_state(self, source: str) -> SourceState | None:
        """The stored state of `source`, or None."""
        raw = await self._redis.get(self._keys.source(source))
        return SourceState.from_dict(json.loads(raw)) if raw is not None else None

    @_translated
    async def put_source_state(self, source: str, state: SourceState) -> None:
        """Replace the stored state of `source`, if the identity marker is the one expected (a state written
        into an emptied server would make that source's next poll look like a later one, not its first)."""
        if not await self._put_source(source, state, task_marker(self._expected_marker) or ""):
            raise self._lost(f"state of source {source!r} not recorded")

    @_translated
    async def get_marker_and_source_state(self, source: str) -> tuple[StoreMarker | None, SourceState | None]:
        """The marker and the stored state of `source`: one `MGET` (both keys are in the store's one slot on
        a cluster)."""
        marker, state = await self._redis.mget([self._keys.marker, self._keys.source(source)])
        return (
            StoreMarker.from_dict(json.loads(marker)) if marker is not None else None,
            SourceState.from_dict(json.loads(state)) if state is not None else None,
        )

    @_translated
    async def put_source_state_if_marker(self, source: str, state: SourceState, marker_id: str) -> bool:
        """Replace the stored state of `source` if the identity marker is still `marker_id` (checked in the
        write's script); False when it is not."""
        return await self._put_source(source, state, marker_id)

    async def _put_source(self, source: str, state: SourceState, marker_id: str) -> bool:
        """Run the state-write script (`marker_id` "": no check); False when the marker refused it."""
        keys = [self._keys.source(source), self._keys.marker]
        args = [json.dumps(state.to_dict()), marker_id]
        return int(await self._put_source_script(keys=keys, args=args)) >= 0

    # --- alert history ------------------------------------------------------------------------------------

    @_translated
    async def get_alert(self, alert_id: str) -> Alert | None:
        """One alert from the history (or still referenced by a delivery), or None."""
        raw = await self._redis.get(self._keys.alert(alert_id))
        return Alert.from_dict(json.loads(raw)) if raw is not None else None

    @_translated
    async def get_alerts(self, alert_ids: Sequence[str]) -> dict[str, Alert]:
        """The alerts of `alert_ids` the history holds, by id (MGET, a page of keys at a time)."""
        unique = list(dict.fromkeys(alert_ids))
        found: dict[str, Alert] = {}
        for start in range(0, len(unique), _PAGE):
            page = unique[start : start + _PAGE]
            raws = await self._redis.mget([self._keys.alert(i) for i in page])
            found.update(
                (alert_id, Alert.from_dict(json.loads(raw)))
                for alert_id, raw in zip(page, raws, strict=True)
                if raw is not None
            )
        return found

    @_translated
    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """The newest alerts first."""
        if limit <= 0:
            return []
        ids = _strs(await self._redis.zrevrange(self._keys.alerts, 0, limit - 1))
        if not ids:
            return []
        raws = await self._redis.mget([self._keys.alert(i) for i in ids])
        return [Alert.from_dict(json.loads(raw)) for raw in raws if raw is not None]

    # --- unrouted alerts ---------------------------------------------------------------------------------

    @_translated
    async def record_unrouted(self, alert: Alert, now: datetime) -> None:
        """Keep `alert` among the unrouted alerts: the newest `UNROUTED_LIMIT`, each for `UNROUTED_TTL`."""
        kk, ttl = self._keys, k.ttl_ms(k.UNROUTED_TTL)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(kk.unrouted_alert(alert.id), json.dumps(alert.to_dict()), px=ttl)
        pipe.zadd(kk.unrouted, {alert.id: k.to_us(now)})
        pipe.zremrangebyrank(kk.unrouted, 0, -k.UNROUTED_LIMIT - 1)  # ids beyond it; their data expires
        pipe.pexpire(kk.unrouted, ttl)
        await pipe.execute()

    @_translated
    async def unrouted(self, limit: int = 50) -> list[Alert]:
        """The unrouted alerts, newest first (those whose data expired are left out)."""
        if limit <= 0:
            return []
        ids = _strs(await self._redis.zrevrange(self._keys.unrouted, 0, limit - 1))
        if not ids:
            return []
        raws = await self._redis.mget([self._keys.unrouted_alert(i) for i in ids])
        return [Alert.from_dict(json.loads(raw)) for raw in raws if raw is not None]

    @_translated
    async def unrouted_ids(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of `alert_ids` are unrouted (listed, data not expired)."""
        unique = list(dict.fromkeys(alert_ids))
        if not unique:
            return set()
        raws = await self._redis.mget([self._keys.unrouted_alert(i) for i in unique])
        return {i for i, raw in zip(unique, raws, strict=True) if raw is not None}

    @_translated
    async def get_unrouted(self, alert_id: str) -> Alert | None:
        """One unrouted alert, or None."""
        raw = await self._redis.get(self._keys.unrouted_alert(alert_id))
        return Alert.from_dict(json.loads(raw)) if raw is not None else None

    @_translated
    async def drop_unrouted(self, alert_id: str) -> bool:
        """Forget an unrouted alert; whether it was listed."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.unrouted_alert(alert_id))
        pipe.zrem(self._keys.unrouted, alert_id)
        deleted, _ = await pipe.execute()
        return bool(deleted)

    # --- seen items -------------------------------------------------------------------------------------

    @_translated
    async def record_items(self, items: Sequence[SeenRecord], now: datetime) -> int:
        """`SET NX PX` each item's record and index it (`ZADD NX`) in one round trip, then trim the index
        to the retention, deleting the records of the items trimmed for the count bound."""
        if not items or self._items.max <= 0:
            return 0
        kk, keep_ms = self._keys, k.ttl_ms(self._items.keep, "store_items.keep")
        pipe = self._redis.pipeline(transaction=False)
        for seen in items:
            pipe.set(kk.seen_item(seen.item_id), seen.to_json(), nx=True, px=keep_ms)
            pipe.zadd(kk.seen_items, {seen.item_id: k.to_us(seen.fetched)}, nx=True)
        cutoff = k.to_us(now) - self._items.keep // timedelta(microseconds=1)
        pipe.zremrangebyscore(kk.seen_items, "-inf", f"({cutoff}")  # their records expired on their own
        pipe.pexpire(kk.seen_items, keep_ms)
        pipe.zcard(kk.seen_items)
        *replies, _, _, count = await pipe.execute()
        await self._trim_items(int(count))
        return sum(1 for reply in replies[::2] if reply)

    async def _trim_items(self, count: int) -> None:
        """Forget the oldest seen items beyond the retention's `max`."""
        excess = count - self._items.max
        if excess <= 0:
            return
        kk = self._keys
        ids = _strs(await self._redis.zrange(kk.seen_items, 0, excess - 1))
        for start in range(0, len(ids), _PAGE):
            page = ids[start : start + _PAGE]
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(*(kk.seen_item(i) for i in page))
            pipe.zrem(kk.seen_items, *page)
            await pipe.execute()

    @_translated
    async def seen_items(self, since: datetime, limit: int = 100_000) -> list[SeenItem]:
        """The kept items fetched at or after `since`, newest first (records already expired left out)."""
        if limit <= 0:
            return []
        ids = _strs(
            await self._redis.zrevrangebyscore(
                self._keys.seen_items, "+inf", k.to_us(since), start=0, num=limit
            )
        )
        found: list[SeenItem] = []
        for start in range(0, len(ids), _PAGE):
            raws = await self._redis.mget([self._keys.seen_item(i) for i in ids[start : start + _PAGE]])
            found += [SeenItem.from_dict(json.loads(raw)) for raw in raws if raw is not None]
        return found

    # --- silences ---------------------------------------------------------------------------------------

    @_translated
    async def add_silence(self, silence: Silence, now: datetime) -> None:
        """`HSET` the silence, then drop the ones that ended `SILENCE_KEEP` before `now`."""
        key = self._keys.silences
        await self._redis.hset(key, silence.id, json.dumps(silence.to_dict()))
        forget = [s.id for s in await self._silences() if s.ends < now - k.SILENCE_KEEP]
        if forget:
            await self._redis.hdel(key, *forget)

    @_translated
    async def silences(self) -> list[Silence]:
        """Every silence kept, oldest first (one `HGETALL`)."""
        return await self._silences()

    async def _silences(self) -> list[Silence]:
        raws = cast("dict[str, str]", await self._redis.hgetall(self._keys.silences))
        return by_creation(Silence.from_dict(json.loads(raw)) for raw in raws.values())

    @_translated
    async def expire_silence(self, silence_id: str, now: datetime) -> Silence | None:
        """End the silence at `now` unless it ended already. Read, then write only when it changes: two
        processes expiring one silence at once both end it, at about the same time."""
        raw = cast("str | None", await self._redis.hget(self._keys.silences, silence_id))
        if raw is None:
            return None
        before = Silence.from_dict(json.loads(raw))
        after = expired(before, now)
        if after != before:
            await self._redis.hset(self._keys.silences, silence_id, json.dumps(after.to_dict()))
        return after

    # --- votes -----------------------------------------------------------------------------------------

    @_translated
    async def record_vote(self, vote: Vote) -> None:
        """`HSET` the vote (replacing the voter's earlier one) and index it by time in one round trip,
        then forget the votes past the retention. Votes are rare (a reader's click): the two keys are
        written without a transaction (a vote indexed but not yet recorded is skipped by `votes`)."""
        kk, keep_ms = self._keys, k.ttl_ms(k.VOTE_KEEP, "vote retention")
        field = kk.vote_field(vote.alert_id, vote.who)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(kk.votes, field, json.dumps(vote.to_dict()))
        pipe.zadd(kk.votes_at, {field: k.to_us(vote.at)})
        pipe.pexpire(kk.votes, keep_ms)
        pipe.pexpire(kk.votes_at, keep_ms)
        await pipe.execute()
        await self._trim_votes(k.to_us(vote.at - k.VOTE_KEEP))

    async def _trim_votes(self, cutoff_us: int) -> None:
        """Forget the votes cast before `cutoff_us`, and the oldest beyond `VOTE_LIMIT`."""
        kk = self._keys
        old = _strs(await self._redis.zrangebyscore(kk.votes_at, "-inf", f"({cutoff_us}"))
        excess = int(await self._redis.zcard(kk.votes_at)) - len(old) - k.VOTE_LIMIT
        if excess > 0:
            old += _strs(await self._redis.zrange(kk.votes_at, len(old), len(old) + excess - 1))
        for start in range(0, len(old), _PAGE):
            page = old[start : start + _PAGE]
            pipe = self._redis.pipeline(transaction=False)
            pipe.hdel(kk.votes, *page)
            pipe.zrem(kk.votes_at, *page)
            await pipe.execute()

    @_translated
    async def votes(self, since: datetime, limit: int = 100_000) -> list[Vote]:
        """The votes cast at or after `since`, oldest first (the newest `limit` of them)."""
        if limit <= 0:
            return []
        kk = self._keys
        fields = _strs(
            await self._redis.zrevrangebyscore(kk.votes_at, "+inf", k.to_us(since), start=0, num=limit)
        )
        found: list[Vote] = []
        for start in range(0, len(fields), _PAGE):
            raws = await self._redis.hmget(kk.votes, fields[start : start + _PAGE])
            found += [Vote.from_dict(json.loads(raw)) for raw in raws if raw is not None]
        return sorted(found, key=lambda v: (v.at, v.alert_id, v.who))

    # --- outbox -------------------------------------------------------------------------------------------

    @_translated
    async def due_deliveries(
        self, now: datetime, limit: int = 100, destination: str | None = None
    ) -> list[Delivery]:
        """Pending deliveries due at `now` (of one destination if given), by next attempt, then creation."""
        if limit <= 0:
            return []
        due = self._keys.outbox_due
        if destination is not None:
            # Members end in "␟<destination>": filter the due range by name, without loading records.
            suffix = k.member_suffix(destination)
            every = cast(
                "list[tuple[str, float]]",
                await self._redis.zrangebyscore(due, "-inf", k.to_us(now), withscores=True),
            )
            # In score order: load `limit` of them and those tied with the last (sorted by creation below),
            # not the destination's whole backlog.
            mine: list[str] = []
            last = float("-inf")
            for member, score in every:
                if not member.endswith(suffix):
                    continue
                if len(mine) >= limit and score > last:
                    break
                mine.append(member)
                last = score
            records = await self._load(mine)
            records.sort(key=lambda pair: (pair[1].next_attempt, pair[1].created, pair[0]))
            return [d for _, d in records][:limit]
        found = cast(
            "list[tuple[str, float]]",
            await self._redis.zrangebyscore(due, "-inf", k.to_us(now), start=0, num=limit, withscores=True),
        )
        members = [m for m, _ in found]
        if len(found) == limit:
            # Records tied with the last one on next_attempt may be older: fetch the whole tie, then sort.
            last = found[-1][1]
            seen = set(members)
            members += [m for m in _strs(await self._redis.zrangebyscore(due, last, last)) if m not in seen]
        records = await self._load(members)
        records.sort(key=lambda pair: (pair[1].next_attempt, pair[1].created, pair[0]))
        return [delivery for _, delivery in records[:limit]]

    @_translated
    async def deliveries(
        self, status: DeliveryStatus | None = None, destination: str | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Delivery records filtered by status and destination, oldest first."""
        index = self._keys.outbox(status) if status is not None else self._keys.outbox_all
        found: list[Delivery] = []
        start = 0
        while len(found) < limit:
            # Sorted by created, ties by member, whose zero-padded sequence prefix is insertion order.
            page = min(limit - len(found), _PAGE) if destination is None else _PAGE
            members = _strs(await self._redis.zrange(index, start, start + page - 1))
            records = await self._load(members)
            found += [d for _, d in records if destination is None or d.destination == destination]
            if len(members) < page:
                break
            start += page
        return found[:limit]

    @_translated
    async def get_delivery(self, alert_id: str, destination: str) -> Delivery | None:
        """The delivery record of `alert_id` to `destination`, or None."""
        row = cast("dict[str, str]", await self._redis.hgetall(self._keys.delivery(alert_id, destination)))
        return _delivery(row) if row else None

    @_translated
    async def delivered_since(self, destination: str, since: datetime) -> int:
        """How many records for `destination` are delivered, with `delivered_at` at or after `since`.
        Counted from `delivered:<destination>`, which keeps `keys.DELIVERED_INDEX_SPAN` (24 h) before the
        latest `mark_delivered`'s `now`: an older `since` counts only that span."""
        return int(await self._redis.zcount(self._keys.delivered(destination), k.to_us(since), "+inf"))

    @_translated
    async def outbox_stats(self) -> dict[str, OutboxStats]:
        """Pending and dead deliveries per destination (read from the status indexes, whose members end
        with their destination, and whose scores are creation times)."""
        pending: dict[str, list[float]] = {}
        dead: dict[str, int] = {}
        async for member, score in self._redis.zscan_iter(self._keys.outbox(_PENDING)):
            pending.setdefault(_member_destination(member), []).append(score)
        async for member, _score in self._redis.zscan_iter(self._keys.outbox(_DEAD)):
            destination = _member_destination(member)
            dead[destination] = dead.get(destination, 0) + 1
        return {
            d: OutboxStats(
                pending=len(pending.get(d, ())),
                dead=dead.get(d, 0),
                oldest_pending=k.from_us(int(min(pending[d]))) if d in pending else None,
            )
            for d in {*pending, *dead}
        }

    async def _load(self, members: Sequence[str]) -> list[tuple[str, Delivery]]:
        """The outbox records of index members (skipping any deleted meanwhile), with their member."""
        if not members:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for member in members:
            pipe.hgetall(self._keys.delivery_of_member(member))
        rows = await pipe.execute()
        return [(m, _delivery(row)) for m, row in zip(members, rows, strict=True) if row]

    @_translated
    async def mark_delivered(
        self, alert_id: str, destination: str, now: datetime, receipt: str | None = None
    ) -> None:
        """Record a successful delivery (attempts + 1) and its receipt (None clears an earlier one)."""
        delivered_at = k.to_us(now)
        fields: dict[str, str | int] = {"delivered_at": delivered_at}
        if receipt is not None:
            fields["receipt"] = receipt
        clear = ("receipt",) if receipt is None else ()
        await self._transition(alert_id, destination, _DELIVERED, 1, None, fields, delivered_at, clear)

    async def mark_delivered_many(self, deliveries: Sequence[tuple[str, str]], now: datetime) -> None:
        """`mark_delivered` of each (alert id, destination), without a receipt, one after another (each
        delivery's transition is its own script)."""
        for alert_id, destination in deliveries:
            await self.mark_delivered(alert_id, destination, now)

    @_translated
    async def defer(self, alert_id: str, destination: str, next_attempt: datetime) -> None:
        """Move a pending delivery's next attempt, attempts unchanged (a no-op for any other record)."""
        script_keys = [self._keys.delivery(alert_id, destination), self._keys.outbox_due]
        await self._defer_script(keys=script_keys, args=[_PENDING.value, k.to_us(next_attempt)])

    @_translated
    async def mark_failed(
        self, alert_id: str, destination: str, error: str, next_attempt: datetime, now: datetime
    ) -> None:
        """Record a failed attempt (attempts + 1), its error, and when to try again."""
        due = k.to_us(next_attempt)
        await self._transition(
            alert_id, destination, _PENDING, 1, due, {"last_error": error, "next_attempt": due}
        )

    @_translated
    async def mark_dead(self, alert_id: str, destination: str, error: str, now: datetime) -> None:
        """Dead-letter a delivery after a final failed attempt (attempts + 1), keeping its error."""
        await self._transition(alert_id, destination, _DEAD, 1, None, {"last_error": error})

    async def _transition(
        self,
        alert_id: str,
        destination: str,
        status: DeliveryStatus,
        attempts: int,
        due: int | None,
        fields: Mapping[str, str | int],
        delivered_at: int | None = None,
        clear: Sequence[str] = (),
    ) -> None:
        """Move one record to `status` (a no-op if it does not exist): add `attempts`, set `fields`, delete
        the `clear` fields, and update its indexes: due at `due` (None: not due), and in the destination's
        delivered index at `delivered_at` (None: not delivered), trimmed to the span before it."""
        record = self._keys.delivery(alert_id, destination)
        script_keys = [
            record,
            *self._status_sets(status),
            self._keys.outbox_due,
            self._keys.delivered(destination),
        ]
        span = k.DELIVERED_INDEX_SPAN // timedelta(microseconds=1)
        args: list[str | int] = [
            status.value,
            attempts,
            "" if due is None else due,
            "" if delivered_at is None else delivered_at,
            "" if delivered_at is None else delivered_at - span,
            len(clear),
            *clear,
        ]
        for name, value in fields.items():
            args += [name, value]
        await self._transition_script(keys=script_keys, args=args)

    @_translated
    async def retry(self, now: datetime, destination: str | None = None, alert_id: str | None = None) -> int:
        """Make dead and pending deliveries (of `destination`, of `alert_id`, when given) due at `now`
        (attempts and last error kept); returns how many."""
        kk = self._keys
        flag = "0" if destination is None else "1"
        args: list[str | int] = [
            k.to_us(now),
            flag,
            destination or "",
            kk.delivery_prefix,
            k.MEMBER_SEQ_WIDTH,
            _PENDING.value,
            alert_id or "",
        ]
        keys = [kk.outbox(_PENDING), kk.outbox(_DEAD), kk.outbox_due]
        return int(await self._retry_script(keys=keys, args=args))

    @_translated
    async def purge(self, status: DeliveryStatus, destination: str | None = None) -> int:
        """Delete the delivery records of `status` (and `destination`); returns how many."""
        return await self._purge(status, destination, "+inf", -1)

    @_translated
    async def forget_deliveries(self, status: DeliveryStatus, before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` records of `status` created before `before` (a range of the status index,
        whose scores are creation times), and the alerts only they kept; see `Store.forget_deliveries`."""
        if status is _PENDING:
            raise ValueError("pending deliveries are never forgotten")
        if limit <= 0:
            return 0
        return await self._purge(status, None, f"({k.to_us(before)}", limit)

    async def _purge(self, status: DeliveryStatus, destination: str | None, upto: str, limit: int) -> int:
        """Delete the records of `status` (of `destination`) with a creation score up to `upto`, at most
        `limit` (-1: all), with the alerts no record or the history keeps any more."""
        kk = self._keys
        keys = [kk.outbox(status), kk.outbox_all, kk.outbox_due, kk.alert_refs, kk.alerts]
        flag = "0" if destination is None else "1"
        args: list[str | int] = [
            flag,
            destination or "",
            kk.delivery_prefix,
            k.MEMBER_SEQ_WIDTH,
            kk.alert_prefix,
            kk.delivered_prefix,
            upto,
            limit,
        ]
        return int(await self._purge_script(keys=keys, args=args))

    # --- leases (several replicas on one Redis) ------------------------------------------------------------

    def leases(self) -> RedisLeases:
        """This replica's leases on this Redis (see `store.leases`), sharing the store's client."""
        return RedisLeases(self._redis, self._keys, self.where)


_FOREVER = 2**50  # ms: how long a layout-2 claim key without a TTL (never written by rarewatch) is read


def _fields(keys: Sequence[str]) -> list[bytes | str]:
    """Each key's dedup field then the key itself (read under layout 2's name until the upgrade's end)."""
    out: list[bytes | str] = []
    for key in keys:
        out += [k.dedup_field(key), key]
    return out


def _glob_escape(text: str) -> str:
    """`text` matched literally by a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _strs(values: object) -> list[str]:
    """A reply that is a list of strings (the client decodes responses)."""
    return cast("list[str]", values)


def _delivery(row: dict[str, str]) -> Delivery:
    """The record an outbox hash holds (layout v1 hashes have no `receipt` or `digest`)."""
    delivered_at = row.get("delivered_at")
    return Delivery(
        alert_id=row["alert_id"],
        destination=row["destination"],
        status=DeliveryStatus(row["status"]),
        attempts=int(row["attempts"]),
        created=k.from_us(int(row["created"])),
        next_attempt=k.from_us(int(row["next_attempt"])),
        last_error=row.get("last_error"),
        delivered_at=k.from_us(int(delivered_at)) if delivered_at is not None else None,
        receipt=row.get("receipt"),
        digest=row.get("digest") == "1",
    )


def _member_destination(member: bytes | str) -> str:
    """The destination an outbox index member names (`<seq>␟<alert id>␟<destination>`)."""
    text = member.decode() if isinstance(member, bytes) else member
    return text.rsplit(k.MEMBER_SEPARATOR, 1)[-1]
