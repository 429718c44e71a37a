"""One story, one alert: later reports become updates (threads in Slack); digests and the storm guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from rarewatch.clock import FakeClock
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import Runtime, open_runtime
from rarewatch.settings import Settings
from tests.support import (
    TEST_RULES,
    FeedServer,
    SlackApi,
    WebhookReceiver,
    feed_server,
    rss,
    slack_api,
    webhook_receiver,
)

NOW = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)


def story(guid: str, title: str, link: str) -> dict[str, str]:
    return {"title": title, "link": link, "guid": guid, "date": format_datetime(NOW, usegmt=True)}


FIRST = story("w-1", "China tightens export licence rules for rare earth magnets", "https://wire.example/1")
SAME_LINK = story("m-7", "Rare earth export licence rules tightened by Beijing", "https://WIRE.example/1#x")
SYNDICATED = story(
    "m-8",
    "China tightens export licence rules for rare earth magnets - Mining Daily",
    "https://mining.example/8",
)
OTHER_EVENT = story("m-9", "Magnet shortage halts production at Ohio motor plant", "https://mining.example/9")


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FeedServer, WebhookReceiver, SlackApi]]:
    async with feed_server() as feeds, webhook_receiver() as hook, slack_api() as slack:
        yield feeds, hook, slack


def settings_for(
    tmp_path: Path, feeds: FeedServer, hook: WebhookReceiver, slack: SlackApi, **extra: Any
) -> Settings:
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    base: dict[str, Any] = {
        "store": f"sqlite:///{tmp_path / 'state.db'}",
        "rules": [str(tmp_path / "rules.yaml")],
        "sources": [
            {"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")},
            {"name": "mining", "type": "feed", "url": feeds.url("/mining.xml")},
        ],
        "destinations": [
            {"name": "tickets", "type": "webhook", "url": hook.url},
            {
                "name": "chat",
                "type": "slack",
                "channel": "#rare-earths",
                "token": "xoxb-test",
                "api_url": slack.api_url,
            },
        ],
        "routes": [{"to": ["tickets", "chat"]}],
        "config_dir": tmp_path,
    }
    base.update(extra)
    return Settings(**base)


async def cycle(runtime: Runtime) -> int:
    # One source after another: which of two copies of a story comes first is then fixed, not a race.
    runs = await run_cycle(runtime.pipeline, runtime.sources, force=True, concurrency=1)
    await runtime.outbox.flush()
    return sum(len(r.alerts) for r in runs)


async def test_later_reports_are_updates_threaded_under_the_first_message(
    tmp_path: Path, servers: tuple[FeedServer, WebhookReceiver, SlackApi]
) -> None:
    feeds, hook, slack = servers
    feeds.feeds["/wire.xml"] = rss([FIRST])
    feeds.feeds["/mining.xml"] = rss([])
    clock = FakeClock(NOW)
    async with open_runtime(settings_for(tmp_path, feeds, hook, slack), clock=clock) as runtime:
        assert await cycle(runtime) == 1
        feeds.feeds["/mining.xml"] = rss([SAME_LINK, SYNDICATED, OTHER_EVENT])
        clock.advance(timedelta(minutes=15))
        await cycle(runtime)
        clock.advance(timedelta(minutes=15))
        assert await cycle(runtime) == 0, "nothing new the third time"

    payloads = hook.payloads()
    assert [p["type"] for p in payloads] == ["alert", "update", "update", "alert"]
    first_id = payloads[0]["id"]
    assert payloads[1]["story"] == payloads[2]["story"] == first_id
    assert payloads[1]["id"] != payloads[2]["id"] != first_id
    assert payloads[3]["story"] == payloads[3]["id"], "a different event is its own story"
    assert len({h["webhook-id"] for h, _, _ in hook.requests}) == 4

    # Slack: the first alert is a top-level message; both updates reply in its thread.
    assert "thread_ts" not in slack.posts[0] or slack.posts[0]["thread_ts"] is None
    replies = [p for p in slack.posts if p.get("thread_ts")]
    assert [p["thread_ts"] for p in replies] == ["1.0001", "1.0001"]
    assert all("Also reported by" in p["text"] for p in replies)
    assert len(slack.posts) == 4


async def test_route_digest_folds_alerts_into_one_message_per_period(
    tmp_path: Path, servers: tuple[FeedServer, WebhookReceiver, SlackApi]
) -> None:
    feeds, hook, slack = servers
    feeds.feeds["/wire.xml"] = rss([FIRST, OTHER_EVENT])
    feeds.feeds["/mining.xml"] = rss([])
    clock = FakeClock(NOW)
    settings = settings_for(
        tmp_path, feeds, hook, slack, routes=[{"to": ["tickets"]}, {"to": ["chat"], "digest": "hourly"}]
    )
    async with open_runtime(settings, clock=clock) as runtime:
        assert await cycle(runtime) == 2
        assert len(hook.requests) == 2, "the webhook route sends at once"
        assert slack.posts == [], "the digest route waits for the hour"
        clock.set(NOW.replace(minute=0) + timedelta(hours=1, seconds=1))
        await runtime.outbox.flush()
        await runtime.outbox.flush()
    assert len(slack.posts) == 1
    assert "2 rare-earth alerts" in slack.posts[0]["text"]


async def test_storm_guard_folds_the_excess_into_one_digest(
    tmp_path: Path, servers: tuple[FeedServer, WebhookReceiver, SlackApi]
) -> None:
    feeds, hook, slack = servers
    items = [
        story(
            f"s-{n}",
            f"Rare earth shortage number {n} halts production at plant {n}",
            f"https://x.example/{n}",
        )
        for n in range(6)
    ]
    feeds.feeds["/wire.xml"] = rss(items)
    feeds.feeds["/mining.xml"] = rss([])
    clock = FakeClock(NOW)
    settings = settings_for(
        tmp_path,
        feeds,
        hook,
        slack,
        destinations=[{"name": "tickets", "type": "webhook", "url": hook.url, "max_alerts_per_hour": 2}],
        routes=[{"to": ["tickets"]}],
    )
    async with open_runtime(settings, clock=clock) as runtime:
        assert await cycle(runtime) == 6
        report = await runtime.outbox.flush()
        assert report.delivered == 0, "everything was handled in the first flush"
    payloads = hook.payloads()
    assert [p["type"] for p in payloads] == ["alert", "alert", "digest"]
    assert payloads[2]["count"] == 4
    assert len({a["id"] for a in payloads[2]["alerts"]} | {p["id"] for p in payloads[:2]}) == 6


THROTTLED_RULE = """\
id: shortage-throttled
title: Shortages, throttled
category: supply-disruption
severity: medium
match:
  all: ["rare earth", "shortage"]
throttle: {max: 2, per: 1h}
"""


async def test_rule_throttle_sends_at_most_max_per_period_and_records_the_rest(
    tmp_path: Path, servers: tuple[FeedServer, WebhookReceiver, SlackApi]
) -> None:
    feeds, hook, slack = servers
    feeds.feeds["/wire.xml"] = rss(
        [story(f"t-{n}", f"Rare earth shortage hits plant {n}", f"https://t.example/{n}") for n in range(4)]
    )
    feeds.feeds["/mining.xml"] = rss([])
    (tmp_path / "throttled.yaml").write_text(THROTTLED_RULE, encoding="utf-8")
    clock = FakeClock(NOW)
    settings = settings_for(
        tmp_path,
        feeds,
        hook,
        slack,
        rules=[str(tmp_path / "throttled.yaml")],
        destinations=[{"name": "tickets", "type": "webhook", "url": hook.url}],
        routes=[{"to": ["tickets"]}],
    )
    async with open_runtime(settings, clock=clock) as runtime:
        assert await cycle(runtime) == 2
        assert len(await runtime.store.recent_alerts()) == 4, "throttled alerts are still in the history"
        feeds.feeds["/wire.xml"] = rss(
            [story("t-9", "Rare earth shortage hits plant 9", "https://t.example/9")]
        )
        clock.advance(timedelta(hours=1))
        assert await cycle(runtime) == 1, "a new period, a new allowance"
    assert len(hook.requests) == 3


GLOSSARY_RULES = """\
vocabulary: glossary-zh
kind: glossary
entries: {稀土: rare earths, 出口管制: export control}
"""


async def test_a_chinese_story_arrives_with_its_english_gloss(
    tmp_path: Path, servers: tuple[FeedServer, WebhookReceiver, SlackApi]
) -> None:
    feeds, hook, slack = servers
    feeds.feeds["/wire.xml"] = rss([story("z-1", "商务部对稀土实施出口管制", "https://wire.example/zh/1")])
    feeds.feeds["/mining.xml"] = rss([FIRST])
    (tmp_path / "glossary.yaml").write_text(GLOSSARY_RULES, encoding="utf-8")
    settings = settings_for(tmp_path, feeds, hook, slack)
    settings = settings.model_copy(update={"rules": [*settings.rules, str(tmp_path / "glossary.yaml")]})
    async with open_runtime(settings, clock=FakeClock(NOW)) as runtime:
        assert await cycle(runtime) == 2

    matched = "稀土 → rare earths, 出口管制 → export control"
    gloss = f"Export licensing: rare earths, export control — matched: {matched}"
    by_title = {p["title"]: p for p in hook.payloads()}
    assert by_title["商务部对稀土实施出口管制"]["gloss"] == gloss
    assert by_title[FIRST["title"]]["gloss"] == "", "an English story has none"
    chinese = next(p for p in slack.posts if "商务部" in p["text"])
    assert chinese["blocks"][2] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"🌐 _{gloss}_", "verbatim": True}],
    }
    english = next(p for p in slack.posts if "China tightens" in p["text"])
    assert "🌐" not in str(english["blocks"])
