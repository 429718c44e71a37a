"""Leases: which of several replicas on one store polls a source, or drains a destination's outbox.

A replica holds a lease by writing its random token under the lease's key with a PX TTL (Redis time), in
one Lua script that takes a free lease or extends the replica's own (take-or-extend); only the holder
extends it or deletes it (compare-and-delete), both scripts comparing the token first, so a replica never
extends or frees a lease that expired and was taken by another.
A replica that dies loses its leases within one lease period; SIGTERM releases them at once.

Sources are spread across the live replicas by rendezvous hashing (`policies.placement`): each replica
keeps its membership in the `replicas` sorted set alive (a heartbeat every `HEARTBEAT`, membership lasting
`MEMBER_TTL`) and takes a source's lease only when it is that source's preferred replica; when a replica
dies its membership lapses, the sources it preferred move to the others, and each is polled again once its
lease (one poll interval) has run out. So a source is fetched by one replica per interval, plus at most one
takeover after a membership change.

A destination's lease taken over from another replica is held but not used for `TAKEOVER_GRACE`: `hold`
answers False (while extending it) until the grace has passed. The previous holder may have sent a delivery
as the store went away and be waiting to record it (`delivery.outbox`): it records it at its next try, a few
seconds after the store answers again, before it asks for the lease; had the new holder read it as due at
once, it would have sent it a second time. A takeover is known by the holder record (`lease-holder:...`,
naming the last holder, kept `HOLDER_RECORD` past the lease): a lease released on SIGTERM, or first taken,
or taken back by its own last holder, is used at once.

Correctness never rests on a lease alone: a paused process can outlive its lease, so claims stay atomic
and deliveries keep their stable `webhook-id`. The SQLite store is used by one process, which needs no
leases: `NoLeases` grants every one. The Redis side is `redis_leases.RedisLeases`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Protocol

LeaseKind = Literal["source", "destination"]

DESTINATION_LEASE = timedelta(seconds=15)  # a destination's outbox lease, extended on every pass
# How long a destination lease taken over from another replica waits before it is used: longer than the
# previous holder needs to record what it sent as the store went away once the store answers again (its
# worker's store retry, 5 s, after a call that failed, which takes at most the store's 5 s timeout).
TAKEOVER_GRACE = timedelta(seconds=12)
HOLDER_RECORD = timedelta(days=7)  # how long the record of a destination lease's last holder outlives it


class Leases(Protocol):
    """The lease capability of a store: whether this replica should do a piece of work now."""

    async def start(self) -> None:
        """Join the replicas (and keep the membership alive until `stop`)."""

    async def stop(self) -> None:
        """Release every lease this replica holds (compare-and-delete) and leave. Idempotent."""

    async def hold(self, kind: LeaseKind, name: str, period: timedelta) -> bool:
        """Whether this replica should do `name` now: True when it holds that lease for `period` from now
        (taken, or extended because it already held it), and, for a destination taken over from another
        replica, `TAKEOVER_GRACE` has passed since. Raises `StoreError` when the store is away."""

    def live_replicas(self) -> int:
        """The live replicas on the store at the last heartbeat, this one included (for the metrics)."""


class NoLeases:
    """One process on its own store (SQLite): every lease is granted."""

    async def start(self) -> None:
        """Nothing to join."""

    async def stop(self) -> None:
        """Nothing to release."""

    async def hold(self, kind: LeaseKind, name: str, period: timedelta) -> bool:
        """Always True."""
        return True

    def live_replicas(self) -> int:
        """This process alone."""
        return 1
