"""A delivery sent just as Redis goes away is recorded once Redis is back, not sent again: the outbox keeps
what it could not record and records it first on the destination's next pass (a Redis restart alone never
re-sends). Real parts: an own redis-server (paused with SIGSTOP from inside the receiver's handler, i.e.
after the send reached the receiver and before the outbox records it) and a real aiohttp webhook receiver."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from rarewatch.clock import FakeClock
from rarewatch.delivery.outbox import Outbox
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.errors import StoreError
from rarewatch.models import Alert, DeliveryStatus, Item, Match, Severity
from rarewatch.store.redis import RedisStore
from tests.conftest import RedisServer
from tests.support import serve

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def alert(n: int) -> Alert:
    item = Item(f"item-{n}", "wire", f"Rare earth export licence story {n}", f"https://e.org/{n}", "", "", T0)
    return Alert(f"alert-{n}", item, (Match("licensing", "export-licensing", Severity.HIGH),), T0)


async def test_a_delivery_sent_while_redis_went_away_is_recorded_later_not_sent_again(
    own_redis: RedisServer,
) -> None:
    ids: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        ids.append(request.headers["webhook-id"])
        if len(ids) == 1:  # the send got through; Redis stops answering before it can be recorded
            assert own_redis.proc is not None
            os.kill(own_redis.proc.pid, signal.SIGSTOP)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    store = RedisStore(own_redis.url, connect_timeout=0.5, timeout=0.5)
    await store.open()
    clock = FakeClock(T0)
    async with serve(app) as server, aiohttp.ClientSession() as session:
        for n in (1, 2):
            assert await store.claim([f"item:{n}"], timedelta(days=1), T0, alert(n), ["hook"])
        hook = WebhookNotifier("hook", str(server.make_url("/hook")), session)
        outbox = Outbox(store, {"hook": hook}, clock=clock)

        with pytest.raises(StoreError):
            await outbox.flush()  # alert-1 sent, its record failed; alert-2 not attempted
        assert own_redis.proc is not None
        os.kill(own_redis.proc.pid, signal.SIGCONT)

        clock.advance(timedelta(minutes=1))
        report = await outbox.flush()
        assert report.delivered == 1, "only alert-2 is sent"
        assert ids == ["alert-1", "alert-2"], "alert-1 was not sent again"
        delivered = await store.deliveries(DeliveryStatus.DELIVERED)
        assert sorted(d.alert_id for d in delivered) == ["alert-1", "alert-2"]
        assert {d.alert_id: d.delivered_at for d in delivered}["alert-1"] == T0, "recorded at its send time"
        assert await store.due_deliveries(clock.now()) == []
    await store.close()
