"""One poll of one source, through every stage: fetch -> normalise -> match (-> enrich) -> claim -> (outbox).

No I/O of its own: it calls the source, the store and the outbox it was given, and asks the policies
(`rarewatch.policies`: source backoff, story admission, throttling, the update cap, the digest plan) for
every decision. Any failure while polling one source is recorded in that source's state (with backoff)
and never affects the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import aiohttp

from rarewatch.clock import Clock
from rarewatch.enrichment import NO_ARTICLES, ArticleStats, enrich, locate, wants_article
from rarewatch.errors import SourceError, StoreError
from rarewatch.item_facts import ItemFacts, item_facts
from rarewatch.logs import log_alert, log_poll, log_unrouted
from rarewatch.models import (
    Alert,
    FetchResult,
    Item,
    Match,
    RawEntry,
    SeenItem,
    SeenListing,
    SeenRecord,
    Silence,
    SourceState,
)
from rarewatch.normalize import normalized_and_matched
from rarewatch.policies.admission import (
    THROTTLED,
    Action,
    Plan,
    admit,
    candidates,
    is_seen,
    known_story,
    story_keys,
)
from rarewatch.policies.backoff import describe, next_source_state
from rarewatch.policies.silences import silenced_by
from rarewatch.policies.source_health import (
    HealthDecision,
    HealthPolicy,
    assess,
    health_alert,
    listing_fingerprint,
    observe,
)
from rarewatch.policies.throttle import unthrottled
from rarewatch.routing import Router
from rarewatch.ruleset import Ruleset
from rarewatch.sources import http
from rarewatch.sources.article import ArticleReader
from rarewatch.sources.base import Source
from rarewatch.sources.feed import FeedSource
from rarewatch.store.base import ClaimRequest, Store, checking_marker, claim_one
from rarewatch.store.keys import backfill_key, ops_key, throttle_key, updates_key
from rarewatch.store_identity import StoreGuard
from rarewatch.stories import DEFAULT_THRESHOLD, signature_keys

if TYPE_CHECKING:  # imported by the runtime only where `pipeline.workers` asks for them
    from rarewatch.item_workers import Done, ItemWorkers, Listed

log = logging.getLogger(__name__)

# Polls `once` runs at a time, in process or with item workers. Many at once keep the event loop, the
# workers and the store's thread busy (a poll waits on the store and on a worker's round trip), and let
# the store write many polls' seen items and states in one transaction each; `pipeline.
# connections_per_host` keeps the requests to any one server bounded meanwhile (see README "Performance").
ONCE_CONCURRENCY = 64
# Recently recorded alerts kept in memory for the near-duplicate checks.
RECENT_ALERTS = 2_000
# Item ids this process recorded as seen, remembered so a feed re-read every poll costs no store write.
RECORDED_ITEMS = 50_000
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
    # `once --backfill`: alert on matches published within this span even when a first poll (this one or
    # an earlier one) would mark them, or did mark them, seen without an alert. Each is backfilled once.
    backfill: timedelta | None = None


@dataclass(frozen=True, slots=True)
class SourceRun:
    """What one poll of one source did."""

    source: str
    status: Status
    entries: int = 0
    matched: int = 0
    alerts: tuple[Alert, ...] = ()
    error: str | None = None
    unrouted: tuple[Alert, ...] = ()  # new alerts no route took: recorded, sent nowhere yet
    seen: int = 0  # matching items marked seen without an alert (older than the first poll's lookback)
    next_poll_not_before: datetime | None = None
    articles: ArticleStats = NO_ARTICLES
    fetch_seconds: float | None = None  # how long the fetch took (None: no fetch was made)
    consecutive_failures: int = 0  # after this poll
    matched_by: tuple[tuple[str, str, int], ...] = ()  # (rule, category, items it matched)
    ops_alert: Alert | None = None  # a source-health alert (or recovery) this poll raised
    silenced: tuple[Alert, ...] = ()  # new alerts a silence muted: recorded, never sent


@dataclass(frozen=True, slots=True)
class _RunFacts:
    """What every finished poll reports besides its outcome (for metrics and the scheduler)."""

    fetch_seconds: float | None
    consecutive_failures: int
    matched_by: tuple[tuple[str, str, int], ...]
    ops_alert: Alert | None

    def run(
        self,
        source: str,
        status: Status,
        admitted: _Admitted,
        *,
        entries: int,
        articles: ArticleStats,
        error: str | None = None,
        next_poll_not_before: datetime | None = None,
    ) -> SourceRun:
        """The `SourceRun` of a finished poll: its outcome, what it admitted and these facts, built once."""
        return SourceRun(
            source,
            status,
            entries=entries,
            articles=articles,
            error=error,
            next_poll_not_before=next_poll_not_before,
            matched=admitted.matched,
            alerts=admitted.alerts,
            unrouted=admitted.unrouted,
            seen=admitted.seen,
            silenced=admitted.silenced,
            fetch_seconds=self.fetch_seconds,
            consecutive_failures=self.consecutive_failures,
            matched_by=self.matched_by,
            ops_alert=self.ops_alert,
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What admitting one item did: the alert claimed (to send, or recorded as unrouted), or a lost race."""

    alert: Alert | None = None
    contended: bool = False
    unrouted: bool = False
    silenced: bool = False


NOTHING = _Outcome()


@dataclass(frozen=True, slots=True)
class _Admitted:
    """What admitting one fetch's matching items did."""

    matched: int = 0
    alerts: tuple[Alert, ...] = ()
    unrouted: tuple[Alert, ...] = ()
    seen: int = 0
    silenced: tuple[Alert, ...] = ()


@dataclass(frozen=True, slots=True)
class _Step:
    """One claim of a fetch's batch, and what it means once made."""

    index: int  # the item's position among the fetch's matching items
    request: ClaimRequest
    kind: Literal["seen", "record", "send", "unrouted", "silenced"]
    retry_on_loss: bool = True  # a lost claim is looked at again (not for an update over its cap)


@dataclass(slots=True)
class _Tally:
    """What one fetch's admissions did, counted as the claims are made."""

    matched: int
    seen: int = 0
    alerts: list[Alert] = field(default_factory=list)
    unrouted: list[Alert] = field(default_factory=list)
    silenced: list[Alert] = field(default_factory=list)

    def add(self, outcome: _Outcome, *, seen: bool = False) -> None:
        self.seen += seen
        if outcome.alert is not None:
            kept = self.silenced if outcome.silenced else self.unrouted if outcome.unrouted else self.alerts
            kept.append(outcome.alert)

    def admitted(self) -> _Admitted:
        return _Admitted(
            self.matched, tuple(self.alerts), tuple(self.unrouted), self.seen, tuple(self.silenced)
        )


class _Planned:
    """What a fetch's admissions know is held: the keys the one look-up found, plus those the claims
    already decided in this fetch take (and the alerts they record), as the store will hold them."""

    def __init__(
        self, held: dict[str, str | None], recorded: Callable[[str], Awaitable[Alert | None]]
    ) -> None:
        """`held`: what the look-up found; `recorded`: an alert from the history by id."""
        self._held = held
        self._alerts: dict[str, Alert] = {}
        self._recorded = recorded

    def of(self, keys: Iterable[str]) -> dict[str, str | None]:
        """The keys among `keys` held, with their owners, in `keys` order."""
        held = self._held
        return {key: held[key] for key in dict.fromkeys(keys) if key in held}

    async def look(self, keys: Sequence[str]) -> dict[str, str | None]:
        """`of`, as the look-up `Pipeline._decide` awaits."""
        return self.of(keys)

    async def alert(self, alert_id: str) -> Alert | None:
        """An alert a claim of this fetch records, or else one from the history."""
        return self._alerts.get(alert_id) or await self._recorded(alert_id)

    def take(self, request: ClaimRequest) -> None:
        """Count `request` as made: its keys held by its alert, its remembered keys where free."""
        owner = request.alert.id if request.alert is not None else None
        self._held.update(dict.fromkeys(request.keys, owner))
        for key in request.remember:
            self._held.setdefault(key, owner)
        if request.alert is not None:
            self._alerts[request.alert.id] = request.alert


def _lookup_keys(
    item: Item, old: bool, backfill_from: datetime | None, facts: ItemFacts | None = None
) -> list[str]:
    """Every key admitting `item` may look at: its story keys and, unless it is a first poll's old item,
    its title signatures (from its `facts` when a worker sent them) and, for a backfill, its backfill key."""
    keys = list(story_keys(item))
    if not old:
        keys += facts.similar if facts is not None else signature_keys(item.title)
        if backfill_from is not None and item.published >= backfill_from:
            keys.append(backfill_key(item.id))
    return keys


_Found = tuple[Item, list[Match], bool, ItemFacts | None]
"""An item, the rules it fired, whether its content is its article's lead (read by enrichment), and its
facts when an item worker sent them (admission works them out otherwise)."""


def _fetch_state(state: SourceState, polled: PolledSource) -> SourceState:
    """The state a fetch starts from: for a backfill, without validators and cursors, so the source lists
    everything it has rather than "not modified" or only what is newer than the last poll."""
    if polled.backfill is None:
        return state
    return replace(state, etag=None, last_modified=None, extra={})


def alert_id(item: Item) -> str:
    """An alert's id is its item's stable id: the same for every destination and every retry."""
    return item.id


class Pipeline:
    """Sequences the stages for one source at a time: it gathers facts (store look-ups, counters), asks
    the policies (`rarewatch.policies`) for decisions and carries them out."""

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
        health: HealthPolicy | None = None,
        workers: ItemWorkers | None = None,
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
        self.health = health  # None: no source-health alerts
        # None: feeds are parsed, normalised and matched in this process (see `rarewatch.item_workers`)
        self.workers = workers
        self._recent: OrderedDict[str, Alert] = OrderedDict()
        self._recorded: dict[str, None] = {}  # insertion-ordered: the oldest go first when full

    async def run_source(self, polled: PolledSource, *, force: bool = False) -> SourceRun:
        """Poll one source once (see `_poll`) and log it: one `poll` line with its counts and duration."""
        started = time.perf_counter()
        run = await self._poll(polled, force=force)
        log_poll(
            log,
            source=run.source,
            status=run.status,
            items=run.entries,
            new=len(run.alerts),
            matched=run.matched,
            duration_ms=round((time.perf_counter() - started) * 1000),
            error=run.error,
        )
        return run

    async def _poll(self, polled: PolledSource, *, force: bool) -> SourceRun:
        """Poll one source once. `force` ignores a backoff or Retry-After delay (used by `once`).

        Any exception while fetching, parsing, matching or admitting this source's items (a `SourceError`,
        a parser crash, a bug) is this source's error: recorded in its state with backoff, visible in the
        API and in `once`. Only the store failing is not (its state cannot be recorded then)."""
        forgot, state = await self._begin(polled.source.name)
        if forgot:
            polled = replace(polled, initial_lookback=EVERYTHING_SEEN)  # the store forgot: re-send nothing
            self._recorded = {}  # and the items it kept: record them again
        # The poll's writes check the marker it began with, not one another poll adopts meanwhile.
        if self.guard is None or self.guard.marker is None:
            return await self._poll_checked(polled, state, forgot, None, force=force)
        marker = self.guard.marker.id
        with checking_marker(marker):
            return await self._poll_checked(polled, state, forgot, marker, force=force)

    async def _begin(self, name: str) -> tuple[bool, SourceState]:
        """Check the store's identity and read the source's state: whether the store forgot, and the state.

        The marker and the state are read together, in one store round trip. When the marker is the one
        this process holds (every poll but the first and those around a loss) that is all; otherwise the
        guard judges (reading the marker again, and acting on a loss). The state read is what the store
        held at the moment the marker was read, so it stays valid either way (an emptied store has none)."""
        if self.guard is None:
            return False, await self.store.get_source_state(name) or SourceState()
        found, state = await self.store.get_marker_and_source_state(name)
        forgot = self.guard.lost_memory if self.guard.holds(found) else await self.guard.check()
        return forgot, state or SourceState()

    async def _poll_checked(
        self, polled: PolledSource, state: SourceState, forgot: bool, marker: str | None, *, force: bool
    ) -> SourceRun:
        """`_poll` once the marker is checked (`forgot`: the store lost its memory; `marker`: the one the
        poll began with, None when the store's identity is not checked) and the source's state read."""
        name = polled.source.name
        now = self.clock.now()
        if not force and state.not_before is not None and now < state.not_before:
            return SourceRun(name, "skipped", next_poll_not_before=state.not_before)
        # The identity check owed after the fetch, against the marker the poll began with: made on its own
        # before the first claim, else with the state write (one round trip for a poll that claims nothing).
        owed = marker
        result: FetchResult | None = None
        admitted, articles = _Admitted(), NO_ARTICLES
        fingerprint: str | None = None
        matched_by: tuple[tuple[str, str, int], ...] = ()
        started = time.perf_counter()
        fetch_seconds: float | None = None
        entries = 0
        try:
            ruleset = self.ruleset  # one pack for the whole fetch, even if the rules are reloaded meanwhile
            try:
                result, done = await self._fetch(polled, _fetch_state(state, polled), ruleset, now)
            finally:
                fetch_seconds = time.perf_counter() - started
            entries = len(result.entries) if done is None else done[0]
            found, listed, articles = await self._match(polled, result.entries, now, ruleset, done)
            await self._record_seen(found, listed, now)
            if not result.not_modified:
                fingerprint = listing_fingerprint(_item_ids(found, listed))
            matched_by = _matched_by(found)
            if matched_by and owed is not None:  # items matched: the admission may claim, check first
                if await self._forgot_meanwhile(forgot):
                    return SourceRun(name, "skipped")  # claim nothing; the next poll is the source's first
                owed = None
            admitted = await self._admit(polled, found, state, now)
            error: Exception | None = result.error
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - one source's failure of any kind is that source's error
            error = exc
        after = next_source_state(state, error, polled.interval, now, self.rng, result=result)
        if error is None and (health := observe(after.health, fingerprint, now)) is not after.health:
            after = replace(after, health=health)  # the listing changed (a 304 leaves the health as it was)
        recorded = await self._record_poll(name, after, owed, forgot, now)
        if recorded is None:  # it forgot during the poll: the next poll is the source's first
            return SourceRun(name, "skipped")
        after, ops_alert = recorded
        facts = _RunFacts(fetch_seconds, after.consecutive_failures, matched_by, ops_alert)
        if error is not None:
            if isinstance(error, SourceError):
                log.warning("source %s failed (%d in a row): %s", name, after.consecutive_failures, error)
            else:
                log.error(
                    "source %s: poll failed (%d in a row)", name, after.consecutive_failures, exc_info=error
                )
            return facts.run(
                name,
                "error",
                admitted,
                entries=entries,
                error=describe(error),
                next_poll_not_before=after.not_before,
                articles=articles,
            )
        assert result is not None
        status: Status = "not_modified" if result.not_modified else "ok"
        if admitted.seen:
            log.info(
                "source %s: first poll: %d matching items older than %s marked seen without an alert",
                name,
                admitted.seen,
                polled.initial_lookback,
            )
        return facts.run(name, status, admitted, entries=entries, articles=articles)

    async def _fetch(
        self, polled: PolledSource, state: SourceState, ruleset: Ruleset, now: datetime
    ) -> tuple[FetchResult, Done | None]:
        """Fetch the source: its result and, when the item workers parsed and matched its body (a feed
        with the standard parser, while the workers hold `ruleset`), their answer (the number of its
        entries, its items matched or listed); the result's `entries` are then empty. Otherwise the source
        fetches and parses as it does on its own."""
        source, workers = polled.source, self.workers
        if workers is None or not isinstance(source, FeedSource) or not source.default_parser:
            return await source.fetch(self.session, state), None
        resp = await source.fetch_body(self.session, state)
        if resp.not_modified:
            return http.unchanged(resp, state), None
        done = await workers.parse_and_match(
            ruleset, resp.body, resp.content_type, source.name, source.lang, resp.url, now, polled.enrich
        )
        if done is None:  # the rules were reloaded and the workers not yet: parse here
            return await source.parsed(resp), None
        return FetchResult(entries=(), etag=resp.etag, last_modified=resp.last_modified), done

    async def _record_seen(self, found: Sequence[_Found], listed: Listed, now: datetime) -> None:
        """Keep the fetched items this process has not recorded yet, matched or not (`listed`: those the
        item workers sent as text), with the rules that fired and the pack that judged them, in feed
        order: one batched store write per fetch, none for a repeat."""
        fresh = list(_seen_records(found, listed, now, self.ruleset.version, self._recorded))
        if not fresh:
            return
        await self.store.record_items(fresh, now)
        recorded = self._recorded  # the store may have forgotten meanwhile (`_poll` starts anew)
        recorded.update(dict.fromkeys(s.item_id for s in fresh))
        if len(recorded) > RECORDED_ITEMS:
            self._recorded = dict.fromkeys(list(recorded)[len(recorded) - RECORDED_ITEMS // 2 :])

    async def _record_poll(
        self, name: str, state: SourceState, owed: str | None, forgot: bool, now: datetime
    ) -> tuple[SourceState, Alert | None] | None:
        """Carry out the source-health decision on the poll's `state` and write the state, making the
        identity check still `owed` (against that marker) before an ops alert's claim, else with the write.
        Returns the state written and the ops alert raised; None when the store forgot during the poll
        (then nothing is claimed or written)."""
        decision = self._assess_health(state, now)
        if decision is not None and decision.event is not None and owed is not None:  # an ops alert to claim
            if await self._forgot_meanwhile(forgot):
                return None
            owed = None
        state, ops_alert = await self._check_health(name, state, decision, now)
        if not await self._put_state(name, state, owed):
            return None
        return state, ops_alert

    async def _forgot_meanwhile(self, forgot: bool) -> bool:
        """The identity check after the fetch, made on its own before a claim: whether the store forgot
        during the poll (not asked when the poll began knowing it had: it marks everything seen)."""
        return not forgot and await self._store_forgot()

    async def _put_state(self, name: str, state: SourceState, marker: str | None) -> bool:
        """Write the source's state; with `marker`, only if the store still holds that marker (the identity
        check after the fetch, in the same round trip). A refused write is judged by the guard: False when
        the store forgot (nothing written); a new marker that is no loss (`rarewatch store init`), adopted,
        gets the write, checked against it."""
        if marker is None:
            await self.store.put_source_state(name, state)
            return True
        if await self.store.put_source_state_if_marker(name, state, marker):
            return True
        if await self._store_forgot():
            return False
        held = self.guard.marker if self.guard is not None else None
        return held is not None and await self.store.put_source_state_if_marker(name, state, held.id)

    def _assess_health(self, state: SourceState, now: datetime) -> HealthDecision | None:
        """The source-health policy's decision after a poll that left `state` (None: no health policy)."""
        if self.health is None:
            return None
        return assess(
            state.health,
            failures=state.consecutive_failures,
            last_error=state.last_error,
            policy=self.health,
            now=now,
        )

    async def _check_health(
        self, name: str, state: SourceState, decision: HealthDecision | None, now: datetime
    ) -> tuple[SourceState, Alert | None]:
        """Carry out the source-health `decision`: keep its health in the state; on a RAISE or RECOVER,
        claim its one `ops` alert for the destinations its routes name (sent at once: an operational alert
        is never held for a digest)."""
        if decision is None:
            return state, None
        if decision.health is not state.health:
            state = replace(state, health=decision.health)
        if decision.event is None:
            return state, None
        alert = health_alert(name, decision, now)
        destinations = tuple(self.router.plan(alert))
        claimed = await self.store.claim([ops_key(alert.id)], self.dedup_window, now, alert, destinations)
        log.warning(
            "source %s: %s (ops alert to %s)", name, decision.reason, ", ".join(destinations) or "none"
        )
        if claimed and not destinations:  # no route (nor fallback_to) takes it: kept to be sent later
            await self._keep_unrouted(alert, now)
        return state, alert if claimed else None

    async def _store_forgot(self) -> bool:
        """Whether the store lost its memory while this process ran (`StoreGuard`: one cheap read)."""
        return self.guard is not None and await self.guard.check()

    async def _admit(
        self, polled: PolledSource, found: Sequence[_Found], state: SourceState, now: datetime
    ) -> _Admitted:
        """Claim each matching story once; return how many items matched, the new alerts (to send, and
        unrouted) and how many old items a first poll marked seen.

        One fetch's admissions cost two store round trips, not two per item: one look-up of every key
        the matching items could hit, then every claim in one batch (`Store.claim_many`; SQLite makes it
        one transaction). Each item is decided in turn against what the look-up found plus what the
        claims decided before it take, so two reports of one story in one fetch are still one story.
        Every claim stays atomic in the store: when one loses a race (a key taken since the look-up), the
        batch stops there and the rest of the fetch is admitted one item at a time, looking again."""
        todo = [(item, matches, article, facts) for item, matches, article, facts in found if matches]
        if not todo:  # most polls list nothing new that matches: no store round trip at all
            return _Admitted()
        first_poll = not state.initialized
        lookback = max(polled.initial_lookback, polled.backfill or polled.initial_lookback)
        cutoff = now - lookback
        backfill_from = now - polled.backfill if polled.backfill is not None else None
        silences = await self.store.silences()
        looked = [
            _lookup_keys(item, first_poll and item.published < cutoff, backfill_from, facts)
            for item, _, _, facts in todo
        ]
        planned = _Planned(await self.store.held([key for keys in looked for key in keys], now), self._alert)
        steps: list[_Step] = []
        for index, (item, matches, from_article, facts) in enumerate(todo):
            if first_poll and item.published < cutoff:
                # A new source's back catalogue: remember it as seen, alert on nothing old.
                keys = story_keys(item)
                step = None if planned.of(keys) else _Step(index, ClaimRequest(keys), "seen")
            else:
                located = list(locate(self.ruleset, item, matches, from_article=from_article))
                backfill = backfill_from is not None and item.published >= backfill_from
                plan = await self._decide(
                    item, located, now, planned.look, planned.alert, backfill=backfill, facts=facts
                )
                step = self._step(index, plan, now, silences)
            if step is not None:
                planned.take(step.request)
                steps.append(step)
        made = await self.store.claim_many([s.request for s in steps], self.dedup_window, now) if steps else 0
        tally = _Tally(matched=len(todo))
        for step in steps[:made]:
            tally.add(await self._made(step, now), seen=step.kind == "seen")
        if made < len(steps):  # a claim lost a race: the rest one at a time, each looking again
            for item, matches, from_article, _ in todo[steps[made].index :]:
                if first_poll and item.published < cutoff:
                    tally.add(NOTHING, seen=await self.store.claim(story_keys(item), self.dedup_window, now))
                    continue
                located = list(locate(self.ruleset, item, matches, from_article=from_article))
                backfill = backfill_from is not None and item.published >= backfill_from
                tally.add(await self._admit_one(item, located, now, silences, backfill=backfill))
        return tally.admitted()

    async def _admit_one(
        self,
        item: Item,
        matches: list[Match],
        now: datetime,
        silences: Sequence[Silence] = (),
        *,
        backfill: bool = False,
    ) -> _Outcome:
        """Claim one matching item on its own: a new story (alert), another report of a known one (update),
        or nothing when this very item was seen before. Returns what was claimed."""
        for _ in range(2):
            outcome = await self._try_admit(item, matches, now, silences, backfill=backfill)
            if not outcome.contended:
                return outcome
        # Lost the race twice (another poll claimed the same keys meanwhile): it is seen, not lost.
        return NOTHING

    async def _try_admit(
        self,
        item: Item,
        matches: list[Match],
        now: datetime,
        silences: Sequence[Silence] = (),
        *,
        backfill: bool = False,
    ) -> _Outcome:
        """One attempt, looking in the store; `contended` when a concurrent poll claimed a key between our
        look and our claim (then the caller looks again, and this item usually becomes an update of that
        story)."""

        async def look(keys: Sequence[str]) -> dict[str, str | None]:
            return await self.store.held(keys, now)

        plan = await self._decide(item, matches, now, look, self._alert, backfill=backfill)
        step = self._step(0, plan, now, silences)
        if step is None:
            return NOTHING
        if not await claim_one(self.store, step.request, self.dedup_window, now):
            return _Outcome(contended=step.retry_on_loss)
        return await self._made(step, now)

    async def _decide(
        self,
        item: Item,
        matches: list[Match],
        now: datetime,
        look: Callable[[Sequence[str]], Awaitable[dict[str, str | None]]],
        alert_of: Callable[[str], Awaitable[Alert | None]],
        *,
        backfill: bool = False,
        facts: ItemFacts | None = None,
    ) -> Plan:
        """What to do with one matching item, given `look` (which of some keys are held, by whom) and
        `alert_of` (a recorded alert by id). With `backfill`, an item marked seen without an alert (its
        id's key held by no alert) is admitted once more, under its backfill key. `facts`: the item's,
        when a worker sent them (worked out here otherwise)."""
        facts = facts if facts is not None else item_facts(self.ruleset, item)
        keys = story_keys(item)
        similar = facts.similar
        held = await look(keys + similar)
        if backfill and keys[0] in held and held[keys[0]] is None:
            held = {k: v for k, v in held.items() if k not in keys}
            keys = (backfill_key(item.id),)
            held.update(await look(keys))
        if is_seen(keys, held):
            return Plan(Action.SEEN)
        sendable = await self._unthrottled(matches, now)
        entities = facts.entities
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
        found = {}
        for owner in candidates(keys, similar, held):
            if (known := await alert_of(owner)) is not None:
                found[owner] = known
        return await self._admit_plan(
            alert,
            keys,
            similar,
            held,
            known_story(alert, keys, held, found, self.near_duplicate_threshold),
            throttled=not sendable,
            now=now,
        )

    async def _admit_plan(
        self,
        alert: Alert,
        keys: Sequence[str],
        similar: Sequence[str],
        held: dict[str, str | None],
        known: Alert | None,
        *,
        throttled: bool,
        now: datetime,
    ) -> Plan:
        updates = 0
        if known is not None:  # counted before deciding: the policy is pure
            updates = await self.store.count_in_window(updates_key(known.story), self.dedup_window, now)
        return admit(
            alert,
            keys,
            similar,
            held,
            known,
            throttled=throttled,
            updates=updates,
            max_updates=self.max_updates_per_story,
            routes=self.router.plan,
            now=now,
        )

    def _step(self, index: int, plan: Plan, now: datetime, silences: Sequence[Silence] = ()) -> _Step | None:
        """The claim `plan` says to make (None: nothing to claim): the alert sent, recorded, recorded
        unrouted, or recorded silenced (a silence muting it)."""
        if plan.action is Action.SEEN or plan.alert is None:
            return None
        alert = plan.alert
        if plan.action in (Action.SEND, Action.UNROUTED):
            muted = silenced_by(alert, silences, now)
            if muted is not None:
                # Claimed and recorded (with `silenced_by`), delivered nowhere: it is seen and listed, and
                # the claim keeps it from being sent when the silence ends.
                muted_alert = replace(alert, silenced_by=muted.id)
                return _Step(index, ClaimRequest(plan.keys, muted_alert, remember=plan.remember), "silenced")
        if plan.action is Action.RECORD:
            log.info("alert %s recorded, not sent (%s)", alert.id, plan.reason)
            # Lost to a concurrent poll: look again, unless the update cap decided it anyway.
            return _Step(
                index, ClaimRequest(plan.keys, alert), "record", retry_on_loss=plan.reason == THROTTLED
            )
        if plan.action is Action.UNROUTED:
            return _Step(index, ClaimRequest(plan.keys, alert, remember=plan.remember), "unrouted")
        request = ClaimRequest(plan.keys, alert, plan.destinations, plan.held_until, plan.remember)
        return _Step(index, request, "send")

    async def _made(self, step: _Step, now: datetime) -> _Outcome:
        """What a claim made means: log the alert, keep it among the unrouted ones, remember it."""
        alert = step.request.alert
        if alert is None or step.kind == "record":
            return NOTHING
        if step.kind == "silenced":
            log.info("alert %s silenced by %s: recorded, not sent", alert.id, alert.silenced_by)
        elif step.kind == "unrouted":
            await self._keep_unrouted(alert, now)
        else:
            log_alert(log, alert, step.request.destinations)
        self._remember_alert(alert)
        return _Outcome(alert, unrouted=step.kind == "unrouted", silenced=step.kind == "silenced")

    async def _keep_unrouted(self, alert: Alert, now: datetime) -> None:
        """Record a claimed alert that no route took among the unrouted ones (to be sent later) and say so."""
        await self.store.record_unrouted(alert, now)
        log_unrouted(log, alert)

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
        """The matches whose rule is still within its `throttle` (counting this alert for each rule
        that has one)."""
        counts = {}
        for match in matches:
            throttle = self.ruleset.rule(match.rule).throttle
            if throttle is not None:
                counts[match.rule] = await self.store.count_in_window(
                    throttle_key(match.rule), throttle.per, now
                )
        return unthrottled(matches, lambda rule: self.ruleset.rule(rule).throttle, counts)

    async def _match(
        self,
        polled: PolledSource,
        entries: Iterable[RawEntry],
        now: datetime,
        ruleset: Ruleset,
        done: Done | None = None,
    ) -> tuple[list[_Found], Listed, ArticleStats]:
        """Normalise and match every entry with `ruleset` (or take the items the workers sent: `done`);
        then read the articles of the items worth it (all at once: the reader bounds how many requests
        run) and match those again. Returns the items, the items the workers listed as text (empty in
        process), and what reading the articles did."""
        reader = self.articles if polled.enrich else None
        found: list[_Found] = []
        todo: list[int] = []

        def take(triples: Iterable[tuple[Item, list[Match], ItemFacts | None]]) -> None:
            for item, matches, facts in triples:
                if reader is not None and wants_article(ruleset, item, matches):
                    todo.append(len(found))
                found.append((item, matches, False, facts))

        listed: Listed = []
        if done is not None:
            take(done[1])
            listed = done[2]
        for n, chunk in enumerate(normalized_and_matched(list(entries), now, ruleset.match_many)):
            if n:
                await asyncio.sleep(0)  # between chunks, so the HTTP API stays responsive
            take((item, matches, None) for item, matches in chunk)
        stats = ArticleStats()
        if reader is None or not todo:
            return found, listed, stats
        results = await asyncio.gather(*(enrich(reader, self.session, ruleset, found[i][0]) for i in todo))
        for index, enriched in zip(todo, results, strict=True):
            stats = stats.add(enriched.article, matched=bool(enriched.matches))
            if enriched.matches:
                found[index] = (enriched.item, list(enriched.matches), True, None)
        return found, listed, stats


def _seen_records(
    found: Sequence[_Found], listed: Listed, now: datetime, version: str, recorded: Container[str]
) -> Iterator[SeenRecord]:
    """The fetch's items not `recorded` yet as seen-item records, in feed order: a listed item goes
    before the found item at its position."""
    position = 0  # listed positions never decrease: each is how many found items came before it
    for before, item_id, text in listed:
        yield from _seen_whole(found[position:before], now, version, recorded)
        position = before
        if item_id not in recorded:
            yield SeenListing(item_id, text, now, version)
    yield from _seen_whole(found[position:], now, version, recorded)


def _seen_whole(
    found: Sequence[_Found], now: datetime, version: str, recorded: Container[str]
) -> Iterator[SeenItem]:
    """`found`'s items not `recorded` yet, each with the rules it fired."""
    for item, matches, _, _ in found:
        if item.id not in recorded:
            yield SeenItem(item, now, version, tuple(m.rule for m in matches))


def _item_ids(found: Sequence[_Found], listed: Listed) -> Iterator[str]:
    """The ids of a fetch's items, found and listed."""
    yield from (item.id for item, _, _, _ in found)
    yield from (item_id for _, item_id, _ in listed)


def _matched_by(found: Sequence[_Found]) -> tuple[tuple[str, str, int], ...]:
    """How many items each (rule, category) matched in one fetch."""
    counts = Counter((m.rule, m.category) for _, matches, _, _ in found for m in matches)
    return tuple((rule, category, n) for (rule, category), n in sorted(counts.items()))


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
