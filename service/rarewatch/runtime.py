"""Composition root: builds every component from `Settings` and tears it down in order.

Only this module, `app` and `cli` see `Settings`; everything below gets plain values. `open_runtime` serves
the one-shot commands (`once`, `demo`) and, inside the web app's `cleanup_ctx`, `run`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

import aiohttp

from rarewatch import __version__
from rarewatch.clock import Clock, SystemClock
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import NotifierDeps
from rarewatch.delivery.outbox import Outbox
from rarewatch.delivery.registry import DestinationConfig
from rarewatch.delivery.registry import build_notifier as registry_build_notifier
from rarewatch.errors import ConfigError, RuleError
from rarewatch.httputil import redact_url
from rarewatch.metrics import Metrics
from rarewatch.models import Severity
from rarewatch.pipeline import Pipeline, PolledSource
from rarewatch.policies.retention import OutboxRetention
from rarewatch.policies.source_health import HealthPolicy
from rarewatch.route_check import check_destination_paths, check_routes
from rarewatch.routing import Router, RouteRule
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.ruleset.cache import RulesetCache
from rarewatch.settings import Settings
from rarewatch.sources.article import ArticleReader
from rarewatch.sources.registry import build_source
from rarewatch.store import ItemRetention, Leases, NoLeases, Store, leases_for, open_store
from rarewatch.store_identity import StoreGuard

log = logging.getLogger(__name__)


@dataclass
class RuleStatus:
    """The outcome of the last rule (re)load, for readiness and metrics (mutable: updated on reload)."""

    loaded_at: datetime | None = None  # the last successful load
    last_error: str | None = None  # the last failed reload's error (file:line), None once one succeeds
    last_error_at: datetime | None = None


@dataclass(frozen=True)
class Runtime:
    """Everything a running rarewatch holds, built once from the settings."""

    store: Store
    rule_paths: tuple[Path, ...]
    pipeline: Pipeline
    outbox: Outbox
    sources: tuple[PolledSource, ...]
    notifiers: Mapping[str, Notifier]
    clock: Clock
    metrics: Metrics
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock, compare=False, repr=False)
    rule_status: RuleStatus = field(default_factory=RuleStatus)
    leases: Leases = field(default_factory=NoLeases)  # shared with the outbox; `run` starts and stops them
    # Checks a new rule pack against the configuration's routes (ConfigError: the reload is refused).
    check_rules: Callable[[Ruleset], None] = field(default=lambda ruleset: None)

    @property
    def ruleset(self) -> Ruleset:
        """The rule pack in use (replaced by `reload_rules`)."""
        return self.pipeline.ruleset

    async def reload_rules(self) -> Ruleset:
        """Load the rule files again and use them from the next item on.

        The files are read and compiled in a worker thread (a big pack takes a noticeable fraction of a
        second), so the event loop keeps answering health checks and polling meanwhile; reloads run one
        at a time, so the last one asked for is the one in use.

        Raises `RuleError` (file, line, rule id) and keeps the rules in use when the new ones are invalid:
        a typo in a rule file never leaves the service without rules. Raises `ConfigError` (and keeps them
        too) when a route names a rule, material or country the new pack no longer has.
        """
        now = self.clock.now()
        async with self.reload_lock:
            try:
                ruleset = await asyncio.to_thread(load_ruleset, self.rule_paths)
                self.check_rules(ruleset)
            except (RuleError, ConfigError) as exc:
                self.rule_status.last_error, self.rule_status.last_error_at = str(exc), now
                self.metrics.record_reload(False)
                raise
            self.pipeline.ruleset = ruleset
            if self.pipeline.workers is not None:  # new workers, forked with the new pack
                self.pipeline.workers.restart(ruleset)
        self.rule_status.loaded_at, self.rule_status.last_error = now, None
        self.metrics.record_reload(True, len(ruleset.rules), now, ruleset.version)
        log.info("rules reloaded: %d rules, pack %s", len(ruleset.rules), ruleset.version)
        return ruleset


def build_sources(settings: Settings) -> tuple[PolledSource, ...]:
    """One `Source` per enabled configured source, with its interval and first-poll lookback.

    A source that refuses its configuration (ValueError) becomes a `ConfigError` naming the source.
    """
    polled = []
    for cfg in settings.sources:
        if not cfg.enabled:
            continue
        source = build_source(cfg)
        polled.append(PolledSource(source, cfg.interval, settings.lookback_for(cfg), enrich=cfg.enrich))
    return tuple(polled)


def item_retention(settings: Settings) -> ItemRetention:
    """How long and how many seen items the store keeps (`store_items:`)."""
    return ItemRetention(keep=settings.store_items.keep, max=settings.store_items.max)


def build_article_reader(settings: Settings, clock: Clock) -> ArticleReader:
    """The reader of linked articles shared by every source with `enrich: true`."""
    cfg = settings.enrichment
    return ArticleReader(
        concurrency=cfg.concurrency,
        timeout=cfg.timeout.total_seconds(),
        connect_timeout=cfg.connect_timeout.total_seconds(),
        max_bytes=cfg.max_bytes,
        cache_size=cfg.cache_size,
        failure_ttl=cfg.failure_ttl,
        max_chars=cfg.max_chars,
        allow_private_hosts=cfg.allow_private_hosts,
        clock=clock,
    )


def build_router(settings: Settings) -> Router:
    return Router(
        [
            RouteRule(
                to=tuple(r.to),
                categories=frozenset(r.match.category),
                severities=frozenset(Severity.parse(s) for s in r.match.severity),
                sources=frozenset(r.match.source),
                rules=frozenset(r.match.rule),
                materials=frozenset(m.lower() for m in r.match.material),
                countries=frozenset(c.lower() for c in r.match.country),
                digest=r.digest,
            )
            for r in settings.routes
        ],
        fallback=settings.fallback_to,
    )


def build_notifier(
    cfg: DestinationConfig,
    settings: Settings,
    session: aiohttp.ClientSession,
    clock: Clock,
    stdout: TextIO,
) -> Notifier:
    """The notifier for one configured destination, built by its kind (`rarewatch.delivery.registry`)."""
    deps = NotifierDeps(session=session, clock=clock, stdout=stdout, resolve_path=settings.resolve_path)
    return registry_build_notifier(cfg, deps)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stdout: TextIO | None = None,
    rules_cache: RulesetCache | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store, load the rules, create the HTTP session and notifiers; close all on exit.

    With `rules_cache`, a pack compiled earlier from the same rule files by the same code is read back
    from it (`load_ruleset`), as `rarewatch match` does: a one-shot command then skips the compile."""
    clock = clock or SystemClock()
    # Everything that can be wrong in the configuration fails here, before any connection is opened.
    ruleset = load_ruleset(settings.rule_paths(), rules_cache)
    check_routes(settings, ruleset)
    check_destination_paths(settings)
    sources = build_sources(settings)
    async with AsyncExitStack() as stack:
        workers = None
        if settings.pipeline.workers:  # forked first, before the store and the session start threads
            from rarewatch.item_workers import ItemWorkers

            workers = ItemWorkers(ruleset, settings.pipeline.workers)
            stack.callback(workers.close)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                headers={"User-Agent": f"rarewatch/{__version__}"},
                connector=aiohttp.TCPConnector(limit_per_host=settings.pipeline.connections_per_host),
            )
        )
        store = open_store(settings.store_url(), items=item_retention(settings))
        await store.open()
        stack.push_async_callback(store.close)
        notifiers: dict[str, Notifier] = {}
        for cfg in settings.destinations:
            notifiers[cfg.name] = build_notifier(cfg, settings, session, clock, stdout or sys.stdout)
            stack.push_async_callback(notifiers[cfg.name].close)
        leases = leases_for(store)
        stack.push_async_callback(leases.stop)  # a one-shot command's destination leases end with it
        outbox = Outbox(
            store,
            notifiers,
            clock=clock,
            max_age=settings.outbox.max_age,
            batch=settings.outbox.batch,
            max_retry_after=settings.outbox.max_retry_after,
            breaker_threshold=settings.outbox.breaker_threshold,
            breaker_cooldown=settings.outbox.breaker_cooldown,
            breaker_max_cooldown=settings.outbox.breaker_max_cooldown,
            max_per_hour={
                d.name: d.max_alerts_per_hour for d in settings.destinations if d.max_alerts_per_hour
            },
            leases=leases,
            retention=OutboxRetention(
                delivered=settings.outbox.retention.delivered, dead=settings.outbox.retention.dead
            ),
        )
        router = build_router(settings)
        guard = StoreGuard(
            store,
            where=redact_url(settings.store_url()),
            clock=clock,
            destinations=tuple(notifiers),
            ttl=settings.dedup_window,
            route=router.route,
        )
        await guard.check()  # holds the store's marker (writes one on a new store; alarms on a lost one)
        pipeline = Pipeline(
            store=store,
            ruleset=ruleset,
            router=router,
            session=session,
            clock=clock,
            dedup_window=settings.dedup_window,
            near_duplicate_threshold=settings.stories.near_duplicate_threshold,
            max_updates_per_story=settings.stories.max_updates,
            articles=build_article_reader(settings, clock) if any(s.enrich for s in sources) else None,
            guard=guard,
            health=HealthPolicy(**settings.source_health.model_dump()),
            workers=workers,
        )
        metrics = Metrics()
        metrics.record_reload(True, len(ruleset.rules), clock.now(), ruleset.version)
        yield Runtime(
            store=store,
            rule_paths=tuple(settings.rule_paths()),
            pipeline=pipeline,
            outbox=outbox,
            sources=sources,
            notifiers=notifiers,
            clock=clock,
            metrics=metrics,
            rule_status=RuleStatus(loaded_at=clock.now()),
            leases=leases,
            check_rules=lambda new: check_routes(settings, new),
        )
