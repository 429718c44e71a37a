"""`Coalescer`: calls made while a batch is on its way share the next one; each caller gets its own
result or the batch's error; nothing accepted is dropped; and the SQLite store's source states use it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rarewatch.errors import StoreError
from rarewatch.models import SourceState
from rarewatch.store._sqlite_worker import Coalescer
from rarewatch.store.sqlite import SQLiteStore


class Recorder:
    """A batch function that records each batch it is given and answers each argument doubled."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def __call__(self, args: list[int]) -> list[int]:
        self.batches.append(args)
        await asyncio.sleep(0.01)  # on its way (as on the worker thread): later calls wait
        if self.fail:
            raise StoreError("store away")
        return [a * 2 for a in args]


async def test_calls_made_together_share_one_batch() -> None:
    run = Recorder()
    coalescer = Coalescer(run)
    assert await asyncio.gather(*(coalescer.call(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1, 2, 3, 4]]


async def test_calls_made_while_a_batch_is_on_its_way_go_in_the_next() -> None:
    run = Recorder()
    coalescer = Coalescer(run)
    first = asyncio.ensure_future(coalescer.call(1))
    await asyncio.sleep(0.001)  # the first batch has gone
    later = await asyncio.gather(*(coalescer.call(n) for n in (2, 3)))
    assert (await first, later) == (2, [4, 6])
    assert run.batches == [[1], [2, 3]]


async def test_batches_are_at_most_limit_calls() -> None:
    run = Recorder()
    coalescer = Coalescer(run, limit=2)
    assert await asyncio.gather(*(coalescer.call(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1], [2, 3], [4]]


async def test_every_caller_of_a_failed_batch_gets_the_error_and_the_next_batch_runs() -> None:
    run = Recorder(fail=True)
    coalescer = Coalescer(run)
    results = await asyncio.gather(*(coalescer.call(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    run.fail = False
    assert await coalescer.call(7) == 14


async def test_a_cancelled_caller_does_not_withdraw_its_call() -> None:
    run = Recorder()
    coalescer = Coalescer(run)
    cancelled = asyncio.ensure_future(coalescer.call(1))
    kept = asyncio.ensure_future(coalescer.call(2))
    await asyncio.sleep(0.001)
    cancelled.cancel()
    assert await kept == 4
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert run.batches == [[1, 2]]


async def test_idle_waits_for_every_accepted_call() -> None:
    run = Recorder()
    coalescer = Coalescer(run)
    calls = [asyncio.ensure_future(coalescer.call(n)) for n in range(3)]
    await asyncio.sleep(0)
    await coalescer.idle()
    assert all(c.done() for c in calls)
    await coalescer.idle()  # nothing under way: returns at once


async def test_source_states_written_and_read_together_are_each_their_own(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        states = {f"s{n}": SourceState(etag=f'"{n}"', consecutive_failures=n) for n in range(20)}
        await asyncio.gather(*(store.put_source_state(name, st) for name, st in states.items()))
        read = await asyncio.gather(*(store.get_source_state(name) for name in [*states, "s3", "none"]))
        assert read == [*states.values(), states["s3"], None]
        # Two writes of one source in one batch: the later one stays.
        await asyncio.gather(
            store.put_source_state("s1", SourceState(etag="a")),
            store.put_source_state("s1", SourceState(etag="b")),
        )
        assert (await store.get_source_state("s1")) == SourceState(etag="b")
    finally:
        await store.close()


async def test_closing_the_store_makes_the_writes_accepted_before(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    writes = [
        asyncio.ensure_future(store.put_source_state(f"s{n}", SourceState(etag=str(n)))) for n in range(5)
    ]
    await asyncio.sleep(0)  # accepted
    await store.close()
    await asyncio.gather(*writes)
    reopened = SQLiteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        assert [
            s.etag if s else None for s in [await reopened.get_source_state(f"s{n}") for n in range(5)]
        ] == ["0", "1", "2", "3", "4"]
    finally:
        await reopened.close()
