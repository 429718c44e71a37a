"""What keeping every fetched item (`store_items`) costs a poll cycle, against the same cycle without it.

A cold cycle (a fresh SQLite store, every item new: one batched write per fetch) and a repeat cycle of the
same feeds re-downloaded (no validators; every item already recorded, so no write at all), each with
`store_items` on (the default) and off (`max: 0`). The feed server runs in its own process (as in
`bench_pipeline.py`). Run: python bench/bench_seen_items.py [--feeds 300 --items 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_pipeline import NOW, free_port, serve, settings
from rarewatch.clock import FakeClock
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import open_runtime
from rarewatch.settings import StoreItemsConfig


async def cycles(workdir: Path, port: int, feeds: int, keep_items: bool) -> tuple[float, float, int]:
    """(seconds of a cold cycle, seconds of a full re-fetch cycle, items kept)."""
    base = settings(workdir, port, feeds)
    config = base.model_copy(update={"store_items": StoreItemsConfig(max=100_000 if keep_items else 0)})
    async with open_runtime(config, clock=FakeClock(NOW)) as rt:
        start = time.perf_counter()
        await run_cycle(rt.pipeline, rt.sources, force=True, concurrency=32)
        cold = time.perf_counter() - start
        for polled in rt.sources:  # forget the validators: every feed is downloaded and parsed again
            state = await rt.store.get_source_state(polled.source.name)
            if state is not None:
                await rt.store.put_source_state(polled.source.name, replace(state, etag=None))
        start = time.perf_counter()
        await run_cycle(rt.pipeline, rt.sources, force=True, concurrency=32)
        again = time.perf_counter() - start
        kept = len(await rt.store.seen_items(NOW.replace(year=NOW.year - 1)))
    return cold, again, kept


async def main_async(feeds: int, items: int) -> None:
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port, feeds, items), daemon=True)
    server.start()
    await asyncio.sleep(1.5)
    try:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            off_cold, off_again, _ = await cycles(Path(a), port, feeds, keep_items=False)
            on_cold, on_again, kept = await cycles(Path(b), port, feeds, keep_items=True)
    finally:
        server.terminate()
    n = feeds * items
    print(f"feeds: {feeds} x {items} items = {n} items, SQLite store; {kept} items kept")
    print(f"cold cycle, store_items on:      {on_cold:6.2f} s  {n / on_cold:9,.0f} items/s")
    print(f"cold cycle, store_items off:     {off_cold:6.2f} s  {n / off_cold:9,.0f} items/s   (baseline)")
    print(f"re-fetch cycle, store_items on:  {on_again:6.2f} s")
    print(f"re-fetch cycle, store_items off: {off_again:6.2f} s   (baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--items", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main_async(args.feeds, args.items))


if __name__ == "__main__":
    main()
