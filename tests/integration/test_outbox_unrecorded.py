"""What a process sent but its store could not record goes on record as soon as the store answers again,
whichever replica holds the destination's lease by then, and not after the worker's idle wait: otherwise
the lease's new holder reads it as due and sends it a second time (a Redis restart under two replicas).
Real parts: a SQLite store file and a real aiohttp webhook receiver; the store's failure (its first record
fails) and the lease's holder are stand-ins, so that the test decides when each happens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rarewatch.clock import FakeClock
from rarewatch.delivery import workers as workers_module
from rarewatch.delivery.outbox import FlushReport, Outbox
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.delivery.workers import DeliveryWorkers
from rarewatch.errors import StoreError
from rarewatch.models import DeliveryStatus
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.test_outbox_store_outage import T0, alert
from tests.support import serve


@dataclass
class SwitchableLeases:
    """Leases whose answer the test sets: does this replica hold the destination?"""

    holds: bool = True
    asked: list[str] = field(default_factory=list)

    async def hold(self, kind: str, name: str, period: timedelta) -> bool:
        self.asked.append(name)
        return self.holds


def failing_once(record: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """`record`, except that its first call fails as an unreachable Redis would."""
    calls: list[None] = []

    async def wrapped(*args: Any, **kwargs: Any) -> None:
        calls.append(None)
        if len(calls) == 1:
            raise StoreError("store unreachable")
        await record(*args, **kwargs)

    return wrapped


async def test_a_sent_delivery_is_recorded_even_after_another_replica_took_the_lease(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "mark_delivered", failing_once(store.mark_delivered))
    received: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(request.headers["webhook-id"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    leases = SwitchableLeases()
    clock = FakeClock(T0)
    async with serve(app) as server, aiohttp.ClientSession() as session:
        assert await store.claim(["item:1"], timedelta(days=1), T0, alert(1), ["hook"])
        hook = WebhookNotifier("hook", str(server.make_url("/hook")), session)
        outbox = Outbox(store, {"hook": hook}, clock=clock, leases=leases)  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            await outbox.flush()  # sent; its record failed
        assert received == ["alert-1"]

        leases.holds = False  # the store is back, and another replica holds the lease now
        clock.advance(timedelta(minutes=1))
        await outbox.flush()
        delivered = await store.deliveries(DeliveryStatus.DELIVERED)
        assert [d.alert_id for d in delivered] == ["alert-1"], (
            "recorded, so the lease's holder will not resend it"
        )
        assert await store.due_deliveries(clock.now()) == []
    assert received == ["alert-1"]


class FailingThenEmpty:
    """An outbox stand-in whose first pass fails on the store and whose next ones find nothing due."""

    destinations = ("hook",)

    def __init__(self) -> None:
        self.passes: list[float] = []

    async def flush_destination(self, name: str, *, stop: asyncio.Event) -> FlushReport:
        self.passes.append(asyncio.get_running_loop().time())
        if len(self.passes) == 1:
            raise StoreError("store unreachable")
        return FlushReport()

    def next_wake(self, name: str) -> datetime | None:
        return None

    def now(self) -> datetime:
        return T0

    async def park_unconfigured(self) -> dict[str, int]:
        return {}


async def test_after_a_store_failure_the_worker_tries_again_after_the_store_retry_not_after_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers_module, "_STORE_RETRY", 0.05)
    outbox = FailingThenEmpty()
    workers = DeliveryWorkers(outbox, idle=timedelta(seconds=60))  # type: ignore[arg-type]
    workers.start()
    try:
        for _ in range(100):
            if len(outbox.passes) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await workers.stop()
    assert len(outbox.passes) >= 2, "no second pass within 2 s: the worker waited for its idle minute"
    assert outbox.passes[1] - outbox.passes[0] < 1.0
