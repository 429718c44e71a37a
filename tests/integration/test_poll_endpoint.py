"""`POST /api/v1/sources/{name}/poll`: an operator polls a source now, past its backoff, with the token.

The whole `rarewatch run` web application (`build_web_app`: store, rules, poller, API) on 127.0.0.1, with a
real local feed server that can be told to fail.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from rarewatch.app import build_web_app
from rarewatch.settings import Settings
from tests.integration.test_api_guard import AUTH, TOKEN, served
from tests.support import TEST_RULES, FeedServer, feed_server, rss

STORY = {"title": "Rare earth export licence regime widened", "link": "https://news.example/1", "guid": "1"}


def settings(tmp_path: Path, feeds: FeedServer) -> Settings:
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(tmp_path / "rules.yaml")],
        # An hour apart: after the poll at start, only the endpoint polls during the test.
        sources=[{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml"), "interval": "1h"}],
        http={"port": 0, "token": TOKEN},
        config_dir=tmp_path,
    )


async def post_poll(base: str, name: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    url = f"{base}/api/v1/sources/{name}/poll"
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as resp:
        return resp.status, await resp.json()


async def test_a_source_is_polled_now_past_its_backoff(tmp_path: Path) -> None:
    async with feed_server() as feeds:
        feeds.statuses["/wire.xml"] = 500
        async with served(build_web_app(settings(tmp_path, feeds))) as base:
            for _ in range(100):  # the poll at start fails and puts the source in backoff
                if feeds.hits["/wire.xml"]:
                    break
                await asyncio.sleep(0.05)
            assert feeds.hits["/wire.xml"] == 1

            status, body = await post_poll(base, "wire")
            assert status == 401 and "http.token" in body["error"], "state changes need the token"
            status, body = await post_poll(base, "wrie", headers=AUTH)
            assert status == 404 and "known: wire" in body["error"]

            # Still failing: polled now anyway (a scheduled poll would be skipped under the backoff).
            status, body = await post_poll(base, "wire", headers=AUTH)
            assert (status, body["result"]) == (200, "error")
            assert feeds.hits["/wire.xml"] == 2

            # Fixed: polled at once, items read, the backoff over.
            del feeds.statuses["/wire.xml"]
            feeds.feeds["/wire.xml"] = rss([STORY])
            status, body = await post_poll(base, "wire", headers=AUTH)
            assert status == 200
            assert (body["source"], body["result"], body["items"], body["error"]) == ("wire", "ok", 1, None)
            assert feeds.hits["/wire.xml"] == 3


async def test_sources_say_when_each_is_polled_next_and_old_paths_redirect(tmp_path: Path) -> None:
    async with feed_server() as feeds:
        feeds.feeds["/wire.xml"] = rss([STORY])
        async with (
            served(build_web_app(settings(tmp_path, feeds))) as base,
            aiohttp.ClientSession() as session,
        ):
            for _ in range(100):  # the poll at start
                if feeds.hits["/wire.xml"]:
                    break
                await asyncio.sleep(0.05)
            async with session.get(f"{base}/api/v1/sources") as resp:
                [wire] = (await resp.json())["sources"]
            async with session.get(f"{base}/alerts?limit=2", allow_redirects=False) as moved_alerts:
                alerts_location = moved_alerts.headers["Location"]
            async with session.get(f"{base}/sources", allow_redirects=False) as moved_sources:
                sources_status = moved_sources.status
            async with session.get(f"{base}/sources") as followed:
                followed_body = await followed.json()
    # The next run is the scheduler's: the hourly interval (with its 10 % jitter) after the poll at start.
    next_run = datetime.fromisoformat(wire["next_run"])
    ahead = next_run - datetime.fromisoformat(wire["last_attempt"])
    assert timedelta(minutes=50) < ahead < timedelta(minutes=70)
    assert (moved_alerts.status, alerts_location) == (308, "/api/v1/alerts?limit=2")
    assert sources_status == 308 and followed_body["sources"][0]["name"] == "wire"
