"""Peak resident memory of one `rarewatch once` process: 1,000 sources and 1,000,000 dedup keys.

    python bench/bench_memory.py [--sources 1000] [--keys 1000000] [--items 5]

Four runs of `rarewatch once` in a subprocess, each against a feed farm on 127.0.0.1 (one aiohttp server in
its own process, `--items` items per feed, article reading off), each child's peak RSS read from its own
`/proc/self/status` (`VmHWM`) as it exits. (`ru_maxrss` of a child is no use here: Linux carries the
parent's peak over `fork` + `exec`, so every child reported this process's ~110 MiB.)

- baseline: 1 source, an empty SQLite store;
- sources: `--sources` sources, an empty store;
- keys: 1 source, a store holding `--keys` dedup keys;
- both: `--sources` sources and the store with `--keys` keys.

The store is filled before the runs through its public API, `SQLiteStore.claim_many` (one item key per
claim, no alert, 20,000 claims per transaction), with the 7-day TTL the pipeline uses, so every key is
live when `rarewatch once` opens it. `--keys 100000` is a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_pipeline import free_port, serve
from rarewatch.store.base import ClaimRequest
from rarewatch.store.keys import item_key
from rarewatch.store.sqlite import SQLiteStore

TTL = timedelta(days=7)
# Runs `python -m rarewatch` and, at exit, writes its peak resident set (VmHWM, kB) to $RWBENCH_HWM.
PROBE = """
import atexit, os, runpy
def report():
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    open(os.environ["RWBENCH_HWM"], "w").write(peak.split()[1])
atexit.register(report)
runpy.run_module("rarewatch", run_name="__main__")
"""
BATCH = 20_000


async def fill(path: Path, keys: int) -> float:
    """Claim `keys` distinct item keys in `path`; seconds taken."""
    store = SQLiteStore(path)
    await store.open()
    started, now = time.perf_counter(), datetime.now(UTC)
    try:
        for first in range(0, keys, BATCH):
            batch = [ClaimRequest((item_key(f"{i:032x}"),)) for i in range(first, min(first + BATCH, keys))]
            made = await store.claim_many(batch, TTL, now)
            if made != len(batch):
                raise RuntimeError(f"only {made} of {len(batch)} claims made")
    finally:
        await store.close()
    return time.perf_counter() - started


def write_config(workdir: Path, db: Path, port: int, sources: int) -> Path:
    """A configuration with `sources` feeds of the farm (JSON is YAML) and one JSON-lines destination."""
    config = {
        "store": f"sqlite:///{db}",
        "sources": [
            {"name": f"f{n}", "type": "feed", "url": f"http://127.0.0.1:{port}/f{n}.xml", "enrich": False}
            for n in range(sources)
        ],
        "destinations": [{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],
        "routes": [{"to": ["archive"]}],
    }
    path = workdir / f"rarewatch-{sources}-{db.stem}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def peak_rss_mib(config: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of `rarewatch once --config config`, run to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    env["RAREWATCH_CACHE_DIR"] = str(config.parent / "cache")
    env["RWBENCH_HWM"] = str(config.with_suffix(".hwm"))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "once", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=config.parent,
        env=env,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"rarewatch once exited {done.returncode} ({config.name}): {done.stderr[-500:]!r}")
    peak_kib = int(config.with_suffix(".hwm").read_text(encoding="utf-8"))
    return peak_kib / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=5, help="items per feed")
    args = parser.parse_args()
    port = free_port()
    farm = multiprocessing.Process(target=serve, args=(port, args.sources, args.items), daemon=True)
    farm.start()
    time.sleep(1.5)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        full = workdir / "full.db"
        took = asyncio.run(fill(full, args.keys))
        size = full.stat().st_size / 2**20
        print(f"store: {args.keys:,} keys claimed via claim_many in {took:.1f} s, file {size:.0f} MiB")
        cases = {
            "baseline: 1 source, empty store": (1, False),
            f"{args.sources:,} sources, empty store": (args.sources, False),
            f"1 source, {args.keys:,} keys": (1, True),
            f"{args.sources:,} sources, {args.keys:,} keys": (args.sources, True),
        }
        figures: dict[str, float] = {}
        try:
            for n, (label, (sources, keyed)) in enumerate(cases.items()):
                db = workdir / f"run{n}.db"
                if keyed:
                    shutil.copyfile(full, db)  # each run starts from the same filled store
                rss, wall = peak_rss_mib(write_config(workdir, db, port, sources))
                figures[label] = rss
                print(f"{label:<40} peak RSS {rss:7.1f} MiB  (wall {wall:.1f} s)")
        finally:
            farm.terminate()
    base = figures["baseline: 1 source, empty store"]
    for label, rss in list(figures.items())[1:]:
        print(f"{label:<40} {rss / base:.2f}× the baseline (+{rss - base:.1f} MiB)")


if __name__ == "__main__":
    main()
