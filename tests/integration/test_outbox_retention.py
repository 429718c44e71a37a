"""The running service sweeps the outbox: a delivered record past `outbox.retention` is forgotten by the
poller's retention job (settings -> runtime -> scheduler -> store, on a real SQLite file), a pending one of
the same age is kept."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from rarewatch.models import Alert, DeliveryStatus
from rarewatch.runtime import open_runtime
from rarewatch.scheduler import Poller
from rarewatch.settings import Settings
from tests.integration.test_store_contract import make_alert
from tests.support import TEST_RULES

BOUND = 10.0  # seconds: the sweep runs when the poller starts


async def test_the_poller_sweeps_records_past_their_retention(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(tmp_path / "rules.yaml")],
        destinations=[{"name": "hook", "type": "console"}],
        routes=[{"to": ["hook"]}],
        outbox={"max_age": "1h", "retention": {"delivered": "1d", "dead": "2d"}},
        config_dir=tmp_path,
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
