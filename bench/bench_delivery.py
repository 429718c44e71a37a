"""Delivery latency and throughput with real local receivers (aiohttp on 127.0.0.1), a SQLite outbox and
the service's per-destination workers, with the production retry schedule and breaker defaults.

    python bench/bench_delivery.py [--alerts 100] [--slow 8] [--seed 30]

Figures:

1. a healthy webhook's latency (enqueue to receipt) alone, the baseline measured in the same run;
2. the same healthy webhook beside a receiver that answers every request in `--slow` seconds and beside a
   Slack destination at its one message per second (a local Slack stand-in), all three fed the same alerts;
3. a receiver failing a random 30 % of requests (seeded): the time until it has all `--alerts`, and the
   duplicate count (must be 0);
4. a receiver down (503) for `--down` seconds: how long after it recovered it has all `--alerts`
   (bounded by `outbox.breaker_max_cooldown`, 30 s), and the duplicate count.

These are figures, not assertions: the tests check the orderings (tests/integration/test_delivery_workers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from rarewatch.clock import SystemClock
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.outbox import Outbox
from rarewatch.delivery.slack import SlackNotifier
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.delivery.workers import DeliveryWorkers
from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.store.sqlite import SQLiteStore

Answer = Callable[[], Awaitable[int]]


class Receiver:
    """Records when each webhook-id first arrived with a 2xx, and how often it arrived."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.arrived: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.done = asyncio.Event()
        self.expect = 0

    async def handle(self, request: web.Request) -> web.Response:
        msg_id = request.headers.get("webhook-id") or (await request.json()).get("text", "")[:12]
        code = await self.answer()
        if code < 300:
            self.count[msg_id] = self.count.get(msg_id, 0) + 1
            self.arrived.setdefault(msg_id, time.monotonic())
            if len(self.arrived) >= self.expect:
                self.done.set()
        return web.Response(status=code, text="ok")

    async def slack(self, request: web.Request) -> web.Response:
        self.count["slack"] = self.count.get("slack", 0) + 1
        n = self.count["slack"]
        self.arrived[str(n)] = time.monotonic()
        if n >= self.expect:
            self.done.set()
        return web.json_response({"ok": True, "channel": "C1", "ts": f"{n}.0001"})


async def start(stack: AsyncExitStack, rx: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    app.router.add_post("/api/chat.postMessage", rx.slack)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    stack.push_async_callback(server.close)
    return str(server.make_url("/")).rstrip("/") + "/"


async def enqueue(store: SQLiteStore, n: int, dests: tuple[str, ...]) -> dict[str, float]:
    sent: dict[str, float] = {}
    now = datetime.now(UTC)
    for i in range(n):
        alert_id = f"alert{i:04d}"
        item = Item(f"i{i}", "wire", f"Story {i}", "https://example.org/", "", "", now)
        alert = Alert(alert_id, item, (Match("r", "export-licensing", Severity.HIGH),), now)
        await store.claim([f"k{i}"], timedelta(days=1), now, alert=alert, destinations=dests)
        sent[alert_id] = time.monotonic()
    return sent


async def run(
    notifiers: Callable[[aiohttp.ClientSession, dict[str, str]], dict[str, Notifier]],
    receivers: dict[str, Receiver],
    n: int,
    wait_for: str,
) -> tuple[dict[str, float], Receiver]:
    async with AsyncExitStack() as stack:
        urls = {name: await start(stack, rx) for name, rx in receivers.items()}
        for rx in receivers.values():
            rx.expect = n
        session = await stack.enter_async_context(aiohttp.ClientSession())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        store = SQLiteStore(Path(tmp) / "s.db")
        await store.open()
        stack.push_async_callback(store.close)
        outbox = Outbox(store, notifiers(session, urls), clock=SystemClock(), rng=random.Random(1))
        workers = DeliveryWorkers(outbox)
        workers.start()
        sent = await enqueue(store, n, tuple(receivers))
        workers.wake()
        await asyncio.wait_for(receivers[wait_for].done.wait(), 600)
        stop = asyncio.create_task(workers.stop())
        await asyncio.sleep(0)
        # Do not wait for a slow receiver's pending answers: cancel its worker's send.
        for task in asyncio.all_tasks():
            if task.get_name().startswith("delivery:") and task.get_name() != f"delivery:{wait_for}":
                task.cancel()
        await asyncio.gather(stop, return_exceptions=True)
        return sent, receivers[wait_for]


def latencies(sent: dict[str, float], rx: Receiver) -> str:
    lat = sorted(rx.arrived[k] - sent[k] for k in sent if k in rx.arrived)
    p95 = lat[max(0, int(len(lat) * 0.95) - 1)]
    last = max(rx.arrived.values()) - min(sent.values())
    return (
        f"median {statistics.median(lat) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms,"
        f" max {lat[-1] * 1000:7.1f} ms, all in {last:6.2f} s"
    )


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=100)
    ap.add_argument("--slow", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=30)
    ap.add_argument("--down", type=float, default=20.0, help="seconds the receiver is down (the issue: 120)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    n = args.alerts

    async def ok() -> int:
        return 200

    async def slow() -> int:
        await asyncio.sleep(args.slow)
        return 200

    rng = random.Random(args.seed)

    async def flaky() -> int:
        return 503 if rng.random() < 0.3 else 200

    def hooks(*names: str) -> Callable[[aiohttp.ClientSession, dict[str, str]], dict[str, Notifier]]:
        def build(session: aiohttp.ClientSession, urls: dict[str, str]) -> dict[str, Notifier]:
            out: dict[str, Notifier] = {}
            for name in names:
                if name == "slack":
                    out[name] = SlackNotifier(
                        "slack",
                        channel="C1",
                        token="xoxb-1-2-x",
                        api_url=urls[name] + "api/",
                        session=session,
                    )
                else:
                    out[name] = WebhookNotifier(name, urls[name] + "hook", session, timeout=args.slow * 4)
            return out

        return build

    sent, rx = await run(hooks("healthy"), {"healthy": Receiver(ok)}, n, "healthy")
    print(f"healthy webhook alone              ({n} alerts): {latencies(sent, rx)}  [baseline]")
    receivers = {"healthy": Receiver(ok), "slow": Receiver(slow), "slack": Receiver(ok)}
    sent, rx = await run(hooks("healthy", "slow", "slack"), receivers, n, "healthy")
    pending_slow = n - len(receivers["slow"].arrived)
    pending_slack = n - len(receivers["slack"].arrived)
    print(f"healthy beside {args.slow:g} s receiver + Slack ({n} alerts): {latencies(sent, rx)}")
    print(f"  (meanwhile the slow receiver had {n - pending_slow}, Slack {n - pending_slack} of {n})")
    flakyrx = Receiver(flaky)
    sent, rx = await run(hooks("flaky"), {"flaky": flakyrx}, n, "flaky")
    duplicates = sum(c - 1 for c in rx.count.values())
    last = max(rx.arrived.values()) - min(sent.values())
    print(
        f"30 % flaky receiver (seed {args.seed}): all {len(rx.arrived)} of {n} after {last:.2f} s, "
        f"{duplicates} duplicates"
    )
    up_at = time.monotonic() + args.down

    async def down_then_up() -> int:
        return 200 if time.monotonic() >= up_at else 503

    sent, rx = await run(hooks("down"), {"down": Receiver(down_then_up)}, n, "down")
    down_dups = sum(c - 1 for c in rx.count.values())
    after = max(rx.arrived.values()) - up_at
    print(
        f"receiver down for {args.down:g} s: all {len(rx.arrived)} of {n} {after:.2f} s after it recovered, "
        f"{down_dups} duplicates"
    )
    return 0 if duplicates == down_dups == 0 and len(rx.arrived) == n else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
