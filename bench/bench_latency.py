"""Latency from an item appearing in a feed to its webhook delivery, through a real `rarewatch run`.

    python bench/bench_latency.py [--items 20] [--interval 5] [--seed 13]

A feed server and a webhook receiver run on 127.0.0.1 in this process; `rarewatch run` runs in a
subprocess, polling the feed every `--interval` seconds (`allow_fast_poll: true`, bundled rules, a signed
webhook destination). Item after item, the feed starts listing a new matching story at a random moment
(uniform within one interval after the previous delivery), and the receiver timestamps its arrival: the
latency is arrival minus appearance, on this process's monotonic clock. Prints p50, p95 and the maximum
against the target, interval + 1 s: a story waits up to one interval for the next poll, then has a second
to be fetched, matched, claimed and delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from bench_pipeline import HITS, MATERIALS, free_port

SECRET = "whsec_" + base64.b64encode(b"rarewatch latency bench secret!!").decode()


class Farm:
    """The feed (its items appear on demand) and the webhook receiver (arrival times by marker)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = [("Central bank holds rates steady", "old-0")]
        self.arrivals: dict[str, float] = {}
        self.polls = 0

    def add(self, title: str, marker: str) -> float:
        self.items.append((title, marker))
        return time.monotonic()

    async def feed(self, request: web.Request) -> web.Response:
        self.polls += 1
        date = format_datetime(datetime.now(UTC), usegmt=True)
        parts = [
            f"<item><title>{escape(title)} ({marker})</title><link>https://news.example/{marker}</link>"
            f"<guid>{marker}</guid><pubDate>{date}</pubDate><description>{escape(title)}.</description></item>"
            for title, marker in reversed(self.items)
        ]
        body = '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://news.example/</link>'
        body += "<description>d</description>" + "".join(parts) + "</channel></rss>"
        return web.Response(text=body, content_type="application/rss+xml")

    async def hook(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        text = await request.text()
        for _, marker in self.items:
            if f"({marker})" in text:
                self.arrivals.setdefault(marker, arrived)
        return web.Response(status=204)


def write_config(workdir: Path, port: int, interval: float) -> Path:
    config = {
        "store": f"sqlite:///{workdir / 'latency.db'}",
        "sources": [
            {
                "name": "feed",
                "type": "feed",
                "url": f"http://127.0.0.1:{port}/feed.xml",
                "interval": f"{interval:g}s",
                "allow_fast_poll": True,
                "enrich": False,
            }
        ],
        "destinations": [
            {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret": SECRET}
        ],
        "routes": [{"to": ["hook"]}],
        "stories": {
            "near_duplicate_threshold": 1.0
        },  # every generated story is its own, never a near-duplicate
        "http": {"host": "127.0.0.1", "port": free_port()},
    }
    path = workdir / "rarewatch.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


async def wait_for(done: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def measure(items: int, interval: float, rng: random.Random) -> list[float]:
    farm, port = Farm(), free_port()
    app = web.Application()
    app.router.add_get("/feed.xml", farm.feed)
    app.router.add_post("/hook", farm.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), port, interval)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        env["RAREWATCH_CACHE_DIR"] = str(Path(tmp) / "cache")
        with (Path(tmp) / "run.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rarewatch", "run", "--config", str(config),
                stdout=log, stderr=log, env=env, cwd=tmp,
            )  # fmt: skip
        try:
            await wait_for(lambda: farm.polls >= 1 or proc.returncode is not None, 60, "the first poll")
            if proc.returncode is not None:
                raise RuntimeError(f"rarewatch run exited {proc.returncode}")
            for k in range(items):
                await asyncio.sleep(rng.uniform(0, interval))
                marker = f"lat-{k}"
                title = HITS[0].format(m=rng.choice(MATERIALS))  # fires the bundled export-licensing rule
                appeared = farm.add(title, marker)
                delivered = partial(farm.arrivals.__contains__, marker)
                await wait_for(delivered, 5 * interval + 30, f"delivery of {marker}")
                latencies.append(farm.arrivals[marker] - appeared)
                print(f"item {k + 1:>3}: {latencies[-1]:.2f} s", flush=True)
        except RuntimeError:
            print(
                (Path(tmp) / "run.log").read_text(encoding="utf-8", errors="replace")[-3000:], file=sys.stderr
            )
            raise
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
            await runner.cleanup()
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval, seconds")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    latencies = asyncio.run(measure(args.items, args.interval, random.Random(args.seed)))
    target = args.interval + 1
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(f"{len(latencies)} items, poll interval {args.interval:g} s: p50 {p50:.2f} s, p95 {p95:.2f} s, "
          f"max {max(latencies):.2f} s, mean {statistics.fmean(latencies):.2f} s")  # fmt: skip
    within = sum(1 for v in latencies if v <= target)
    print(f"target interval + 1 s = {target:g} s: p95 {'within' if p95 <= target else 'OVER'} it; "
          f"{within}/{len(latencies)} items within it")  # fmt: skip


if __name__ == "__main__":
    main()
