"""Scale: three `rarewatch run` replicas on one real redis-server share a farm of 200 feeds polled every
few seconds (one aiohttp server serving 200 paths), deliver to one webhook receiver, and one replica is
SIGKILLed mid-run.

What must hold, counted at the feed server and the receiver (never timed):
- every expected alert is delivered exactly once (as many distinct webhook-ids as deliveries);
- no source is fetched more than once per interval, plus one takeover after the SIGKILL;
- every live replica does a share of the work, before and after the SIGKILL.

The figures it prints (fetches per replica, polls per CPU-second) are the README's "Scaling" numbers.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.conftest import RedisServer
from tests.e2e.test_replicas import FeedFarm, feed_farm, start, wait_for, write_config
from tests.support import TEST_RULES, WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.redis

FEEDS = 200
INTERVAL = 5.0  # seconds (allow_fast_poll); the scheduler adds up to 1 s of jitter to each run
JITTER = 1.0
OLD_ITEMS = 4  # per feed: items older than the initial lookback, seen and never alerted, parsed every poll
REPLICAS = ("r1", "r2", "r3")
MEMBER_TTL = 6.0  # seconds: a SIGKILLed replica's membership lapses after this (`redis_leases.MEMBER_TTL`)
NOTICE = re.compile(r"\(notice (\d+)-(\d+)\)")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    (tmp_path / "redis").mkdir()
    server = RedisServer(binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def add_old_items(farm: FeedFarm) -> None:
    """Items dated ten days ago (before the 48 h initial lookback): marked seen on the first poll, never
    alerted, and parsed again on every poll, as a real feed's back catalogue is."""
    when = format_datetime(datetime.now(UTC) - timedelta(days=10), usegmt=True)
    for n in range(FEEDS):
        farm.stories[n] += [
            {"title": f"Harbour schedule {n}-{k}", "link": f"https://news.example.org/old/{n}/{k}",
             "guid": f"old-{n}-{k}", "date": when}
            for k in range(OLD_ITEMS)
        ]  # fmt: skip


def notices(hook: WebhookReceiver) -> list[tuple[int, int]]:
    """The (feed, round) of every alert delivered, from its title."""
    found = []
    for payload in hook.payloads():
        titles = [a["title"] for a in payload["alerts"]] if "alerts" in payload else [payload["title"]]
        found += [(int(m[1]), int(m[2])) for t in titles if (m := NOTICE.search(t))]
    return found


def most_fetches(farm: FeedFarm, since: float, until: float) -> int:
    """At most how many fetches one feed may see in [since, until): one per interval (the scheduler's
    jitter does not accumulate), one for a window edge, and one takeover."""
    return math.floor((until - since + JITTER) / INTERVAL) + 1 + 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_three_replicas_share_200_feeds_take_over_a_sigkill_and_deliver_each_alert_once(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    procs = {}
    try:
        async with feed_farm(FEEDS) as (farm, base), webhook_receiver() as hook:
            add_old_items(farm)
            for n in range(FEEDS):
                farm.add_story(n, 0)
            for name in REPLICAS:
                config = write_config(
                    tmp_path, name, own_redis.url, base, hook.url,
                    feeds=FEEDS, interval=INTERVAL, source_options="enrich: false, ",
                )  # fmt: skip
                procs[name] = await start(config, tmp_path / f"{name}.log")
            await wait_for(lambda: len(hook.delivered_ids()) >= FEEDS, 40, "the first round of alerts")

            # Steady state: every replica polls its share, each feed about once per interval.
            await asyncio.sleep(INTERVAL)  # the leases taken before every replica had joined run out
            t0 = time.monotonic()
            cpu0 = {name: cpu_seconds(p.pid) for name, p in procs.items()}
            await asyncio.sleep(2 * INTERVAL)
            killed = time.monotonic()
            cpu = {name: cpu_seconds(p.pid) - cpu0[name] for name, p in procs.items()}
            procs["r3"].send_signal(signal.SIGKILL)
            await procs["r3"].wait()
            # r3 is gone from here on. `killed` was taken before the CPU readings and the signal, so r3 may
            # still have fetched in between, and a request it sent just before dying may be handled a moment
            # after: its silence is counted from its death, once the farm has served what was in flight.
            await asyncio.sleep(0.2)
            dead = time.monotonic()
            shares = {r: farm.count(t0, killed, lambda who, r=r: who == r) for r in REPLICAS}
            for replica, per_feed in shares.items():
                assert sum(1 for c in per_feed.values() if c) >= FEEDS // 10, (
                    f"{replica} polls a share of the feeds: {sum(per_feed.values())} fetches"
                )
            assert min(farm.count(t0, killed).values()) >= 1, "every feed is polled in steady state"
            fetched = {r: sum(c.values()) for r, c in shares.items()}
            span = killed - t0
            print(
                f"steady {span:.1f} s, {FEEDS} feeds every {INTERVAL:g} s: fetches per replica {fetched}, "
                f"feeds per replica { {r: sum(1 for v in c.values() if v) for r, c in shares.items()} }, "
                f"CPU s { ({r: round(v, 2) for r, v in cpu.items()}) }, polls per CPU-second "
                f"{ ({r: round(fetched[r] / cpu[r]) for r in REPLICAS if cpu[r] > 0}) }"
            )

            # The second round, while r3's sources move to r1 and r2 (membership lapse, then its leases).
            for n in range(FEEDS):
                farm.add_story(n, 1)
            await wait_for(lambda: len(hook.delivered_ids()) >= 2 * FEEDS, 45, "the second round of alerts")
            await asyncio.sleep(max(0.0, killed + MEMBER_TTL + 2 * INTERVAL - time.monotonic()))
            t1 = time.monotonic()
            await asyncio.sleep(INTERVAL + JITTER)
            # Every source, r3's too, is polled after the takeover: within one interval on a quiet machine;
            # a loaded one (the suite beside other jobs) may run a round late, so wait up to two more.
            await wait_for(
                lambda: min(farm.count(t1, time.monotonic()).values()) >= 1,
                2 * INTERVAL,
                "every source polled",
            )
            t2 = time.monotonic()

            survivors = {r: farm.count(t1, t2, lambda who, r=r: who == r) for r in ("r1", "r2")}
            for replica, per_feed in survivors.items():
                assert sum(1 for c in per_feed.values() if c) >= FEEDS // 10, f"{replica} does a share"
            after = farm.count(t1, t2)
            assert min(after.values()) >= 1, "every source, r3's too, is polled after the takeover"
            assert sum(farm.count(dead, t2, lambda who: who == "r3").values()) == 0

            # No feed fetched more than once per interval plus one takeover, over the whole measured run.
            whole = farm.count(t0, t2)
            bound = most_fetches(farm, t0, t2)
            worst = max(whole, key=lambda n: whole[n])
            assert whole[worst] <= bound, (
                f"feed {worst} fetched {whole[worst]} times in {t2 - t0:.1f} s (at most {bound})"
            )

            # Every alert delivered exactly once: as many distinct webhook-ids as deliveries, one per story.
            ids = hook.delivered_ids()
            assert len(ids) == len(set(ids)) == 2 * FEEDS, f"{len(ids)} deliveries, {len(set(ids))} ids"
            assert sorted(notices(hook)) == [(n, r) for n in range(FEEDS) for r in (0, 1)]
            print(
                f"after the SIGKILL, {t2 - t1:.1f} s: fetches per surviving replica "
                f"{ {r: sum(c.values()) for r, c in survivors.items()} }; at most {whole[worst]} fetches "
                f"of one feed in {t2 - t0:.1f} s (bound {bound}); {len(ids)} alerts, each delivered once"
            )
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
