"""The Redis store: several rarewatch processes can share one Redis.

Atomicity comes from Redis running one command or Lua script at a time: a claim of one key without an
alert is `SET NX PX`; any other claim is one script that checks every key, claims them, records the alert
and creates the outbox records, all or nothing. Key names come from `keys.RedisKeys`; the scripts receive
every name they use as an argument. (History trimming and purging delete keys they compute from a prefix,
so the scripts suit a single Redis or a replica set, not Redis Cluster.)

Every Redis failure (down, timeout, a script error) becomes a `StoreError`. The client reconnects on its
own, so the same store works again once Redis is back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rarewatch.errors import StoreError
from rarewatch.models import Alert, Delivery, DeliveryStatus, SourceState
from rarewatch.store import keys as k

P = ParamSpec("P")
R = TypeVar("R")

_PENDING, _DELIVERED, _DEAD = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.DEAD
_PAGE = 500  # outbox records read per round trip when filtering by destination

# KEYS: seq, alerts, alert_refs, outbox:all, outbox:pending, outbox:delivered, outbox:dead, outbox:due,
#       alert:<id>, then one delivery hash per destination, then the claim keys.
# ARGV: ttl_ms, n_destinations, alert JSON ('' = none), alert id, created_us, now_us, history_limit,
#       alert key prefix, member separator, member seq width, pending, then the destinations.
_CLAIM = """
local nd = tonumber(ARGV[2])
for i = 10 + nd, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 10 + nd, #KEYS do redis.call('SET', KEYS[i], '1', 'PX', ARGV[1]) end
if ARGV[3] == '' then return 1 end
local id, now, sep = ARGV[4], ARGV[6], ARGV[9]
redis.call('SET', KEYS[9], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], id)
for j = 1, nd do
  local hkey, dest = KEYS[9 + j], ARGV[11 + j]
  local old = redis.call('HGET', hkey, 'member')
  if old then
    for z = 4, 8 do redis.call('ZREM', KEYS[z], old) end
    redis.call('DEL', hkey)
  else
    redis.call('HINCRBY', KEYS[3], id, 1)
  end
  local seq = redis.call('INCR', KEYS[1])
  local member = string.format('%0' .. ARGV[10] .. 'd', seq) .. sep .. id .. sep .. dest
  redis.call('HSET', hkey, 'alert_id', id, 'destination', dest, 'status', ARGV[11], 'attempts', '0',
             'created', now, 'next_attempt', now, 'member', member)
  redis.call('ZADD', KEYS[4], now, member)
  redis.call('ZADD', KEYS[5], now, member)
  redis.call('ZADD', KEYS[8], now, member)
end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7])
if excess > 0 then
  local trimmed = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  for _, old_id in ipairs(trimmed) do
    if not redis.call('HGET', KEYS[3], old_id) then redis.call('DEL', ARGV[8] .. old_id) end
  end
end
return 1
"""

# KEYS: delivery hash, the new status's set, the two other status sets, outbox:due.
# ARGV: new status, attempts increment, due score ('' = not due), then field/value pairs to set.
_TRANSITION = """
local member = redis.call('HGET', KEYS[1], 'member')
if not member then return 0 end
if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[2]) end
redis.call('HSET', KEYS[1], 'status', ARGV[1], unpack(ARGV, 4))
redis.call('ZREM', KEYS[3], member)
redis.call('ZREM', KEYS[4], member)
redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'created'), member)
if ARGV[3] == '' then redis.call('ZREM', KEYS[5], member)
else redis.call('ZADD', KEYS[5], ARGV[3], member) end
return 1
"""

# KEYS: outbox:pending, outbox:dead, outbox:due.
# ARGV: now_us, filter by destination ('1'/'0'), destination, delivery key prefix, member seq width, pending.
_RETRY = """
local n = 0
-- Both lists are read before any change: a revived dead record must not be seen again as pending.
local lists = {redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('ZRANGE', KEYS[1], 0, -1)}
for _, members in ipairs(lists) do
  for _, m in ipairs(members) do
    local hkey = ARGV[4] .. string.sub(m, tonumber(ARGV[5]) + 2)
    if ARGV[2] == '0' or redis.call('HGET', hkey, 'destination') == ARGV[3] then
      redis.call('HSET', hkey, 'status', ARGV[6], 'next_attempt', ARGV[1])
      redis.call('ZREM', KEYS[2], m)
      redis.call('ZADD', KEYS[1], redis.call('HGET', hkey, 'created'), m)
      redis.call('ZADD', KEYS[3], ARGV[1], m)
      n = n + 1
    end
  end
end
return n
"""

# KEYS: outbox:<status>, outbox:all, outbox:due, alert_refs, alerts.
# ARGV: filter by destination ('1'/'0'), destination, delivery key prefix, member seq width, alert key prefix.
_PURGE = """
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local hkey = ARGV[3] .. string.sub(m, tonumber(ARGV[4]) + 2)
  local f = redis.call('HMGET', hkey, 'alert_id', 'destination')
  if ARGV[1] == '0' or f[2] == ARGV[2] then
    redis.call('DEL', hkey)
    for z = 1, 3 do redis.call('ZREM', KEYS[z], m) end
    if f[1] and redis.call('HINCRBY', KEYS[4], f[1], -1) <= 0 then
      redis.call('HDEL', KEYS[4], f[1])
      if not redis.call('ZSCORE', KEYS[5], f[1]) then redis.call('DEL', ARGV[5] .. f[1]) end
    end
    n = n + 1
  end
end
return n
"""


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
        client_or_url: Redis | str,
        prefix: str = "rarewatch:",
        *,
        history_limit: int = 10_000,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        """A URL makes a client this store owns (and closes), with the given timeouts in seconds, so a
        dead server fails fast instead of hanging. A client passed in must use `decode_responses=True`."""
        if isinstance(client_or_url, str):
            client_or_url = Redis.from_url(
                client_or_url,
                decode_responses=True,
                socket_connect_timeout=connect_timeout,
                socket_timeout=timeout,
                # One quick retry: it reconnects a pooled connection that died with a restarted server.
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
            )
            self._owns_client = True
        elif not client_or_url.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisStore needs a client created with decode_responses=True")
        else:
            self._owns_client = False
        self._redis = client_or_url
        self._keys = k.RedisKeys(prefix)
        self._history_limit = history_limit
        self._claim_script = client_or_url.register_script(_CLAIM)
        self._transition_script = client_or_url.register_script(_TRANSITION)
        self._retry_script = client_or_url.register_script(_RETRY)
        self._purge_script = client_or_url.register_script(_PURGE)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """A store on `redis://host:port/db` (or `rediss://`, `unix://`), owning its client."""
        return cls(url, **options)

    @property
    def where(self) -> str:
        """The server, for messages: host:port/db or the socket path."""
        kw = self._redis.connection_pool.connection_kwargs
        place = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
        return f"{place}/{kw.get('db', 0)} (prefix {self._keys.prefix!r})"

    def __repr__(self) -> str:
        return f"RedisStore({self.where})"

    # --- lifecycle ----------------------------------------------------------------------------------------

    @_translated
    async def open(self) -> None:
        """Check the server answers and the key layout is one this version understands. Idempotent."""
        version = cast("str | None", await self._redis.get(self._keys.version))
        if version is None:
            await self._redis.set(self._keys.version, k.REDIS_LAYOUT_VERSION, nx=True)
        elif int(version) > k.REDIS_LAYOUT_VERSION:
            raise StoreError(
                f"Redis store at {self.where} has key layout version {version}, newer than this rarewatch "
                f"supports ({k.REDIS_LAYOUT_VERSION}); upgrade rarewatch or use another prefix"
            )

    @_translated
    async def close(self) -> None:
        """Close the connections of a client this store created. Idempotent."""
        if self._owns_client:
            await self._redis.aclose()

    # --- claims -------------------------------------------------------------------------------------------

    @_translated
    async def claim(
        self,
        keys: Sequence[str],
        ttl: timedelta,
        now: datetime,
        alert: Alert | None = None,
        destinations: Sequence[str] = (),
    ) -> bool:
        """Claim `keys` for `ttl` (Redis time: `now` dates the records, not the expiry); see `Store.claim`."""
        if not keys:
            raise ValueError("claim needs at least one key")
        ms = k.ttl_ms(ttl)
        claim_keys = [self._keys.claim(key) for key in dict.fromkeys(keys)]
        if alert is None and len(claim_keys) == 1:
            return bool(await self._redis.set(claim_keys[0], "1", nx=True, px=ms))
        dests = list(dict.fromkeys(destinations)) if alert is not None else []
        kk = self._keys
        fixed = [kk.seq, kk.alerts, kk.alert_refs, kk.outbox_all, *self._status_sets(_PENDING), kk.outbox_due]
        alert_id = alert.id if alert is not None else ""
        script_keys = [*fixed, kk.alert(alert_id), *(kk.delivery(alert_id, d) for d in dests), *claim_keys]
        args: list[str | int] = [
            ms,
            len(dests),
            json.dumps(alert.to_dict()) if alert is not None else "",
            alert_id,
            k.to_us(alert.created) if alert is not None else 0,
            k.to_us(now),
            self._history_limit,
            kk.alert_prefix,
            k.MEMBER_SEPARATOR,
            k.MEMBER_SEQ_WIDTH,
            _PENDING.value,
            *dests,
        ]
        return bool(await self._claim_script(keys=script_keys, args=args))

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
        """Replace the stored state of `source`."""
        await self._redis.set(self._keys.source(source), json.dumps(state.to_dict()))

    # --- alert history ------------------------------------------------------------------------------------

    @_translated
    async def get_alert(self, alert_id: str) -> Alert | None:
        """One alert from the history (or still referenced by a delivery), or None."""
        raw = await self._redis.get(self._keys.alert(alert_id))
        return Alert.from_dict(json.loads(raw)) if raw is not None else None

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

    # --- outbox -------------------------------------------------------------------------------------------

    @_translated
    async def due_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Pending deliveries due at `now`, by next attempt, then creation (then insertion)."""
        if limit <= 0:
            return []
        due = self._keys.outbox_due
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
    async def mark_delivered(self, alert_id: str, destination: str, now: datetime) -> None:
        """Record a successful delivery (attempts + 1)."""
        await self._transition(alert_id, destination, _DELIVERED, 1, None, delivered_at=k.to_us(now))

    @_translated
    async def mark_failed(
        self, alert_id: str, destination: str, error: str, next_attempt: datetime, now: datetime
    ) -> None:
        """Record a failed attempt (attempts + 1), its error, and when to try again."""
        due = k.to_us(next_attempt)
        await self._transition(alert_id, destination, _PENDING, 1, due, last_error=error, next_attempt=due)

    @_translated
    async def mark_dead(self, alert_id: str, destination: str, error: str, now: datetime) -> None:
        """Dead-letter a delivery after a final failed attempt (attempts + 1), keeping its error."""
        await self._transition(alert_id, destination, _DEAD, 1, None, last_error=error)

    async def _transition(
        self,
        alert_id: str,
        destination: str,
        status: DeliveryStatus,
        attempts: int,
        due: int | None,
        **fields: str | int,
    ) -> None:
        """Move one record to `status` (a no-op if it does not exist), updating its indexes."""
        record = self._keys.delivery(alert_id, destination)
        script_keys = [record, *self._status_sets(status), self._keys.outbox_due]
        args: list[str | int] = [status.value, attempts, "" if due is None else due]
        for name, value in fields.items():
            args += [name, value]
        await self._transition_script(keys=script_keys, args=args)

    @_translated
    async def retry(self, now: datetime, destination: str | None = None) -> int:
        """Make dead and pending deliveries due at `now` (attempts and last error kept); returns how many."""
        kk = self._keys
        flag = "0" if destination is None else "1"
        args: list[str | int] = [
            k.to_us(now),
            flag,
            destination or "",
            kk.delivery_prefix,
            k.MEMBER_SEQ_WIDTH,
            _PENDING.value,
        ]
        keys = [kk.outbox(_PENDING), kk.outbox(_DEAD), kk.outbox_due]
        return int(await self._retry_script(keys=keys, args=args))

    @_translated
    async def purge(self, status: DeliveryStatus, destination: str | None = None) -> int:
        """Delete the delivery records of `status` (and `destination`); returns how many."""
        kk = self._keys
        keys = [kk.outbox(status), kk.outbox_all, kk.outbox_due, kk.alert_refs, kk.alerts]
        flag = "0" if destination is None else "1"
        args: list[str | int] = [
            flag,
            destination or "",
            kk.delivery_prefix,
            k.MEMBER_SEQ_WIDTH,
            kk.alert_prefix,
        ]
        return int(await self._purge_script(keys=keys, args=args))


def _strs(values: object) -> list[str]:
    """A reply that is a list of strings (the client decodes responses)."""
    return cast("list[str]", values)


def _delivery(row: dict[str, str]) -> Delivery:
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
    )
