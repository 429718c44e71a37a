"""Leases and replica membership on Redis: see `store.leases` for what they do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import cast

from redis.exceptions import RedisError

from rarewatch.clock import Clock, SystemClock
from rarewatch.errors import StoreError
from rarewatch.policies.placement import preferred
from rarewatch.store import keys as k
from rarewatch.store import redis_scripts as lua
from rarewatch.store.leases import HOLDER_RECORD, TAKEOVER_GRACE, LeaseKind
from rarewatch.store.redis_client import RedisClient

log = logging.getLogger(__name__)

HEARTBEAT = 2.0  # seconds between membership renewals
MEMBER_TTL = timedelta(seconds=6)  # a replica that stopped renewing is forgotten after this
_TAKEN_OVER = 2  # the lease script's answer for a lease taken from another replica's record
_HOLDER_RECORD_MS = k.ttl_ms(HOLDER_RECORD, "holder record")


def new_token() -> str:
    """A replica's token: random, with the host and process id so an operator can tell who holds what."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


class RedisLeases:
    """Leases and replica membership on Redis (keys `lease:<kind>:<name>`, `lease-holder:destination:<name>`
    and `replicas`, all with TTLs)."""

    def __init__(
        self,
        redis: RedisClient,
        keys: k.RedisKeys,
        where: str,
        token: str | None = None,
        *,
        grace: timedelta = TAKEOVER_GRACE,
        clock: Clock | None = None,
    ) -> None:
        """`redis` must decode responses; `where` names the server in errors; `grace`: how long a destination
        lease taken over from another replica waits before it is used (`store.leases`), timed by `clock`."""
        self._redis = redis
        self._keys = keys
        self._where = where
        self.token = token or new_token()
        self.held: set[tuple[LeaseKind, str]] = set()  # leases this replica took and has not released
        self.members: tuple[str, ...] = ()  # the live replicas at the last heartbeat
        self._grace = grace
        self._clock = clock or SystemClock()
        self._settling: dict[tuple[LeaseKind, str], datetime] = {}  # taken over: not used before this time
        self._hold = redis.register_script(lua.LEASE_HOLD)
        self._release = redis.register_script(lua.LEASE_RELEASE)
        self._replicas = redis.register_script(lua.REPLICAS)
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join now (so the first polls already see this replica), then renew every `HEARTBEAT`."""
        await self.beat()
        log.info("replica %s joined %d live replica(s)", self.token, len(self.members))
        self._heartbeat = asyncio.create_task(self._beat_forever())

    async def stop(self) -> None:
        """Stop the heartbeat, release the leases held and leave the membership."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        try:
            released = 0
            for kind, name in sorted(self.held):
                lease = [self._keys.lease(kind, name), self._keys.lease_holder(kind, name)]
                released += int(await self._release(keys=lease, args=[self.token]))
            self.held.clear()
            await self._replicas(keys=[self._keys.replicas], args=[self.token, ""])
        except RedisError as exc:  # leaving early is a courtesy: the leases expire on their own
            log.warning("replica %s: leases not released (they expire on their own): %s", self.token, exc)
            return
        log.info("replica %s left, %d lease(s) released", self.token, released)

    async def beat(self) -> tuple[str, ...]:
        """Renew this replica's membership and read the live replicas."""
        ms = k.ttl_ms(MEMBER_TTL, "replica membership")
        try:
            members = await self._replicas(keys=[self._keys.replicas], args=[self.token, ms])
        except RedisError as exc:
            raise StoreError(f"Redis store at {self._where}: replica heartbeat failed: {exc}") from exc
        self.members = tuple(cast("list[str]", members))
        return self.members

    def live_replicas(self) -> int:
        """The members seen at the last heartbeat, with this replica (counted before its first beat)."""
        return len({*self.members, self.token})

    async def _beat_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self.beat()
            except StoreError as exc:  # the polls report the outage; keep the last member list meanwhile
                if not failing:  # once per outage, not every HEARTBEAT
                    log.warning("%s (membership kept until Redis answers)", exc)
                failing = True
                continue
            if failing:
                log.info("replica %s: heartbeat resumed, %d live replica(s)", self.token, len(self.members))
            failing = False

    async def hold(self, kind: LeaseKind, name: str, period: timedelta) -> bool:
        """A source's lease only for its preferred replica; a destination's for whoever comes first, used
        once its takeover grace has passed when it was taken over from another replica."""
        if kind == "source" and preferred(name, {*self.members, self.token}) != self.token:
            return False
        lease = (kind, name)
        keys = [self._keys.lease(kind, name), self._keys.lease_holder(kind, name)]
        record = _HOLDER_RECORD_MS if kind == "destination" else ""
        args: list[str | int] = [self.token, k.ttl_ms(period, "lease period"), record]
        try:
            answer = int(await self._hold(keys=keys, args=args))
        except RedisError as exc:
            raise StoreError(f"Redis store at {self._where}: lease {kind} {name!r} failed: {exc}") from exc
        if not answer:
            self.held.discard(lease)
            self._settling.pop(lease, None)
            return False
        self.held.add(lease)
        if answer == _TAKEN_OVER:
            self._settling[lease] = self._clock.now() + self._grace
            log.info(
                "replica %s took over the lease of %s %r from another replica: used in %.0f s, once what "
                "that replica sent and could not record is on record",
                self.token,
                kind,
                name,
                self._grace.total_seconds(),
            )
        return self._settled(lease)

    def _settled(self, lease: tuple[LeaseKind, str]) -> bool:
        """Whether a lease this replica holds may be used now: its takeover grace (if any) has passed."""
        until = self._settling.get(lease)
        return until is None or self._clock.now() >= until
