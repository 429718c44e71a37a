"""The embedded SQLite store: one file, WAL mode, safe for several processes.

Every sqlite call runs on one dedicated worker thread that owns the connection, so the event loop never
waits on disk and the connection is never shared between threads. A claim is one `BEGIN IMMEDIATE`
transaction: the write lock is taken before the "is any key held?" read, so two processes on the same file
cannot both claim a key. The schema is versioned with `PRAGMA user_version` (migrations in `keys.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

from rarewatch.errors import StoreError
from rarewatch.models import Alert, Delivery, DeliveryStatus, SourceState
from rarewatch.store import keys as k

T = TypeVar("T")
log = logging.getLogger(__name__)

_URL_PREFIX = "sqlite:///"
_DELIVERY_COLUMNS = "alert_id, destination, status, attempts, created, next_attempt, last_error, delivered_at"
_PENDING, _DELIVERED, _DEAD = (s.value for s in DeliveryStatus)


class SQLiteStore:
    """The `Store` on a SQLite file (created, with its parent directories, on `open()`)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = 5.0,
        history_limit: int = 10_000,
        cleanup_interval: timedelta = timedelta(minutes=10),
        held_cache_size: int = 100_000,
    ) -> None:
        """`busy_timeout` (s): how long to wait for another process's write lock before failing.
        `history_limit`: alerts kept in the history (older ones no delivery refers to are trimmed).
        `cleanup_interval`: how often (in claim `now` time) expired claims and old history are deleted.
        `held_cache_size`: claimed keys remembered in memory, so repeat claims skip the database."""
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._history_limit = history_limit
        self._cleanup_interval_us = cleanup_interval // timedelta(microseconds=1)
        self._held = _HeldKeys(held_cache_size)
        self._worker: _Worker | None = None
        # Only ever touched on the worker thread.
        self._conn: sqlite3.Connection | None = None
        self._next_cleanup_us = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """`sqlite:////abs/path.db` (absolute) or `sqlite:///rel.db` (relative; callers resolve it first)."""
        if not url.startswith(_URL_PREFIX) or len(url) == len(_URL_PREFIX):
            raise ValueError(f"not a SQLite store URL: {url!r} (use sqlite:///path/to/file.db)")
        return cls(Path(url[len(_URL_PREFIX) :]), **options)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file if needed and migrate the schema forward. Idempotent."""
        if self._worker is not None:
            return
        # Set before the first await so a concurrent open() returns; its calls queue behind _connect.
        self._worker = _Worker(f"rarewatch-sqlite:{self.path.name}")
        try:
            await self._submit(self._connect)
        except StoreError:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and stop the worker thread. Idempotent."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            await worker.run(partial(_guard, self._disconnect, self.path))
        finally:
            worker.stop()

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: commits are durable across a process crash, and only the last ones can
            # roll back on power loss; that costs at most a repeated alert, and saves an fsync per claim.
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _submit(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the worker thread, turning sqlite and OS errors into `StoreError`."""
        worker = self._worker
        if worker is None:
            raise StoreError(f"{self!r} is not open; call open() first")
        return await worker.run(partial(_guard, fn, self.path))

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the worker thread."""
        return await self._submit(partial(self._with_conn, fn))

    def _with_conn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:  # open() failed, or close() ran while this call was queued
            raise StoreError(f"{self!r} is not open; call open() first")
        return fn(self._conn)

    # --- claims -------------------------------------------------------------------------------------------

    async def claim(
        self,
        keys: Sequence[str],
        ttl: timedelta,
        now: datetime,
        alert: Alert | None = None,
        destinations: Sequence[str] = (),
    ) -> bool:
        """Claim `keys` for `ttl` unless one is held at `now`; see `Store.claim`."""
        if not keys:
            raise ValueError("claim needs at least one key")
        now_us, ttl_us = k.to_us(now), k.ttl_ms(ttl) * 1000
        unique = list(dict.fromkeys(keys))
        if self._held.any_held(unique, now_us):
            return False  # most claims are repeats (every poll re-reads the feed): no thread hop, no I/O
        expires = now_us + ttl_us
        record = None
        if alert is not None:
            created, data = k.to_us(alert.created), json.dumps(alert.to_dict())
            record = (alert.id, created, data, list(dict.fromkeys(destinations)))
        held = await self._run(partial(self._claim, unique, expires, now_us, record))
        self._held.add(held or dict.fromkeys(unique, expires), now_us)
        return not held

    def _claim(
        self,
        keys: list[str],
        expires: int,
        now_us: int,
        record: tuple[str, int, str, list[str]] | None,
        conn: sqlite3.Connection,
    ) -> dict[str, int]:
        """Claim on the worker thread; returns the held keys with their expiry (empty: claimed)."""
        with _immediate(conn):
            marks = ",".join("?" * len(keys))
            sql = f"SELECT key, expires FROM {k.CLAIMS} WHERE key IN ({marks}) AND expires > ?"
            held = dict(conn.execute(sql, (*keys, now_us)).fetchall())
            if held:
                return held
            sql = f"INSERT OR REPLACE INTO {k.CLAIMS} (key, expires) VALUES (?, ?)"
            conn.executemany(sql, [(key, expires) for key in keys])
            if record is not None:
                _record_alert(conn, *record, now_us)
        if now_us >= self._next_cleanup_us:
            self._next_cleanup_us = now_us + self._cleanup_interval_us
            try:
                _cleanup(conn, now_us, self._history_limit)
            except sqlite3.Error as exc:  # the claim is committed: report it, and clean up next time
                log.warning("SQLite store %s: cleanup of expired claims failed: %s", self.path, exc)
        return {}

    # --- source state -------------------------------------------------------------------------------------

    async def get_source_state(self, source: str) -> SourceState | None:
        """The stored state of `source`, or None."""
        row = await self._run(partial(_fetchone, f"SELECT data FROM {k.SOURCES} WHERE source = ?", (source,)))
        return SourceState.from_dict(json.loads(row[0])) if row else None

    async def put_source_state(self, source: str, state: SourceState) -> None:
        """Replace the stored state of `source`."""
        sql = f"INSERT OR REPLACE INTO {k.SOURCES} (source, data) VALUES (?, ?)"
        await self._run(partial(_execute, sql, (source, json.dumps(state.to_dict()))))

    # --- alert history ------------------------------------------------------------------------------------

    async def get_alert(self, alert_id: str) -> Alert | None:
        """One alert from the history, or None."""
        row = await self._run(partial(_fetchone, f"SELECT data FROM {k.ALERTS} WHERE id = ?", (alert_id,)))
        return Alert.from_dict(json.loads(row[0])) if row else None

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """The newest alerts first, at most `history_limit` of them (as in Redis: an alert kept past the
        cap because a delivery still refers to it is older than all of those, so never among them)."""
        sql = f"SELECT data FROM {k.ALERTS} ORDER BY created DESC, rowid DESC LIMIT ?"
        rows = await self._run(partial(_fetchall, sql, (max(0, min(limit, self._history_limit)),)))
        return [Alert.from_dict(json.loads(row[0])) for row in rows]

    # --- outbox -------------------------------------------------------------------------------------------

    async def due_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Pending deliveries due at `now`, by next attempt, then creation."""
        # The status is a literal, not a parameter: only then can SQLite use the partial index (pending rows).
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM {k.DELIVERIES} WHERE status = '{_PENDING}'"
            " AND next_attempt <= ? ORDER BY next_attempt, created, rowid LIMIT ?"
        )
        rows = await self._run(partial(_fetchall, sql, (k.to_us(now), limit)))
        return [_delivery(row) for row in rows]

    async def deliveries(
        self, status: DeliveryStatus | None = None, destination: str | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Delivery records filtered by status and destination, oldest first."""
        where, params = _filter(status, destination)
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM {k.DELIVERIES}{where} ORDER BY created, rowid LIMIT ?"
        rows = await self._run(partial(_fetchall, sql, (*params, limit)))
        return [_delivery(row) for row in rows]

    async def mark_delivered(self, alert_id: str, destination: str, now: datetime) -> None:
        """Record a successful delivery (attempts + 1)."""
        sets = "status = ?, attempts = attempts + 1, delivered_at = ?"
        await self._update(alert_id, destination, sets, (_DELIVERED, k.to_us(now)))

    async def mark_failed(
        self, alert_id: str, destination: str, error: str, next_attempt: datetime, now: datetime
    ) -> None:
        """Record a failed attempt (attempts + 1), its error, and when to try again."""
        sets = "status = ?, attempts = attempts + 1, last_error = ?, next_attempt = ?"
        await self._update(alert_id, destination, sets, (_PENDING, error, k.to_us(next_attempt)))

    async def mark_dead(self, alert_id: str, destination: str, error: str, now: datetime) -> None:
        """Dead-letter a delivery after a final failed attempt (attempts + 1), keeping its error."""
        sets = "status = ?, attempts = attempts + 1, last_error = ?"
        await self._update(alert_id, destination, sets, (_DEAD, error))

    async def _update(self, alert_id: str, destination: str, sets: str, params: tuple[Any, ...]) -> None:
        sql = f"UPDATE {k.DELIVERIES} SET {sets} WHERE alert_id = ? AND destination = ?"
        await self._run(partial(_execute, sql, (*params, alert_id, destination)))

    async def retry(self, now: datetime, destination: str | None = None) -> int:
        """Make dead and pending deliveries due at `now` (attempts and last error kept); returns how many."""
        sql = f"UPDATE {k.DELIVERIES} SET status = ?, next_attempt = ? WHERE status IN (?, ?)"
        params: tuple[Any, ...] = (_PENDING, k.to_us(now), _DEAD, _PENDING)
        if destination is not None:
            sql, params = sql + " AND destination = ?", (*params, destination)
        return await self._run(partial(_execute, sql, params))

    async def purge(self, status: DeliveryStatus, destination: str | None = None) -> int:
        """Delete the delivery records of `status` (and `destination`); returns how many."""
        where, params = _filter(status, destination)
        return await self._run(partial(_execute, f"DELETE FROM {k.DELIVERIES}{where}", params))


class _HeldKeys:
    """Claimed keys and their expiry, remembered on the event-loop side.

    Sound whatever other processes do: a claim is only ever replaced once it has expired, and the new
    expiry is later than the old one, so a key known held until T stays held until at least T. A bounded
    dict: when full, expired entries go first, then the oldest half.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._expires: dict[str, int] = {}

    def any_held(self, keys: Sequence[str], now_us: int) -> bool:
        return any(self._expires.get(key, 0) > now_us for key in keys)

    def add(self, held: dict[str, int], now_us: int) -> None:
        if self._capacity <= 0:
            return
        if len(self._expires) + len(held) > self._capacity:
            live = {key: exp for key, exp in self._expires.items() if exp > now_us}
            if len(live) > self._capacity // 2:
                live = dict(list(live.items())[len(live) - self._capacity // 2 :])
            self._expires = live
        self._expires.update(held)


class _Worker:
    """One thread that runs queued calls in order and hands each result back to the caller's event loop.

    Lighter than a one-thread `ThreadPoolExecutor` (no concurrent.futures bookkeeping per call): the hop is
    a large part of a claim's cost, and this one measured about a quarter cheaper.
    """

    def __init__(self, name: str) -> None:
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


# --- worker-thread helpers (those given a connection take it last, after their partial() arguments) -------


def _guard(fn: Callable[[], T], path: Path) -> T:
    """Call `fn`, reporting sqlite and file-system failures as `StoreError`."""
    try:
        return fn()
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite store {path}: {exc}") from exc
    except OSError as exc:  # e.g. the parent directory cannot be created
        raise StoreError(f"SQLite store {path}: {exc}") from exc


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the database lock up front, so its reads cannot go stale."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # some errors (disk full, I/O) have rolled it back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations this file lacks, once, even when several processes open it together."""
    with _immediate(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > k.SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}, newer than this rarewatch supports "
                f"({k.SCHEMA_VERSION}); upgrade rarewatch or use another database file"
            )
        for number, statements in enumerate(k.MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


def _record_alert(
    conn: sqlite3.Connection,
    alert_id: str,
    created: int,
    data: str,
    destinations: list[str],
    now_us: int,
) -> None:
    """Store the alert and (re)create one pending delivery per destination, due at `now_us`."""
    conn.execute(
        f"INSERT OR REPLACE INTO {k.ALERTS} (id, created, data) VALUES (?, ?, ?)", (alert_id, created, data)
    )
    # A story claimed again after its TTL lapsed gets fresh deliveries: delete then insert (a new rowid keeps
    # the "oldest first" tie-break equal to insertion order, as in Redis).
    pairs = [(alert_id, dest) for dest in destinations]
    conn.executemany(f"DELETE FROM {k.DELIVERIES} WHERE alert_id = ? AND destination = ?", pairs)
    conn.executemany(
        f"INSERT INTO {k.DELIVERIES} ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, 0, ?, ?, NULL, NULL)",
        [(alert_id, dest, _PENDING, now_us, now_us) for dest in destinations],
    )


def _cleanup(conn: sqlite3.Connection, now_us: int, history_limit: int) -> None:
    """Delete expired claims, and history beyond the newest `history_limit` alerts that no delivery uses."""
    with _immediate(conn):
        conn.execute(f"DELETE FROM {k.CLAIMS} WHERE expires <= ?", (now_us,))
        conn.execute(
            f"DELETE FROM {k.ALERTS} WHERE id IN (SELECT id FROM {k.ALERTS} ORDER BY created DESC, rowid DESC"
            f" LIMIT -1 OFFSET ?) AND id NOT IN (SELECT alert_id FROM {k.DELIVERIES})",
            (history_limit,),
        )


def _fetchone(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> Any:
    return conn.execute(sql, params).fetchone()


def _fetchall(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _execute(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> int:
    """Run one autocommitted statement; returns the number of rows it changed."""
    return conn.execute(sql, params).rowcount


def _filter(status: DeliveryStatus | None, destination: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (and its parameters) for the outbox filters that are set."""
    clauses, params = [], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status.value)
    if destination is not None:
        clauses.append("destination = ?")
        params.append(destination)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    alert_id, destination, status, attempts, created, next_attempt, last_error, delivered_at = row
    return Delivery(
        alert_id=alert_id,
        destination=destination,
        status=DeliveryStatus(status),
        attempts=attempts,
        created=k.from_us(created),
        next_attempt=k.from_us(next_attempt),
        last_error=last_error,
        delivered_at=k.from_us(delivered_at) if delivered_at is not None else None,
    )
