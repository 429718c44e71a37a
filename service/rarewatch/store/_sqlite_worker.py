"""The thread plumbing under `SQLiteStore`: one worker thread per store, error translation, transactions.

Every sqlite call runs on the store's own worker thread, which owns the connection, so the event loop never
waits on disk and the connection is never shared between threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

from rarewatch.errors import StoreError

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


class Worker:
    """One thread that runs queued calls in order and hands each result back to the caller's event loop.

    Lighter than a one-thread `ThreadPoolExecutor` (no concurrent.futures bookkeeping per call): the hop is
    a large part of a claim's cost, and this one measured about a quarter cheaper.
    """

    def __init__(self, name: str) -> None:
        """Start the thread, named `name`."""
        self._jobs: SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = SimpleQueue()
        # A daemon thread: a store never closed must not keep the process alive (SQLite survives a kill).
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the thread; its exception, if any, is raised here."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, future))
        return await future

    def stop(self) -> None:
        """Let the thread finish the calls already queued, then exit."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 -- not swallowed: re-raised in the awaiting caller
                _settle(future, None, exc)
            else:
                _settle(future, result, None)


class Coalescer(Generic[A, R]):
    """Calls that come while an earlier batch is on its way share the next batch: one worker round trip
    (for writes, one transaction) for all of them, each caller awaiting its own result.

    A batch goes out on the event loop's next turn after its first call (when its task starts), so every
    call made meanwhile, and while the batch before it is on the worker, joins it: no call waits longer
    than the batch before it; at most `limit` calls go in one batch.
    `run(args)` returns one result per argument, in order; when it raises, every caller of that batch
    gets the exception. A call is made once it is accepted: a caller cancelled meanwhile does not
    withdraw it (as a call queued on the `Worker` runs anyway)."""

    def __init__(self, run: Callable[[list[A]], Awaitable[Sequence[R]]], *, limit: int = 256) -> None:
        self._run = run
        self._limit = limit
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def call(self, arg: A) -> R:
        """`run([arg, ...])`'s result for `arg`, run in a batch with the calls made meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((arg, future))
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(self._send())
        return await future

    async def idle(self) -> None:
        """Wait until every call accepted so far is made (or given up: see `_send`)."""
        while (drain := self._drain) is not None and not drain.done():
            await asyncio.wait([drain])

    async def _send(self) -> None:
        """Run the waiting calls, a batch at a time, until none is left."""
        batch: list[tuple[A, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
                try:
                    results = await self._run([arg for arg, _ in batch])
                except Exception as exc:  # noqa: BLE001 -- not swallowed: raised in every caller of the batch
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # its caller was cancelled meanwhile
                        future.set_result(result)
        finally:  # cancelled (the loop is closing): nobody is left to answer the callers still waiting
            waiting, self._waiting = [*batch, *self._waiting], []
            for _, future in waiting:
                if not future.done() and not future.get_loop().is_closed():
                    future.cancel()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """Complete `future` on its own loop, from the worker thread."""

    def complete() -> None:
        if future.done():  # the caller was cancelled; the call still ran (its transaction committed)
            return
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)

    with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        future.get_loop().call_soon_threadsafe(complete)


def guard(fn: Callable[[], T], path: Path) -> T:
    """Call `fn`, reporting sqlite and file-system failures as `StoreError`."""
    try:
        return fn()
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite store {path}: {exc}") from exc
    except OSError as exc:  # e.g. the parent directory cannot be created
        raise StoreError(f"SQLite store {path}: {exc}") from exc


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the database lock up front, so its reads cannot go stale."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # some errors (disk full, I/O) have rolled it back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
