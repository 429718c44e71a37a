"""The running service sweeps the outbox: a delivered record past `outbox.retention` is forgotten by the
poller's retention job (settings -> runtime -> scheduler -> store, on a real SQLite file), a pending one of
the same age is kept."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rarewatch.models import Alert, DeliveryStatus
from rarewatch.runtime import open_runtime
from rarewatch.scheduler import Poller
from rarewatch.settings import Settings
from tests.integration.test_store_contract import make_alert
from tests.support import TEST_RULES

BOUND = 10.0  # seconds: the sweep runs when the poller starts


def service_settings(folder: Path, **extra: Any) -> Settings:
    """A service on a SQLite file in `folder`, the test rules and one console destination."""
    (folder / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=f"sqlite:///{folder / 'state.db'}",
        rules=[str(folder / "rules.yaml")],
        destinations=[{"name": "hook", "type": "console"}],
        routes=[{"to": ["hook"]}],
        config_dir=folder,
        **extra,
    )


async def test_the_poller_sweeps_records_past_their_retention(tmp_path: Path) -> None:
    settings = service_settings(
        tmp_path, outbox={"max_age": "1h", "retention": {"delivered": "1d", "dead": "2d"}}
    )
    async with open_runtime(settings) as runtime:
        store, old = runtime.store, runtime.clock.now() - timedelta(days=3)
        alerts: list[Alert] = [make_alert(n, old) for n in (1, 2)]
        for alert in alerts:
            assert await store.claim([f"item:{alert.id}"], timedelta(days=7), old, alert, ["hook"])
        await store.mark_delivered("alert-1", "hook", old)
        # alert-2's delivery stays pending: its due time is pushed out so no worker sends it meanwhile.
        await store.defer("alert-2", "hook", runtime.clock.now() + timedelta(hours=1))
        poller = Poller(runtime.pipeline, runtime.sources, runtime.outbox, runtime.clock)
        poller.start()
        try:
            for _ in range(int(BOUND / 0.05)):
                if not await store.deliveries(DeliveryStatus.DELIVERED):
                    break
                await asyncio.sleep(0.05)
        finally:
            await poller.stop()
        assert [(d.alert_id, d.status) for d in await store.deliveries()] == [
            ("alert-2", DeliveryStatus.PENDING)
        ]


async def test_a_sweep_under_way_at_shutdown_ends_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`stop` cancels and awaits a retention sweep still running, as it does a poll: no CancelledError
    escapes to the scheduler (which would log a traceback), and the sweep says why it ended."""
    settings = service_settings(tmp_path)
    async with open_runtime(settings) as runtime:
        started = asyncio.Event()

        async def slow_sweep() -> dict[DeliveryStatus, int]:
            started.set()
            await asyncio.sleep(60)  # a store call that has not come back
            return {}

        runtime.outbox.sweep = slow_sweep  # type: ignore[method-assign]
        poller = Poller(runtime.pipeline, runtime.sources, runtime.outbox, runtime.clock)
        sweep = asyncio.create_task(poller.sweep())
        await asyncio.wait_for(started.wait(), BOUND)
        with caplog.at_level(logging.INFO, logger="rarewatch.scheduler"):
            await asyncio.wait_for(poller.stop(), BOUND)
        assert sweep.done() and not sweep.cancelled() and sweep.exception() is None
        assert "retention sweep cancelled by shutdown" in caplog.text


async def test_a_sweep_cancelled_by_someone_else_stays_cancelled(tmp_path: Path) -> None:
    """Only the shutdown's cancellation is an expected end: a sweep cancelled while the service runs
    (not ours to swallow) ends cancelled, as its canceller expects."""
    async with open_runtime(service_settings(tmp_path)) as runtime:
        started = asyncio.Event()

        async def slow_sweep() -> dict[DeliveryStatus, int]:
            started.set()
            await asyncio.sleep(60)
            return {}

        runtime.outbox.sweep = slow_sweep  # type: ignore[method-assign]
        poller = Poller(runtime.pipeline, runtime.sources, runtime.outbox, runtime.clock)
        sweep = asyncio.create_task(poller.sweep())
        await asyncio.wait_for(started.wait(), BOUND)
        sweep.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sweep
        assert sweep.cancelled()
        await poller.stop()
