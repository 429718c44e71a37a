"""One poll of one source, through every stage: fetch -> normalise -> match (-> enrich) -> claim -> (outbox).

No I/O of its own: it calls the source, the store and the outbox it was given. Failures of one source are
recorded in that source's state (with backoff) and never affect the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import aiohttp

from rarewatch.clock import Clock
from rarewatch.enrichment import NO_ARTICLES, ArticleStats, enrich, locate, wants_article
from rarewatch.errors import SourceError
from rarewatch.models import Alert, AlertKind, FetchResult, Item, Match, RawEntry, SourceState
from rarewatch.normalize import normalize
from rarewatch.routing import Router, next_boundary
from rarewatch.ruleset import Ruleset
from rarewatch.sources.article import ArticleReader
from rarewatch.sources.base import Source
from rarewatch.store.base import Store
from rarewatch.store_identity import StoreGuard
from rarewatch.stories import DEFAULT_THRESHOLD, same_story, signature_keys

log = logging.getLogger(__name__)

# Failed sources are retried after interval * 2**(failures-1), capped; Retry-After wins when longer.
MAX_SOURCE_BACKOFF = timedelta(hours=6)
# Yield to the event loop this often while matching a large fetch, so the HTTP API stays responsive.
_YIELD_EVERY = 500
# Near-duplicate candidates checked exactly per item, the ones sharing most LSH bands first.
MAX_CANDIDATES = 3
# Recently recorded alerts kept in memory for the near-duplicate checks.
RECENT_ALERTS = 2_000
# The first-poll lookback once the store lost its memory: everything a source lists counts as old (seen).
EVERYTHING_SEEN = timedelta(days=-36_500)

Status = Literal["ok", "not_modified", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class PolledSource:
    """One source's configuration as the pipeline needs it (plain values, no settings objects)."""

    source: Source
    interval: timedelta
    initial_lookback: timedelta
    enrich: bool = False  # read the linked article of items that name a watched term but fire no rule


@dataclass(frozen=True, slots=True)
class SourceRun:
    """What one poll of one source did."""

    source: str
    status: Status
    entries: int = 0
    matched: int = 0
    alerts: tuple[Alert, ...] = ()
    error: str | None = None
    next_poll_not_before: datetime | None = None
    articles: ArticleStats = NO_ARTICLES


_Found = tuple[Item, list[Match], bool]
"""An item, the rules it fired, and whether its content is its article's lead (read by enrichment)."""


def story_keys(item: Item) -> tuple[str, ...]:
    """The dedup keys of a story: its stable id and, when it has one, its canonical link.

    The link key makes the same article seen through two sources (each with its own guid) one story.
    """
    keys = [f"item:{item.id}"]
    if item.link:
        keys.append("link:" + hashlib.sha256(item.link.encode()).hexdigest()[:32])
    return tuple(keys)


def _same_event(known: Alert, new: Alert, threshold: float) -> bool:
    """Near-duplicate titles about the same materials and kind of event are one story."""
    if known.materials and new.materials and set(known.materials) != set(new.materials):
        return False
    if not set(known.categories) & set(new.categories):
        return False
    return same_story(known.item.title, new.item.title, threshold)


def alert_id(item: Item) -> str:
    """An alert's id is its item's stable id: the same for every destination and every retry."""
    return item.id


class Pipeline:
    """Composes the stages for one source at a time."""

    def __init__(
        self,
        *,
        store: Store,
        ruleset: Ruleset,
        router: Router,
        session: aiohttp.ClientSession,
        clock: Clock,
        dedup_window: timedelta,
        rng: random.Random | None = None,
        near_duplicate_threshold: float = DEFAULT_THRESHOLD,
        max_updates_per_story: int = 10,
        articles: ArticleReader | None = None,
        guard: StoreGuard | None = None,
    ) -> None:
        self.store = store
        self.ruleset = ruleset
        self.router = router
        self.session = session
        self.clock = clock
        self.dedup_window = dedup_window
        self.rng = rng or random.Random()
        self.near_duplicate_threshold = near_duplicate_threshold
        self.max_updates_per_story = max_updates_per_story
        self.articles = articles  # None: no source is enriched
        self.guard = guard  # None: the store's identity is not checked
        self._recent: OrderedDict[str, Alert] = OrderedDict()

    async def run_source(self, polled: PolledSource, *, force: bool = False) -> SourceRun:
        """Poll one source once. `force` ignores a backoff or Retry-After delay (used by `once`)."""
        forgot = await self._store_forgot()
        if forgot:
            polled = replace(polled, initial_lookback=EVERYTHING_SEEN)  # the store forgot: re-send nothing
        name = polled.source.name
        state = await self.store.get_source_state(name) or SourceState()
        now = self.clock.now()
        if not force and state.not_before is not None and now < state.not_before:
            return SourceRun(name, "skipped", next_poll_not_before=state.not_before)
        try:
            result = await polled.source.fetch(self.session, state)
        except SourceError as exc:
            failed = self._failed_state(state, polled.interval, exc, now)
            await self.store.put_source_state(name, failed)
            log.warning("source %s failed (%d in a row): %s", name, failed.consecutive_failures, exc)
            return SourceRun(name, "error", error=str(exc), next_poll_not_before=failed.not_before)
        found, articles = await self._match(polled, result.entries, now)
        if not forgot and await self._store_forgot():
            # It forgot during the fetch: claim nothing; the next poll is this source's first (all seen).
            return SourceRun(name, "skipped")
        matched, alerts = await self._admit(polled, found, state, now)
        await self.store.put_source_state(name, _succeeded_state(state, result, now))
        status: Status = "not_modified" if result.not_modified else "ok"
        return SourceRun(
            name,
            status,
            entries=len(result.entries),
            matched=matched,
            alerts=tuple(alerts),
            articles=articles,
        )

    async def _store_forgot(self) -> bool:
        """Whether the store lost its memory while this process ran (`StoreGuard`: one cheap read)."""
        return self.guard is not None and await self.guard.check()

    async def _admit(
        self, polled: PolledSource, found: Sequence[_Found], state: SourceState, now: datetime
    ) -> tuple[int, list[Alert]]:
        """Claim each matching story once; return how many items matched and the new alerts."""
        first_poll = not state.initialized
        cutoff = now - polled.initial_lookback
        matched, alerts = 0, []
        for item, matches, from_article in found:
            if not matches:
                continue
            matched += 1
            if first_poll and item.published < cutoff:
                # A new source's back catalogue: remember it as seen, alert on nothing old.
                await self.store.claim(story_keys(item), self.dedup_window, now)
                continue
            located = list(locate(self.ruleset, item, matches, from_article=from_article))
            alert = await self._admit_one(item, located, now)
            if alert is not None:
                alerts.append(alert)
        return matched, alerts

    async def _admit_one(self, item: Item, matches: list[Match], now: datetime) -> Alert | None:
        """Claim one matching item: a new story (alert), another report of a known one (update), or
        nothing when this very item was seen before. Returns what was claimed."""
        for _ in range(2):
            claimed, contended = await self._try_admit(item, matches, now)
            if not contended:
                return claimed
        # Lost the race twice (another poll claimed the same keys meanwhile): it is seen, not lost.
        return None

    async def _try_admit(self, item: Item, matches: list[Match], now: datetime) -> tuple[Alert | None, bool]:
        """One attempt; `contended` when a concurrent poll claimed a key between our look and our claim
        (then the caller looks again, and this item usually becomes an update of that story)."""
        keys = story_keys(item)
        similar = signature_keys(item.title)
        held = await self.store.held(keys + similar, now)
        if keys[0] in held:
            return None, False  # this very item was seen before
        entities = self.ruleset.entities(item)
        sendable = await self._unthrottled(matches, now)
        alert = Alert(
            id=alert_id(item),
            item=item,
            matches=tuple(sendable or matches),  # a throttled rule's match is not routed on
            created=now,
            materials=entities.materials,
            countries=entities.countries,
            rules_version=self.ruleset.version,
            glosses=self.ruleset.glosses(matches),
        )
        first = await self._known_story(alert, keys, similar, held)
        if first is not None:
            alert = replace(alert, kind=AlertKind.UPDATE, story=first.story)
            keys = tuple(k for k in keys if k not in held)
            if await self._too_many_updates(first.story, now):
                await self.store.claim(keys, self.dedup_window, now, alert)  # recorded, not sent
                return None, False
        if not sendable:
            # Every rule that fired is over its throttle: recorded in the history, sent nowhere.
            log.info("alert %s throttled (%s)", alert.id, ", ".join(m.rule for m in matches))
            claimed = await self.store.claim(keys, self.dedup_window, now, alert)
            return None, not claimed
        destinations, held_until = self._plan(alert, now)
        remember = similar if first is None else ()
        if not await self.store.claim(
            keys, self.dedup_window, now, alert, destinations, held_until=held_until, remember=remember
        ):
            return None, True
        self._remember_alert(alert)
        return alert, False

    async def _known_story(
        self, alert: Alert, keys: Sequence[str], similar: Sequence[str], held: dict[str, str | None]
    ) -> Alert | None:
        """The first alert of the story `alert` reports again: the same canonical link, or a
        near-duplicate title about the same materials (checked exactly, not just by LSH band)."""
        owners = [o for k in keys[1:] if (o := held.get(k))]
        # The owners sharing the most LSH bands are the likeliest near-duplicates: check those first.
        bands = Counter(o for k in similar if (o := held.get(k)))
        ranked = [owner for owner, _ in bands.most_common(MAX_CANDIDATES)]
        for owner in dict.fromkeys(owners + ranked):
            known = await self._alert(owner)
            if known is None:
                continue
            if owner in owners or _same_event(known, alert, self.near_duplicate_threshold):
                return known
        return None

    async def _alert(self, alert_id: str) -> Alert | None:
        """An alert from the history, through a small cache: alerts never change once recorded, and the
        same few recent stories are the near-duplicate candidates of many items."""
        alert = self._recent.get(alert_id)
        if alert is None:
            alert = await self.store.get_alert(alert_id)
            if alert is not None:
                self._remember_alert(alert)
        return alert

    def _remember_alert(self, alert: Alert) -> None:
        self._recent[alert.id] = alert
        if len(self._recent) > RECENT_ALERTS:
            self._recent.popitem(last=False)

    async def _unthrottled(self, matches: Sequence[Match], now: datetime) -> list[Match]:
        """The matches whose rule is still within its `throttle` (rules without one always are)."""
        kept = []
        for match in matches:
            throttle = self.ruleset.rule(match.rule).throttle
            if throttle is None or (
                await self.store.count_in_window(f"throttle:{match.rule}", throttle.per, now) <= throttle.max
            ):
                kept.append(match)
        return kept

    async def _too_many_updates(self, story: str, now: datetime) -> bool:
        count = await self.store.count_in_window(f"updates:{story}", self.dedup_window, now)
        return count > self.max_updates_per_story

    def _plan(self, alert: Alert, now: datetime) -> tuple[tuple[str, ...], dict[str, datetime]]:
        plan = self.router.plan(alert)
        held_until = {d: next_boundary(now, p) for d, p in plan.items() if p is not None}
        return tuple(plan), held_until

    async def _match(
        self, polled: PolledSource, entries: Iterable[RawEntry], now: datetime
    ) -> tuple[list[_Found], ArticleStats]:
        """Normalise and match every entry; then read the articles of the items worth it (all at once:
        the reader bounds how many requests run) and match those again."""
        ruleset = self.ruleset  # one pack for the whole fetch, even if the rules are reloaded meanwhile
        reader = self.articles if polled.enrich else None
        found: list[_Found] = []
        todo: list[int] = []
        for n, entry in enumerate(entries, start=1):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            item = normalize(entry, now)
            matches = ruleset.match(item)
            if reader is not None and wants_article(ruleset, item, matches):
                todo.append(len(found))
            found.append((item, matches, False))
        stats = ArticleStats()
        if reader is None or not todo:
            return found, stats
        results = await asyncio.gather(*(enrich(reader, self.session, ruleset, found[i][0]) for i in todo))
        for index, enriched in zip(todo, results, strict=True):
            stats = stats.add(enriched.article, matched=bool(enriched.matches))
            if enriched.matches:
                found[index] = (enriched.item, list(enriched.matches), True)
        return found, stats

    def _failed_state(
        self, state: SourceState, interval: timedelta, exc: SourceError, now: datetime
    ) -> SourceState:
        failures = state.consecutive_failures + 1
        backoff = min(interval * (2 ** (failures - 1)), MAX_SOURCE_BACKOFF)
        backoff *= 1 + self.rng.uniform(-0.1, 0.1)
        if exc.retry_after is not None:
            backoff = max(backoff, timedelta(seconds=exc.retry_after))
        # The first failure is retried at the next scheduled poll; backoff starts with the second.
        not_before = now + backoff if failures > 1 or exc.retry_after is not None else None
        return replace(
            state,
            last_attempt=now,
            last_error=str(exc),
            consecutive_failures=failures,
            not_before=not_before,
        )


def _succeeded_state(state: SourceState, result: FetchResult, now: datetime) -> SourceState:
    return replace(
        state,
        etag=result.etag if result.etag is not None else state.etag,
        last_modified=result.last_modified if result.last_modified is not None else state.last_modified,
        last_attempt=now,
        last_success=now,
        last_error=None,
        consecutive_failures=0,
        not_before=None,
        initialized=True,
    )


async def run_cycle(
    pipeline: Pipeline, sources: Sequence[PolledSource], *, force: bool = False, concurrency: int = 8
) -> list[SourceRun]:
    """Poll every source once, a few at a time; one source's failure never affects another."""
    limit = asyncio.Semaphore(concurrency)

    async def one(polled: PolledSource) -> SourceRun:
        async with limit:
            return await pipeline.run_source(polled, force=force)

    results = await asyncio.gather(*(one(p) for p in sources), return_exceptions=True)
    return [_as_run(polled, result) for polled, result in zip(sources, results, strict=True)]


def _as_run(polled: PolledSource, result: SourceRun | BaseException) -> SourceRun:
    """A poll that raised (a bug, or the store going away) is that source's error, not the cycle's:
    logged with its traceback, reported in the run, and the other sources' runs stand."""
    if isinstance(result, SourceRun):
        return result
    if not isinstance(result, Exception):
        raise result  # KeyboardInterrupt, CancelledError: not ours to swallow
    log.error("source %s: poll failed", polled.source.name, exc_info=result)
    return SourceRun(polled.source.name, "error", error=f"{type(result).__name__}: {result}")
