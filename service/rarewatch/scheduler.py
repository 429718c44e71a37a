"""Scheduling: one APScheduler job per source, plus the delivery workers (one per destination).

With several replicas on one Redis, every replica schedules every source, and a poll goes ahead only in the
replica holding the source's lease (`store.leases`). Each source job has `max_instances=1` and coalescing,
so a slow source never piles up runs; intervals get jitter so many sources do not hit the network at the
same instant. One more job sweeps the outbox's finished records past their retention
(`policies.retention`) every `SWEEP_EVERY`, so the store stays bounded without `outbox purge`. A poll only
enqueues: its deliveries are written to the outbox with the claim, the
destinations' workers are woken, and the poll returns without waiting for any delivery (`delivery.workers`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from rarewatch.clock import Clock
from rarewatch.delivery.outbox import FlushReport, Outbox
from rarewatch.delivery.workers import DeliveryWorkers
from rarewatch.errors import StoreError
from rarewatch.pipeline import Pipeline, PolledSource, SourceRun
from rarewatch.policies.retention import SWEEP_EVERY
from rarewatch.store.leases import Leases, NoLeases

log = logging.getLogger(__name__)

OUTBOX_INTERVAL = timedelta(seconds=5)  # the longest a worker sleeps without being woken


class Poller:
    """Owns the scheduler (a job per source) and the delivery workers (a task per destination)."""

    def __init__(
        self,
        pipeline: Pipeline,
        sources: Sequence[PolledSource],
        outbox: Outbox,
        clock: Clock,
        on_run: Callable[[SourceRun], Awaitable[None]] | None = None,
        on_flush: Callable[[FlushReport | None], None] | None = None,
        leases: Leases | None = None,
    ) -> None:
        """`leases`: with several replicas on one store, a source is polled only by the replica holding its
        lease (`store.leases`); None: this process polls every source."""
        self.pipeline = pipeline
        self.leases = leases or NoLeases()
        self.sources = sources
        self.outbox = outbox
        self.clock = clock
        self.on_run = on_run
        self.on_flush = on_flush
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        # polls and retention sweeps in flight, cancelled and awaited by stop()
        self._polls: set[asyncio.Task[object]] = set()
        self._stopping = False
        self.workers = DeliveryWorkers(outbox, idle=OUTBOX_INTERVAL, on_flush=on_flush)

    def start(self) -> None:
        """Schedule every source to run now and then at its interval; start the delivery workers."""
        now = self.clock.now()
        for polled in self.sources:
            interval = polled.interval.total_seconds()
            self.scheduler.add_job(
                self.poll,
                IntervalTrigger(seconds=interval, jitter=max(1, int(interval * 0.1))),
                args=[polled],
                id=f"source:{polled.source.name}",
                max_instances=1,
                coalesce=True,
                next_run_time=now,
                misfire_grace_time=int(interval),
            )
        self.scheduler.add_job(
            self.sweep,
            IntervalTrigger(seconds=SWEEP_EVERY.total_seconds()),
            id="outbox:retention",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
        self.scheduler.start()
        self.workers.start()

    def next_run(self, name: str) -> datetime | None:
        """When the scheduler runs source `name` next (None: not scheduled, or the scheduler not started).
        With several replicas, the poll at that time fetches only if this replica holds the lease."""
        job = self.scheduler.get_job(f"source:{name}")
        when = getattr(job, "next_run_time", None) if job is not None else None
        return when if isinstance(when, datetime) else None

    async def stop(self) -> None:
        """Stop scheduling, cancel the polls in flight and wait for them to end before the store closes;
        in-flight deliveries complete or stay pending."""
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in self._polls:
            task.cancel()
        if self._polls:
            await asyncio.wait(set(self._polls))
        await self.workers.stop()
        await self.outbox.drain()

    async def poll(self, polled: PolledSource) -> None:
        """Poll one source (a scheduled job): a store outage is logged and the poll skipped, never raised."""
        try:
            with self._in_flight():
                if not await self.leases.hold("source", polled.source.name, polled.interval):
                    return  # another replica polls this source
                run = await self.pipeline.run_source(polled)
        except asyncio.CancelledError:
            self._cancelled_by_shutdown(f"source {polled.source.name}: poll")
            return
        except StoreError as exc:
            # The store is down: this poll is skipped whole (nothing claimed, nothing lost); the next
            # scheduled poll tries again.
            log.error("source %s: store unavailable, poll skipped: %s", polled.source.name, exc)
            return
        await self._report(run)

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        """Keep the running job's task where `stop` cancels and awaits the jobs in flight."""
        task = asyncio.current_task()
        if task is not None:
            self._polls.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._polls.discard(task)

    def _cancelled_by_shutdown(self, what: str) -> None:
        """Called in a job's `except CancelledError`: re-raise it unless the service is stopping (not
        ours: let whoever cancelled it see it); when it is, an expected end, logged in one line (APScheduler
        would log a traceback)."""
        if not self._stopping:
            raise  # the CancelledError the caller is handling
        log.info("%s cancelled by shutdown", what)

    async def poll_now(self, name: str) -> SourceRun:
        """Poll the source called `name` now, ignoring its backoff or Retry-After delay (an operator's
        `POST /api/v1/sources/{name}/poll`); a success ends the backoff. Raises KeyError for an unknown
        source and `StoreError` when the store is away."""
        polled = next((p for p in self.sources if p.source.name == name), None)
        if polled is None:
            raise KeyError(name)
        run = await self.pipeline.run_source(polled, force=True)
        await self._report(run)
        return run

    async def _report(self, run: SourceRun) -> None:
        """After a poll: tell `on_run` (the metrics), and wake the delivery workers when it raised alerts
        (never waiting for a delivery)."""
        if self.on_run is not None:
            await self.on_run(run)
        if run.alerts or run.ops_alert is not None:
            self.workers.wake()

    async def sweep(self) -> None:
        """Forget the outbox records past their retention (a scheduled job): a store outage is logged, and
        the next sweep catches up. A sweep under way at shutdown is cancelled and awaited by `stop` like a
        poll (what it forgot so far is committed; the next run's sweep goes on)."""
        try:
            with self._in_flight():
                forgotten = await self.outbox.sweep()
        except asyncio.CancelledError:
            self._cancelled_by_shutdown("outbox: retention sweep")
            return
        except StoreError as exc:
            log.error("outbox: store unavailable, retention sweep skipped: %s", exc)
            return
        if any(forgotten.values()):
            log.info(
                "outbox: forgot %s past their retention",
                ", ".join(f"{n} {status} deliveries" for status, n in forgotten.items() if n),
            )

    async def flush(self) -> None:
        """One pass of every destination now (tests, tools): a store outage is logged; deliveries wait."""
        report: FlushReport | None
        try:
            report = await self.outbox.flush()
        except StoreError as exc:
            log.error("outbox: store unavailable, deliveries wait: %s", exc)
            report = None
        if self.on_flush is not None:
            self.on_flush(report)
        if report is not None and (report.failed or report.dead):
            log.warning("outbox: %s", report)
