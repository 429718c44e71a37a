"""A store that lost its memory must not start over silently.

Every store carries an identity marker (`StoreMarker`: a random id and when it was written), written the
first time rarewatch opens it. Each process holds the marker it found on start and compares it with the
store's on every poll (one GET / one SELECT). When the store forgot (a zero-byte or replaced SQLite file,
Redis FLUSHALL, a restarted Redis without persistence, another server), the service:

- logs one error naming the store (its URL without credentials);
- writes a fresh marker (atomically: with several processes on one store, one writes it) and raises one
  operational alert through the outbox, routed like the source-health alerts: category `operational`,
  rule `rarewatch-store-identity`, title starting `[rarewatch operational]`, sent to the destinations the
  routes (or `fallback_to`) name for it, or to every destination when none does (a store loss is never
  unheard), keyed by the new marker so several processes noticing the same loss raise it once;
- and polls every source as on its first poll, marking everything it lists as seen without alerting
  (not just what is older than `initial_lookback`): nothing it alerted on before is sent again. The new
  marker says it was written after a loss, so a process (re)started within the dedup window of it does
  the same for the sources not yet polled since; a poll during which the store forgot claims nothing
  (the source's next poll is then its first).

The decision itself is `assess()`, a pure function; `StoreGuard` carries it out.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from rarewatch.clock import Clock
from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.store.base import Store, StoreMarker, checking_marker
from rarewatch.store.keys import ops_key

log = logging.getLogger(__name__)

OPERATIONAL_CATEGORY = "operational"  # a route may name it (`route_check.ROUTE_CATEGORIES`)
OPERATIONAL_RULE = "rarewatch-store-identity"
OPERATIONAL_TITLE_PREFIX = "[rarewatch operational]"
OPERATIONAL_ID_PREFIX = "operational-store-"

# The ids of markers written by `rarewatch store init` start with this, so running processes that held the
# marker it replaced adopt it quietly: the operator asked for it.
INIT_PREFIX = "init-"


class Verdict(enum.StrEnum):
    """What the marker found in the store means, given the one this process holds."""

    SAME = "same"  # the store is the one we know
    START = "start"  # this process starts on a store that has a marker: hold it
    NEW = "new"  # a new store (or one from before markers) on start: write a marker, quietly
    INIT = "init"  # the operator wrote a fresh marker (`rarewatch store init`): hold it, quietly
    LOST = "lost"  # the store forgot, or is another store: alarm, re-initialise, mark everything seen


def assess(held: StoreMarker | None, found: StoreMarker | None, *, blank: bool = False) -> Verdict:
    """The verdict on the store's marker `found`, for a process holding `held` (None: just started).
    `blank`: the store was found empty where it should have had contents (a zero-byte SQLite file)."""
    if held is None:
        if found is not None:
            return Verdict.START
        return Verdict.LOST if blank else Verdict.NEW
    if found is None:
        return Verdict.LOST
    if found.id == held.id:
        return Verdict.SAME
    if found.id.startswith(INIT_PREFIX) and found.previous == held.id:
        return Verdict.INIT
    return Verdict.LOST


def init_marker(now: datetime, previous: str | None) -> StoreMarker:
    """The marker `rarewatch store init` writes: running processes holding `previous` adopt it quietly."""
    fresh = StoreMarker.new(now, previous)
    return StoreMarker(INIT_PREFIX + fresh.id, fresh.created, previous)


def operational_alert(marker: StoreMarker, where: str, previous: StoreMarker | None, now: datetime) -> Alert:
    """The one alert announcing that the store `where` lost its memory (keyed by the new `marker`)."""
    since = ""
    if previous is not None:
        since = f" (its marker {previous.id}, written {previous.created:%Y-%m-%d %H:%M} UTC, is gone)"
    text = (
        f"The rarewatch store {where} was found empty or replaced{since}. Nothing is re-sent: every source "
        "is polled as on its first poll and what it lists is marked seen without alerting. Stories "
        "published while the store was lost may have been missed; check the sources if that matters."
    )
    item = Item(
        id=f"{OPERATIONAL_ID_PREFIX}{marker.id}",
        source="rarewatch",
        title=f"{OPERATIONAL_TITLE_PREFIX} The store lost its memory: {where}",
        link="",
        summary=text,
        content="",
        published=now,
    )
    match = Match(OPERATIONAL_RULE, OPERATIONAL_CATEGORY, Severity.CRITICAL, ("store",), text[:200])
    return Alert(id=item.id, item=item, matches=(match,), created=now)


class StoreGuard:
    """Holds the store's marker and checks it; on a loss, logs, alerts once and turns on `lost_memory`."""

    def __init__(
        self,
        store: Store,
        *,
        where: str,
        clock: Clock,
        destinations: Sequence[str],
        ttl: timedelta,
        route: Callable[[Alert], Sequence[str]] | None = None,
    ) -> None:
        """`where`: the store for messages (a redacted URL); `destinations`: every configured destination;
        `route`: the destinations the routes name for an alert (the operational alert goes there, or to
        every destination when they name none); `ttl`: how long the alert's key is held (the dedup
        window)."""
        self.store = store
        self.route = route
        self.where = where
        self.clock = clock
        self.destinations = tuple(destinations)
        self.ttl = ttl
        self.marker: StoreMarker | None = None
        self.lost_memory = False  # the store forgot while this process ran (or on start): see the module
        self._lock = asyncio.Lock()
        self._reads = 0  # marker reads begun, numbered in order
        self._fresh = 0  # the number of the last read that succeeded

    async def check(self) -> bool:
        """Compare the store's marker with the one held (raising `StoreError` when the store is away);
        returns `lost_memory`.

        Checks that wait for one another share a read: when a read that began after this call succeeded
        while it waited for the lock, its verdict is as fresh as a read of its own, and is returned. (A
        cycle polls many sources at once, and each poll checks twice.)"""
        asked = self._reads
        async with self._lock:
            if self._fresh > asked:
                return self.lost_memory
            self._reads += 1
            read = self._reads
            found = await self.store.get_marker()
            verdict = assess(self.marker, found, blank=self.marker is None and self.store.found_blank)
            if verdict is Verdict.SAME:
                self._fresh = read
                return self.lost_memory
            if verdict is Verdict.START:
                self.marker = found
                # Started soon after another process (or run) announced a loss: sources it has not polled
                # since still have no state, and must mark what they list as seen too.
                self.lost_memory = found is not None and found.after_loss and self._recent(found)
            elif verdict is Verdict.NEW:
                self.marker = await self.store.create_marker(StoreMarker.new(self.clock.now()))
                log.info("store %s: identity marker %s written", self.where, self.marker.id)
            elif verdict is Verdict.INIT:
                self.marker = found
                log.warning("store %s was re-initialised by `rarewatch store init`", self.where)
            else:
                await self._lost(found)
            # Claims check the marker themselves from now on: a loss between two checks refuses them.
            self.store.expect_marker(self.marker.id if self.marker else None)
            self._fresh = read
        return self.lost_memory

    def holds(self, found: StoreMarker | None) -> bool:
        """Whether `found`, a marker the caller read from the store, is the one held: then `check()` would
        find the store the same (`lost_memory` is the verdict) and need not read it again. Anything else
        (no marker held yet, none found, another one) is for `check()` to judge, under its lock."""
        held = self.marker
        return held is not None and found is not None and found.id == held.id

    def _recent(self, marker: StoreMarker) -> bool:
        return self.clock.now() - marker.created < self.ttl

    async def _lost(self, found: StoreMarker | None) -> None:
        now, previous = self.clock.now(), self.marker
        # Another process may have noticed first and written the new marker: then this is the same loss.
        fresh = StoreMarker.new(now, previous.id if previous else None, after_loss=True)
        marker = found or await self.store.create_marker(fresh)
        log.error(
            "STORE LOST ITS MEMORY: %s was found empty or replaced (expected %s, found %s). Nothing is "
            "re-sent: every source is polled as on its first poll, marking what it lists as seen; one "
            "operational alert is raised. New marker: %s",
            self.where,
            f"marker {previous.id}" if previous else "its contents",
            f"marker {found.id}" if found else "none",
            marker.id,
        )
        self.marker, self.lost_memory = marker, True
        self.store.expect_marker(marker.id)
        alert = operational_alert(marker, self.where, previous, now)
        routed = tuple(self.route(alert)) if self.route is not None else ()
        with checking_marker(marker.id):  # called inside a poll that began with the old marker
            await self.store.claim([ops_key(alert.id)], self.ttl, now, alert, routed or self.destinations)
