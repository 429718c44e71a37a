"""The store identity policy: the verdict on a marker, and the guard that acts on it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.clock import FakeClock
from rarewatch.models import DeliveryStatus
from rarewatch.store.base import StoreMarker
from rarewatch.store.sqlite import SQLiteStore
from rarewatch.store_identity import (
    OPERATIONAL_CATEGORY,
    OPERATIONAL_TITLE_PREFIX,
    StoreGuard,
    Verdict,
    assess,
    init_marker,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A = StoreMarker("aaaa", T0)
B = StoreMarker("bbbb", T0, previous="aaaa")


@pytest.mark.parametrize(
    ("held", "found", "blank", "verdict"),
    [
        (None, A, False, Verdict.START),
        (None, A, True, Verdict.START),  # a marker on file beats an empty-looking file
        (None, None, False, Verdict.NEW),  # a new store, or one from before markers
        (None, None, True, Verdict.LOST),  # a zero-byte file found on start
        (A, A, False, Verdict.SAME),
        (A, None, False, Verdict.LOST),  # emptied while running (FLUSHALL, zero-byte file)
        (A, StoreMarker("cccc", T0), False, Verdict.LOST),  # another store
        (A, B, False, Verdict.LOST),  # another process re-initialised it after a loss: the same loss
        (A, StoreMarker("init-cccc", T0, previous="aaaa"), False, Verdict.INIT),
        (A, StoreMarker("init-cccc", T0, previous="zzzz"), False, Verdict.LOST),  # init of another store
    ],
)
def test_assess(held: StoreMarker | None, found: StoreMarker | None, blank: bool, verdict: Verdict) -> None:
    assert assess(held, found, blank=blank) is verdict


def test_init_marker_is_recognisable_and_names_the_one_it_replaces() -> None:
    marker = init_marker(T0, "aaaa")
    assert marker.id.startswith("init-") and marker.previous == "aaaa" and marker.created == T0
    assert assess(A, marker) is Verdict.INIT


def test_marker_round_trips() -> None:
    assert StoreMarker.from_dict(B.to_dict()) == B


async def _guard(path: Path, clock: FakeClock) -> tuple[SQLiteStore, StoreGuard]:
    store = SQLiteStore(path)
    await store.open()
    guard = StoreGuard(
        store, where="sqlite:///state.db", clock=clock, destinations=("hook", "ops"), ttl=timedelta(days=7)
    )
    return store, guard


async def test_guard_holds_only_the_marker_it_holds(tmp_path: Path) -> None:
    """`holds` lets a poll skip `check()` only for the very marker held: nothing held yet, no marker found,
    another one, or an `init-` one are for `check()` to judge."""
    store, guard = await _guard(tmp_path / "state.db", FakeClock(T0))
    try:
        assert guard.holds(A) is False  # nothing held yet (the process's first check reads and acts)
        guard.marker = A
        assert guard.holds(StoreMarker("aaaa", T0 + timedelta(days=1))) is True  # by id
        assert guard.holds(None) is False
        assert guard.holds(B) is False
        assert guard.holds(init_marker(T0, "aaaa")) is False
    finally:
        await store.close()


async def test_guard_writes_a_marker_on_a_new_store_quietly(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store, guard = await _guard(tmp_path / "state.db", clock)
    try:
        assert await guard.check() is False
        assert guard.marker is not None and await store.get_marker() == guard.marker
        assert await store.deliveries() == []
        assert await guard.check() is False  # unchanged: nothing to do
    finally:
        await store.close()


async def test_guard_on_a_lost_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "state.db"
    store, guard = await _guard(path, clock)
    other_store, other = await _guard(path, clock)  # a second process on the same store
    try:
        await guard.check()
        await other.check()
        old = guard.marker
        assert old is not None and other.marker == old
        await store.reset_marker(StoreMarker("gone", T0))  # as good as a store that forgot ours
        clock.advance(timedelta(minutes=5))
        with caplog.at_level(logging.ERROR, logger="rarewatch"):
            assert await guard.check() is True
            assert await other.check() is True  # it notices too, and adopts the same new marker...
        assert guard.marker == other.marker == await store.get_marker()
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2 and "sqlite:///state.db" in errors[0].getMessage()
        # ...but only one operational alert is raised, to every destination.
        deliveries = await store.deliveries(DeliveryStatus.PENDING)
        assert sorted(d.destination for d in deliveries) == ["hook", "ops"]
        assert len({d.alert_id for d in deliveries}) == 1
        alert = await store.get_alert(deliveries[0].alert_id)
        assert alert is not None and alert.categories == (OPERATIONAL_CATEGORY,)
        assert alert.item.title.startswith(OPERATIONAL_TITLE_PREFIX)
        assert await guard.check() is True  # stays in "everything is seen" mode; no second alarm
        assert len(await store.deliveries()) == 2
    finally:
        await store.close()
        await other_store.close()


async def test_guard_adopts_an_operator_init_quietly(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store, guard = await _guard(tmp_path / "state.db", clock)
    try:
        await guard.check()
        assert guard.marker is not None
        fresh = init_marker(T0, guard.marker.id)
        await store.reset_marker(fresh)
        assert await guard.check() is False
        assert guard.marker == fresh
        assert await store.deliveries() == []
    finally:
        await store.close()


async def test_guard_alarms_on_a_zero_byte_file_at_start(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"")
    store, guard = await _guard(path, FakeClock(T0))
    try:
        assert await guard.check() is True
        assert len(await store.deliveries()) == 2
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("after_loss", "age", "lost"),
    [(True, timedelta(hours=1), True), (True, timedelta(days=8), False), (False, timedelta(hours=1), False)],
)
async def test_a_process_started_soon_after_a_loss_keeps_marking_everything_seen(
    tmp_path: Path, after_loss: bool, age: timedelta, lost: bool
) -> None:
    clock = FakeClock(T0)
    store, guard = await _guard(tmp_path / "state.db", clock)
    try:
        await store.create_marker(StoreMarker.new(T0 - age, "old", after_loss=after_loss))
        assert await guard.check() is lost
        assert await store.deliveries() == []  # the loss was announced by whoever noticed it
    finally:
        await store.close()


async def test_the_operational_alert_follows_the_routes_and_reaches_everyone_when_none_takes_it(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    routes: dict[str, tuple[str, ...]] = {OPERATIONAL_CATEGORY: ("ops",)}
    for routed, expected in ((True, ["ops"]), (False, ["hook", "ops"])):
        store = SQLiteStore(tmp_path / f"state-{routed}.db")
        await store.open()
        guard = StoreGuard(
            store,
            where="sqlite:///state.db",
            clock=clock,
            destinations=("hook", "ops"),
            ttl=timedelta(days=7),
            # like `Router.route` with `{match: {category: [ops]}, to: [ops]}`, or with no route for it
            route=lambda alert, routed=routed: routes[alert.categories[0]] if routed else (),
        )
        try:
            await guard.check()
            await store.reset_marker(StoreMarker("gone", T0))
            assert await guard.check() is True
            deliveries = await store.deliveries(DeliveryStatus.PENDING)
            assert sorted(d.destination for d in deliveries) == expected
        finally:
            await store.close()


class _CountingStore(SQLiteStore):
    """A real SQLite store counting marker reads."""

    reads = 0

    async def get_marker(self) -> StoreMarker | None:
        self.reads += 1
        return await super().get_marker()


async def test_checks_that_wait_for_one_another_share_a_fresh_read(tmp_path: Path) -> None:
    import asyncio

    store = _CountingStore(tmp_path / "state.db")
    await store.open()
    guard = StoreGuard(
        store, where="sqlite:///state.db", clock=FakeClock(T0), destinations=(), ttl=timedelta(days=7)
    )
    try:
        assert await guard.check() is False
        store.reads = 0
        # Twenty polls check at once: the first reads; the others were called while that read was under
        # way, so the second reads again, and the eighteen after it share that read's verdict.
        assert await asyncio.gather(*(guard.check() for _ in range(20))) == [False] * 20
        assert store.reads == 2
        # A check after those reads have finished reads again (never a verdict older than the call).
        assert await guard.check() is False and store.reads == 3
        # A loss between two checks is seen by the next one.
        other = SQLiteStore(tmp_path / "state.db")
        await other.open()
        await other.reset_marker(StoreMarker("cccc", T0))
        await other.close()
        assert await asyncio.gather(*(guard.check() for _ in range(5))) == [True] * 5
        assert store.reads == 5
    finally:
        await store.close()
