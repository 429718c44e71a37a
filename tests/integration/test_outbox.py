"""The outbox on real parts: a real SQLite store, real aiohttp receivers on 127.0.0.1, a fake clock."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from rarewatch.clock import FakeClock
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.jsonl import JsonlNotifier
from rarewatch.delivery.outbox import PARK_UNCONFIGURED, Outbox
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.errors import StoreError
from rarewatch.models import Alert, Delivery, DeliveryStatus, Item, Match, Severity
from rarewatch.store.sqlite import SQLiteStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=f"status {code}", headers=headers)

    return handler


OK = status(200)


@dataclass
class Receiver:
    """Answers with `script` first, then per-id `by_id`, then `default`; records every webhook-id."""

    default: Handler = OK
    script: list[Handler] = field(default_factory=list)
    by_id: dict[str, Handler] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # every request, in order
    delivered: list[str] = field(default_factory=list)  # requests answered 2xx
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        msg_id = request.headers["webhook-id"]
        self.ids.append(msg_id)
        handler = self.script.pop(0) if self.script else self.by_id.get(msg_id, self.default)
        response = await handler(request)
        if 200 <= response.status < 300:
            self.delivered.append(msg_id)
        return response


@pytest.fixture
async def receivers(aiohttp_server: AiohttpServer) -> Callable[[], Awaitable[Receiver]]:
    async def start() -> Receiver:
        rx = Receiver()
        app = web.Application()
        app.router.add_post("/hook", rx.handle)
        rx.server = await aiohttp_server(app, host="127.0.0.1")
        return rx

    return start


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


async def enqueue(store: SQLiteStore, clock: FakeClock, alert_id: str, *destinations: str) -> Alert:
    now = clock.now()
    item = Item(f"item-{alert_id}", "mofcom", f"Story {alert_id}", "https://example.org/", "", "", now)
    alert = Alert(alert_id, item, (Match("licensing", "export-licensing", Severity.HIGH),), now)
    assert await store.claim(
        [f"k:{alert_id}"], timedelta(days=30), now, alert=alert, destinations=destinations
    )
    return alert


async def record(store: SQLiteStore, alert_id: str, destination: str) -> Delivery:
    [d] = [d for d in await store.deliveries(destination=destination) if d.alert_id == alert_id]
    return d


def hook(
    name: str, rx: Receiver, session: aiohttp.ClientSession, clock: FakeClock, timeout: float = 10
) -> Notifier:
    return WebhookNotifier(name, rx.url, session, clock=clock, timeout=timeout)


async def test_every_due_delivery_is_sent_and_recorded_exactly_once(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
    tmp_path: Path,
) -> None:
    rx = await receivers()
    archive = tmp_path / "out" / "alerts.jsonl"
    archive.parent.mkdir()
    notifiers = {"hook": hook("hook", rx, session, clock), "archive": JsonlNotifier("archive", archive)}
    outbox = Outbox(store, notifiers, clock=clock)
    for alert_id in ("a1", "a2", "a3"):
        await enqueue(store, clock, alert_id, "hook", "archive")
    report = await outbox.flush()
    assert (report.delivered, report.failed, report.dead, report.errors) == (6, 0, 0, {})
    assert rx.ids == ["a1", "a2", "a3"]
    assert [json.loads(line)["id"] for line in archive.read_text().splitlines()] == ["a1", "a2", "a3"]
    # Later flushes, even much later, never send a delivered record again.
    for _ in range(3):
        clock.advance(timedelta(days=1))
        assert (await outbox.flush()).delivered == 0
    assert rx.ids == ["a1", "a2", "a3"]
    delivered = await store.deliveries(DeliveryStatus.DELIVERED)
    assert len(delivered) == 6
    assert all(d.attempts == 1 and d.delivered_at == T0 for d in delivered)


async def test_a_pass_reads_its_alerts_in_one_store_call(
    store: SQLiteStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "alerts.jsonl"
    outbox = Outbox(store, {"archive": JsonlNotifier("archive", archive)}, clock=clock)
    for n in range(5):
        await enqueue(store, clock, f"a{n}", "archive")
    reads: list[list[str]] = []
    get_alerts = store.get_alerts

    async def counted(alert_ids: Sequence[str]) -> dict[str, Alert]:
        reads.append(list(alert_ids))
        return await get_alerts(alert_ids)

    async def one_at_a_time(alert_id: str) -> Alert | None:
        raise AssertionError("an alert read on its own")

    monkeypatch.setattr(store, "get_alerts", counted)
    monkeypatch.setattr(store, "get_alert", one_at_a_time)
    assert (await outbox.flush()).delivered == 5
    assert reads == [[f"a{n}" for n in range(5)]]
    assert [json.loads(line)["id"] for line in archive.read_text().splitlines()] == [
        f"a{n}" for n in range(5)
    ]


async def test_backoff_follows_the_schedule_then_dead_letters_after_max_age(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.default = status(500)
    outbox = Outbox(store, {"hook": hook("hook", rx, session, clock)}, clock=clock, jitter=0)
    await enqueue(store, clock, "a1", "hook")
    waits = []
    while True:
        report = await outbox.flush()
        d = await record(store, "a1", "hook")
        if d.status is DeliveryStatus.DEAD:
            break
        assert report.failed == 1 and d.last_error == "HTTP 500 Internal Server Error: status 500"
        waits.append(d.next_attempt - clock.now())
        clock.set(d.next_attempt)
    h, m = timedelta(hours=1), timedelta(minutes=1)
    assert (
        waits == [1 * S, 2 * S, 3 * S, 5 * S, 10 * S, 30 * S, m, 5 * m, 30 * m, 2 * h, 5 * h] + [10 * h] * 7
    )
    # The first failure past 72h dead-letters, with the last error.
    assert clock.now() - T0 > timedelta(hours=72) >= clock.now() - T0 - 10 * h
    assert report.dead == 1 and report.failed == 0
    assert d.last_error == "HTTP 500 Internal Server Error: status 500 (gave up: older than 72h)"
    assert d.attempts == len(waits) + 1 == len(rx.ids)
    clock.advance(timedelta(days=10))
    await outbox.flush()
    assert len(rx.ids) == d.attempts  # a dead letter is not retried by itself


async def test_jitter_stays_in_bounds_and_a_seeded_rng_makes_it_repeatable(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.by_id = {"a1": status(500), "a3": status(500), "a5": status(500)}  # successes between: no deferral
    outbox = Outbox(store, {"hook": hook("hook", rx, session, clock)}, clock=clock, rng=random.Random(7))
    for i in range(1, 6):
        await enqueue(store, clock, f"a{i}", "hook")
    report = await outbox.flush()
    assert (report.delivered, report.failed) == (2, 3)
    waits = [(await record(store, a, "hook")).next_attempt - T0 for a in ("a1", "a3", "a5")]
    same_seed = random.Random(7)
    expected = [1 * S * (1 + same_seed.uniform(-0.1, 0.1)) for _ in waits]
    for wait, exp in zip(waits, expected, strict=True):
        assert 0.9 * S <= wait <= 1.1 * S
        assert abs(wait - exp) < timedelta(microseconds=2)
    assert len(set(waits)) == 3


async def test_retry_after_pauses_the_destination_and_leaves_its_queue_due_unsent(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx, other = await receivers(), await receivers()
    rx.script = [status(429, {"Retry-After": "120"})]
    notifiers = {"hook": hook("hook", rx, session, clock), "other": hook("other", other, session, clock)}
    outbox = Outbox(store, notifiers, clock=clock)
    for alert_id in ("a1", "a2", "a3"):
        await enqueue(store, clock, alert_id, "hook", "other")
    report = await outbox.flush()
    assert (report.delivered, report.failed, report.deferred) == (3, 1, 2)
    assert rx.ids == ["a1"]  # told to slow down: the rest of its queue waits, unsent
    assert other.delivered == ["a1", "a2", "a3"]
    records = [await record(store, a, "hook") for a in ("a1", "a2", "a3")]
    assert records[0].next_attempt == T0 + 120 * S
    assert [d.attempts for d in records] == [1, 0, 0], "waiting, not attempted: no attempt is counted"
    assert outbox.next_wake("hook") == T0 + 120 * S
    clock.advance(119)
    await outbox.flush()
    assert rx.ids == ["a1"]
    clock.advance(1)
    report = await outbox.flush()
    assert report.delivered == 3
    assert sorted(rx.delivered) == ["a1", "a2", "a3"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7 * S),  # honoured as given, also above the schedule's 1 s
        ("1.5", 1.5 * S),
        ("0", 1 * S),  # never less than MIN_RETRY_DELAY: a lane must not spin
        ("86400", 3600 * S),  # capped at max_retry_after
        ("99999999999999999999", 3600 * S),  # past what timedelta holds: capped, not an OverflowError
        ("-5", 1 * S),  # no usable hint: the schedule (1 s after a first failure)
        ("soon", 1 * S),
    ],
)
async def test_retry_after_is_honoured_as_given_within_the_cap(
    header: str,
    expected: timedelta,
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.script = [status(503, {"Retry-After": header})]
    outbox = Outbox(
        store,
        {"hook": hook("hook", rx, session, clock)},
        clock=clock,
        jitter=0,
        max_retry_after=timedelta(hours=1),
    )
    await enqueue(store, clock, "a1", "hook")
    await outbox.flush()
    assert (await record(store, "a1", "hook")).next_attempt == T0 + expected


async def test_a_flaky_destination_retries_per_delivery_and_keeps_sending_the_rest(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.by_id = {f"a{i}": status(502) for i in (1, 2, 3, 5, 6, 7, 9)}  # three failures in a row, twice
    outbox = Outbox(
        store, {"hook": hook("hook", rx, session, clock)}, clock=clock, jitter=0, breaker_threshold=4
    )
    for i in range(1, 11):
        await enqueue(store, clock, f"a{i}", "hook")
    report = await outbox.flush()
    assert (report.delivered, report.failed, report.deferred) == (3, 7, 0)
    assert rx.ids == [f"a{i}" for i in range(1, 11)], "every delivery attempted: nothing deferred"
    for i in (1, 2, 3, 5):
        assert (await record(store, f"a{i}", "hook")).next_attempt == T0 + 1 * S


async def test_the_circuit_opens_after_consecutive_failures_probes_once_and_releases_the_backlog(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.default = status(502)
    cooldown = 30 * S
    outbox = Outbox(
        store,
        {"hook": hook("hook", rx, session, clock)},
        clock=clock,
        jitter=0,
        breaker_threshold=3,
        breaker_cooldown=cooldown,
        breaker_max_cooldown=10 * cooldown,
    )
    for i in range(1, 13):
        await enqueue(store, clock, f"a{i}", "hook")
    report = await outbox.flush()
    assert (report.failed, report.deferred) == (3, 9)
    assert rx.ids == ["a1", "a2", "a3"], "open after three failures in a row: not hammered"
    assert outbox.breaker("hook").state == "open"
    assert outbox.next_wake("hook") == T0 + cooldown  # the probe; a1's retry (T0 + 5 s) waits for it
    clock.advance(29)
    await outbox.flush()
    assert len(rx.ids) == 3, "nothing is sent before the cool-down has passed"
    assert [(await record(store, f"a{i}", "hook")).attempts for i in (4, 12)] == [0, 0]
    clock.advance(1)
    report = await outbox.flush()
    assert len(rx.ids) == 4 and report.failed == 1 and report.deferred == 11, "one probe, which failed"
    assert outbox.breaker("hook").state == "open"
    assert outbox.next_wake("hook") == clock.now() + 2 * cooldown  # a failed probe doubles the cool-down
    # The receiver comes back; the next probe closes the circuit and the whole backlog goes at once,
    # including a1..a3 whose own backoff had grown to 5 minutes.
    rx.default = OK
    clock.advance(2 * cooldown)
    report = await outbox.flush()
    report = await outbox.flush() if report.delivered < 12 else report
    assert outbox.breaker("hook").state == "closed"
    assert sorted(rx.delivered) == sorted(f"a{i}" for i in range(1, 13))
    assert len(rx.delivered) == 12, "none twice"
    assert await store.deliveries(DeliveryStatus.PENDING) == []


async def test_one_poison_alert_does_not_hold_up_the_others(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.by_id = {"a1": status(500)}
    outbox = Outbox(store, {"hook": hook("hook", rx, session, clock)}, clock=clock)
    for i in range(1, 5):
        await enqueue(store, clock, f"a{i}", "hook")
    report = await outbox.flush()
    assert (report.delivered, report.failed, report.deferred) == (3, 1, 0)
    assert rx.delivered == ["a2", "a3", "a4"]


async def test_a_failing_destination_neither_blocks_nor_duplicates_the_others(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    failing, slow, fast = await receivers(), await receivers(), await receivers()
    failing.default = status(500)
    fast_done = asyncio.Event()
    waited: list[bool] = []

    async def wait_for_fast(request: web.Request) -> web.StreamResponse:
        # Answers only once `fast` has everything: proves the destinations are served concurrently.
        try:
            await asyncio.wait_for(fast_done.wait(), 3)
            waited.append(True)
        except TimeoutError:
            waited.append(False)
        return web.Response(status=200)

    async def fast_ok(request: web.Request) -> web.StreamResponse:
        if len(fast.ids) == 3:
            fast_done.set()
        return web.Response(status=200)

    slow.default, fast.default = wait_for_fast, fast_ok
    notifiers = {
        n: hook(n, rx, session, clock) for n, rx in (("failing", failing), ("slow", slow), ("fast", fast))
    }
    outbox = Outbox(store, notifiers, clock=clock)
    for i in range(1, 4):
        await enqueue(store, clock, f"a{i}", "slow", "failing", "fast")
    for _ in range(5):
        await outbox.flush()
        clock.advance(timedelta(hours=1))
    assert waited[0] is True
    assert fast.ids == slow.ids == ["a1", "a2", "a3"]  # each exactly once, never re-sent
    assert len(failing.ids) > 3  # retried meanwhile
    assert all(d.destination == "failing" for d in await store.deliveries(DeliveryStatus.PENDING))


async def test_410_dead_letters_and_disables_the_destination_for_the_process(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
    tmp_path: Path,
) -> None:
    rx = await receivers()
    rx.default = status(410)
    archive = tmp_path / "alerts.jsonl"
    notifiers = {"hook": hook("hook", rx, session, clock), "archive": JsonlNotifier("archive", archive)}
    outbox = Outbox(store, notifiers, clock=clock)
    await enqueue(store, clock, "a1", "hook", "archive")
    await enqueue(store, clock, "a2", "hook", "archive")
    report = await outbox.flush()
    assert (report.delivered, report.dead) == (2, 2)
    assert report.disabled == {"hook": "HTTP 410 Gone"} == outbox.disabled
    assert rx.ids == ["a1"]
    assert (await record(store, "a1", "hook")).last_error == "HTTP 410 Gone"
    assert (await record(store, "a2", "hook")).last_error == "destination disabled (HTTP 410 Gone)"
    clock.advance(60)
    await enqueue(store, clock, "a3", "hook", "archive")
    report = await outbox.flush()
    assert (report.delivered, report.dead) == (1, 1)
    assert rx.ids == ["a1"]  # never contacted again
    assert len(archive.read_text().splitlines()) == 3


@pytest.mark.parametrize("code", [400, 302])
async def test_a_non_retryable_failure_is_dead_at_once(
    code: int,
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    rx.default = status(code, {"Location": "https://example.org/new"})
    outbox = Outbox(store, {"hook": hook("hook", rx, session, clock)}, clock=clock)
    await enqueue(store, clock, "a1", "hook")
    report = await outbox.flush()
    assert report.dead == 1
    d = await record(store, "a1", "hook")
    assert d.status is DeliveryStatus.DEAD and d.last_error is not None and f"HTTP {code}" in d.last_error
    assert report.errors == {"hook": (f"a1: {d.last_error}",)}
    clock.advance(timedelta(days=1))
    await outbox.flush()
    assert rx.ids == ["a1"]


async def test_network_failures_are_retried_with_a_readable_error(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    rx = await receivers()

    async def too_slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response(status=200)

    rx.script = [too_slow]
    notifiers: dict[str, Notifier] = {
        "down": WebhookNotifier("down", f"http://127.0.0.1:{closed_port}/hook", session, clock=clock),
        "slow": hook("slow", rx, session, clock, timeout=0.2),
    }
    outbox = Outbox(store, notifiers, clock=clock)
    await enqueue(store, clock, "a1", "down", "slow")
    report = await outbox.flush()
    assert report.failed == 2
    assert (
        await record(store, "a1", "down")
    ).last_error == f"POST http://127.0.0.1:{closed_port}: connection refused"
    slow_error = (await record(store, "a1", "slow")).last_error
    assert slow_error is not None and slow_error.endswith("timed out after 0.2s")
    clock.advance(10)
    report = await outbox.flush()
    assert report.delivered == 1  # "slow" answers at once now; "down" is still down
    assert rx.delivered == ["a1"]


async def test_deliveries_to_an_unconfigured_destination_are_kept_pending(
    store: SQLiteStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    rx = await receivers()
    outbox = Outbox(store, {"hook": hook("hook", rx, session, clock)}, clock=clock)
    await enqueue(store, clock, "a1", "hook", "removed")
    report = await outbox.flush()
    assert report.delivered == 1
    assert report.unconfigured == {"removed": 1}
    d = await record(store, "a1", "removed")
    assert d.status is DeliveryStatus.PENDING
    assert d.next_attempt == T0 + PARK_UNCONFIGURED  # parked, so it cannot fill every batch
    clock.advance(timedelta(days=5))  # far beyond max_age: still not dropped
    await outbox.flush()
    assert (await record(store, "a1", "removed")).status is DeliveryStatus.PENDING


async def test_a_store_failure_after_a_send_is_recorded_later_not_resent(
    tmp_path: Path,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    receivers: Callable[[], Awaitable[Receiver]],
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    rx = await receivers()

    async def accept_then_lose_the_store(request: web.Request) -> web.StreamResponse:
        await store.close()  # the store goes away between the send and its recording
        return web.Response(status=200)

    rx.script = [accept_then_lose_the_store]
    outbox = Outbox(store, {"hook": hook("hook", rx, session, clock)}, clock=clock)
    await enqueue(store, clock, "a1", "hook")
    await enqueue(store, clock, "a2", "hook")
    with pytest.raises(StoreError):
        await outbox.flush()
    assert rx.ids == ["a1"]  # no new send was started once recording failed
    await store.open()
    try:
        assert [d.status for d in await store.deliveries()] == [DeliveryStatus.PENDING] * 2
        report = await outbox.flush()
        assert report.delivered == 1
        # The process remembered that a1 went out and recorded it first: only a2 is sent. (A crash in that
        # window would still send a1 again, with the same webhook-id for the receiver to deduplicate.)
        assert rx.ids == ["a1", "a2"]
        assert [d.status for d in await store.deliveries()] == [DeliveryStatus.DELIVERED] * 2
        assert (await outbox.flush()).delivered == 0
    finally:
        await store.close()
