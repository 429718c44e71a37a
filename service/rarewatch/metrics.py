"""Prometheus metrics, kept in a registry per process (not the global one, so tests stay independent).

Fed from each source poll (`record`), each outbox pass (`record_flush`), each rule reload
(`record_reload`) and, at scrape time, the store's outbox depth (`record_outbox`) and the live replicas
(`record_replicas`). `promtool check metrics` accepts the exposition (tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rarewatch.delivery.outbox import FlushReport
from rarewatch.pipeline import SourceRun
from rarewatch.policies.source_health import is_recovery
from rarewatch.store.base import OutboxStats

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DELIVERY_OUTCOMES = ("delivered", "failed", "dead")
RELOAD_OUTCOMES = ("success", "failure")


class Metrics:
    """Every metric rarewatch exposes (see README, Operations)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.polls = Counter(
            "rarewatch_source_polls", "Source polls by status (skipped: backing off).", ["source", "status"],
            registry=r,
        )  # fmt: skip
        self.fetches = Counter(
            "rarewatch_source_fetches", "Source fetches by outcome: ok, not_modified, error.",
            ["source", "outcome"], registry=r,
        )  # fmt: skip
        self.fetch_seconds = Histogram(
            "rarewatch_source_fetch_duration_seconds", "How long fetching a source took.", ["source"],
            buckets=FETCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.consecutive_failures = Gauge(
            "rarewatch_source_consecutive_failures", "Failed polls in a row, per source.", ["source"],
            registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            "rarewatch_source_last_success_timestamp_seconds", "When a source was last fetched successfully.",
            ["source"], registry=r,
        )  # fmt: skip
        self.items_seen = Counter(
            "rarewatch_items_seen", "Items fetched (every entry a source listed).", ["source"], registry=r
        )
        self.items_new = Counter(
            "rarewatch_items_new",
            "Matching items new to the store: each raised an alert or an update of a known story.",
            ["source"],
            registry=r,
        )
        self.items_matched = Counter(
            "rarewatch_items_matched", "Items a rule matched, by rule and category (new or not).",
            ["source", "rule", "category"], registry=r,
        )  # fmt: skip
        self.alerts = Counter("rarewatch_alerts", "New alerts raised.", ["source"], registry=r)
        self.unrouted = Counter(
            "rarewatch_alerts_unrouted",
            "New alerts no route (nor fallback_to) took: recorded, to be sent with `alerts resend`.",
            ["source"], registry=r,
        )  # fmt: skip
        self.ops_alerts = Counter(
            "rarewatch_ops_alerts", "Source-health alerts raised (problem) and recoveries.",
            ["source", "event"], registry=r,
        )  # fmt: skip
        self.deliveries = Counter(
            "rarewatch_deliveries",
            "Delivery attempts by destination and outcome (delivered; failed: to be retried; dead).",
            ["destination", "outcome"],
            registry=r,
        )
        self.flushes = Counter(
            "rarewatch_outbox_flushes", "Outbox passes by outcome.", ["outcome"], registry=r
        )
        self.outbox_pending = Gauge(
            "rarewatch_outbox_pending", "Deliveries waiting, per destination.", ["destination"], registry=r
        )
        self.outbox_dead = Gauge(
            "rarewatch_outbox_dead", "Dead-lettered deliveries, per destination.", ["destination"], registry=r
        )
        self.outbox_oldest = Gauge(
            "rarewatch_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending delivery, per destination (0: none pending).",
            ["destination"],
            registry=r,
        )
        self.store_up = Gauge(
            "rarewatch_store_up", "1 when the store answered the last scrape's outbox query.", registry=r
        )
        self.replicas = Gauge(
            "rarewatch_replicas_live",
            "Replicas sharing the store at this replica's last heartbeat, itself included (1 on SQLite).",
            registry=r,
        )
        self.reload_ok = Gauge(
            "rarewatch_rules_last_reload_successful", "1 when the last rule (re)load succeeded.", registry=r
        )
        self.reload_time = Gauge(
            "rarewatch_rules_last_reload_success_timestamp_seconds",
            "When the rules were last loaded successfully.",
            registry=r,
        )
        self.rules_loaded = Gauge("rarewatch_rules_loaded", "Rules in the pack in use.", registry=r)
        # Counted as well as gauged: a failed reload fixed before the next scrape still shows.
        self.rule_loads = Counter(
            "rarewatch_rules_loads", "Rule pack loads (at start and on every reload) by outcome.",
            ["outcome"], registry=r,
        )  # fmt: skip
        for outcome in RELOAD_OUTCOMES:
            self.rule_loads.labels(outcome)  # both series from the start, so increase() sees the first
        # The version of the pack in use, as a label: replicas running different packs after a rollout
        # show as two series (`count(count by (version) (rarewatch_rules_pack_info)) > 1`).
        self.pack_info = Gauge(
            "rarewatch_rules_pack_info", "The rule pack in use (always 1), by its version.", ["version"],
            registry=r,
        )  # fmt: skip
        self.articles = Counter(
            "rarewatch_article_reads",
            "Linked articles enrichment asked for, by outcome: fetched, failed (fetch or extract), cached.",
            ["source", "outcome"],
            registry=r,
        )
        self.article_matches = Counter(
            "rarewatch_article_matches",
            "Items that matched only once their linked article was read.",
            ["source"],
            registry=r,
        )

    async def record(self, run: SourceRun) -> None:
        """Account for one poll (an `on_run` callback of the poller)."""
        source = run.source
        self.polls.labels(source, run.status).inc()
        if run.status == "skipped":
            return
        if run.fetch_seconds is not None:
            self.fetches.labels(source, run.status).inc()
            self.fetch_seconds.labels(source).observe(run.fetch_seconds)
        self.consecutive_failures.labels(source).set(run.consecutive_failures)
        self.items_seen.labels(source).inc(run.entries)
        self.items_new.labels(source).inc(len(run.alerts) + len(run.unrouted))  # unrouted: new, not sent
        self.alerts.labels(source).inc(len(run.alerts))
        if run.unrouted:
            self.unrouted.labels(source).inc(len(run.unrouted))
        for rule, category, count in run.matched_by:
            self.items_matched.labels(source, rule, category).inc(count)
        if run.ops_alert is not None:
            event = "recovered" if is_recovery(run.ops_alert) else "raised"
            self.ops_alerts.labels(source, event).inc()
        self._record_articles(run)
        if run.status in ("ok", "not_modified"):
            self.last_success.labels(source).set_to_current_time()

    def _record_articles(self, run: SourceRun) -> None:
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

    def record_flush(self, report: FlushReport | None) -> None:
        """Account for one outbox pass (None: the store was unavailable)."""
        if report is None:
            self.flushes.labels("store_unavailable").inc()
            return
        self.flushes.labels("ok").inc()
        for destination, counts in report.by_destination.items():
            for outcome, count in counts.items():
                if count:
                    self.deliveries.labels(destination, outcome).inc(count)

    def record_outbox(
        self, stats: Mapping[str, OutboxStats] | None, destinations: Iterable[str], now: datetime
    ) -> None:
        """The outbox depth read at scrape time (None: the store did not answer; the gauges keep their
        last values and `rarewatch_store_up` is 0). Every configured destination is listed, at 0 if idle."""
        if stats is None:
            self.store_up.set(0)
            return
        self.store_up.set(1)
        for gauge in (self.outbox_pending, self.outbox_dead, self.outbox_oldest):
            gauge.clear()  # a destination removed from the config, or purged, drops out
        for destination in {*destinations, *stats}:
            got = stats.get(destination, OutboxStats())
            self.outbox_pending.labels(destination).set(got.pending)
            self.outbox_dead.labels(destination).set(got.dead)
            age = (now - got.oldest_pending).total_seconds() if got.oldest_pending else 0.0
            self.outbox_oldest.labels(destination).set(max(0.0, age))

    def record_replicas(self, live: int) -> None:
        """The replicas sharing the store, read at scrape time (`Leases.live_replicas`)."""
        self.replicas.set(live)

    def record_reload(
        self, ok: bool, rules: int | None = None, at: datetime | None = None, version: str | None = None
    ) -> None:
        """A rule load or reload: its outcome, and for a success the pack's size, version and when (a
        failure keeps them: the pack in use stays in use)."""
        self.reload_ok.set(1 if ok else 0)
        self.rule_loads.labels(RELOAD_OUTCOMES[0] if ok else RELOAD_OUTCOMES[1]).inc()
        if ok and at is not None:
            self.reload_time.set(at.timestamp())
        if ok and rules is not None:
            self.rules_loaded.set(rules)
        if ok and version is not None:
            self.pack_info.clear()
            self.pack_info.labels(version).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
