"""Source health through the real pipeline: a local feed server that starts failing (or stops changing),
a real SQLite store and a real webhook receiver on the `ops` route; the clock is injected.

One operational alert when the problem appears, one recovery message when it ends, never one per poll;
the alerts go through the routes (`category: [ops]`) and the outbox like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.clock import FakeClock
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from tests.support import TEST_RULES, FeedServer, WebhookReceiver, feed_server, rss, webhook_receiver

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with feed_server() as fs:
        yield fs


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as rx:
        yield rx


def settings_for(tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(rules)],
        sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml"), "interval": "1h"}],  # type: ignore[list-item]
        destinations=[  # type: ignore[list-item]
            {"name": "oncall", "type": "webhook", "url": receiver.url},
            {"name": "archive", "type": "jsonl", "path": "alerts.jsonl"},
        ],
        routes=[  # type: ignore[list-item]
            {"match": {"category": ["ops"]}, "to": ["oncall"]},
            {"match": {"category": ["export-licensing"]}, "to": ["archive"]},
        ],
        source_health={"failures": 3, "silence_factor": 10, "min_silence": "24h", "min_changes": 3},  # type: ignore[arg-type]
        config_dir=tmp_path,
    )


def story(n: int) -> dict[str, str]:
    return {"title": f"Harbour notice {n}", "link": f"https://wire.example/{n}", "guid": f"w-{n}"}


async def poll(runtime: Runtime, clock: FakeClock, advance: timedelta = timedelta(hours=1)) -> str:
    clock.advance(advance)
    (run,) = await run_cycle(runtime.pipeline, runtime.sources, force=True)
    await runtime.outbox.drain_due()
    return run.status


async def test_a_source_that_starts_failing_raises_one_ops_alert_and_one_recovery(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    feeds.feeds["/wire.xml"] = rss([story(1)])
    clock = FakeClock(NOW)
    async with open_runtime(settings_for(tmp_path, feeds, receiver), clock=clock) as runtime:
        assert await poll(runtime, clock) == "ok"
        feeds.statuses["/wire.xml"] = 503
        statuses = [await poll(runtime, clock) for _ in range(2)]
        assert statuses == ["error", "error"]
        assert receiver.payloads() == [], "two failures: below the threshold"
        for _ in range(5):
            assert await poll(runtime, clock) == "error"
        raised = receiver.payloads()
        assert len(raised) == 1, "one alert for the whole outage, not one per failed poll"
        assert raised[0]["categories"] == ["ops"]
        assert raised[0]["source"] == "wire"
        assert "wire is failing" in raised[0]["title"]
        assert "503" in raised[0]["summary"]

        del feeds.statuses["/wire.xml"]
        for _ in range(3):
            assert await poll(runtime, clock) == "not_modified", "the unchanged feed answers 304 again"
        payloads = receiver.payloads()
        assert len(payloads) == 2, "one recovery message, then quiet"
        assert "wire recovered" in payloads[1]["title"]
        assert payloads[1]["id"] != payloads[0]["id"]
    assert not (tmp_path / "alerts.jsonl").exists(), "the rule route does not take ops alerts"


async def test_a_feed_that_stops_changing_raises_one_silence_alert_and_recovers_when_it_changes(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    clock = FakeClock(NOW)
    async with open_runtime(settings_for(tmp_path, feeds, receiver), clock=clock) as runtime:
        for n in range(4):  # a new story every 6 hours: silent after 60 hours without one
            feeds.feeds["/wire.xml"] = rss([story(k) for k in range(n + 1)])
            await poll(runtime, clock, timedelta(hours=6))
        for _ in range(59):  # polled hourly, unchanged (304s), for 59 hours: still within its cadence
            await poll(runtime, clock)
        assert receiver.payloads() == []
        for _ in range(10):
            await poll(runtime, clock)
        (silent,) = receiver.payloads()
        assert "wire is silent" in silent["title"]
        assert silent["categories"] == ["ops"]

        feeds.feeds["/wire.xml"] = rss([story(k) for k in range(6)])
        await poll(runtime, clock)
        await poll(runtime, clock)
        assert [p["title"] for p in receiver.payloads()][1:] == ["[rarewatch ops] source wire recovered"]
