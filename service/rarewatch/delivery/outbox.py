"""The outbox: delivers pending deliveries from the store, with retries, backoff and dead letters.

The scheduler calls `Outbox.flush()` periodically. One flush takes the due deliveries (oldest first, at
most `batch`), sends them concurrently across destinations but one at a time within a destination (one
task per destination, so a slow or failing destination never holds up the others), and records every
outcome in the store:

- success: `mark_delivered`;
- retryable failure: `mark_failed`, next attempt after `schedule[n]` (n = attempts made so far; the last
  value repeats) with ± `jitter`, or after the receiver's Retry-After if that is longer;
- non-retryable failure, or a retryable one for a delivery older than `max_age`: `mark_dead`
  (a dead letter, kept with its last error; `rarewatch` can retry it later);
- `disable=True` (HTTP 410): `mark_dead`, and the destination is disabled for the rest of the process:
  its later deliveries are dead-lettered without sending.

Guarantees. A delivery is recorded as delivered only after `send` returned. A crash (or a store
failure) between `send` returning and `mark_delivered` means the delivery is sent again later: delivery
is at-least-once, and receivers deduplicate on `webhook-id` (the alert id, identical on every retry).

A failing destination is not hammered: after a Retry-After, or after `FAILURES_BEFORE_DEFERRING`
retryable failures in a row, its remaining due deliveries in this flush are not attempted but
rescheduled to the same next attempt (error "not attempted: …"). That bounds a flush to a few timeouts
per destination, while one "poison" alert that a receiver always rejects with a 5xx cannot hold up the
alerts behind it for long. Rescheduling goes through `defer`: nothing was sent, so no attempt counts.

A delivery whose destination is no longer configured is kept pending, never dropped: it is reported
and parked (`defer`, due again after `PARK_UNCONFIGURED`) so that a removed destination's backlog
cannot fill every batch and starve the configured ones. Put the destination back, or purge its records.

Threads. A notifier that can thread (`ThreadingNotifier`, i.e. Slack's Web API) returns a receipt (the
message ts), stored with the delivery; an `update` alert (a later report of a known story) is sent with
the story's first alert and that receipt, so it lands as a reply in the first message's thread.

Digests. Deliveries created with `digest=True` (a route's `digest: hourly|daily`) are folded, per
destination, into one digest message when they fall due. The storm guard does the same on the fly: a
destination with `max_per_hour` never gets more single messages than that in a rolling hour; the
excess of a flush is folded into one digest message. Every folded delivery is recorded on its own.

Store errors. When recording fails with `StoreError`, the destination's task stops, the other tasks
finish the send they have in flight (abandoning it would only cause a re-send) and record it if they
can, but start no new one; then `flush` raises the first `StoreError`. Nothing is lost: unrecorded
deliveries are still pending in the store.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rarewatch.clock import Clock
from rarewatch.delivery.base import Notifier, ThreadingNotifier
from rarewatch.delivery.payload import digest_alert
from rarewatch.errors import DeliveryError, StoreError
from rarewatch.models import Alert, AlertKind, Delivery
from rarewatch.store.base import Store

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
)
FAILURES_BEFORE_DEFERRING = 3
PARK_UNCONFIGURED = timedelta(hours=1)
STORM_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class FlushReport:
    """What one flush did. `errors` maps a destination to its messages (`"<alert id>: <error>"`)."""

    delivered: int = 0
    failed: int = 0  # retryable failures, rescheduled
    deferred: int = 0  # not attempted after their destination kept failing; rescheduled with it
    dead: int = 0  # dead-lettered in this flush
    errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    disabled: Mapping[str, str] = field(default_factory=dict)  # every destination disabled so far -> why
    unconfigured: Mapping[str, int] = field(default_factory=dict)  # destination -> deliveries kept pending


@dataclass
class _Tally:
    """The outcome counts of one destination's task."""

    delivered: int = 0
    failed: int = 0
    deferred: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Streak:
    """Retryable failures in a row within one flush, and when the destination is due again."""

    count: int = 0
    deferring: bool = False
    error: str = ""
    next_attempt: datetime | None = None


class Outbox:
    """Owns retries and backoff for every destination. See the module docstring for the rules.

    Flushes run one at a time, however many callers ask (a poll that raised alerts and the periodic
    flush): two overlapping flushes could send the same delivery twice.
    """

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        *,
        clock: Clock,
        max_age: timedelta = timedelta(hours=72),
        schedule: Sequence[timedelta] = DEFAULT_SCHEDULE,
        jitter: float = 0.1,
        rng: random.Random | None = None,
        batch: int = 100,
        max_per_hour: Mapping[str, int] | None = None,
    ) -> None:
        if not schedule:
            raise ValueError("the retry schedule needs at least one delay")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._store = store
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._max_age = max_age
        self._schedule = tuple(schedule)
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._batch = batch
        self._max_per_hour = dict(max_per_hour or {})
        self._disabled: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def disabled(self) -> Mapping[str, str]:
        """Destinations disabled in this process (by an HTTP 410), with the error that disabled them."""
        return dict(self._disabled)

    async def flush(self) -> FlushReport:
        """Attempt every due delivery once (at most `batch`) and record the outcomes."""
        async with self._lock:
            return await self._flush()

    async def drain(self) -> None:
        """Wait until a flush in progress (if any) has finished."""
        async with self._lock:
            pass

    async def _flush(self) -> FlushReport:
        now = self._clock.now()
        due = await self._store.due_deliveries(now, limit=self._batch)
        queues: dict[str, list[Delivery]] = {}
        for delivery in due:
            queues.setdefault(delivery.destination, []).append(delivery)
        unconfigured = {d: len(q) for d, q in queues.items() if d not in self._notifiers}
        for dest in unconfigured:
            await self._park(queues.pop(dest))
        alerts = await self._load_alerts([d for q in queues.values() for d in q])
        stop = asyncio.Event()  # set on a StoreError: no new sends anywhere
        results = await asyncio.gather(
            *(self._drain(self._notifiers[d], q, alerts, stop) for d, q in queues.items()),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise next((f for f in failures if isinstance(f, StoreError)), failures[0])
        tallies = dict(zip(queues, (r for r in results if isinstance(r, _Tally)), strict=True))
        return self._report(tallies, unconfigured)

    async def _park(self, queue: list[Delivery]) -> None:
        now = self._clock.now()
        dest = queue[0].destination
        log.warning("%d pending deliveries for unconfigured destination %r kept pending", len(queue), dest)
        for delivery in queue:
            await self._store.defer(delivery.alert_id, dest, now + PARK_UNCONFIGURED)

    async def _load_alerts(self, due: Sequence[Delivery]) -> dict[str, Alert | None]:
        alerts: dict[str, Alert | None] = {}
        for delivery in due:
            if delivery.alert_id not in alerts:
                alerts[delivery.alert_id] = await self._store.get_alert(delivery.alert_id)
        return alerts

    async def _drain(
        self,
        notifier: Notifier,
        queue: list[Delivery],
        alerts: Mapping[str, Alert | None],
        stop: asyncio.Event,
    ) -> _Tally:
        """Deliver one destination's due deliveries in order; fold digests and a storm into one message."""
        tally, streak = _Tally(), _Streak()
        singles, folded = await self._split(notifier.name, queue)
        try:
            for delivery in singles:
                if stop.is_set():
                    break
                await self._process(notifier, delivery, alerts.get(delivery.alert_id), tally, streak)
            if folded and not stop.is_set():
                await self._send_digest(notifier, folded, alerts, tally, streak)
        except StoreError:
            stop.set()
            raise
        return tally

    async def _split(self, dest: str, queue: list[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """Split deliveries sent alone from those folded into a digest (held ones, a storm's excess)."""
        singles = [d for d in queue if not d.digest]
        folded = [d for d in queue if d.digest]
        limit = self._max_per_hour.get(dest)
        if limit is not None and singles and dest not in self._disabled:
            since = self._clock.now() - STORM_WINDOW
            room = max(0, limit - await self._store.delivered_since(dest, since))
            if len(singles) > room:
                log.warning("storm guard: %d alerts for %r folded into a digest", len(singles) - room, dest)
                singles, folded = singles[:room], singles[room:] + folded
        return singles, folded

    async def _send_digest(
        self,
        notifier: Notifier,
        folded: list[Delivery],
        alerts: Mapping[str, Alert | None],
        tally: _Tally,
        streak: _Streak,
    ) -> None:
        """Send one digest for `folded` and record each folded delivery with the outcome."""
        present = [d for d in folded if alerts.get(d.alert_id) is not None]
        for delivery in folded:
            if alerts.get(delivery.alert_id) is None:
                await self._dead(delivery, f"alert {delivery.alert_id} is missing from the history", tally)
        if not present:
            return
        if notifier.name in self._disabled or streak.deferring:
            for delivery in present:
                await self._process(notifier, delivery, alerts[delivery.alert_id], tally, streak)
            return
        children = [a for d in present if (a := alerts[d.alert_id]) is not None]
        digest = digest_alert(children, self._clock.now(), notifier.name)
        try:
            await notifier.send(digest)
        except DeliveryError as exc:
            for delivery in present:
                await self._failed(delivery, exc, tally, streak)
            return
        for delivery in present:
            await self._store.mark_delivered(delivery.alert_id, delivery.destination, self._clock.now())
            tally.delivered += 1

    async def _process(
        self, notifier: Notifier, delivery: Delivery, alert: Alert | None, tally: _Tally, streak: _Streak
    ) -> None:
        dest = delivery.destination
        if dest in self._disabled:
            await self._dead(delivery, f"destination disabled ({self._disabled[dest]})", tally)
        elif alert is None:
            await self._dead(delivery, f"alert {delivery.alert_id} is missing from the history", tally)
        elif streak.deferring:
            await self._defer(delivery, streak, tally)
        else:
            try:
                receipt = await self._send(notifier, alert, dest)
            except DeliveryError as exc:
                await self._failed(delivery, exc, tally, streak)
                return
            streak.count = 0
            await self._store.mark_delivered(delivery.alert_id, dest, self._clock.now(), receipt)
            tally.delivered += 1

    async def _send(self, notifier: Notifier, alert: Alert, dest: str) -> str | None:
        """Send one alert; a threading notifier gets the story's first message to reply under."""
        if not isinstance(notifier, ThreadingNotifier):
            await notifier.send(alert)
            return None
        first, reply_to = None, None
        if alert.kind is AlertKind.UPDATE:
            first = await self._store.get_alert(alert.story)
            root = await self._store.get_delivery(alert.story, dest)
            reply_to = root.receipt if root is not None else None
        return await notifier.send_threaded(alert, first=first, reply_to=reply_to)

    async def _failed(self, delivery: Delivery, exc: DeliveryError, tally: _Tally, streak: _Streak) -> None:
        now, error, dest = self._clock.now(), str(exc), delivery.destination
        if exc.disable:
            self._disabled[dest] = error
            log.error("destination %r disabled: %s", dest, error)
            await self._dead(delivery, error, tally)
        elif not exc.retryable:
            await self._dead(delivery, error, tally)
        elif self._expired(delivery, now):
            await self._dead(delivery, f"{error} (gave up: older than {_hours(self._max_age)})", tally)
        else:
            next_attempt = now + self._delay(delivery.attempts, exc.retry_after)
            await self._store.mark_failed(delivery.alert_id, dest, error, next_attempt, now)
            tally.failed += 1
            tally.errors.append(f"{delivery.alert_id}: {error}")
            log.warning(
                "delivery of %s to %r failed (retry at %s): %s", delivery.alert_id, dest, next_attempt, error
            )
            streak.count += 1
            streak.error, streak.next_attempt = error, next_attempt
            streak.deferring = exc.retry_after is not None or streak.count >= FAILURES_BEFORE_DEFERRING

    async def _defer(self, delivery: Delivery, streak: _Streak, tally: _Tally) -> None:
        now = self._clock.now()
        error = f"not attempted: an earlier delivery to this destination failed: {streak.error}"
        if self._expired(delivery, now) or streak.next_attempt is None:
            await self._dead(delivery, error, tally)
            return
        # Nothing was sent: move the attempt, don't count one.
        await self._store.defer(delivery.alert_id, delivery.destination, streak.next_attempt)
        tally.deferred += 1

    async def _dead(self, delivery: Delivery, error: str, tally: _Tally) -> None:
        await self._store.mark_dead(delivery.alert_id, delivery.destination, error, self._clock.now())
        tally.dead += 1
        tally.errors.append(f"{delivery.alert_id}: {error}")
        log.error("delivery of %s to %r dead-lettered: %s", delivery.alert_id, delivery.destination, error)

    def _expired(self, delivery: Delivery, now: datetime) -> bool:
        return now - delivery.created > self._max_age

    def _delay(self, attempts_before: int, retry_after: float | None) -> timedelta:
        """The wait before the next attempt, after the failure of attempt number `attempts_before + 1`.

        `schedule[0]` is the wait before the first attempt (0s: immediately), so after n failed attempts
        the wait is `schedule[n]`, the last value repeating. A Retry-After longer than that wins, capped
        at `max_age` (past it the delivery is dead-lettered anyway; also keeps datetimes in range).
        """
        base = self._schedule[min(attempts_before + 1, len(self._schedule) - 1)].total_seconds()
        jittered = base * (1 + self._rng.uniform(-self._jitter, self._jitter))
        hinted = min(retry_after or 0.0, self._max_age.total_seconds())
        return timedelta(seconds=max(jittered, hinted))

    def _report(self, tallies: Mapping[str, _Tally], unconfigured: Mapping[str, int]) -> FlushReport:
        t = tallies.values()
        return FlushReport(
            delivered=sum(x.delivered for x in t),
            failed=sum(x.failed for x in t),
            deferred=sum(x.deferred for x in t),
            dead=sum(x.dead for x in t),
            errors={d: tuple(x.errors) for d, x in tallies.items() if x.errors},
            disabled=dict(self._disabled),
            unconfigured=dict(unconfigured),
        )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"
