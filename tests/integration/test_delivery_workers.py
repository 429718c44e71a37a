"""Per-destination delivery workers on real parts: SQLite, aiohttp receivers on 127.0.0.1, the real clock.

No timing thresholds: a slow destination is a receiver that answers only when the test opens a gate, and
Slack's pacing is a sleep that waits on a gate, so "the healthy destination finished while the other was
still pending" is an ordering, not a race. Retry schedules are shrunk to milliseconds; the bounded waits
(`asyncio.wait_for(..., 30)`) only keep a broken build from hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rarewatch.clock import FakeClock, SystemClock
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.jsonl import JsonlNotifier
from rarewatch.delivery.outbox import Outbox
from rarewatch.delivery.slack import SlackNotifier
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.delivery.workers import DeliveryWorkers
from rarewatch.models import Alert, DeliveryStatus, Item, Match, Severity
from rarewatch.runtime import open_runtime
from rarewatch.scheduler import Poller
from rarewatch.settings import Settings
from rarewatch.store.sqlite import SQLiteStore
from tests.support import TEST_RULES, feed_server, rss, serve, slack_api

MS = timedelta(milliseconds=1)
FAST = (timedelta(0), 20 * MS, 50 * MS, 100 * MS)  # the retry schedule, shrunk
BOUND = 30  # seconds: only so that a broken build fails instead of hanging

Answer = Callable[[str], Awaitable[int]]


@dataclass
class Rx:
    """A webhook receiver whose answer per request is decided by `answer(webhook-id)`."""

    answer: Answer
    requests: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.Response:
        msg_id = request.headers["webhook-id"]
        self.requests.append(msg_id)
        self.changed.set()
        code = await self.answer(msg_id)
        if 200 <= code < 300:
            self.delivered.append(msg_id)
        self.changed.set()
        return web.Response(status=code, text="ok" if code < 300 else "no")

    async def until(self, predicate: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), BOUND)


async def ok(_: str) -> int:
    return 200


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[Answer], Awaitable[Rx]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(answer: Answer) -> Rx:
            rx = Rx(answer)
            app = web.Application()
            app.router.add_post("/hook", rx.handle)
            rx.server = await stack.enter_async_context(serve(app))
            return rx

        yield start


async def enqueue(store: SQLiteStore, n: int, *destinations: str, prefix: str = "a") -> list[str]:
    now = datetime.now(UTC)
    ids = []
    for i in range(n):
        alert_id = f"{prefix}{i:03d}"
        item = Item(f"item-{alert_id}", "wire", f"Story {alert_id}", "https://example.org/", "", "", now)
        alert = Alert(alert_id, item, (Match("licensing", "export-licensing", Severity.HIGH),), now)
        assert await store.claim(
            [f"k:{alert_id}"], timedelta(days=30), now, alert=alert, destinations=destinations
        )
        ids.append(alert_id)
    return ids


def outbox(store: SQLiteStore, notifiers: dict[str, Notifier], **kw: object) -> Outbox:
    options: dict[str, object] = {"schedule": FAST, "jitter": 0, "breaker_cooldown": 50 * MS}
    options.update(kw)
    return Outbox(store, notifiers, clock=SystemClock(), **options)  # type: ignore[arg-type]


async def test_a_receiver_failing_30_percent_at_random_gets_every_alert_once(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    rng = random.Random(30)

    async def flaky(_: str) -> int:
        return 503 if rng.random() < 0.3 else 200

    rx = await receiver(flaky)
    box = outbox(store, {"hook": WebhookNotifier("hook", rx.url, session)})
    ids = await enqueue(store, 100, "hook")
    workers = DeliveryWorkers(box, idle=50 * MS)
    workers.start()
    try:
        await rx.until(lambda: len(set(rx.delivered)) == len(ids))
    finally:
        await workers.stop()
    assert sorted(rx.delivered) == ids, "every alert, none twice"
    assert len(rx.requests) > len(ids), "some requests failed and were retried"
    assert await store.deliveries(DeliveryStatus.PENDING) == []


async def test_a_receiver_down_for_a_while_gets_everything_once_after_it_recovers(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    up = asyncio.Event()

    async def down_until_up(_: str) -> int:
        return 200 if up.is_set() else 503

    rx = await receiver(down_until_up)
    # A failed delivery's own next attempt is an hour away: only the breaker's probe and the release of
    # the backlog on recovery can get them through within the bound.
    schedule = (timedelta(0), timedelta(hours=1))
    box = outbox(
        store,
        {"hook": WebhookNotifier("hook", rx.url, session)},
        schedule=schedule,
        breaker_threshold=5,
        breaker_max_cooldown=200 * MS,
    )
    ids = await enqueue(store, 30, "hook")
    workers = DeliveryWorkers(box, idle=50 * MS)
    workers.start()
    try:
        # Down: five deliveries fail, the circuit opens, then two probes fail.
        await rx.until(lambda: len(rx.requests) >= 7)
        assert box.breaker("hook").state == "open"
        before = len(rx.requests)
        assert before < 3 * len(ids), "an open circuit does not hammer the receiver"
        up.set()
        await rx.until(lambda: len(set(rx.delivered)) == len(ids))
    finally:
        await workers.stop()
    assert sorted(rx.delivered) == ids, "every alert, none twice"
    assert box.breaker("hook").state == "closed"


async def test_a_healthy_destination_is_not_held_up_by_a_slow_one_or_by_slack_pacing(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    slow_gate, pace_gate = asyncio.Event(), asyncio.Event()

    async def slow(_: str) -> int:
        await slow_gate.wait()  # "answers in several seconds": here, when the test says so
        return 200

    async def paced_sleep(_: float) -> None:
        await pace_gate.wait()  # Slack's one message per second, held open by the test

    healthy, slowrx = await receiver(ok), await receiver(slow)
    async with slack_api() as slack:
        notifiers: dict[str, Notifier] = {
            "slow": WebhookNotifier("slow", slowrx.url, session, timeout=BOUND),
            "slack": SlackNotifier(
                "slack",
                channel="C1",
                token="xoxb-1-2-x",
                api_url=slack.api_url,
                session=session,
                sleep=paced_sleep,
            ),
            "healthy": WebhookNotifier("healthy", healthy.url, session),
        }
        box = outbox(store, notifiers)
        ids = await enqueue(store, 20, "slow", "slack", "healthy")
        workers = DeliveryWorkers(box, idle=timedelta(seconds=5))
        workers.start()
        try:
            await healthy.until(lambda: len(healthy.delivered) == len(ids))
            # The healthy destination has everything, while the others are still on their first ones.
            assert slowrx.delivered == [] and len(slowrx.requests) == 1
            assert len(slack.posts) == 1, "Slack posted its first message and is pacing the second"
            slow_gate.set()
            pace_gate.set()
            await slowrx.until(lambda: len(slowrx.delivered) == len(ids))
            for _ in range(BOUND * 100):
                if len(slack.posts) == len(ids):
                    break
                await asyncio.sleep(0.01)
        finally:
            await workers.stop()
    assert healthy.delivered == slowrx.delivered == ids
    assert len(slack.posts) == len(ids)


async def test_stop_finishes_the_send_in_flight_and_starts_no_new_one(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    gate = asyncio.Event()

    async def gated(_: str) -> int:
        await gate.wait()
        return 200

    rx = await receiver(gated)
    box = outbox(store, {"hook": WebhookNotifier("hook", rx.url, session, timeout=BOUND)})
    await enqueue(store, 3, "hook")
    workers = DeliveryWorkers(box, idle=50 * MS)
    workers.start()
    await rx.until(lambda: len(rx.requests) == 1)
    stopping = asyncio.create_task(workers.stop())
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(stopping, BOUND)
    assert rx.delivered == ["a000"]
    statuses = [d.status for d in await store.deliveries()]
    assert statuses == [DeliveryStatus.DELIVERED, DeliveryStatus.PENDING, DeliveryStatus.PENDING]


class Poison:
    """A notifier with a bug: one alert makes it raise an unexpected exception; the rest go through."""

    name = "buggy"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> None:
        if alert.id == "a001":
            raise KeyError("boom")
        self.sent.append(alert.id)

    async def close(self) -> None:
        pass


async def test_an_unexpected_exception_is_a_failed_attempt_retried_then_dead_lettered(
    store: SQLiteStore,
) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    notifier = Poison()
    box = Outbox(store, {"buggy": notifier}, clock=clock, max_age=timedelta(hours=1), jitter=0)
    now = clock.now()
    for i in range(4):
        item = Item(f"i{i}", "wire", f"Story {i}", "https://example.org/", "", "", now)
        alert = Alert(f"a{i:03d}", item, (Match("r", "export-licensing", Severity.HIGH),), now)
        await store.claim([f"k{i}"], timedelta(days=1), now, alert=alert, destinations=["buggy"])
    report = await box.flush()
    assert (report.delivered, report.failed) == (3, 1)
    assert notifier.sent == ["a000", "a002", "a003"], "the others flow past the poison alert"
    [poison] = await store.deliveries(DeliveryStatus.PENDING)
    assert poison.attempts == 1 and poison.last_error == "unexpected error: KeyError: 'boom'"
    assert poison.next_attempt == now + timedelta(seconds=1)  # retried on the schedule
    while (record := await store.get_delivery("a001", "buggy")) and record.status is DeliveryStatus.PENDING:
        clock.set(record.next_attempt)
        await box.flush()
    assert record is not None and record.status is DeliveryStatus.DEAD
    assert record.last_error == "unexpected error: KeyError: 'boom' (gave up: older than 1h)"


async def test_jsonl_writes_valid_utf8_for_a_lone_surrogate(store: SQLiteStore, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    path = tmp_path / "alerts.jsonl"
    box = Outbox(store, {"archive": JsonlNotifier("archive", path)}, clock=clock)
    now = clock.now()
    item = Item("i1", "wire", "Rare earth \ud800 licence", "https://example.org/", "x\udfff", "", now)
    alert = Alert("a1", item, (Match("r", "export-licensing", Severity.HIGH),), now)
    await store.claim(["k1"], timedelta(days=1), now, alert=alert, destinations=["archive"])
    report = await box.flush()
    assert report.delivered == 1
    line = path.read_bytes().decode("utf-8")  # strict: valid UTF-8
    assert json.loads(line)["title"] == "Rare earth \ufffd licence"


async def test_credentials_in_the_url_plus_an_authorization_header_fail_the_attempt_clearly(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    rx = await receiver(ok)
    url = rx.url.replace("http://", "http://user:pass@")
    hook = WebhookNotifier("hook", url, session, headers={"Authorization": "Bearer x"})
    box = Outbox(store, {"hook": hook}, clock=SystemClock())
    await enqueue(store, 1, "hook")
    report = await box.flush()
    assert report.dead == 1, "a request no retry can fix is dead-lettered, never stuck at attempts=0"
    [d] = await store.deliveries()
    assert d.attempts == 1 and d.status is DeliveryStatus.DEAD
    assert d.last_error is not None and "request refused" in d.last_error and "pass" not in d.last_error
    assert rx.requests == []


async def test_drain_due_delivers_everything_due_not_just_one_batch(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    rx = await receiver(ok)
    box = Outbox(store, {"hook": WebhookNotifier("hook", rx.url, session)}, clock=SystemClock(), batch=10)
    ids = await enqueue(store, 35, "hook")
    report = await box.drain_due()
    assert report.delivered == 35 and sorted(rx.delivered) == ids


async def test_a_worker_wakes_for_its_next_retry_without_being_told(
    store: SQLiteStore, session: aiohttp.ClientSession, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    first = True

    async def fail_once(_: str) -> int:
        nonlocal first
        first, code = False, (503 if first else 200)
        return code

    rx = await receiver(fail_once)
    box = outbox(store, {"hook": WebhookNotifier("hook", rx.url, session)})
    await enqueue(store, 1, "hook")
    workers = DeliveryWorkers(box, idle=timedelta(seconds=BOUND * 2))  # only the retry timer can wake it
    workers.start()
    try:
        await rx.until(lambda: rx.delivered == ["a000"])
        # Deliveries added later are sent when the worker is woken, not after `idle`.
        await enqueue(store, 1, "hook", prefix="b")
        workers.wake()
        await rx.until(lambda: rx.delivered == ["a000", "b000"])
    finally:
        await workers.stop()
    assert rx.requests == ["a000", "a000", "b000"]


async def test_a_poll_only_enqueues_and_never_waits_for_a_delivery(
    tmp_path: Path, receiver: Callable[[Answer], Awaitable[Rx]]
) -> None:
    gate = asyncio.Event()

    async def gated(_: str) -> int:
        await gate.wait()
        return 200

    rx = await receiver(gated)
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    async with feed_server() as feeds:
        feeds.feeds["/wire.xml"] = rss(
            [{"title": "Rare earth export licence regime widened", "link": "https://news.example.org/1"}]
        )
        settings = Settings(
            store=f"sqlite:///{tmp_path / 'state.db'}",
            rules=[str(tmp_path / "rules.yaml")],
            sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],
            destinations=[{"name": "tickets", "type": "webhook", "url": rx.url, "timeout": "60s"}],
            routes=[{"to": ["tickets"]}],
            config_dir=tmp_path,
        )
        async with open_runtime(settings) as runtime:
            poller = Poller(runtime.pipeline, runtime.sources, runtime.outbox, runtime.clock)
            poller.workers.start()
            try:
                await asyncio.wait_for(poller.poll(runtime.sources[0]), BOUND)
                assert rx.delivered == [], "the poll returned before its alert was delivered"
                await rx.until(lambda: len(rx.requests) == 1)  # the worker is sending it meanwhile
                gate.set()
                await rx.until(lambda: len(rx.delivered) == 1)
            finally:
                await poller.stop()
