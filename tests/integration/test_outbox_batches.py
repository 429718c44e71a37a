"""The outbox with a notifier that sends a pass's due deliveries at once (`BatchNotifier`, the jsonl
destination): every delivery is still recorded as `_process` records one it sends alone, a batch that
fails is sent again one delivery at a time (each failure its own attempt, as for any notifier), a half-open
breaker lets one probe through, not a batch, and a store failure after a batch re-sends none of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.clock import FakeClock
from rarewatch.delivery.base import BatchNotifier
from rarewatch.delivery.breaker import BreakerState
from rarewatch.delivery.outbox import Outbox
from rarewatch.errors import DeliveryError, StoreError
from rarewatch.models import Alert, Delivery, DeliveryStatus, Item, Match, Severity
from rarewatch.store.sqlite import SQLiteStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Archive:
    """Records every call; `failing` alert ids fail on their own (retryably), and with them any batch
    that holds one; `batch_fails` fails every batch."""

    def __init__(self, name: str = "archive", *, batches: bool = True) -> None:
        self.name = name
        self.calls: list[tuple[str, list[str]]] = []  # ("one" | "many", alert ids)
        self.failing: set[str] = set()
        self.batch_fails = False
        self.on_send: list[object] = []
        self._batches = batches

    async def send(self, alert: Alert) -> None:
        self.calls.append(("one", [alert.id]))
        if alert.id in self.failing:
            raise DeliveryError(f"cannot write {alert.id}", retryable=True)

    async def send_many(self, alerts: Sequence[Alert]) -> None:
        assert self._batches, "a notifier that does not batch got a batch"
        self.calls.append(("many", [a.id for a in alerts]))
        if self.batch_fails or self.failing.intersection(a.id for a in alerts):
            raise DeliveryError("disk full", retryable=True)

    async def close(self) -> None:
        pass

    def sent(self) -> list[str]:
        return [alert_id for _, ids in self.calls for alert_id in ids]


class Plain:
    """The same notifier without `send_many`: the outbox's one-at-a-time path, for comparison."""

    def __init__(self, archive: Archive) -> None:
        self.name = archive.name
        self._archive = archive

    async def send(self, alert: Alert) -> None:
        await self._archive.send(alert)

    async def close(self) -> None:
        pass


async def enqueue(store: SQLiteStore, clock: FakeClock, *alert_ids: str) -> None:
    now = clock.now()
    for alert_id in alert_ids:
        item = Item(f"item-{alert_id}", "mofcom", f"Story {alert_id}", "https://example.org/", "", "", now)
        alert = Alert(alert_id, item, (Match("licensing", "export-licensing", Severity.HIGH),), now)
        assert await store.claim([f"k:{alert_id}"], timedelta(days=30), now, alert, ("archive",))


def records(deliveries: list[Delivery]) -> list[tuple[str, DeliveryStatus, int, str | None, datetime | None]]:
    return sorted((d.alert_id, d.status, d.attempts, d.last_error, d.delivered_at) for d in deliveries)


def test_the_jsonl_destination_sends_batches() -> None:
    from rarewatch.delivery.jsonl import JsonlNotifier

    assert isinstance(JsonlNotifier("archive", Path("alerts.jsonl")), BatchNotifier)
    assert isinstance(Archive(), BatchNotifier) and not isinstance(Plain(Archive()), BatchNotifier)


async def test_a_pass_s_due_deliveries_go_in_one_batch_each_recorded_once(store: SQLiteStore) -> None:
    clock = FakeClock(T0)
    archive = Archive()
    outbox = Outbox(store, {"archive": archive}, clock=clock)
    await enqueue(store, clock, *(f"a{n}" for n in range(5)))
    report = await outbox.flush()
    assert (report.delivered, report.attempted, report.failed, report.dead) == (5, 5, 0, 0)
    assert report.by_destination == {"archive": {"delivered": 5, "failed": 0, "dead": 0}}
    assert archive.calls == [("many", [f"a{n}" for n in range(5)])]
    assert records(await store.deliveries()) == [
        (f"a{n}", DeliveryStatus.DELIVERED, 1, None, T0) for n in range(5)
    ]
    clock.advance(timedelta(days=1))
    assert (await outbox.flush()).delivered == 0
    assert len(archive.calls) == 1
    # A lone due delivery is sent as before, on its own.
    await enqueue(store, clock, "b1")
    assert (await outbox.flush()).delivered == 1
    assert archive.calls[-1] == ("one", ["b1"])


async def test_a_failed_batch_ends_as_the_same_deliveries_sent_one_at_a_time_would(tmp_path: Path) -> None:
    outcomes = []
    for batches in (True, False):
        store = SQLiteStore(tmp_path / f"{batches}.db")
        await store.open()
        try:
            clock = FakeClock(T0)
            archive = Archive()
            archive.failing = {"a1", "a3"}
            notifier = archive if batches else Plain(archive)
            outbox = Outbox(store, {"archive": notifier}, clock=clock, jitter=0, breaker_threshold=3)
            await enqueue(store, clock, *(f"a{n}" for n in range(5)))
            report = await outbox.flush()
            singles = [call for call in archive.calls if call[0] == "one"]
            outcomes.append(
                (
                    (report.delivered, report.failed, report.attempted, report.errors),
                    records(await store.deliveries()),
                    outbox.breaker("archive").failures,
                    singles,
                )
            )
            if batches:  # one batch tried, then every delivery on its own
                assert archive.calls[0] == ("many", [f"a{n}" for n in range(5)])
                assert len(archive.calls) == 6
        finally:
            await store.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][:3] == (3, 2, 5)


async def test_a_half_open_breaker_sends_one_probe_then_batches_again(store: SQLiteStore) -> None:
    clock = FakeClock(T0)
    archive = Archive()
    archive.batch_fails = True
    archive.failing = {"a0", "a1"}
    outbox = Outbox(
        store,
        {"archive": archive},
        clock=clock,
        jitter=0,
        breaker_threshold=2,
        breaker_cooldown=timedelta(seconds=10),
    )
    await enqueue(store, clock, *(f"a{n}" for n in range(4)))
    report = await outbox.flush()
    assert outbox.breaker("archive").state is BreakerState.OPEN
    assert report.failed == 2 and report.deferred == 2
    archive.calls.clear()
    archive.batch_fails, archive.failing = False, set()
    clock.advance(timedelta(seconds=11))
    report = await outbox.drain_due()
    assert report.delivered == 4
    # The probe alone (the oldest due delivery), then the rest of the backlog together.
    assert archive.calls[0][0] == "one" and len(archive.calls[0][1]) == 1
    assert sorted(archive.sent()) == ["a0", "a1", "a2", "a3"]
    assert outbox.breaker("archive").state is BreakerState.CLOSED
    assert all(d.status is DeliveryStatus.DELIVERED for d in await store.deliveries())


async def test_a_store_failure_after_a_batch_is_recorded_later_not_resent(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    clock = FakeClock(T0)
    archive = Archive()
    send_many = archive.send_many

    async def send_then_lose_the_store(alerts: Sequence[Alert]) -> None:
        await send_many(alerts)
        await store.close()  # the store goes away between the batch and its recording

    archive.send_many = send_then_lose_the_store  # type: ignore[method-assign]
    outbox = Outbox(store, {"archive": archive}, clock=clock)
    await enqueue(store, clock, "a1", "a2", "a3")
    with pytest.raises(StoreError):
        await outbox.flush()
    await store.open()
    try:
        assert [d.status for d in await store.deliveries()] == [DeliveryStatus.PENDING] * 3
        archive.send_many = send_many  # type: ignore[method-assign]
        report = await outbox.flush()
        assert report.delivered == 0  # recorded first, so none is due any more
        assert archive.sent() == ["a1", "a2", "a3"]  # each sent once
        assert [d.status for d in await store.deliveries()] == [DeliveryStatus.DELIVERED] * 3
    finally:
        await store.close()


class Crash(BaseException):
    """The process dying: nothing after it runs (not an Exception, so no handler records anything)."""


async def test_a_crash_between_a_jsonl_batch_and_its_record_leaves_each_line_once(tmp_path: Path) -> None:
    from rarewatch.delivery.jsonl import JsonlNotifier

    path = tmp_path / "alerts.jsonl"
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    clock = FakeClock(T0)
    notifier = JsonlNotifier("archive", path)
    write = notifier.send_many

    async def write_then_crash(alerts: Sequence[Alert]) -> None:
        await write(alerts)  # on disk, fsynced
        raise Crash  # before the outbox records the batch

    notifier.send_many = write_then_crash  # type: ignore[method-assign]
    await enqueue(store, clock, "a1", "a2", "a3")
    with pytest.raises(Crash):
        await Outbox(store, {"archive": notifier}, clock=clock).flush()
    await store.close()
    # The restart: the three are still due, and a new one with them.
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert [d.status for d in await store.deliveries()] == [DeliveryStatus.PENDING] * 3
        await enqueue(store, clock, "a4")
        report = await Outbox(store, {"archive": JsonlNotifier("archive", path)}, clock=clock).flush()
        assert report.delivered == 4
        ids = [line.split('"id": "', 1)[1].split('"', 1)[0] for line in path.read_text().splitlines()]
        assert sorted(ids) == ["a1", "a2", "a3", "a4"]  # each once: the batch's lines were not written again
    finally:
        await store.close()
