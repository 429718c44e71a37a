"""Prometheus metrics, kept in a registry per process (not the global one, so tests stay independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from rarewatch.delivery.outbox import FlushReport
from rarewatch.pipeline import SourceRun


class Metrics:
    """Counters and gauges fed from each source poll."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.polls = Counter(
            "rarewatch_source_polls", "Source polls by outcome.", ["source", "status"], registry=self.registry
        )
        self.items = Counter("rarewatch_items", "Items fetched.", ["source"], registry=self.registry)
        self.alerts = Counter("rarewatch_alerts", "New alerts raised.", ["source"], registry=self.registry)
        self.unrouted = Counter(
            "rarewatch_alerts_unrouted",
            "New alerts no route (nor fallback_to) took: recorded, to be sent with `alerts resend`.",
            ["source"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "rarewatch_deliveries",
            "Delivery attempts by outcome (delivered, failed: to be retried, dead: dead-lettered).",
            ["outcome"],
            registry=self.registry,
        )
        self.flushes = Counter(
            "rarewatch_outbox_flushes", "Outbox flushes by outcome.", ["outcome"], registry=self.registry
        )
        self.articles = Counter(
            "rarewatch_article_reads",
            "Linked articles enrichment asked for, by outcome: fetched, failed (fetch or extract), cached.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.article_matches = Counter(
            "rarewatch_article_matches",
            "Items that matched only once their linked article was read.",
            ["source"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "rarewatch_source_last_success_timestamp_seconds",
            "When a source was last fetched successfully.",
            ["source"],
            registry=self.registry,
        )

    async def record(self, run: SourceRun) -> None:
        """Account for one poll (an `on_run` callback of the poller)."""
        self.polls.labels(run.source, run.status).inc()
        self.items.labels(run.source).inc(run.entries)
        self.alerts.labels(run.source).inc(len(run.alerts))
        if run.unrouted:
            self.unrouted.labels(run.source).inc(len(run.unrouted))
        articles = run.articles
        for outcome, count in (
            ("fetched", articles.fetched),
            ("failed", articles.failed),
            ("cached", articles.cached),
        ):
            if count:
                self.articles.labels(run.source, outcome).inc(count)
        if articles.matched:
            self.article_matches.labels(run.source).inc(articles.matched)
        if run.status in ("ok", "not_modified"):
            self.last_success.labels(run.source).set_to_current_time()

    def record_flush(self, report: FlushReport | None) -> None:
        """Account for one outbox flush (None: the store was unavailable)."""
        if report is None:
            self.flushes.labels("store_unavailable").inc()
            return
        self.flushes.labels("ok").inc()
        for outcome, count in (
            ("delivered", report.delivered),
            ("failed", report.failed),
            ("dead", report.dead),
        ):
            if count:
                self.deliveries.labels(outcome).inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
