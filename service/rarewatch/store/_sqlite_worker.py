"""The thread plumbing under `SQLiteStore`: one worker thread per store, error translation, transactions.

Every sqlite call runs on the store's own worker thread, which owns the connection, so the event loop never
waits on disk and the connection is never shared between threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

from rarewatch.errors import StoreError

T = TypeVar("T")


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
