"""Hostile input figures: megabyte headlines in the store and the API, and health checks during reloads.

    python bench/bench_hostile_input.py [--alerts 225] [--title-bytes 1000000] [--reloads 5]

1. `--alerts` items with `--title-bytes` headlines (distinct, matching text first) are normalised and
   claimed as alerts in a fresh SQLite store, as the pipeline does: the database size is reported.
2. `rarewatch run`'s web application serves that store: one `GET /api/v1/alerts?limit=500` is timed and
   its size and the process's peak RSS during it (VmHWM, reset just before) are reported.
3. `--reloads` `POST /-/reload` calls of the bundled rule pack run back to back while `/healthz` is asked
   every 10 ms: the slowest health answer and the mean reload time are reported.

Runs against whichever rarewatch is importable, so the same script measures a branch and main
(`PYTHONPATH=/path/to/main/service python bench/bench_hostile_input.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import rarewatch
from rarewatch.app import build_web_app
from rarewatch.models import Alert, Match, RawEntry, Severity
from rarewatch.normalize import normalize
from rarewatch.settings import Settings
from rarewatch.store.sqlite import SQLiteStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOKEN = "bench-token-0123456789abcdef"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS


async def fill(path: Path, alerts: int, title_bytes: int) -> float:
    store = SQLiteStore(path)
    await store.open()
    started = time.perf_counter()
    try:
        for n in range(alerts):
            title = f"Rare earth export licence notice {n} " + ("gallium magnets " * (title_bytes // 16))
            entry = RawEntry(source="wire", title=title, link=f"https://news.example/{n}", summary="s")
            item = normalize(entry, T0 + timedelta(seconds=n))
            alert = Alert(item.id, item, (Match("r", "export-licensing", Severity.HIGH),), item.published)
            await store.claim([item.id], timedelta(days=30), item.published, alert)
    finally:
        await store.close()
    return time.perf_counter() - started


def settings(tmp: Path) -> Settings:
    base: dict[str, Any] = {"store": f"sqlite:///{tmp / 'state.db'}", "sources": [], "config_dir": tmp}
    try:
        return Settings(**base, http={"port": 0, "token": TOKEN})
    except ValueError:  # a rarewatch without http.token: its reload takes no token
        return Settings(**base, http={"port": 0})


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def measure_api(session: aiohttp.ClientSession, base: str) -> tuple[int, float, float, int]:
    reset_peak_rss()
    started = time.perf_counter()
    async with session.get(f"{base}/api/v1/alerts?limit=500") as resp:
        body = await resp.read()
    elapsed = time.perf_counter() - started
    count = body.count(b'"version"')
    return len(body), elapsed, peak_rss_mb(), count


async def measure_reloads(session: aiohttp.ClientSession, base: str, reloads: int) -> tuple[float, float]:
    slowest = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.perf_counter()
            async with session.get(f"{base}/healthz") as resp:
                await resp.read()
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.01)

    prober = asyncio.create_task(probe())
    started = time.perf_counter()
    for _ in range(reloads):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(f"{base}/-/reload", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
    per_reload = (time.perf_counter() - started) / reloads
    done.set()
    await prober
    return slowest, per_reload


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=225)
    parser.add_argument("--title-bytes", type=int, default=1_000_000)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--store-dir", type=Path, help="keep the store here; reuse it if it exists")
    args = parser.parse_args()
    print(f"rarewatch from {Path(rarewatch.__file__).parent}")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.store_dir or Path(scratch)
        path = tmp / "state.db"
        if not path.exists():
            tmp.mkdir(parents=True, exist_ok=True)
            fill_s = await fill(path, args.alerts, args.title_bytes)
            print(f"store filled in {fill_s:.1f} s")
        size = sum(p.stat().st_size for p in tmp.glob("state.db*"))
        print(f"store: {args.alerts} alerts with {args.title_bytes:,}-byte titles: {size / 1e6:.1f} MB")
        runner, base = await serve(build_web_app(settings(tmp)))
        try:
            async with aiohttp.ClientSession() as session:
                size, elapsed, rss, count = await measure_api(session, base)
                print(
                    f"GET /api/v1/alerts?limit=500: {count} alerts, {size / 1e6:.1f} MB "
                    f"in {elapsed:.2f} s, peak RSS {rss:.0f} MB"
                )
                slowest, per_reload = await measure_reloads(session, base, args.reloads)
                print(
                    f"POST /-/reload x{args.reloads}: {per_reload:.3f} s each; "
                    f"slowest /healthz meanwhile {slowest * 1000:.0f} ms"
                )
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
