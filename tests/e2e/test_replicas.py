"""Several `rarewatch run` replicas on one real redis-server (and on a three-master Redis Cluster) and a local
feed farm: each source is fetched by one replica per interval, a SIGKILLed replica's sources are taken over,
every alert reaches the webhook receiver exactly once, a Redis that loses its data (FLUSHALL) re-sends
nothing and raises one operational alert, and SIGTERM releases a replica's leases."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web

from rarewatch.store.keys import RedisKeys, cluster_prefix
from rarewatch.store.redis_client import RedisClient, connect
from tests.conftest import RedisServer, free_port
from tests.e2e.test_cli import SECRET
from tests.support import TEST_RULES, WebhookReceiver, rss, serve, webhook_receiver

pytestmark = pytest.mark.redis

FEEDS = 30
INTERVAL = 3.0  # seconds (allow_fast_poll); the scheduler adds up to 1 s of jitter
# Distinct words, so no two stories are near-duplicates of each other.
PLACES = [
    "Baotou",
    "Ganzhou",
    "Longnan",
    "Xinfeng",
    "Sichuan",
    "Weishan",
    "Mianning",
    "Dechang",
    "Yunnan",
    "Guangxi",
    "Hezhou",
    "Chongzuo",
    "Fujian",
    "Changting",
    "Jiangxi",
    "Anyuan",
    "Dingnan",
    "Quannan",
    "Shangyou",
    "Ruijin",
    "Huichang",
    "Xunwu",
    "Anhui",
    "Hunan",
    "Jianghua",
    "Guangdong",
    "Pingyuan",
    "Shandong",
    "Zibo",
    "Qinghai",
    "Xining",
    "Tibet",
    "Lhasa",
    "Hainan",
    "Sanya",
    "Henan",
    "Luoyang",
    "Hubei",
    "Wuhan",
]


@dataclass
class FeedFarm:
    """Feeds `/f<n>.xml`; records every fetch: (feed, replica named by its X-Replica header, when)."""

    stories: dict[int, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    fetches: list[tuple[int, str, float]] = field(default_factory=list)
    feeds: int = FEEDS

    async def handle(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        self.fetches.append((n, request.headers.get("X-Replica", "?"), time.monotonic()))
        return web.Response(body=rss(self.stories[n]), content_type="application/rss+xml")

    def add_story(self, n: int, round_: int) -> None:
        place = PLACES[(n + 7 * round_) % len(PLACES)]
        self.stories[n].append(
            {
                "title": f"Rare earth export licence regime widened in {place} (notice {n}-{round_})",
                "link": f"https://news.example.org/{n}/{round_}",
                "guid": f"g-{n}-{round_}",
                "date": format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True),
            }
        )

    def count(
        self, since: float, until: float, who: Callable[[str], bool] = lambda r: True
    ) -> dict[int, int]:
        counts = dict.fromkeys(range(self.feeds), 0)
        for n, replica, at in self.fetches:
            if since <= at < until and who(replica):
                counts[n] += 1
        return counts


@asynccontextmanager
async def feed_farm(feeds: int = FEEDS) -> AsyncIterator[tuple[FeedFarm, str]]:
    """One aiohttp server serving `feeds` feed paths."""
    farm = FeedFarm(feeds=feeds)
    app = web.Application()
    app.router.add_get("/f{n}.xml", farm.handle)
    async with serve(app) as server:
        yield farm, str(server.make_url("/"))


def write_config(
    tmp_path: Path,
    replica: str,
    store: str,
    base: str,
    hook: str,
    *,
    feeds: int = FEEDS,
    interval: float = INTERVAL,
    source_options: str = "",
) -> Path:
    """One replica's configuration: the same sources and store as the others, its name in a header."""
    sources = "\n".join(
        f'  - {{name: f{n}, type: feed, url: "{base}f{n}.xml", interval: {interval:g}s, '
        f"allow_fast_poll: true, {source_options}headers: {{X-Replica: {replica}}}}}"
        for n in range(feeds)
    )
    config = tmp_path / f"{replica}.yaml"
    config.write_text(
        f"""\
store: {store}
rules: [rules/]
sources:
{sources}
destinations:
  - {{name: tickets, type: webhook, url: "{hook}", secret: "{SECRET}"}}
routes:
  - {{to: [tickets]}}
stories: {{near_duplicate_threshold: 1.0}}
http: {{host: 127.0.0.1, port: {free_port()}}}
""",
        encoding="utf-8",
    )
    return config


async def start(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(config),
            stdout=out, stderr=out, env=env, cwd=config.parent,
        )  # fmt: skip


async def wait_for(predicate: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def delivered(hook: WebhookReceiver) -> list[str]:
    return hook.delivered_ids()


def replica_is(name: str) -> Callable[[str], bool]:
    return lambda replica: replica == name


def takeover_gaps(farm: FeedFarm, dead: str, killed: float) -> list[float]:
    """For each feed `dead` fetched last before it was killed: seconds until another replica fetched it."""
    last = {n: at for n, replica, at in farm.fetches if replica == dead and at < killed}
    gaps = []
    for n, since in last.items():
        after = [at for m, replica, at in farm.fetches if m == n and replica != dead and at > since]
        gaps.append(min(after) - since if after else float("inf"))
    return gaps


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: it is flushed mid-run."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    (tmp_path / "redis").mkdir()
    server = RedisServer(binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "redis-cluster"])
def store_url(request: pytest.FixtureRequest) -> str:
    """A redis-server of this test's own, or the session's three-master cluster (flushed too: no other test
    runs meanwhile, and each keeps its keys under its own prefix)."""
    if request.param == "redis":
        return str(request.getfixturevalue("own_redis").url)
    return str(request.getfixturevalue("redis_cluster_url"))


async def test_replicas_share_the_sources_take_over_and_deliver_each_alert_once(
    tmp_path: Path, store_url: str
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    redis: RedisClient = connect(store_url, connect_timeout=2.0, timeout=5.0)
    cluster = store_url.startswith("redis+cluster:")
    names = RedisKeys(cluster_prefix("rarewatch:") if cluster else "rarewatch:")
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        async with feed_farm() as (farm, base), webhook_receiver() as hook:
            for n in range(FEEDS):
                farm.add_story(n, 0)
            for name in ("r1", "r2", "r3"):
                config = write_config(tmp_path, name, store_url, base, hook.url)
                procs[name] = await start(config, tmp_path / f"{name}.log")
            await wait_for(lambda: len(delivered(hook)) >= FEEDS, 60, "the first round of alerts")

            # Steady state: each feed fetched about once per interval, by one replica, all three working.
            await asyncio.sleep(2 * INTERVAL)
            t0 = time.monotonic()
            await asyncio.sleep(4 * INTERVAL)
            t1 = time.monotonic()
            per_feed = farm.count(t0, t1)
            most = max(per_feed.values())
            assert most <= 4 + 1, (
                f"a feed fetched {most} times in 4 intervals (three replicas without leases: ~12)"
            )
            assert min(per_feed.values()) >= 2, per_feed
            shares = {name: sum(farm.count(t0, t1, replica_is(name)).values()) for name in ("r1", "r2", "r3")}
            assert min(shares.values()) > 0, f"every replica does a share of the work: {shares}"
            print(f"steady, {t1 - t0:.1f} s: fetches per feed {sorted(per_feed.values())}, shares {shares}")

            # SIGKILL r3: its sources are taken over once its membership (6 s) and leases (an interval) lapse.
            procs["r3"].send_signal(signal.SIGKILL)
            await procs["r3"].wait()
            killed = time.monotonic()
            for n in range(FEEDS):
                farm.add_story(n, 1)
            await wait_for(lambda: len(delivered(hook)) >= 2 * FEEDS, 60, "the second round of alerts")
            await asyncio.sleep(max(0.0, killed + 6 + 2 * INTERVAL - time.monotonic()))
            t2 = time.monotonic()
            await asyncio.sleep(4 * INTERVAL)
            t3 = time.monotonic()
            survivors = farm.count(t2, t3, lambda r: r in ("r1", "r2"))
            assert min(survivors.values()) >= 2, f"every source is polled after the takeover: {survivors}"
            assert max(farm.count(t2, t3).values()) <= 5
            gaps = takeover_gaps(farm, "r3", killed)
            # membership lapse (6 s) + a heartbeat (2 s) + its lease and the new owner's next poll
            bound = 6 + 2 + 2 * (INTERVAL + 1) + 3
            assert gaps and max(gaps) < bound, f"r3's sources taken over late: {gaps}"
            print(f"takeover of r3's {len(gaps)} sources after its last fetch: at most {max(gaps):.1f} s")
            print(
                f"after the SIGKILL, {t3 - t2:.1f} s: fetches per feed {sorted(farm.count(t2, t3).values())}"
            )
            assert sum(farm.count(t2, t3, lambda r: r == "r3").values()) == 0

            # Redis loses its data: nothing is re-sent, one operational alert is raised.
            ids_before = delivered(hook)
            assert len(ids_before) == len(set(ids_before)) == 2 * FEEDS, "every alert delivered exactly once"
            await redis.flushall()
            await asyncio.sleep(3 * INTERVAL + 3)
            new = [i for i in delivered(hook) if i not in ids_before]
            titles = [
                p["alerts"][0]["title"] if "alerts" in p else p.get("title", "") for p in hook.payloads()
            ]
            assert len(new) == 1, (
                f"only the operational alert is sent after FLUSHALL, got {new} {titles[-3:]}"
            )
            assert new[0].startswith("operational-store-")

            # SIGTERM r2: it exits cleanly and releases its leases (compare-and-delete), leaving none behind.
            pid2 = procs["r2"].pid
            procs["r2"].send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(procs["r2"].wait(), 30) == 0
            leases = [key async for key in redis.scan_iter(match=f"{names.prefix}lease:*")]
            holders = [await redis.get(key) for key in leases]
            assert not [h for h in holders if h and f":{pid2}:" in h], "r2's leases are released on SIGTERM"
            members = await redis.zrange(names.replicas, 0, -1)
            assert not [m for m in members if f":{pid2}:" in m]
            for key in leases:
                # -1: a key with no TTL (a lease that would never expire); -2: released or expired since
                # the scan (the live replicas keep releasing and re-taking their leases), which is fine.
                assert await redis.pttl(key) != -1, f"{key} has a TTL"

            ids = delivered(hook)
            # No poll racing the FLUSHALL re-sends a story: each alert claim checks, in its script, the
            # marker its process last saw (before that check moved into the script, 2 of 60 came back).
            assert len(ids) == len(set(ids)) == 2 * FEEDS + 1, "nothing re-sent after FLUSHALL"
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
        if cluster:  # the session's cluster outlives this test: leave none of its keys behind
            async for key in redis.scan_iter(match=f"{names.prefix}*"):
                await redis.delete(key)
        await redis.aclose()
