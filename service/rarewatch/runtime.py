"""Composition root: builds every component from `Settings` and tears it down in order.

Only this module, `app` and `cli` see `Settings`; everything below gets plain values. `open_runtime` serves
the one-shot commands (`once`, `demo`) and, inside the web app's `cleanup_ctx`, `run`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypedDict

import aiohttp

from rarewatch import __version__
from rarewatch.clock import Clock, SystemClock
from rarewatch.delivery.alertmanager import AlertmanagerNotifier
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.console import ConsoleNotifier
from rarewatch.delivery.jsonl import JsonlNotifier
from rarewatch.delivery.outbox import Outbox
from rarewatch.delivery.slack import SlackNotifier
from rarewatch.delivery.template import PayloadTemplate
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.errors import ConfigError
from rarewatch.metrics import Metrics
from rarewatch.models import Alert, Severity
from rarewatch.pipeline import Pipeline, PolledSource
from rarewatch.routing import Router, RouteRule
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.settings import (
    AlertmanagerDestination,
    AppriseDestination,
    ConsoleDestination,
    DestinationConfig,
    HtmlSource,
    JsonlDestination,
    JsonSource,
    Settings,
    SlackDestination,
    SourceConfig,
    WebhookDestination,
)
from rarewatch.sources.article import ArticleReader
from rarewatch.sources.base import Source
from rarewatch.sources.feed import FeedSource
from rarewatch.sources.html import HtmlListSource
from rarewatch.sources.json_api import JsonApiSource
from rarewatch.store import Store, open_store
from rarewatch.store_identity import StoreGuard, redact_url

log = logging.getLogger(__name__)


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

    @property
    def ruleset(self) -> Ruleset:
        """The rule pack in use (replaced by `reload_rules`)."""
        return self.pipeline.ruleset

    def reload_rules(self) -> Ruleset:
        """Load the rule files again and use them from the next item on.

        Raises `RuleError` (file, line, rule id) and keeps the rules in use when the new ones are invalid:
        a typo in a rule file never leaves the service without rules.
        """
        ruleset = load_ruleset(self.rule_paths)
        self.pipeline.ruleset = ruleset
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
        try:
            source = _source_for(cfg)
        except ValueError as exc:
            raise ConfigError(f"source {cfg.name}: {exc}") from None
        polled.append(PolledSource(source, cfg.interval, settings.lookback_for(cfg), enrich=cfg.enrich))
    return tuple(polled)


class _FetchOptions(TypedDict):
    """The keyword arguments every source kind takes from `_SourceBase`."""

    timeout: float
    connect_timeout: float
    max_bytes: int
    headers: Mapping[str, str]
    lang: str | None


def _source_for(cfg: SourceConfig) -> Source:
    """The `Source` of one configured source, by its `type`."""
    common = _FetchOptions(
        timeout=cfg.timeout.total_seconds(),
        connect_timeout=cfg.connect_timeout.total_seconds(),
        max_bytes=cfg.max_bytes,
        headers=cfg.headers,
        lang=cfg.lang,
    )
    if isinstance(cfg, JsonSource):
        fields = cfg.fields.model_dump(exclude_none=True)
        return JsonApiSource(
            cfg.name,
            cfg.url,
            items=cfg.items or "",
            fields=fields,
            next_page=cfg.next_page,
            max_pages=cfg.max_pages,
            params=cfg.params,
            html_fields=cfg.html_fields,
            **common,
        )
    if isinstance(cfg, HtmlSource):
        return HtmlListSource(
            cfg.name,
            cfg.url,
            item=cfg.item or "",
            title=cfg.title or "",
            link=cfg.link,
            date=cfg.date,
            summary=cfg.summary,
            encoding=cfg.encoding,
            **common,
        )
    return FeedSource(cfg.name, cfg.url, **common)


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
        ]
    )


def build_notifier(
    cfg: DestinationConfig,
    settings: Settings,
    session: aiohttp.ClientSession,
    clock: Clock,
    stdout: TextIO,
) -> Notifier:
    """The notifier for one configured destination."""
    if isinstance(cfg, WebhookDestination):
        return WebhookNotifier(
            cfg.name,
            cfg.url,
            session,
            secrets=cfg.signing_secrets(),
            headers=cfg.resolved_headers(),
            timeout=cfg.timeout.total_seconds(),
            clock=clock,
            body=_webhook_body(cfg, settings),
            content_type=cfg.content_type,
        )
    if isinstance(cfg, AlertmanagerDestination):
        return AlertmanagerNotifier(
            cfg.name,
            cfg.url,
            session,
            timeout=cfg.timeout.total_seconds(),
            headers=cfg.resolved_headers(),
            resolve_after=cfg.resolve_after,
            clock=clock,
        )
    if isinstance(cfg, AppriseDestination):
        return _apprise_notifier(cfg)
    if isinstance(cfg, ConsoleDestination):
        return ConsoleNotifier(cfg.name, stream=stdout)
    if isinstance(cfg, JsonlDestination):
        return JsonlNotifier(cfg.name, settings.resolve_path(cfg.path))
    if isinstance(cfg, SlackDestination):
        return SlackNotifier(
            cfg.name,
            channel=cfg.channel,
            token=cfg.token.get_secret_value() if cfg.token else None,
            webhook_url=cfg.webhook_url.get_secret_value() if cfg.webhook_url else None,
            api_url=cfg.api_url,
            session=session,
            clock=clock,
        )
    raise ConfigError(f"destination {cfg.name}: unsupported type")


def _webhook_body(cfg: WebhookDestination, settings: Settings) -> Callable[[Alert], bytes] | None:
    """The template renderer of a templated webhook (None: the v1 payload); errors name the destination."""
    if cfg.template is None:
        return None
    path = settings.resolve_path(cfg.template)
    try:
        template = PayloadTemplate.from_file(path, json=cfg.template_json, params=cfg.template_vars)
    except ValueError as exc:
        raise ConfigError(f"destination {cfg.name}: {exc}") from None
    return template.render


def _apprise_notifier(cfg: AppriseDestination) -> Notifier:
    # Imported here: Apprise takes about 0.3 s to import, paid only by configurations that use it.
    from rarewatch.delivery.apprise_notifier import AppriseNotifier

    try:
        return AppriseNotifier(
            cfg.name,
            [url.get_secret_value() for url in cfg.urls],
            title_template=cfg.title_template,
            body_format=cfg.body_format,
            timeout=cfg.timeout.total_seconds(),
        )
    except ValueError as exc:
        raise ConfigError(f"destination {cfg.name}: {exc}") from None


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, clock: Clock | None = None, stdout: TextIO | None = None
) -> AsyncIterator[Runtime]:
    """Open the store, load the rules, create the HTTP session and notifiers; close all on exit."""
    clock = clock or SystemClock()
    # Everything that can be wrong in the configuration fails here, before any connection is opened.
    ruleset = load_ruleset(settings.rule_paths())
    sources = build_sources(settings)
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(headers={"User-Agent": f"rarewatch/{__version__}"})
        )
        store = open_store(settings.store_url())
        await store.open()
        stack.push_async_callback(store.close)
        notifiers: dict[str, Notifier] = {}
        for cfg in settings.destinations:
            notifiers[cfg.name] = build_notifier(cfg, settings, session, clock, stdout or sys.stdout)
            stack.push_async_callback(notifiers[cfg.name].close)
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
        )
        guard = StoreGuard(
            store,
            where=redact_url(settings.store_url()),
            clock=clock,
            destinations=tuple(notifiers),
            ttl=settings.dedup_window,
        )
        await guard.check()  # holds the store's marker (writes one on a new store; alarms on a lost one)
        pipeline = Pipeline(
            store=store,
            ruleset=ruleset,
            router=build_router(settings),
            session=session,
            clock=clock,
            dedup_window=settings.dedup_window,
            near_duplicate_threshold=settings.stories.near_duplicate_threshold,
            max_updates_per_story=settings.stories.max_updates,
            articles=build_article_reader(settings, clock) if any(s.enrich for s in sources) else None,
            guard=guard,
        )
        yield Runtime(
            store=store,
            rule_paths=tuple(settings.rule_paths()),
            pipeline=pipeline,
            outbox=outbox,
            sources=sources,
            notifiers=notifiers,
            clock=clock,
            metrics=Metrics(),
        )
