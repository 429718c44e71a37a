"""The embedded SQLite store: one file, WAL mode, safe for several processes.

Every sqlite call runs on one dedicated worker thread that owns the connection (`_sqlite_worker.py`), so the
event loop never waits on disk and the connection is never shared between threads. A claim is one
`BEGIN IMMEDIATE` transaction: the write lock is taken before the "is any key held?" read, so two processes
on the same file cannot both claim a key. The schema is versioned with `PRAGMA user_version` (migrations in
`keys.py`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from rarewatch.errors import StoreError
from rarewatch.models import (
    Alert,
    Delivery,
    DeliveryStatus,
    SeenItem,
    SeenRecord,
    Silence,
    SourceState,
    Vote,
)
from rarewatch.store import keys as k
from rarewatch.store._sqlite_worker import Coalescer, Worker, guard
from rarewatch.store._sqlite_worker import immediate as _immediate
from rarewatch.store.base import ClaimRequest, ItemRetention, OutboxStats, StoreMarker, expired
from rarewatch.store.base import by_creation as _by_creation

T = TypeVar("T")
A = TypeVar("A")
log = logging.getLogger(__name__)

_URL_PREFIX = "sqlite:///"
_DELIVERY_COLUMNS = (
    "alert_id, destination, status, attempts, created, next_attempt, last_error, delivered_at,"
    " receipt, digest"  # since schema v3
)
_PENDING, _DELIVERED, _DEAD = (s.value for s in DeliveryStatus)

Held = tuple[int, str | None]  # a held key's expiry (us) and owner
# An alert to record: id, created (us), JSON, and per destination (name, first attempt (us), digest flag).
_Record = tuple[str, int, str, list[tuple[str, int, int]]]
# One prepared claim: its keys, their owner, the alert to record (None: only mark seen), keys to remember.
_Claim = tuple[list[str], str | None, _Record | None, list[str]]
# A source state to write: the source, its JSON, and the marker id the file must hold (None: any).
_StateRow = tuple[str, str, str | None]


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
        items: ItemRetention | None = None,
    ) -> None:
        """`busy_timeout` (s): how long to wait for another process's write lock before failing.
        `history_limit`: alerts kept in the history (older ones no delivery refers to are trimmed).
        `cleanup_interval`: how often (in claim `now` time) expired claims, counters and old history are
        deleted. `held_cache_size`: held keys remembered in memory, so repeat claims skip the database.
        `items`: how long and how many seen items are kept (trimmed at most once per `cleanup_interval`)."""
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._history_limit = history_limit
        self._cleanup_interval_us = cleanup_interval // timedelta(microseconds=1)
        self._held = _HeldKeys(held_cache_size)
        self._worker: Worker | None = None
        # Only ever touched on the worker thread.
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection opened
        self._next_cleanup_us = 0
        self._items = items or ItemRetention()
        self._next_items_cleanup_us = 0
        self.found_blank = False
        # Source states read and written by polls under way at the same time: one round trip (and for
        # the writes one transaction) for each batch, where a cycle would make two per source.
        self._state_reads = Coalescer(self._read_states, limit=_ID_PAGE)
        self._state_writes = Coalescer(self._write_states, limit=_ID_PAGE)
        # Seen items of polls finishing meanwhile: one transaction for them all. Each commit appends every
        # page it changed to the WAL, and a fetch's ids land all over the id index, so one commit per
        # fetch rewrote most of that index each time (a cold cycle of 1,000 feeds wrote ~400 MB of WAL).
        self._item_writes = Coalescer(self._batches(self._record_items), limit=_ITEM_CALLS)
        # Claims of polls under way at the same moment: one transaction for them all (each call's claims
        # still stop at its own first held key), for the same reason.
        self._claims = Coalescer(self._batches(self._claim), limit=_CLAIM_CALLS)

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
        self._worker = Worker(f"rarewatch-sqlite:{self.path.name}")
        try:
            await self._submit(self._connect)
        except StoreError:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and stop the worker thread. Idempotent."""
        if self._worker is None:
            return
        await self._state_reads.idle()  # the reads and writes accepted before close() are made
        await self._state_writes.idle()
        await self._item_writes.idle()
        await self._claims.idle()
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            await worker.run(partial(guard, self._disconnect, self.path))
        finally:
            worker.stop()

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A file that exists but is empty lost its contents (a new store has no file yet).
        self.found_blank = self.path.is_file() and self.path.stat().st_size == 0
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: commits are durable across a process crash, and only the last ones can
            # roll back on power loss; that costs at most a repeated alert, and saves an fsync per claim.
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, self.path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise
            raise StoreError(
                f"SQLite store {self.path} is damaged ({exc}): restore it from a backup, or empty it "
                f"(: > {self.path}) to start over; rarewatch then marks what the sources list as seen "
                "instead of alerting on it again"
            ) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._file_id = _file_id(self.path)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _submit(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the worker thread, turning sqlite and OS errors into `StoreError`."""
        worker = self._worker
        if worker is None:
            raise StoreError(f"{self!r} is not open; call open() first")
        return await worker.run(partial(guard, fn, self.path))

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the worker thread."""
        return await self._submit(partial(self._with_conn, fn))

    def _batches(self, fn: Callable[[list[A], sqlite3.Connection], T]) -> Callable[[list[A]], Awaitable[T]]:
        """What a `Coalescer` runs for `fn`: a batch of calls as `fn(calls, connection)` on the worker."""
        return lambda calls: self._run(partial(fn, calls))

    def _with_conn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:  # open() failed, or close() ran while this call was queued
            raise StoreError(f"{self!r} is not open; call open() first")
        return fn(self._conn)

    # --- identity marker ---------------------------------------------------------------------------------

    def expect_marker(self, marker_id: str | None) -> None:
        """Nothing to do: a SQLite file replaced under the process is caught by `get_marker`'s reconnect,
        and no other process writes it between a check and a claim."""

    async def get_marker(self) -> StoreMarker | None:
        """The marker, after reconnecting when the file was replaced or emptied under the connection (an
        open connection would otherwise keep reading the old file, or a stale write-ahead log)."""
        reconnected, raw = await self._submit(self._read_marker)
        self._forget_held(reconnected)
        return _marker(raw)

    def _forget_held(self, reconnected: bool) -> None:
        """After a reconnect, forget the held keys remembered: claims from the old file mean nothing."""
        if reconnected:
            self._held = _HeldKeys(self._held.capacity)

    def _read_marker(self) -> tuple[bool, str | None]:
        """(whether it reconnected, the marker's JSON or None); on the worker thread."""
        reconnected = self._reconnect_if_replaced()
        return reconnected, self._with_conn(_marker_json)

    def _reconnect_if_replaced(self) -> bool:
        """Reopen the file when it was replaced or emptied under the connection; whether it did so."""
        now_id, size = _file_state(self.path)
        reconnect = now_id != self._file_id or (now_id is not None and size == 0)
        if reconnect:
            log.warning("SQLite store %s: the file was replaced or emptied; reopening it", self.path)
            self._disconnect()
            self._connect()
        return reconnect

    async def create_marker(self, marker: StoreMarker) -> StoreMarker:
        """Write `marker` unless the file has one; returns the stored marker."""
        raw = await self._run(partial(_create_marker, json.dumps(marker.to_dict())))
        return StoreMarker.from_dict(json.loads(raw))

    async def reset_marker(self, marker: StoreMarker) -> None:
        """Replace the marker."""
        sql = f"INSERT OR REPLACE INTO {k.META} (name, value) VALUES (?, ?)"
        await self._run(partial(_execute, sql, (k.MARKER_NAME, json.dumps(marker.to_dict()))))

    # --- claims and remembered keys -----------------------------------------------------------------------

    async def claim(
        self,
        keys: Sequence[str],
        ttl: timedelta,
        now: datetime,
        alert: Alert | None = None,
        destinations: Sequence[str] = (),
        *,
        held_until: Mapping[str, datetime] | None = None,
        remember: Sequence[str] = (),
    ) -> bool:
        """Claim `keys` for `ttl` unless one is held at `now`, remembering `remember`; see `Store.claim`."""
        if not keys:
            raise ValueError("claim needs at least one key")
        if remember and alert is None:
            raise ValueError("claim can only remember keys for an alert")
        now_us, ttl_us = k.to_us(now), k.ttl_ms(ttl) * 1000
        request = ClaimRequest(tuple(keys), alert, tuple(destinations), held_until, tuple(remember))
        return await self._claim_batch([request], now_us, now_us + ttl_us) == 1

    async def claim_many(self, requests: Sequence[ClaimRequest], ttl: timedelta, now: datetime) -> int:
        """Make `requests` in order in one transaction, stopping at the first that fails; see
        `Store.claim_many`. One worker round trip for a whole fetch's admissions."""
        for request in requests:
            if not request.keys:
                raise ValueError("claim needs at least one key")
            if request.remember and request.alert is None:
                raise ValueError("claim can only remember keys for an alert")
        now_us, ttl_us = k.to_us(now), k.ttl_ms(ttl) * 1000
        return await self._claim_batch(requests, now_us, now_us + ttl_us)

    async def _claim_batch(self, requests: Sequence[ClaimRequest], now_us: int, expires: int) -> int:
        """Prepare each claim (in memory), make them on the worker thread, and remember what they hold."""
        batch: list[_Claim] = []
        for request in requests:
            unique = list(dict.fromkeys(request.keys))
            if self._held.any_held(unique, now_us):
                break  # most claims are repeats (every poll re-reads the feed): no thread hop, no I/O
            batch.append(self._prepare(request, unique, now_us))
        if not batch:
            return 0
        made, entries = await self._claims.call((batch, expires, now_us))
        self._held.add(entries, now_us)
        return made

    def _prepare(self, request: ClaimRequest, unique: list[str], now_us: int) -> _Claim:
        """One claim's rows: its keys, its owner, its alert record and the remembered keys to check."""
        # Remembered keys already known held keep their owner: only the others are checked in the file.
        remember = list(dict.fromkeys(request.remember))
        known = self._held.owners(remember, now_us)
        extra = [key for key in remember if key not in known and key not in unique]
        alert = request.alert
        if alert is None:
            return unique, None, None, extra
        hold = request.held_until or {}
        dests = [
            (dest, k.to_us(hold[dest]), 1) if dest in hold else (dest, now_us, 0)
            for dest in dict.fromkeys(request.destinations)
        ]
        return unique, alert.id, (alert.id, k.to_us(alert.created), json.dumps(alert.to_dict()), dests), extra

    def _claim(self, calls: list[_ClaimCall], conn: sqlite3.Connection) -> list[tuple[int, dict[str, Held]]]:
        """Make each call's claims on the worker thread, all in one transaction, each call's up to its
        first claim that finds a key held. Returns, per call, how many were made and the entries now known
        held (claimed, remembered, or found held); then cleans up expired claims now and then."""
        with _immediate(conn):
            results = [_claim_rows(batch, expires, now_us, conn) for batch, expires, now_us in calls]
        now_us = max(now for _, _, now in calls)
        if any(made for made, _ in results) and now_us >= self._next_cleanup_us:
            self._next_cleanup_us = now_us + self._cleanup_interval_us
            try:
                _cleanup(conn, now_us, self._history_limit)
            except sqlite3.Error as exc:  # the claims are committed: report it, and clean up next time
                log.warning("SQLite store %s: cleanup of expired claims failed: %s", self.path, exc)
        return results

    async def held(self, keys: Sequence[str], now: datetime) -> dict[str, str | None]:
        """The keys among `keys` held at `now` (claimed or remembered), with their owners, in `keys` order."""
        now_us = k.to_us(now)
        unique = list(dict.fromkeys(keys))
        owners = self._held.owners(unique, now_us)
        unknown = [key for key in unique if key not in owners]
        if unknown:  # the cache only knows what is held, never what is free: ask the file
            found = await self._run(partial(_held_rows, unknown, now_us))
            self._held.add(found, now_us)
            owners.update((key, owner) for key, (_, owner) in found.items())
        return {key: owners[key] for key in unique if key in owners}

    async def remember(self, keys: Sequence[str], owner: str, ttl: timedelta, now: datetime) -> None:
        """Hold each of `keys` that is free at `now` for `owner` during `ttl`; held keys keep their owner."""
        now_us, ttl_us = k.to_us(now), k.ttl_ms(ttl, "remember ttl") * 1000
        known = self._held.owners(list(dict.fromkeys(keys)), now_us)
        free = [key for key in dict.fromkeys(keys) if key not in known]
        if free:
            entries = await self._run(partial(_remember, free, (now_us + ttl_us, owner), now_us))
            self._held.add(entries, now_us)

    # --- counters -----------------------------------------------------------------------------------------

    async def count_in_window(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one for `key` in the fixed window containing `now` and return the window's count."""
        bucket, expires = k.window_bucket(window, now)
        return await self._run(partial(_count, key, bucket, expires, k.to_us(now)))

    # --- source state -------------------------------------------------------------------------------------

    async def get_source_state(self, source: str) -> SourceState | None:
        """The stored state of `source`, or None (read with the other polls' reads under way)."""
        return (await self.get_marker_and_source_state(source))[1]

    async def get_marker_and_source_state(self, source: str) -> tuple[StoreMarker | None, SourceState | None]:
        """The marker (as `get_marker` reads it) and the stored state of `source`: one worker round trip,
        shared with the other polls' reads under way."""
        marker, data = await self._state_reads.call(source)
        return marker, SourceState.from_dict(json.loads(data)) if data is not None else None

    async def put_source_state(self, source: str, state: SourceState) -> None:
        """Replace the stored state of `source`; committed when this returns (written in one transaction
        with the other polls' writes under way)."""
        await self._state_writes.call((source, json.dumps(state.to_dict()), None))

    async def put_source_state_if_marker(self, source: str, state: SourceState, marker_id: str) -> bool:
        """Replace the stored state of `source` if the file's marker is still `marker_id` (after reopening a
        replaced or emptied file); False when it is not. Written with the other polls' writes under way."""
        return await self._state_writes.call((source, json.dumps(state.to_dict()), marker_id))

    async def _read_states(self, sources: list[str]) -> list[tuple[StoreMarker | None, str | None]]:
        """The marker and the stored states (JSON) of `sources`, in order: one worker round trip."""
        unique = list(dict.fromkeys(sources))
        reconnected, raw, found = await self._submit(partial(self._marker_and_states, unique))
        self._forget_held(reconnected)
        marker = _marker(raw)
        return [(marker, found.get(source)) for source in sources]

    def _marker_and_states(self, sources: list[str]) -> tuple[bool, str | None, dict[str, str]]:
        """`_read_marker()`, then the stored states of `sources` by source; on the worker thread."""
        reconnected, raw = self._read_marker()
        return reconnected, raw, dict(self._with_conn(partial(_state_rows, sources)))

    async def _write_states(self, rows: list[_StateRow]) -> list[bool]:
        """Write `rows` in order, in one transaction; whether each was written (see `_put_states`)."""
        reconnected, written = await self._submit(partial(self._checked_put_states, rows))
        self._forget_held(reconnected)
        return written

    def _checked_put_states(self, rows: list[_StateRow]) -> tuple[bool, list[bool]]:
        """`_put_states`, after reopening a replaced or emptied file when a row checks the marker."""
        reconnected = any(expected is not None for _, _, expected in rows) and self._reconnect_if_replaced()
        return reconnected, self._with_conn(partial(_put_states, rows))

    # --- alert history ------------------------------------------------------------------------------------

    async def get_alert(self, alert_id: str) -> Alert | None:
        """One alert from the history, or None."""
        row = await self._run(partial(_fetchone, f"SELECT data FROM {k.ALERTS} WHERE id = ?", (alert_id,)))
        return Alert.from_dict(json.loads(row[0])) if row else None

    async def get_alerts(self, alert_ids: Sequence[str]) -> dict[str, Alert]:
        """The alerts of `alert_ids` the history holds, by id: one round trip to the worker thread."""
        unique = list(dict.fromkeys(alert_ids))
        if not unique:
            return {}
        rows = await self._run(partial(_alert_rows, unique))
        return {alert_id: Alert.from_dict(json.loads(data)) for alert_id, data in rows}

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """The newest alerts first, at most `history_limit` of them (as in Redis: an alert kept past the
        cap because a delivery still refers to it is older than all of those, so never among them)."""
        sql = f"SELECT data FROM {k.ALERTS} ORDER BY created DESC, rowid DESC LIMIT ?"
        rows = await self._run(partial(_fetchall, sql, (max(0, min(limit, self._history_limit)),)))
        return [Alert.from_dict(json.loads(row[0])) for row in rows]

    # --- unrouted alerts ---------------------------------------------------------------------------------

    async def record_unrouted(self, alert: Alert, now: datetime) -> None:
        """Keep `alert` among the unrouted alerts (the newest `UNROUTED_LIMIT`)."""
        row = (alert.id, k.to_us(now), json.dumps(alert.to_dict()))
        await self._run(partial(_record_unrouted, row, k.UNROUTED_LIMIT))

    async def unrouted(self, limit: int = 50) -> list[Alert]:
        """The unrouted alerts, newest first."""
        sql = f"SELECT data FROM {k.UNROUTED} ORDER BY created DESC, rowid DESC LIMIT ?"
        rows = await self._run(partial(_fetchall, sql, (max(0, limit),)))
        return [Alert.from_dict(json.loads(row[0])) for row in rows]

    async def unrouted_ids(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of `alert_ids` are unrouted."""
        unique = list(dict.fromkeys(alert_ids))
        if not unique:
            return set()
        sql = f"SELECT id FROM {k.UNROUTED} WHERE id IN ({','.join('?' * len(unique))})"
        return {row[0] for row in await self._run(partial(_fetchall, sql, tuple(unique)))}

    async def get_unrouted(self, alert_id: str) -> Alert | None:
        """One unrouted alert, or None."""
        row = await self._run(partial(_fetchone, f"SELECT data FROM {k.UNROUTED} WHERE id = ?", (alert_id,)))
        return Alert.from_dict(json.loads(row[0])) if row else None

    async def drop_unrouted(self, alert_id: str) -> bool:
        """Forget an unrouted alert; whether it was listed."""
        return bool(await self._run(partial(_execute, f"DELETE FROM {k.UNROUTED} WHERE id = ?", (alert_id,))))

    # --- seen items -------------------------------------------------------------------------------------

    async def record_items(self, items: Sequence[SeenRecord], now: datetime) -> int:
        """Keep the items not kept yet, then trim to the retention now and then; how many were new.

        Calls made while an earlier batch is being written share one transaction (`Coalescer`)."""
        if not items or self._items.max <= 0:
            return 0
        rows = []
        last: datetime | None = None  # a fetch's items share one time (one object): converted once
        for s in items:
            if s.fetched is not last:
                last, fetched_us, fetched = s.fetched, k.to_us(s.fetched), s.fetched.isoformat()
            rows.append((s.item_id, fetched_us, s.to_json(fetched)))
        return await self._item_writes.call((rows, k.to_us(now)))

    def _record_items(self, calls: list[_ItemCall], conn: sqlite3.Connection) -> list[int]:
        """Every call's rows in one transaction; how many of each call's rows were new."""
        added = []
        with _immediate(conn):
            for rows, _ in calls:
                before = conn.total_changes
                conn.executemany(
                    f"INSERT OR IGNORE INTO {k.SEEN_ITEMS} (id, fetched, data) VALUES (?, ?, ?)", rows
                )
                added.append(conn.total_changes - before)
            now_us = max(now for _, now in calls)
            # Trimming scans the index: not on every poll, but at most once per cleanup interval.
            if now_us >= self._next_items_cleanup_us:
                self._next_items_cleanup_us = now_us + self._cleanup_interval_us
                _trim_items(conn, now_us - self._items.keep // timedelta(microseconds=1), self._items.max)
        return added

    async def seen_items(self, since: datetime, limit: int = 100_000) -> list[SeenItem]:
        """The kept items fetched at or after `since`, newest first."""
        sql = f"SELECT data FROM {k.SEEN_ITEMS} WHERE fetched >= ? ORDER BY fetched DESC, rowid DESC LIMIT ?"
        rows = await self._run(partial(_fetchall, sql, (k.to_us(since), max(0, limit))))
        return [SeenItem.from_dict(json.loads(row[0])) for row in rows]

    # --- silences ---------------------------------------------------------------------------------------

    async def add_silence(self, silence: Silence, now: datetime) -> None:
        """Store `silence` and forget those that ended `SILENCE_KEEP` before `now`, in one transaction."""
        row = (silence.id, k.to_us(silence.ends), json.dumps(silence.to_dict()))
        await self._run(partial(_add_silence, row, k.to_us(now - k.SILENCE_KEEP)))

    async def silences(self) -> list[Silence]:
        """Every silence kept, oldest first."""
        rows = await self._run(partial(_fetchall, f"SELECT data FROM {k.SILENCES}", ()))
        return _by_creation(Silence.from_dict(json.loads(row[0])) for row in rows)

    async def expire_silence(self, silence_id: str, now: datetime) -> Silence | None:
        """End the silence at `now` unless it ended already; returns it, or None."""
        raw = await self._run(partial(_expire_silence, silence_id, now))
        return Silence.from_dict(json.loads(raw)) if raw is not None else None

    # --- votes -----------------------------------------------------------------------------------------

    async def record_vote(self, vote: Vote) -> None:
        """Insert or replace the voter's vote and trim to the retention, in one transaction."""
        row = (vote.alert_id, vote.who, k.to_us(vote.at), json.dumps(vote.to_dict()))
        await self._run(partial(_record_vote, row, k.to_us(vote.at - k.VOTE_KEEP), k.VOTE_LIMIT))

    async def votes(self, since: datetime, limit: int = 100_000) -> list[Vote]:
        """The votes cast at or after `since`, oldest first (the newest `limit` of them)."""
        sql = (
            f"SELECT data FROM (SELECT data, at, alert_id, who FROM {k.VOTES} WHERE at >= ?"
            " ORDER BY at DESC, alert_id DESC, who DESC LIMIT ?) ORDER BY at, alert_id, who"
        )
        rows = await self._run(partial(_fetchall, sql, (k.to_us(since), max(0, limit))))
        return [Vote.from_dict(json.loads(row[0])) for row in rows]

    # --- outbox -------------------------------------------------------------------------------------------

    async def due_deliveries(
        self, now: datetime, limit: int = 100, destination: str | None = None
    ) -> list[Delivery]:
        """Pending deliveries due at `now` (of one destination if given), by next attempt, then creation."""
        # The status is a literal, not a parameter: only then can SQLite use the partial index (pending rows).
        only = " AND destination = ?" if destination is not None else ""
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM {k.DELIVERIES} WHERE status = '{_PENDING}'"
            f" AND next_attempt <= ?{only} ORDER BY next_attempt, created, rowid LIMIT ?"
        )
        params = (k.to_us(now), destination, limit) if destination is not None else (k.to_us(now), limit)
        rows = await self._run(partial(_fetchall, sql, params))
        return [_delivery(row) for row in rows]

    async def deliveries(
        self, status: DeliveryStatus | None = None, destination: str | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Delivery records filtered by status and destination, oldest first."""
        where, params = _filter(status, destination)
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM {k.DELIVERIES}{where} ORDER BY created, rowid LIMIT ?"
        rows = await self._run(partial(_fetchall, sql, (*params, limit)))
        return [_delivery(row) for row in rows]

    async def get_delivery(self, alert_id: str, destination: str) -> Delivery | None:
        """The delivery record of `alert_id` to `destination`, or None."""
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM {k.DELIVERIES} WHERE alert_id = ? AND destination = ?"
        row = await self._run(partial(_fetchone, sql, (alert_id, destination)))
        return _delivery(row) if row else None

    async def delivered_since(self, destination: str, since: datetime) -> int:
        """How many records for `destination` are delivered, with `delivered_at` at or after `since`."""
        # A literal status again, so the partial index (destination, delivered_at) answers on its own.
        sql = (
            f"SELECT count(*) FROM {k.DELIVERIES} WHERE status = '{_DELIVERED}'"
            " AND destination = ? AND delivered_at >= ?"
        )
        row = await self._run(partial(_fetchone, sql, (destination, k.to_us(since))))
        return int(row[0])

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        """Pending and dead deliveries per destination, with the oldest pending one's creation time."""
        sql = (
            f"SELECT destination, status, count(*), min(created) FROM {k.DELIVERIES}"
            f" WHERE status IN ('{_PENDING}', '{_DEAD}') GROUP BY destination, status"
        )
        stats: dict[str, OutboxStats] = {}
        for destination, status, count, oldest in await self._run(partial(_fetchall, sql, ())):
            was = stats.get(destination, OutboxStats())
            if status == _PENDING:
                stats[destination] = OutboxStats(int(count), was.dead, k.from_us(int(oldest)))
            else:
                stats[destination] = OutboxStats(was.pending, int(count), was.oldest_pending)
        return stats

    async def mark_delivered(
        self, alert_id: str, destination: str, now: datetime, receipt: str | None = None
    ) -> None:
        """Record a successful delivery (attempts + 1) and its receipt (None clears an earlier one)."""
        await self._update(alert_id, destination, _DELIVERED_SETS, (_DELIVERED, k.to_us(now), receipt))

    async def mark_delivered_many(self, deliveries: Sequence[tuple[str, str]], now: datetime) -> None:
        """`mark_delivered` of each (alert id, destination), without a receipt, in one transaction."""
        if not deliveries:
            return
        sql = f"UPDATE {k.DELIVERIES} SET {_DELIVERED_SETS} WHERE alert_id = ? AND destination = ?"
        at = k.to_us(now)
        rows = [(_DELIVERED, at, None, alert_id, destination) for alert_id, destination in deliveries]
        await self._run(partial(_execute_many, sql, rows))

    async def defer(self, alert_id: str, destination: str, next_attempt: datetime) -> None:
        """Move a pending delivery's next attempt, attempts unchanged (a no-op for any other record)."""
        sql = (
            f"UPDATE {k.DELIVERIES} SET next_attempt = ?"
            f" WHERE alert_id = ? AND destination = ? AND status = '{_PENDING}'"
        )
        await self._run(partial(_execute, sql, (k.to_us(next_attempt), alert_id, destination)))

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

    async def retry(self, now: datetime, destination: str | None = None, alert_id: str | None = None) -> int:
        """Make dead and pending deliveries (of `destination`, of `alert_id`, when given) due at `now`
        (attempts and last error kept); returns how many."""
        sql = f"UPDATE {k.DELIVERIES} SET status = ?, next_attempt = ? WHERE status IN (?, ?)"
        params: tuple[Any, ...] = (_PENDING, k.to_us(now), _DEAD, _PENDING)
        if destination is not None:
            sql, params = sql + " AND destination = ?", (*params, destination)
        if alert_id is not None:
            sql, params = sql + " AND alert_id = ?", (*params, alert_id)
        return await self._run(partial(_execute, sql, params))

    async def purge(self, status: DeliveryStatus, destination: str | None = None) -> int:
        """Delete the delivery records of `status` (and `destination`); returns how many."""
        where, params = _filter(status, destination)
        return await self._run(partial(_execute, f"DELETE FROM {k.DELIVERIES}{where}", params))

    async def forget_deliveries(self, status: DeliveryStatus, before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` records of `status` created before `before`, oldest first, and the alerts
        beyond the history limit they alone kept; see `Store.forget_deliveries`."""
        if status is DeliveryStatus.PENDING:
            raise ValueError("pending deliveries are never forgotten")
        if limit <= 0:
            return 0
        args = (status.value, k.to_us(before), limit)
        return await self._run(partial(_forget_deliveries, args, self._history_limit))


_NEVER: Held = (0, None)


def _claim_rows(
    batch: list[_Claim], expires: int, now_us: int, conn: sqlite3.Connection
) -> tuple[int, dict[str, Held]]:
    """One call's claims, inside the caller's transaction, up to the first that finds a key held: how
    many were made and the entries now known held."""
    made, known = 0, dict[str, Held]()
    sql = f"INSERT OR REPLACE INTO {k.CLAIMS} (key, expires, owner) VALUES (?, ?, ?)"
    for keys, owner, record, remember in batch:
        held = _held_rows(keys, now_us, conn)
        if held:
            known.update(held)
            break
        conn.executemany(sql, [(key, expires, owner) for key in keys])
        known.update(dict.fromkeys(keys, (expires, owner)))
        if remember:
            known.update(_remember_rows(remember, (expires, owner), now_us, conn))
        if record is not None:
            _record_alert(conn, *record, now_us)
        made += 1
    return made, known


class _HeldKeys:
    """Held keys (claimed or remembered) with their expiry and owner, remembered on the event-loop side.

    Sound whatever other processes do: a held key is only ever replaced once it has expired (a claim or a
    `remember` never overwrites a live key), and the new expiry is later than the old one, so a key known
    held until T stays held until at least T, and by the same owner. A bounded dict: when full, expired
    entries go first, then the oldest half.
    """

    def __init__(self, capacity: int) -> None:
        """At most `capacity` keys (0: no cache)."""
        self.capacity = capacity
        self._entries: dict[str, Held] = {}

    def any_held(self, keys: Sequence[str], now_us: int) -> bool:
        """Whether one of `keys` is known held at `now_us` (False: not known, ask the database)."""
        entries = self._entries
        return any(entries.get(key, _NEVER)[0] > now_us for key in keys)

    def owners(self, keys: Sequence[str], now_us: int) -> dict[str, str | None]:
        """The keys among `keys` known held at `now_us`, with their owners."""
        entries = self._entries
        return {key: entry[1] for key in keys if (entry := entries.get(key, _NEVER))[0] > now_us}

    def add(self, held: Mapping[str, Held], now_us: int) -> None:
        """Remember keys held until their expiry, by their owner."""
        if self.capacity <= 0 or not held:
            return
        if len(self._entries) + len(held) > self.capacity:
            live = {key: entry for key, entry in self._entries.items() if entry[0] > now_us}
            if len(live) > self.capacity // 2:
                live = dict(list(live.items())[len(live) - self.capacity // 2 :])
            self._entries = live
        self._entries.update(held)


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


def _file_state(path: Path) -> tuple[tuple[int, int] | None, int]:
    """The identity of the file at `path` (None: there is none), to notice it being replaced, and its
    size (to notice it being emptied), from one `stat`."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None, 0
    return (st.st_dev, st.st_ino), st.st_size


def _file_id(path: Path) -> tuple[int, int] | None:
    """The identity of the file at `path` (None: there is none)."""
    return _file_state(path)[0]


def _create_marker(raw: str, conn: sqlite3.Connection) -> str:
    """Insert the marker `raw` unless one exists; returns the stored one."""
    with _immediate(conn):
        sql = f"INSERT INTO {k.META} (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
        conn.execute(sql, (k.MARKER_NAME, raw))
        stored = _marker_json(conn)
    assert stored is not None  # inserted, or already there, in this transaction
    return stored


def _held_rows(keys: list[str], now_us: int, conn: sqlite3.Connection) -> dict[str, Held]:
    """The keys among `keys` held at `now_us`, with their expiry and owner."""
    marks = ",".join("?" * len(keys))
    sql = f"SELECT key, expires, owner FROM {k.CLAIMS} WHERE key IN ({marks}) AND expires > ?"
    return {key: (expires, owner) for key, expires, owner in conn.execute(sql, (*keys, now_us))}


def _remember(keys: list[str], entry: Held, now_us: int, conn: sqlite3.Connection) -> dict[str, Held]:
    """Hold each free key of `keys` as `entry`; returns every key's entry (held ones keep theirs)."""
    with _immediate(conn):
        return _remember_rows(keys, entry, now_us, conn)


def _remember_rows(keys: list[str], entry: Held, now_us: int, conn: sqlite3.Connection) -> dict[str, Held]:
    """`_remember` inside the caller's transaction."""
    held = _held_rows(keys, now_us, conn)
    sql = f"INSERT OR REPLACE INTO {k.CLAIMS} (key, expires, owner) VALUES (?, ?, ?)"
    conn.executemany(sql, [(key, *entry) for key in keys if key not in held])
    return {key: held.get(key, entry) for key in keys}


def _count(key: str, bucket: int, expires: int, now_us: int, conn: sqlite3.Connection) -> int:
    """Add one to the counter `key` in window `bucket` (ending at `expires`); returns its count. Ended
    windows of the same key are deleted here, those of keys no longer counted by `_cleanup`."""
    with _immediate(conn):
        conn.execute(f"DELETE FROM {k.COUNTERS} WHERE key = ? AND expires <= ?", (key, now_us))
        row = conn.execute(
            f"INSERT INTO {k.COUNTERS} (key, bucket, count, expires) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (key, bucket) DO UPDATE SET count = count + 1 RETURNING count",
            (key, bucket, expires),
        ).fetchone()
    return int(row[0])


def _record_alert(
    conn: sqlite3.Connection,
    alert_id: str,
    created: int,
    data: str,
    destinations: list[tuple[str, int, int]],
    now_us: int,
) -> None:
    """Store the alert and (re)create one pending delivery per destination, each due at its given time
    (`now_us`, or the time it is held until for a digest)."""
    conn.execute(
        f"INSERT OR REPLACE INTO {k.ALERTS} (id, created, data) VALUES (?, ?, ?)", (alert_id, created, data)
    )
    # A story claimed again after its TTL lapsed gets fresh deliveries: delete then insert (a new rowid keeps
    # the "oldest first" tie-break equal to insertion order, as in Redis).
    pairs = [(alert_id, dest) for dest, _, _ in destinations]
    conn.executemany(f"DELETE FROM {k.DELIVERIES} WHERE alert_id = ? AND destination = ?", pairs)
    conn.executemany(
        f"INSERT INTO {k.DELIVERIES} ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, 0, ?, ?, NULL, NULL, NULL, ?)",
        [(alert_id, dest, _PENDING, now_us, due, digest) for dest, due, digest in destinations],
    )


# The alerts beyond the newest `history_limit` that no delivery uses (parameter: history_limit).
_TRIM_HISTORY = (
    f"DELETE FROM {k.ALERTS} WHERE id IN (SELECT id FROM {k.ALERTS} ORDER BY created DESC, rowid DESC"
    f" LIMIT -1 OFFSET ?) AND id NOT IN (SELECT alert_id FROM {k.DELIVERIES})"
)


def _cleanup(conn: sqlite3.Connection, now_us: int, history_limit: int) -> None:
    """Delete expired claims and counters, and history beyond the newest `history_limit` alerts that no
    delivery uses."""
    with _immediate(conn):
        conn.execute(f"DELETE FROM {k.CLAIMS} WHERE expires <= ?", (now_us,))
        conn.execute(f"DELETE FROM {k.COUNTERS} WHERE expires <= ?", (now_us,))
        conn.execute(_TRIM_HISTORY, (history_limit,))


def _forget_deliveries(args: tuple[str, int, int], history_limit: int, conn: sqlite3.Connection) -> int:
    """Delete the oldest records of one status created before a time (at most a number), then the alerts
    beyond the newest `history_limit` no delivery uses any more; returns how many records."""
    with _immediate(conn):
        forgotten = conn.execute(
            f"DELETE FROM {k.DELIVERIES} WHERE rowid IN (SELECT rowid FROM {k.DELIVERIES}"
            " WHERE status = ? AND created < ? ORDER BY created LIMIT ?)",
            args,
        ).rowcount
        if forgotten:
            conn.execute(_TRIM_HISTORY, (history_limit,))
    return forgotten


def _add_silence(row: tuple[str, int, str], forget_before_us: int, conn: sqlite3.Connection) -> None:
    with _immediate(conn):
        conn.execute(f"INSERT OR REPLACE INTO {k.SILENCES} (id, ends, data) VALUES (?, ?, ?)", row)
        conn.execute(f"DELETE FROM {k.SILENCES} WHERE ends < ?", (forget_before_us,))


def _expire_silence(silence_id: str, now: datetime, conn: sqlite3.Connection) -> str | None:
    """End one silence at `now` (read and write in one transaction); its JSON as stored, or None."""
    with _immediate(conn):
        row = conn.execute(f"SELECT data FROM {k.SILENCES} WHERE id = ?", (silence_id,)).fetchone()
        if row is None:
            return None
        silence = expired(Silence.from_dict(json.loads(row[0])), now)
        raw = json.dumps(silence.to_dict())
        sql = f"UPDATE {k.SILENCES} SET ends = ?, data = ? WHERE id = ?"
        conn.execute(sql, (k.to_us(silence.ends), raw, silence_id))
    return raw


def _record_vote(
    row: tuple[str, str, int, str], cutoff_us: int, limit: int, conn: sqlite3.Connection
) -> None:
    """Keep one vote (replacing the voter's earlier one on that alert), then forget the votes cast before
    `cutoff_us` and those beyond the newest `limit`."""
    with _immediate(conn):
        conn.execute(f"INSERT OR REPLACE INTO {k.VOTES} (alert_id, who, at, data) VALUES (?, ?, ?, ?)", row)
        conn.execute(f"DELETE FROM {k.VOTES} WHERE at < ?", (cutoff_us,))
        conn.execute(
            f"DELETE FROM {k.VOTES} WHERE (alert_id, who) IN (SELECT alert_id, who FROM {k.VOTES}"
            " ORDER BY at DESC, alert_id DESC, who DESC LIMIT -1 OFFSET ?)",
            (limit,),
        )


def _trim_items(conn: sqlite3.Connection, cutoff_us: int, limit: int) -> None:
    """Forget seen items fetched before `cutoff_us`, and those beyond the newest `limit` (inside the
    caller's transaction)."""
    conn.execute(f"DELETE FROM {k.SEEN_ITEMS} WHERE fetched < ?", (cutoff_us,))
    conn.execute(
        f"DELETE FROM {k.SEEN_ITEMS} WHERE id IN (SELECT id FROM {k.SEEN_ITEMS}"
        " ORDER BY fetched DESC, rowid DESC LIMIT -1 OFFSET ?)",
        (limit,),
    )


def _record_unrouted(row: tuple[str, int, str], limit: int, conn: sqlite3.Connection) -> None:
    """Insert (or replace) one unrouted alert and drop those beyond the newest `limit`."""
    with _immediate(conn):
        conn.execute(f"INSERT OR REPLACE INTO {k.UNROUTED} (id, created, data) VALUES (?, ?, ?)", row)
        conn.execute(
            f"DELETE FROM {k.UNROUTED} WHERE id IN (SELECT id FROM {k.UNROUTED}"
            " ORDER BY created DESC, rowid DESC LIMIT -1 OFFSET ?)",
            (limit,),
        )


def _alert_rows(alert_ids: list[str], conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(id, data) of the alerts among `alert_ids`, a page of ids per query (SQLite's variable limit)."""
    rows: list[tuple[str, str]] = []
    for start in range(0, len(alert_ids), _ID_PAGE):
        page = alert_ids[start : start + _ID_PAGE]
        sql = f"SELECT id, data FROM {k.ALERTS} WHERE id IN ({','.join('?' * len(page))})"
        rows += conn.execute(sql, page).fetchall()
    return rows


_ID_PAGE = 500  # ids per `IN (...)`: well below SQLite's oldest limit of 999 variables
_ITEM_CALLS = 64  # `record_items` calls per transaction (a feed lists tens of items)
_CLAIM_CALLS = 64  # `claim`/`claim_many` calls per transaction (a fetch's claims are a few)
_ClaimCall = tuple[list[_Claim], int, int]  # a call's prepared claims, their expiry and `now` (µs)
_ItemCall = tuple[list[tuple[str, int, str]], int]  # a call's rows (id, fetched µs, JSON) and its `now` (µs)


def _state_rows(sources: list[str], conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(source, data) of the stored states among `sources` (at most `_ID_PAGE`)."""
    sql = f"SELECT source, data FROM {k.SOURCES} WHERE source IN ({','.join('?' * len(sources))})"
    return conn.execute(sql, sources).fetchall()


def _put_states(rows: list[_StateRow], conn: sqlite3.Connection) -> list[bool]:
    """Replace the stored states of `rows` whose marker id is None or the file's marker's, in one
    transaction (which reads the marker, so no other process replaces it meanwhile); whether each was."""
    with _immediate(conn):
        marker = _marker(_marker_json(conn)) if any(m is not None for _, _, m in rows) else None
        held = marker.id if marker is not None else None
        written = [expected is None or expected == held for _, _, expected in rows]
        kept = [(source, data) for (source, data, _), ok in zip(rows, written, strict=True) if ok]
        conn.executemany(f"INSERT OR REPLACE INTO {k.SOURCES} (source, data) VALUES (?, ?)", kept)
    return written


def _marker_json(conn: sqlite3.Connection) -> str | None:
    """The identity marker's JSON, or None."""
    row = conn.execute(f"SELECT value FROM {k.META} WHERE name = ?", (k.MARKER_NAME,)).fetchone()
    return str(row[0]) if row else None


def _marker(raw: str | None) -> StoreMarker | None:
    """The marker stored as `raw` JSON, or None."""
    return StoreMarker.from_dict(json.loads(raw)) if raw is not None else None


def _fetchone(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> Any:
    return conn.execute(sql, params).fetchone()


def _fetchall(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(sql, params).fetchall()


# What recording a delivery as delivered sets (its parameters: status, delivered_at, receipt).
_DELIVERED_SETS = "status = ?, attempts = attempts + 1, delivered_at = ?, receipt = ?"


def _execute(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> int:
    """Run one autocommitted statement; returns the number of rows it changed."""
    return conn.execute(sql, params).rowcount


def _execute_many(sql: str, rows: Sequence[tuple[Any, ...]], conn: sqlite3.Connection) -> None:
    """Run one statement for each of `rows`, in one transaction."""
    with _immediate(conn):
        conn.executemany(sql, rows)


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
    """The record a row of `_DELIVERY_COLUMNS` holds."""
    alert_id, destination, status, attempts, created, next_attempt, last_error, delivered_at, *v3 = row
    receipt, digest = v3
    return Delivery(
        alert_id=alert_id,
        destination=destination,
        status=DeliveryStatus(status),
        attempts=attempts,
        created=k.from_us(created),
        next_attempt=k.from_us(next_attempt),
        last_error=last_error,
        delivered_at=k.from_us(delivered_at) if delivered_at is not None else None,
        receipt=receipt,
        digest=bool(digest),
    )
