"""The outbox: delivers pending deliveries from the store, with retries, backoff, a circuit breaker per
destination, and dead letters.

Each destination is a *lane* of its own: its own lock, its own circuit breaker (`breaker.Breaker`), its
own Retry-After pause and its own pacing (the notifier's, e.g. Slack's one message per second per
channel). `flush_destination(name)` makes one pass over that destination's due deliveries (oldest first,
at most `batch`), one at a time, or as one batch to a notifier that takes them so (`BatchNotifier`: the
jsonl destination; see "Batches" below); in the service, `workers.DeliveryWorkers` runs one asyncio task per
destination that calls it whenever deliveries are added and when its next retry, pause or probe falls
due, so a slow or failing destination never delays another. `flush()` makes one pass of every lane
concurrently (tests, `once`), and `drain_due()` repeats passes until nothing due is left to attempt.

Every outcome is recorded in the store:

- success: `mark_delivered`;
- retryable failure, *and any unexpected exception* raised while sending one delivery (a notifier bug, a
  poison alert): `mark_failed`, a failed attempt of that delivery only; next attempt after `schedule[n]`
  (n = attempts made so far; the last value repeats) with ± `jitter`, or exactly after the receiver's
  Retry-After when it gave one (capped at `max_retry_after`, at least `MIN_RETRY_DELAY`);
- non-retryable failure, or a retryable one for a delivery older than `max_age`: `mark_dead`
  (a dead letter, kept with its last error; `rarewatch outbox retry` makes it due again);
- `disable=True` (HTTP 410): `mark_dead`, and the destination is disabled for the rest of the process:
  its later deliveries are dead-lettered without sending.

A flaky destination (failures among successes) only costs the failed deliveries their own retries; the
others keep flowing. A destination that fails `breaker_threshold` times in a row opens its breaker: its
due deliveries wait, unsent and with no attempt counted, until the cool-down has passed; then one
delivery is sent as a probe (the oldest due one, or if none is due the oldest pending one: the
destination, not the delivery, was the problem). The probe's success closes the breaker and makes every
pending delivery of the destination due at once, so a receiver that was down gets its backlog as soon as
it is back, not on each delivery's stretched backoff. A Retry-After also pauses the destination's lane
until then (what a 429 asks for). Paused and open lanes report their waiting deliveries as `deferred`.

Guarantees. A delivery is recorded as delivered only after `send` returned. When the store fails to record
it (Redis restarting), the process remembers the delivery as sent and records it at the start of the
destination's next pass, before reading what is due and before asking for the destination's lease (another
replica may hold it by then), and its worker tries that pass again every few seconds until the store answers
(`workers._STORE_RETRY`), so a store outage alone does not re-send. With several replicas, a replica that
takes the destination's lease over from another does not use it for `store.leases.TAKEOVER_GRACE` (longer
than that retry), so the sender has put such a delivery on record before the new holder reads what is due;
a sender that crashed before it could record it is the crash case below. A crash
between `send` returning and `mark_delivered` means the delivery is sent again later: delivery is
at-least-once, and receivers deduplicate on `webhook-id` (the alert id, identical on every retry).
Passes of one lane never overlap (its lock), so the same delivery is never sent twice at once; with several
replicas on one Redis, a lane's pass goes ahead only in the replica holding the destination's lease
(`store.leases`, `DESTINATION_LEASE`, extended on every pass), so one replica drains a destination at a time.

Batches. A `BatchNotifier` gets the due deliveries of a pass in a row whose alert is in the history at
once (`send_many`), while its breaker is closed (a half-open breaker's probe is one delivery); they are
recorded as delivered together (`Store.mark_delivered_many`) after `send_many` returned, so a crash in
between sends that batch again after the restart (the jsonl destination then skips the lines its file
already ends with, so each alert is still one line). A batch that fails was not sent (the notifier
undoes any part of it): its deliveries are then sent one at a time for the rest of the pass, each
failure recorded, retried and counted by the breaker as before.

A delivery whose destination is no longer configured is kept pending, never dropped: it is reported
and parked (`defer`, due again after `PARK_UNCONFIGURED`). Put the destination back, or purge its records.

Threads. A notifier that can thread (`ThreadingNotifier`, i.e. Slack's Web API) returns a receipt (the
message ts), stored with the delivery; an `update` alert (a later report of a known story) is sent with
the story's first alert and that receipt, so it lands as a reply in the first message's thread.

Digests. Deliveries created with `digest=True` (a route's `digest: hourly|daily`) are folded, per
destination, into one digest message when they fall due. The storm guard does the same on the fly: a
destination with `max_per_hour` never gets more single messages than that in a rolling hour; the
excess of a pass is folded into one digest message. Every folded delivery is recorded on its own.

Store errors. When recording fails with `StoreError`, the lane's pass stops; in `flush()` the other
lanes finish the send they have in flight and record it if they can, but start no new one; then the
`StoreError` is raised. Nothing is lost: unrecorded deliveries are still pending in the store.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rarewatch.clock import Clock
from rarewatch.delivery.base import BatchNotifier, Notifier, ThreadingNotifier
from rarewatch.delivery.breaker import Breaker, BreakerState
from rarewatch.delivery.payload import digest_alert
from rarewatch.errors import DeliveryError, StoreError
from rarewatch.logs import log_delivery
from rarewatch.models import Alert, AlertKind, Delivery, DeliveryStatus
from rarewatch.policies.retention import OutboxRetention, forget_before
from rarewatch.store.base import Store
from rarewatch.store.leases import DESTINATION_LEASE, Leases, NoLeases

log = logging.getLogger(__name__)

# Short steps first: a flaky destination (a failure now and then) costs a delivery seconds, not minutes;
# a destination that is down is the breaker's business (it stops attempts after a run of failures).
DEFAULT_SCHEDULE: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (0, 1, 2, 3, 5, 10, 30, 60, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
)
PARK_UNCONFIGURED = timedelta(hours=1)
STORM_WINDOW = timedelta(hours=1)
MIN_RETRY_DELAY = timedelta(seconds=1)  # a Retry-After of 0 must not spin a lane
DEFAULT_MAX_RETRY_AFTER = timedelta(hours=1)
DEFAULT_BREAKER_THRESHOLD = 10
DEFAULT_BREAKER_COOLDOWN = timedelta(seconds=10)
DEFAULT_BREAKER_MAX_COOLDOWN = timedelta(seconds=30)  # a receiver that is back is probed within 30 s
_RELEASE_LIMIT = 100_000  # pending deliveries of one destination made due when its breaker closes


@dataclass(frozen=True)
class FlushReport:
    """What one pass did. `errors` maps a destination to its messages (`"<alert id>: <error>"`)."""

    delivered: int = 0
    failed: int = 0  # failed attempts, rescheduled
    deferred: int = 0  # due but not attempted: the destination is paused (Retry-After) or its circuit open
    dead: int = 0  # dead-lettered in this pass
    errors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    disabled: Mapping[str, str] = field(default_factory=dict)  # every destination disabled so far -> why
    unconfigured: Mapping[str, int] = field(default_factory=dict)  # destination -> deliveries kept pending
    attempted: int = 0  # sends made (a digest counts once)
    full: bool = False  # some destination had `batch` due deliveries: more may be due
    # destination -> outcome (delivered, failed, dead) -> count, for the per-destination metrics
    by_destination: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __add__(self, other: FlushReport) -> FlushReport:
        errors = {
            d: tuple(self.errors.get(d, ())) + tuple(other.errors.get(d, ()))
            for d in {*self.errors, *other.errors}
        }
        unconfigured = dict(self.unconfigured)
        for d, n in other.unconfigured.items():
            unconfigured[d] = unconfigured.get(d, 0) + n
        return FlushReport(
            delivered=self.delivered + other.delivered,
            failed=self.failed + other.failed,
            deferred=self.deferred + other.deferred,
            dead=self.dead + other.dead,
            errors=errors,
            disabled={**self.disabled, **other.disabled},
            unconfigured=unconfigured,
            attempted=self.attempted + other.attempted,
            full=self.full or other.full,
            by_destination=_merge_counts(self.by_destination, other.by_destination),
        )


@dataclass
class _Tally:
    """The outcome counts of one lane's pass."""

    delivered: int = 0
    failed: int = 0
    deferred: int = 0
    dead: int = 0
    attempted: int = 0
    full: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class _Lane:
    """One destination's own state: its lock, breaker, Retry-After pause and the retries it scheduled."""

    breaker: Breaker
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    paused_until: datetime | None = None
    retries: list[datetime] = field(default_factory=list)  # heap of next attempts scheduled here


class Outbox:
    """Owns retries, backoff and the circuit breakers of every destination. See the module docstring."""

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
        max_retry_after: timedelta = DEFAULT_MAX_RETRY_AFTER,
        breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD,
        breaker_cooldown: timedelta = DEFAULT_BREAKER_COOLDOWN,
        breaker_max_cooldown: timedelta = DEFAULT_BREAKER_MAX_COOLDOWN,
        leases: Leases | None = None,
        retention: OutboxRetention | None = None,
    ) -> None:
        """`leases`: with several replicas on one store, a destination's outbox is drained only by the
        replica holding its lease (`store.leases`); None: this process drains every destination.
        `retention`: how long `sweep` keeps delivered and dead records (`policies.retention`)."""
        if not schedule:
            raise ValueError("the retry schedule needs at least one delay")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._store = store
        self._leases = leases or NoLeases()
        self._retention = retention or OutboxRetention()
        self._notifiers = dict(notifiers)
        self._clock = clock
        self._max_age = max_age
        self._schedule = tuple(schedule)
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._batch = batch
        self._max_per_hour = dict(max_per_hour or {})
        self._max_retry_after = max_retry_after
        self._disabled: dict[str, str] = {}
        # Sent, but the store failed to record it: destination -> alert id -> (delivered at, receipt).
        self._unrecorded: dict[str, dict[str, tuple[datetime, str | None]]] = {}
        self._lanes = {
            name: _Lane(Breaker(breaker_threshold, breaker_cooldown, breaker_max_cooldown))
            for name in self._notifiers
        }

    @property
    def destinations(self) -> tuple[str, ...]:
        """The configured destinations, one lane each."""
        return tuple(self._notifiers)

    @property
    def disabled(self) -> Mapping[str, str]:
        """Destinations disabled in this process (by an HTTP 410), with the error that disabled them."""
        return dict(self._disabled)

    def now(self) -> datetime:
        """The outbox's clock."""
        return self._clock.now()

    def breaker(self, destination: str) -> Breaker:
        """The circuit breaker of one destination (for status and tests)."""
        return self._lanes[destination].breaker

    async def flush(self) -> FlushReport:
        """One pass of every destination, concurrently (at most `batch` due deliveries each)."""
        unconfigured = await self.park_unconfigured()
        stop = asyncio.Event()  # set on a StoreError: no new sends anywhere
        results = await asyncio.gather(
            *(self._pass(name, stop) for name in self._notifiers), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise next((f for f in failures if isinstance(f, StoreError)), failures[0])
        tallies = dict(zip(self._notifiers, (r for r in results if isinstance(r, _Tally)), strict=True))
        return self._report(tallies, unconfigured)

    async def flush_destination(self, destination: str, stop: asyncio.Event | None = None) -> FlushReport:
        """One pass of one destination's lane; `stop` (when set) ends it after the send in flight."""
        tally = await self._pass(destination, stop or asyncio.Event())
        return self._report({destination: tally}, {})

    async def drain_due(self, max_passes: int = 10_000) -> FlushReport:
        """Pass over every destination again and again until nothing due is left to attempt."""
        total = FlushReport()
        for _ in range(max_passes):
            report = await self.flush()
            total = total + report
            if not report.attempted and not report.dead:
                break
        return total

    async def drain(self) -> None:
        """Wait until the passes in progress (if any) have finished."""
        for lane in self._lanes.values():
            async with lane.lock:
                pass

    def next_wake(self, destination: str) -> datetime | None:
        """The earliest time something of this lane falls due: a retry it scheduled, its pause, its probe."""
        lane = self._lanes[destination]
        ready = lane.breaker.ready_at()
        if ready is not None:  # open: nothing before the probe
            return ready
        if lane.paused_until is not None and lane.paused_until > self._clock.now():
            return lane.paused_until  # told to wait: nothing before then
        return lane.retries[0] if lane.retries else None

    async def sweep(self) -> dict[DeliveryStatus, int]:
        """Forget the delivered and dead records older than the retention (`policies.retention`), a batch
        at a time so no single store call runs long; returns how many of each. Never touches pending ones.
        Raises `StoreError` when the store is away (the next sweep catches up)."""
        forgotten: dict[DeliveryStatus, int] = {}
        for status, before in forget_before(self._retention, self._clock.now()).items():
            total = 0
            while (n := await self._store.forget_deliveries(status, before, self._batch)) > 0:
                total += n
                if n < self._batch:
                    break
            forgotten[status] = total
        return forgotten

    async def park_unconfigured(self) -> dict[str, int]:
        """Park the due deliveries of destinations no longer configured; how many, per destination."""
        now = self._clock.now()
        counts: dict[str, int] = {}
        for delivery in await self._store.due_deliveries(now, limit=self._batch):
            if delivery.destination in self._notifiers:
                continue
            counts[delivery.destination] = counts.get(delivery.destination, 0) + 1
            await self._store.defer(delivery.alert_id, delivery.destination, now + PARK_UNCONFIGURED)
        for dest, n in counts.items():
            log.warning("%d pending deliveries for unconfigured destination %r kept pending", n, dest)
        return counts

    # --- one lane ---------------------------------------------------------------------------------------

    async def _pass(self, dest: str, stop: asyncio.Event) -> _Tally:
        lane = self._lanes[dest]
        async with lane.lock:
            # What this process sent but could not record goes on record first, whichever replica holds the
            # lease now: left pending, the holder would read it as due and send it again.
            await self._record_unrecorded(dest)
            if not await self._leases.hold("destination", dest, DESTINATION_LEASE):
                return _Tally(full=False)  # another replica drains this destination
            now = self._clock.now()
            while lane.retries and lane.retries[0] <= now:
                heapq.heappop(lane.retries)
            queue = await self._store.due_deliveries(now, limit=self._batch, destination=dest)
            tally = _Tally(full=len(queue) >= self._batch)
            if not queue and dest not in self._disabled:
                queue = await self._probe_candidate(lane, dest, now)
            if not queue:
                return tally
            alerts = await self._load_alerts(queue)
            try:
                await self._drain(lane, self._notifiers[dest], queue, alerts, tally, stop)
            except StoreError:
                stop.set()
                raise
            return tally

    async def _record_unrecorded(self, dest: str) -> None:
        """Record the deliveries sent while the store could not record them (raising `StoreError` while it
        still cannot), so they are not read as due and sent again."""
        waiting = self._unrecorded.get(dest, {})
        for alert_id, (when, receipt) in list(waiting.items()):
            await self._store.mark_delivered(alert_id, dest, when, receipt)
            del waiting[alert_id]
            log.info("delivery of %s to %r recorded after the store came back", alert_id, dest)

    async def _mark_delivered(self, delivery: Delivery, receipt: str | None = None) -> None:
        """Record a sent delivery; if the store fails, keep it for `_record_unrecorded` and re-raise."""
        dest, when = delivery.destination, self._clock.now()
        try:
            await self._store.mark_delivered(delivery.alert_id, dest, when, receipt)
        except StoreError:
            self._unrecorded.setdefault(dest, {})[delivery.alert_id] = (when, receipt)
            raise

    async def _probe_candidate(self, lane: _Lane, dest: str, now: datetime) -> list[Delivery]:
        """An open breaker due for its probe, with nothing due: probe with the oldest pending delivery."""
        ready = lane.breaker.ready_at()
        if lane.breaker.state is not BreakerState.OPEN or ready is None or now < ready:
            return []
        pending = await self._store.deliveries(DeliveryStatus.PENDING, dest, limit=50)
        return [d for d in pending if not d.digest][:1]

    def _blocked(self, lane: _Lane, now: datetime) -> bool:
        if lane.paused_until is not None:
            if now < lane.paused_until:
                return True
            lane.paused_until = None
        return not lane.breaker.allow(now)

    async def _load_alerts(self, due: Sequence[Delivery]) -> dict[str, Alert | None]:
        """The alert of each delivery (None: missing from the history), read in one store call."""
        found = await self._store.get_alerts([d.alert_id for d in due])
        return {d.alert_id: found.get(d.alert_id) for d in due}

    async def _drain(
        self,
        lane: _Lane,
        notifier: Notifier,
        queue: list[Delivery],
        alerts: Mapping[str, Alert | None],
        tally: _Tally,
        stop: asyncio.Event,
    ) -> None:
        """Deliver one destination's due deliveries in order; fold digests and a storm into one message."""
        singles, folded = await self._split(notifier.name, queue)
        batching = isinstance(notifier, BatchNotifier) and not isinstance(notifier, ThreadingNotifier)
        i = 0
        while i < len(singles):
            if stop.is_set():
                return
            delivery = singles[i]
            alert = alerts.get(delivery.alert_id)
            if (
                notifier.name not in self._disabled
                and alert is not None
                and self._blocked(lane, self._clock.now())
            ):
                await self._wait(singles[i:] + folded, tally)
                return
            if batching and alert is not None and lane.breaker.state is BreakerState.CLOSED:
                batch = self._batch_from(notifier.name, singles, i, alerts)
                if len(batch) > 1:
                    assert isinstance(notifier, BatchNotifier)
                    if await self._process_batch(lane, notifier, batch, alerts, tally):
                        i += len(batch)
                        continue
                    batching = False  # the batch failed: this pass sends one at a time (each its attempt)
            await self._process(lane, notifier, delivery, alert, tally)
            i += 1
        if folded and not stop.is_set():
            await self._send_digest(lane, notifier, folded, alerts, tally)

    async def _wait(self, waiting: list[Delivery], tally: _Tally) -> None:
        """The lane is paused or its circuit open: leave these due, unsent; dead-letter the expired."""
        now = self._clock.now()
        for delivery in waiting:
            if self._expired(delivery, now):
                error = delivery.last_error or "destination unavailable"
                await self._give_up(delivery, error, tally)
            else:
                tally.deferred += 1

    async def _give_up(
        self, delivery: Delivery, error: str, tally: _Tally, *, attempted: bool = False
    ) -> None:
        """Dead-letter a delivery older than `max_age`, saying why."""
        reason = f"{error} (gave up: older than {_hours(self._max_age)})"
        await self._dead(delivery, reason, tally, attempted=attempted)

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
        lane: _Lane,
        notifier: Notifier,
        folded: list[Delivery],
        alerts: Mapping[str, Alert | None],
        tally: _Tally,
    ) -> None:
        """Send one digest for `folded` and record each folded delivery with the outcome."""
        present = [d for d in folded if alerts.get(d.alert_id) is not None]
        for delivery in folded:
            if alerts.get(delivery.alert_id) is None:
                await self._dead(delivery, f"alert {delivery.alert_id} is missing from the history", tally)
        if not present:
            return
        if notifier.name in self._disabled:
            for delivery in present:
                await self._process(lane, notifier, delivery, alerts[delivery.alert_id], tally)
            return
        if self._blocked(lane, self._clock.now()):
            await self._wait(present, tally)
            return
        children = [a for d in present if (a := alerts[d.alert_id]) is not None]
        digest = digest_alert(children, self._clock.now(), notifier.name)
        tally.attempted += 1
        try:
            await notifier.send(digest)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a send is a failed attempt, never a stuck lane
            error = _as_delivery_error(exc, notifier.name)
            for delivery in present:
                await self._failed(lane, delivery, error, tally, count_breaker=delivery is present[0])
            return
        await self._succeeded(lane, notifier.name)
        for delivery in present:
            await self._mark_delivered(delivery)
            tally.delivered += 1
            self._log_delivered(delivery)

    def _batch_from(
        self, dest: str, singles: Sequence[Delivery], start: int, alerts: Mapping[str, Alert | None]
    ) -> list[Delivery]:
        """The deliveries from `start` on that can be sent as one batch: those in a row whose alert is in
        the history, of a destination not disabled."""
        if dest in self._disabled:
            return []
        batch = []
        for delivery in singles[start:]:
            if alerts.get(delivery.alert_id) is None:
                break
            batch.append(delivery)
        return batch

    async def _process_batch(
        self,
        lane: _Lane,
        notifier: BatchNotifier,
        batch: Sequence[Delivery],
        alerts: Mapping[str, Alert | None],
        tally: _Tally,
    ) -> bool:
        """Send `batch` at once (`BatchNotifier.send_many`) and record every delivery of it as delivered,
        in one store call, as `_process` records each one it sends. False when the batch was not sent (the
        notifier undoes any part of it): nothing is counted or recorded, and the caller sends the
        deliveries one at a time, each failure its own attempt as before."""
        sent = [a for d in batch if (a := alerts.get(d.alert_id)) is not None]
        try:
            await notifier.send_many(sent)
        except StoreError:
            raise
        except Exception:  # noqa: BLE001 - sent again one at a time, where each failure is recorded
            log.info(
                "batch of %d deliveries to %r not sent: sending them one at a time", len(batch), notifier.name
            )
            return False
        tally.attempted += len(batch)
        dest, when = notifier.name, self._clock.now()
        try:
            await self._store.mark_delivered_many([(d.alert_id, dest) for d in batch], when)
        except StoreError:
            unrecorded = self._unrecorded.setdefault(dest, {})
            for delivery in batch:
                unrecorded[delivery.alert_id] = (when, None)
            raise
        for delivery in batch:
            tally.delivered += 1
            self._log_delivered(delivery)
        await self._succeeded(lane, dest)
        return True

    async def _process(
        self, lane: _Lane, notifier: Notifier, delivery: Delivery, alert: Alert | None, tally: _Tally
    ) -> None:
        dest = delivery.destination
        if dest in self._disabled:
            await self._dead(delivery, f"destination disabled ({self._disabled[dest]})", tally)
            return
        if alert is None:
            await self._dead(delivery, f"alert {delivery.alert_id} is missing from the history", tally)
            return
        tally.attempted += 1
        try:
            receipt = await self._send(notifier, alert, dest)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a send is a failed attempt, never a stuck lane
            await self._failed(lane, delivery, _as_delivery_error(exc, dest), tally)
            return
        await self._mark_delivered(delivery, receipt)
        tally.delivered += 1
        self._log_delivered(delivery)
        await self._succeeded(lane, dest)

    @staticmethod
    def _log_delivered(delivery: Delivery) -> None:
        log_delivery(
            log,
            alert_id=delivery.alert_id,
            destination=delivery.destination,
            outcome="delivered",
            attempt=delivery.attempts + 1,
        )

    async def _succeeded(self, lane: _Lane, dest: str) -> None:
        """A send went through: close the breaker; if that ended an outage, release the backlog."""
        if not lane.breaker.success(self._clock.now()):
            return
        now = self._clock.now()
        released = 0
        for d in await self._store.deliveries(DeliveryStatus.PENDING, dest, limit=_RELEASE_LIMIT):
            if not d.digest and d.next_attempt > now:
                await self._store.defer(d.alert_id, dest, now)
                released += 1
        log.warning("destination %r is back (circuit closed): %d waiting deliveries due now", dest, released)

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

    async def _failed(
        self, lane: _Lane, delivery: Delivery, exc: DeliveryError, tally: _Tally, count_breaker: bool = True
    ) -> None:
        now, error, dest = self._clock.now(), str(exc), delivery.destination
        if exc.disable:
            self._disabled[dest] = error
            log.error("destination %r disabled: %s", dest, error)
            await self._dead(delivery, error, tally, attempted=True)
            return
        if not exc.retryable:
            await self._dead(delivery, error, tally, attempted=True)
            return
        if count_breaker and lane.breaker.failure(now):
            log.error(
                "destination %r: circuit open after repeated failures, next probe at %s",
                dest,
                lane.breaker.ready_at(),
            )
        if self._expired(delivery, now):
            await self._give_up(delivery, error, tally, attempted=True)
            return
        delay = self._delay(delivery.attempts, exc.retry_after)
        next_attempt = now + delay
        if exc.retry_after is not None:
            lane.paused_until = max(lane.paused_until or now, next_attempt)
        await self._store.mark_failed(delivery.alert_id, dest, error, next_attempt, now)
        heapq.heappush(lane.retries, next_attempt)
        tally.failed += 1
        tally.errors.append(f"{delivery.alert_id}: {error}")
        log_delivery(
            log,
            alert_id=delivery.alert_id,
            destination=dest,
            outcome="failed",
            attempt=delivery.attempts + 1,
            error=error,
            retry_at=next_attempt,
        )

    async def _dead(self, delivery: Delivery, error: str, tally: _Tally, *, attempted: bool = False) -> None:
        """Dead-letter `delivery`; `attempted`: after a send just failed (its attempt is logged)."""
        await self._store.mark_dead(delivery.alert_id, delivery.destination, error, self._clock.now())
        tally.dead += 1
        tally.errors.append(f"{delivery.alert_id}: {error}")
        log_delivery(
            log,
            alert_id=delivery.alert_id,
            destination=delivery.destination,
            outcome="dead",
            attempt=delivery.attempts + 1 if attempted else None,
            error=error,
        )

    def _expired(self, delivery: Delivery, now: datetime) -> bool:
        return now - delivery.created > self._max_age

    def _delay(self, attempts_before: int, retry_after: float | None) -> timedelta:
        """The wait before the next attempt, after the failure of attempt number `attempts_before + 1`.

        A Retry-After is honoured as given, within [`MIN_RETRY_DELAY`, `max_retry_after`]. Otherwise
        `schedule[0]` is the wait before the first attempt (0s: immediately), so after n failed attempts
        the wait is `schedule[n]`, the last value repeating, with ± `jitter`.
        """
        if retry_after is not None:
            hinted = min(timedelta(seconds=retry_after), self._max_retry_after, self._max_age)
            return max(hinted, MIN_RETRY_DELAY)
        base = self._schedule[min(attempts_before + 1, len(self._schedule) - 1)].total_seconds()
        return timedelta(seconds=base * (1 + self._rng.uniform(-self._jitter, self._jitter)))

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
            attempted=sum(x.attempted for x in t),
            full=any(x.full for x in t),
            by_destination={
                d: {"delivered": x.delivered, "failed": x.failed, "dead": x.dead} for d, x in tallies.items()
            },
        )


def _merge_counts(
    a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    merged = {d: dict(counts) for d, counts in a.items()}
    for d, counts in b.items():
        into = merged.setdefault(d, {})
        for outcome, n in counts.items():
            into[outcome] = into.get(outcome, 0) + n
    return merged


def _as_delivery_error(exc: Exception, dest: str) -> DeliveryError:
    """A notifier's DeliveryError as is; anything else is a retryable failure of this one delivery."""
    if isinstance(exc, DeliveryError):
        return exc
    log.error("unexpected error while sending to %r", dest, exc_info=exc)
    return DeliveryError(f"unexpected error: {type(exc).__name__}: {exc}", retryable=True)


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"
