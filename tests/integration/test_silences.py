"""Silences through the real pipeline: a local feed server, a real SQLite file, a real webhook receiver,
and the HTTP API that lists what was silenced."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from rarewatch.app import build_web_app
from rarewatch.clock import FakeClock
from rarewatch.models import DeliveryStatus, Silence
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from tests.integration.api_support import served
from tests.integration.test_api_guard import settings as api_settings
from tests.integration.test_pipeline import LICENSING, SECRET, SHORTAGE, http_date
from tests.support import TEST_RULES, FeedServer, WebhookReceiver, feed_server, rss, webhook_receiver

HOUR = timedelta(hours=1)


def make_settings(tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver, store: str) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=store,
        rules=[str(rules)],
        sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}],  # type: ignore[list-item]
        destinations=[  # type: ignore[list-item]
            {"name": "tickets", "type": "webhook", "url": receiver.url, "secret": SECRET}
        ],
        routes=[{"to": ["tickets"]}],  # type: ignore[list-item]
        config_dir=tmp_path,
    )


async def cycle(runtime: Runtime) -> list[str]:
    """One poll and delivery; the titles of the alerts a silence muted."""
    [run] = await run_cycle(runtime.pipeline, runtime.sources, force=True)
    await runtime.outbox.flush()
    return [a.item.title for a in run.silenced]


async def test_a_silenced_alert_is_recorded_listed_never_sent_nor_resent_when_the_silence_ends(
    tmp_path: Path, store_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    mute = Silence(
        "s-1", (("source", "wire"), ("rule", "test-shortage")), now, now + 2 * HOUR, "flaky", "ana", now
    )
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([LICENSING, SHORTAGE])
        async with open_runtime(make_settings(tmp_path, feeds, hook, store_url), clock=clock) as runtime:
            store = runtime.store
            await store.add_silence(mute, now)
            assert await cycle(runtime) == [SHORTAGE["title"]]
            assert [p["title"] for p in hook.payloads()] == [LICENSING["title"]], "the muted one is not sent"
            recorded = {a.item.title: a for a in await store.recent_alerts()}
            assert recorded[SHORTAGE["title"]].silenced_by == "s-1", "recorded, and says which silence"
            assert recorded[LICENSING["title"]].silenced_by == ""
            silenced_id = recorded[SHORTAGE["title"]].id
            assert [d for d in await store.deliveries() if d.alert_id == silenced_id] == []

            clock.advance(HOUR)
            await store.expire_silence("s-1", clock.now())
            later = {
                "title": "Rare earth magnet shortage halts production again",
                "link": "https://other.example.org/b/7",
                "guid": "b-7",
                "date": http_date(clock.now() - timedelta(minutes=1)),
            }
            feeds.feeds["/wire.xml"] = rss([LICENSING, SHORTAGE, later])
            assert await cycle(runtime) == []
            titles = [p["title"] for p in hook.payloads()]
            assert titles == [LICENSING["title"], later["title"]], "a new story is sent; the muted one is not"
            delivered = await store.deliveries(DeliveryStatus.DELIVERED)
            assert silenced_id not in {d.alert_id for d in delivered}

    async with (
        served(build_web_app(api_settings(tmp_path).model_copy(update={"store": store_url}))) as base,
        aiohttp.ClientSession() as session,
        session.get(f"{base}/api/v1/alerts") as resp,
    ):
        listed = json.loads(await resp.read())["alerts"]
    by_title = {a["title"]: a for a in listed}
    assert by_title[SHORTAGE["title"]]["silenced_by"] == "s-1"
    assert by_title[LICENSING["title"]]["silenced_by"] is None
