"""The whole pipeline on real parts: feeds from a local HTTP server, a real SQLite file, a real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from rarewatch.clock import FakeClock
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from tests.support import TEST_RULES, FeedServer, WebhookReceiver, feed_server, rss, webhook_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Real time: the independent signature verifier rejects timestamps far from now.
NOW = datetime.now(UTC).replace(microsecond=0)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


LICENSING = {
    "title": "China tightens export licence rules for rare earth magnets",
    "link": "https://news.example.org/a/1?utm_source=feed",
    "guid": "a-1",
    "date": http_date(NOW - timedelta(hours=1)),
}
SHORTAGE = {
    "title": "Automaker halts production amid magnet shortage",
    "link": "https://news.example.org/a/2",
    "guid": "a-2",
    "date": http_date(NOW - timedelta(hours=2)),
}
NOISE = {
    "title": "Town renews fishing licence scheme",
    "link": "https://news.example.org/a/3",
    "guid": "a-3",
    "date": http_date(NOW - timedelta(hours=1)),
}


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with feed_server() as fs:
        yield fs


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with webhook_receiver() as rx:
        yield rx


def make_settings(tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver, store: str) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=store,
        rules=[str(rules)],
        sources=[  # type: ignore[arg-type]
            {"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")},
            {"name": "mirror", "type": "feed", "url": feeds.url("/mirror.xml")},
            {"name": "broken", "type": "feed", "url": feeds.url("/broken.xml")},
        ],
        destinations=[  # type: ignore[list-item]
            {"name": "tickets", "type": "webhook", "url": receiver.url, "secret": SECRET},
            {"name": "archive", "type": "jsonl", "path": "alerts.jsonl"},
        ],
        routes=[  # type: ignore[list-item]
            {"match": {"category": ["export-licensing"]}, "to": ["tickets"]},
            {"to": ["archive", "tickets"]},
        ],
        config_dir=tmp_path,
    )


async def cycle(runtime: Runtime) -> tuple[list[str], int]:
    # One source after another: which of two copies of a story comes first is then fixed, not a race.
    runs = await run_cycle(runtime.pipeline, runtime.sources, force=True, concurrency=1)
    await runtime.outbox.flush()
    return [r.status for r in runs], sum(len(r.alerts) for r in runs)


async def test_cycle_fetches_matches_dedups_and_delivers(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    feeds.feeds["/wire.xml"] = rss([LICENSING, SHORTAGE, NOISE])
    feeds.feeds["/mirror.xml"] = rss(
        [{**LICENSING, "guid": "mirror-9", "link": "https://NEWS.example.org/a/1#top"}]
    )
    feeds.statuses["/broken.xml"] = 500
    settings = make_settings(tmp_path, feeds, receiver, f"sqlite:///{tmp_path / 'state.db'}")
    # The receiver's independent check compares the signed timestamp with the real clock (5 minutes'
    # tolerance), and a loaded suite can reach this test more than 5 minutes after NOW was taken.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))

    async with open_runtime(settings, clock=clock) as runtime:
        statuses, alerts = await cycle(runtime)
    assert statuses == ["ok", "ok", "error"], "a broken source fails alone"
    assert alerts == 3, "licensing + shortage, and the mirror's copy of the same link as an update"

    ids = receiver.delivered_ids()
    assert len(ids) == len(set(ids)) == 3, "each alert reaches the webhook once although two routes name it"
    kinds = sorted(p["type"] for p in receiver.payloads())
    assert kinds == ["alert", "alert", "update"]
    payloads = {p["title"]: p for p in receiver.payloads() if p["type"] == "alert"}
    lic = payloads[LICENSING["title"]]
    assert lic["version"] == 1 and lic["type"] == "alert" and lic["source"] == "wire"
    assert lic["link"] == "https://news.example.org/a/1", "tracking parameters are dropped"
    assert [m["rule"] for m in lic["matches"]] == ["test-licensing"]
    assert lic["published"].endswith("Z")
    for headers, body, _ in receiver.requests:
        Webhook(SECRET).verify(body, headers)  # independent verification; raises on a bad signature
        assert headers["webhook-id"] == __import__("json").loads(body)["id"]
    archive = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(archive) == 3

    # The second run: nothing new is delivered, and the unchanged feeds answer 304.
    clock.advance(timedelta(minutes=15))
    async with open_runtime(settings, clock=clock) as runtime:
        statuses, alerts = await cycle(runtime)
    assert statuses == ["not_modified", "not_modified", "error"]
    assert alerts == 0
    assert len(receiver.requests) == 3
    assert feeds.not_modified["/wire.xml"] == 1


async def test_first_poll_of_a_new_source_does_not_flood(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    old = {**LICENSING, "date": http_date(NOW - timedelta(days=5))}
    feeds.feeds["/wire.xml"] = rss([old, SHORTAGE])
    feeds.feeds["/mirror.xml"] = rss([])
    feeds.feeds["/broken.xml"] = rss([])
    settings = make_settings(tmp_path, feeds, receiver, f"sqlite:///{tmp_path / 'state.db'}")
    clock = FakeClock(NOW)
    async with open_runtime(settings, clock=clock) as runtime:
        _, alerts = await cycle(runtime)
        assert alerts == 1, "only the item inside the 48h lookback alerts"
        # Later polls alert on anything new, whatever its date; the old story stays claimed.
        feeds.feeds["/wire.xml"] = rss([old, SHORTAGE, {**old, "guid": "late", "link": "https://x.org/late"}])
        clock.advance(timedelta(minutes=30))
        _, alerts = await cycle(runtime)
        assert alerts == 1


async def test_failed_webhook_is_retried_and_delivered_once(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    feeds.feeds["/wire.xml"] = rss([LICENSING])
    feeds.feeds["/mirror.xml"] = rss([])
    feeds.feeds["/broken.xml"] = rss([])
    receiver.script = [503, 500]
    settings = make_settings(tmp_path, feeds, receiver, f"sqlite:///{tmp_path / 'state.db'}")
    clock = FakeClock(NOW)
    async with open_runtime(settings, clock=clock) as runtime:
        await cycle(runtime)
        assert receiver.delivered_ids() == []
        clock.advance(timedelta(seconds=6))
        await runtime.outbox.flush()
        assert receiver.delivered_ids() == []
        clock.advance(timedelta(minutes=6))
        await runtime.outbox.flush()
        clock.advance(timedelta(hours=1))
        await runtime.outbox.flush()
    assert len(receiver.requests) == 3
    ids = {h["webhook-id"] for h, _, _ in receiver.requests}
    assert len(ids) == 1, "every retry carries the same webhook-id"
    assert len(receiver.delivered_ids()) == 1


@pytest.mark.redis
async def test_cycle_on_redis(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    feeds.feeds["/wire.xml"] = rss([LICENSING, SHORTAGE])
    feeds.feeds["/mirror.xml"] = rss([LICENSING])
    feeds.feeds["/broken.xml"] = b"<html><body>not a feed</body></html>"
    settings = make_settings(tmp_path, feeds, receiver, redis_url)
    async with open_runtime(settings, clock=FakeClock(NOW)) as runtime:
        statuses, alerts = await cycle(runtime)
        assert statuses == ["ok", "ok", "error"]
        assert alerts == 3, "two stories and the mirror's report of the first"
        _, again = await cycle(runtime)
        assert again == 0
    assert len(set(receiver.delivered_ids())) == len(receiver.delivered_ids()) == 3
    assert sorted(p["type"] for p in receiver.payloads()) == ["alert", "alert", "update"]


class ExplodingSource:
    """A source with a bug: its fetch raises something that is not a SourceError."""

    name = "exploding"

    async def fetch(self, session: object, state: object) -> object:
        raise ValueError("a bug in a parser")


async def test_a_source_that_raises_is_reported_and_the_cycle_goes_on(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    from rarewatch.pipeline import PolledSource

    feeds.feeds["/wire.xml"] = rss([LICENSING])
    feeds.feeds["/mirror.xml"] = rss([])
    feeds.feeds["/broken.xml"] = rss([])
    settings = make_settings(tmp_path, feeds, receiver, f"sqlite:///{tmp_path / 'state.db'}")
    async with open_runtime(settings, clock=FakeClock(NOW)) as runtime:
        sources = [
            PolledSource(ExplodingSource(), timedelta(minutes=5), timedelta(hours=48)),
            *runtime.sources,
        ]  # type: ignore[arg-type]
        runs = await run_cycle(runtime.pipeline, sources, force=True)
    assert runs[0].status == "error"
    assert runs[0].error == "ValueError: a bug in a parser"
    assert [r.status for r in runs[1:]] == ["ok", "ok", "ok"]
    assert len(runs[1].alerts) == 1


async def test_every_fetched_item_is_kept_as_seen_matched_or_not(
    tmp_path: Path, feeds: FeedServer, receiver: WebhookReceiver
) -> None:
    feeds.feeds["/wire.xml"] = rss([LICENSING, NOISE])
    feeds.feeds["/mirror.xml"] = rss([SHORTAGE])
    feeds.statuses["/broken.xml"] = 500
    settings = make_settings(tmp_path, feeds, receiver, f"sqlite:///{tmp_path / 'state.db'}")
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    first = clock.now()
    async with open_runtime(settings, clock=clock) as runtime:
        await cycle(runtime)
        clock.advance(timedelta(minutes=5))
        feeds.feeds["/wire.xml"] = rss(
            [LICENSING, NOISE, {**NOISE, "guid": "a-4", "link": "https://x.org/4"}]
        )
        await cycle(runtime)
        kept = await runtime.store.seen_items(first - timedelta(days=1))
        version = runtime.ruleset.version
    by_title = {(s.item.source, s.item.link): s for s in kept}
    assert len(kept) == 4, "each item once, however often it was fetched"
    lic = by_title[("wire", "https://news.example.org/a/1")]
    assert (lic.rules, lic.rules_version, lic.fetched) == (("test-licensing",), version, first)
    noise = by_title[("wire", "https://news.example.org/a/3")]
    assert (noise.rules, noise.fetched) == ((), first), "unmatched items are kept too, first fetch time"
    assert by_title[("mirror", "https://news.example.org/a/2")].rules == ("test-shortage",)
    assert by_title[("wire", "https://x.org/4")].fetched == first + timedelta(minutes=5)
