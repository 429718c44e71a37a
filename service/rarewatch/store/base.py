"""The `Store` protocol: everything rarewatch persists, behind one small async interface.

Both implementations (SQLite, the embedded default; Redis) pass one contract suite
(`tests/integration/test_store_contract.py`). Key and table names live in `store/keys.py` only.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

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


@dataclass(frozen=True, slots=True)
class StoreMarker:
    """The identity of one store's memory: written when the store is first initialised, held by every
    process using it, and checked on every poll. A missing or different marker means the store was emptied
    or replaced (a zero-byte SQLite file, Redis FLUSHALL, another server): see `rarewatch.store_identity`.

    `previous` names the marker this one replaced (None for a store's first marker), so the processes that
    still hold the old one can tell a re-initialisation another process already announced.
    """

    id: str
    created: datetime
    previous: str | None = None
    after_loss: bool = False  # written because the store had lost its memory

    @classmethod
    def new(cls, now: datetime, previous: str | None = None, *, after_loss: bool = False) -> StoreMarker:
        """A fresh marker with a random id."""
        return cls(id=secrets.token_hex(8), created=now, previous=previous, after_loss=after_loss)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created.isoformat(),
            "previous": self.previous,
            "after_loss": self.after_loss,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreMarker:
        previous = data.get("previous")
        return cls(
            id=str(data["id"]),
            created=datetime.fromisoformat(str(data["created"])),
            previous=str(previous) if previous is not None else None,
            after_loss=bool(data.get("after_loss", False)),
        )


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """One destination's outbox depth: pending and dead deliveries, and when the oldest pending one was
    created (None: nothing pending). For the metrics (`rarewatch_outbox_*`)."""

    pending: int = 0
    dead: int = 0
    oldest_pending: datetime | None = None


# The identity marker the current asyncio task's writes must find (see `checking_marker`); unset: the
# store-wide one (`Store.expect_marker`).
_TASK_MARKER: ContextVar[str | None] = ContextVar("rarewatch_task_marker")


@contextlib.contextmanager
def checking_marker(marker_id: str | None) -> Iterator[None]:
    """Within this block, in this asyncio task only, every marker-checked write (alert claims, source
    state) checks `marker_id` rather than the store-wide expected marker. A poll runs in the marker it
    began with: when another poll of the same process notices a loss and adopts the new marker meanwhile,
    this poll's writes, planned on what the store held before, are refused instead of passing the new
    marker's check (its claims would re-send old stories, its source state would make the next poll of
    an emptied store look like a later one). None: no check."""
    token = _TASK_MARKER.set(marker_id)
    try:
        yield
    finally:
        _TASK_MARKER.reset(token)


def task_marker(store_wide: str | None) -> str | None:
    """The marker the current task's writes must find: `checking_marker`'s, else `store_wide`."""
    return _TASK_MARKER.get(store_wide)


@dataclass(frozen=True, slots=True)
class ItemRetention:
    """How long, and how many, seen items a store keeps (`store_items:` in the configuration): each for
    `keep` after it was first recorded, and never more than the newest `max` (0: none are kept)."""

    keep: timedelta = timedelta(days=30)
    max: int = 100_000


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One claim of a batch (`Store.claim_many`): the arguments of one `Store.claim` call but `ttl` and
    `now`, which the batch shares."""

    keys: tuple[str, ...]
    alert: Alert | None = None
    destinations: tuple[str, ...] = ()
    held_until: Mapping[str, datetime] | None = None
    remember: tuple[str, ...] = ()


async def claim_one(store: Store, request: ClaimRequest, ttl: timedelta, now: datetime) -> bool:
    """`Store.claim` with the arguments a `ClaimRequest` holds."""
    return await store.claim(
        request.keys,
        ttl,
        now,
        request.alert,
        request.destinations,
        held_until=request.held_until,
        remember=request.remember,
    )


async def claim_in_turn(store: Store, requests: Sequence[ClaimRequest], ttl: timedelta, now: datetime) -> int:
    """`Store.claim_many` as one `claim` after another: for a store whose claim is already one cheap round
    trip (Redis: one script), batching them saves little."""
    for done, request in enumerate(requests):
        if not await claim_one(store, request, ttl, now):
            return done
    return len(requests)


def expired(silence: Silence, now: datetime) -> Silence:
    """`silence` ended at `now`, unless it had ended already (both stores expire silences this way)."""
    return silence if silence.ends <= now else replace(silence, ends=max(now, silence.starts))


def by_creation(silences: Iterable[Silence]) -> list[Silence]:
    """Silences oldest first (by creation, then id): the order every store lists them in."""
    return sorted(silences, key=lambda s: (s.created, s.id))


class Store(Protocol):
    """Persistent state. Every method may raise `StoreError` when the backend is unreachable."""

    found_blank: bool
    """True when `open()` found the store's file present but empty (a zero-byte SQLite file): its memory
    was lost while no process held it. Always False for Redis, where an empty server looks like a new one."""

    async def open(self) -> None:
        """Connect and migrate the schema forward. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    def expect_marker(self, marker_id: str | None) -> None:
        """From now on, refuse (with `StoreError`) any alert claim or source-state write once the store's
        identity marker is not `marker_id` (None: no check; `checking_marker` overrides it for one task).
        Redis checks it inside the claim and write scripts; SQLite needs no check."""

    async def get_marker(self) -> StoreMarker | None:
        """The store's identity marker, or None when it has none (new, emptied or replaced). One cheap read;
        a SQLite store first reconnects when its file was replaced or emptied under it."""

    async def create_marker(self, marker: StoreMarker) -> StoreMarker:
        """Write `marker` unless the store already has one, atomically; returns the marker now stored (ours,
        or the one another process wrote first)."""

    async def reset_marker(self, marker: StoreMarker) -> None:
        """Replace the store's marker unconditionally (`rarewatch store init`)."""

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
        """Claim a story once, atomically.

        Returns True when none of `keys` was claimed within its TTL: then all keys are claimed for `ttl`
        (their owner is `alert.id`, or None without an alert) and, in the same atomic step, `alert` is
        recorded in the history and one pending delivery per destination is created, due at `now`.
        A destination listed in `held_until` gets a delivery due at that time with `digest=True` (it is
        folded into a digest). Returns False, changing nothing, when any key is held.
        With `alert=None` the keys are only marked as seen (first poll of a new source).
        When the claim succeeds, each key of `remember` is also indexed to `alert.id` for `ttl` where it is
        not already held (exactly `remember()`'s semantics), in the same atomic step; when it fails, nothing
        is indexed. `remember` needs an `alert` (ValueError otherwise).
        """

    async def claim_many(self, requests: Sequence[ClaimRequest], ttl: timedelta, now: datetime) -> int:
        """Make each claim of `requests` in order, each exactly as `claim` would (atomic, with its alert,
        deliveries and remembered keys), and stop at the first one that fails: it and those after it change
        nothing. Returns how many were made (a prefix of `requests`). A later request sees the keys the
        earlier ones claimed and remembered. SQLite makes the whole batch in one transaction (one worker
        round trip instead of one per claim); the claims stay atomic one by one either way."""

    async def held(self, keys: Sequence[str], now: datetime) -> dict[str, str | None]:
        """Which of `keys` are held at `now` (claimed or remembered, not expired), each with its owner."""

    async def remember(self, keys: Sequence[str], owner: str, ttl: timedelta, now: datetime) -> None:
        """Index `keys` to `owner` for `ttl` where they are not already held (never blocks a claim's keys:
        used for near-duplicate title signatures). Keys already held keep their owner."""

    async def count_in_window(self, key: str, window: timedelta, now: datetime) -> int:
        """Add one to the counter `key` for the fixed window containing `now` and return the new count
        (per-rule throttling). Counters expire after their window."""

    async def get_source_state(self, source: str) -> SourceState | None:
        """The stored state of a source, or None if it was never polled."""

    async def put_source_state(self, source: str, state: SourceState) -> None:
        """Replace the stored state of a source."""

    async def get_marker_and_source_state(self, source: str) -> tuple[StoreMarker | None, SourceState | None]:
        """`get_marker()` and `get_source_state(source)` in one round trip (what a poll begins with): the
        marker as `get_marker` reads it (a SQLite store first reconnects when its file was replaced or
        emptied), the state read after it."""

    async def put_source_state_if_marker(self, source: str, state: SourceState, marker_id: str) -> bool:
        """Replace the stored state of a source only if the store's identity marker is still `marker_id`,
        atomically, in one round trip; False (nothing written) when it is not, or is gone (a SQLite store
        first reconnects when its file was replaced or emptied, as `get_marker` does). What a poll that
        claims nothing ends with: the identity check after its fetch and its state write in one."""

    async def get_alert(self, alert_id: str) -> Alert | None:
        """One alert from the history."""

    async def get_alerts(self, alert_ids: Sequence[str]) -> dict[str, Alert]:
        """The alerts of `alert_ids` that the history holds, by id, in one read (`get_alert` of each)."""

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """The newest alerts first."""

    async def due_deliveries(
        self, now: datetime, limit: int = 100, destination: str | None = None
    ) -> list[Delivery]:
        """Pending deliveries due at `now` (of one destination if given), oldest first."""

    async def deliveries(
        self, status: DeliveryStatus | None = None, destination: str | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Delivery records filtered by status and destination, oldest first."""

    async def get_delivery(self, alert_id: str, destination: str) -> Delivery | None:
        """One delivery record, or None."""

    async def delivered_since(self, destination: str, since: datetime) -> int:
        """How many deliveries to `destination` were recorded delivered at or after `since` (storm guard)."""

    async def mark_delivered(
        self, alert_id: str, destination: str, now: datetime, receipt: str | None = None
    ) -> None:
        """Record a successful delivery (attempts + 1) and the destination's receipt (e.g. a Slack ts).
        Never called for a failed attempt."""

    async def mark_delivered_many(self, deliveries: Sequence[tuple[str, str]], now: datetime) -> None:
        """`mark_delivered(alert_id, destination, now)` (no receipt) of each (alert id, destination) of
        `deliveries`: a batch the outbox sent at once. SQLite records them in one transaction (one worker
        round trip), Redis one after another."""

    async def defer(self, alert_id: str, destination: str, next_attempt: datetime) -> None:
        """Move a pending delivery's next attempt without counting an attempt (nothing was sent)."""

    async def mark_failed(
        self, alert_id: str, destination: str, error: str, next_attempt: datetime, now: datetime
    ) -> None:
        """Record a failed attempt (attempts + 1) and when to try again."""

    async def mark_dead(self, alert_id: str, destination: str, error: str, now: datetime) -> None:
        """Give up on a delivery (dead letter, attempts + 1); it stays listed with its last error."""

    async def retry(self, now: datetime, destination: str | None = None, alert_id: str | None = None) -> int:
        """Make dead (and pending) deliveries due again at `now` (only those of `destination`, of
        `alert_id`, when given); returns how many."""

    async def purge(self, status: DeliveryStatus, destination: str | None = None) -> int:
        """Delete delivery records of a status; returns how many."""

    async def forget_deliveries(self, status: DeliveryStatus, before: datetime, limit: int = 1000) -> int:
        """Delete at most `limit` delivery records of `status` created before `before`, oldest first (the
        outbox retention, `policies.retention`), with the alerts only they kept (out of the history);
        returns how many. Only delivered and dead records can be forgotten: `ValueError` for pending."""

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        """Per destination with any pending or dead delivery: how many of each, and the oldest pending's
        creation time (deliveries held for a digest are pending too)."""

    async def record_unrouted(self, alert: Alert, now: datetime) -> None:
        """Keep `alert`, which no route took, among the unrouted alerts (the newest `UNROUTED_LIMIT`;
        Redis forgets them `UNROUTED_TTL` after the last one was recorded). Idempotent per alert id."""

    async def unrouted(self, limit: int = 50) -> list[Alert]:
        """The unrouted alerts, newest first."""

    async def unrouted_ids(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of `alert_ids` are unrouted alerts."""

    async def get_unrouted(self, alert_id: str) -> Alert | None:
        """One unrouted alert, or None (unknown, sent since, or forgotten)."""

    async def drop_unrouted(self, alert_id: str) -> bool:
        """Forget an unrouted alert (it was sent); returns whether it was listed."""

    async def record_items(self, items: Sequence[SeenRecord], now: datetime) -> int:
        """Keep each of `items` whose item id is not kept yet (a kept one keeps its first record), then
        forget those older than the retention's `keep` (before `now`) and beyond its `max`. Returns how
        many were new. A `SeenListing` is kept as its text and read back as the `SeenItem` it stands for."""

    async def seen_items(self, since: datetime, limit: int = 100_000) -> list[SeenItem]:
        """The kept items fetched at or after `since`, newest first, at most `limit`."""

    async def add_silence(self, silence: Silence, now: datetime) -> None:
        """Store `silence` (replacing one with its id), and forget silences that ended more than
        `SILENCE_KEEP` before `now`."""

    async def silences(self) -> list[Silence]:
        """Every silence kept, active or not, oldest first (by creation, then id)."""

    async def expire_silence(self, silence_id: str, now: datetime) -> Silence | None:
        """End a silence at `now` (one that already ended keeps its end); returns it as stored now, or None
        when there is no such silence."""

    async def record_vote(self, vote: Vote) -> None:
        """Keep `vote`, replacing the same voter's (`vote.who`) earlier vote on that alert: the vote
        recorded last wins. Then forget votes cast more than `VOTE_KEEP` before `vote.at`, and those
        beyond the newest `VOTE_LIMIT`."""

    async def votes(self, since: datetime, limit: int = 100_000) -> list[Vote]:
        """The votes cast at or after `since`, oldest first (by time, then alert id, then voter), at most
        `limit` (the newest of them when more were cast)."""
