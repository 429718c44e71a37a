"""One asyncio worker per destination, draining that destination's lane of the outbox.

A worker sleeps until it is woken (`wake()`: new deliveries were added) or until its lane's next due
time (a retry it scheduled, the end of a Retry-After pause, its circuit's probe), at most `idle` (which
also picks up deliveries added by another process or left from before a restart). Then it makes passes
(`Outbox.flush_destination`) until its lane has nothing more due that it can attempt. Each worker has its
own pacing and breaker, so a destination that answers in 8 s, sits at Slack's one message per second, or
is down, never delays another; and nothing ever waits for a flush (polls only enqueue and wake).

Stopping: `stop()` lets every worker finish the send it has in flight (and record it), starts no new
one, and returns; what was not sent stays pending in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from rarewatch.delivery.outbox import FlushReport, Outbox
from rarewatch.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_IDLE = timedelta(seconds=5)
_STORE_RETRY = 5.0  # seconds before a worker tries again after the store failed


class DeliveryWorkers:
    """Runs a worker task per destination of `outbox`, plus one that parks unconfigured deliveries."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        idle: timedelta = DEFAULT_IDLE,
        on_flush: Callable[[FlushReport | None], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self._idle = idle.total_seconds()
        self._on_flush = on_flush
        self._wakeups = {name: asyncio.Event() for name in outbox.destinations}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._stopping.is_set()

    def start(self) -> None:
        """Start one worker per destination (idempotent)."""
        if self._tasks:
            return
        for name in self.outbox.destinations:
            self._tasks.append(asyncio.create_task(self._work(name), name=f"delivery:{name}"))
        self._tasks.append(asyncio.create_task(self._park(), name="delivery:unconfigured"))

    def wake(self, destinations: Iterable[str] | None = None) -> None:
        """New deliveries may be due: wake the workers (all of them, or those of `destinations`)."""
        for name in self._wakeups if destinations is None else destinations:
            event = self._wakeups.get(name)
            if event is not None:
                event.set()

    async def stop(self) -> None:
        """Finish the sends in flight, start no new one, and end every worker."""
        self._stopping.set()
        for event in self._wakeups.values():
            event.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self, name: str) -> None:
        wakeup = self._wakeups[name]
        while not self._stopping.is_set():
            wakeup.clear()
            more = await self._pass(name)
            if more or self._stopping.is_set():
                continue
            await self._sleep(wakeup, self._timeout(name))

    async def _pass(self, name: str) -> bool:
        """One pass of the lane; True when it should go again at once (it attempted, or hit `batch`)."""
        report: FlushReport | None
        store_failed = False
        try:
            report = await self.outbox.flush_destination(name, stop=self._stopping)
        except StoreError as exc:
            log.error("outbox %r: store unavailable, deliveries wait: %s", name, exc)
            report, store_failed = None, True
        except Exception:  # a bug must not end the worker: log, wait, go on
            log.exception("outbox %r: unexpected error in a delivery pass", name)
            report = None
        if self._on_flush is not None:
            self._on_flush(report)
        if report is None:
            await self._sleep(self._wakeups[name], _STORE_RETRY, woken_early=False)
            # After a store failure, try again at once rather than after `idle`: what this process sent but
            # could not record must go on record before another replica's lease lets it be sent again.
            return store_failed
        if report.failed or report.dead:
            log.warning("outbox %r: %s", name, report)
        return report.attempted > 0 or (report.full and report.deferred == 0)

    def _timeout(self, name: str) -> float:
        wake_at = self.outbox.next_wake(name)
        if wake_at is None:
            return self._idle
        seconds = (wake_at - self.outbox.now()).total_seconds()
        return min(self._idle, max(0.0, seconds))

    async def _sleep(self, wakeup: asyncio.Event, seconds: float, woken_early: bool = True) -> None:
        target = wakeup if woken_early else self._stopping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(target.wait(), seconds)

    async def _park(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.outbox.park_unconfigured()
            except StoreError as exc:
                log.error("outbox: store unavailable: %s", exc)
            except Exception:
                log.exception("outbox: unexpected error while parking deliveries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._idle)
