"""The source-health policy: one alert when a source fails or goes silent, one recovery, nothing per poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rarewatch.categories import OPS
from rarewatch.models import Problem, SourceHealth
from rarewatch.policies.source_health import (
    KEEP_CHANGES,
    Event,
    HealthPolicy,
    assess,
    health_alert,
    listing_fingerprint,
    observe,
    silence_limit,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
POLICY = HealthPolicy(failures=3, silence_factor=10, min_silence=timedelta(hours=24), min_changes=3)


def changed_every(gap: timedelta, times: int) -> SourceHealth:
    """A source whose listing changed `times` times, `gap` apart, starting at T0."""
    health = SourceHealth()
    for n in range(times):
        health = observe(health, f"listing-{n}", T0 + gap * n)
    return health


def test_the_fingerprint_ignores_order_and_repeats_and_differs_for_another_listing() -> None:
    assert listing_fingerprint(["a", "b", "b"]) == listing_fingerprint(["b", "a"])
    assert listing_fingerprint(["a", "b"]) != listing_fingerprint(["a", "c"])
    assert listing_fingerprint([]) != listing_fingerprint(["a"])


def test_only_a_different_listing_counts_as_a_change() -> None:
    health = observe(SourceHealth(), "x", T0)
    assert observe(health, "x", T0 + timedelta(hours=1)) == health, "same listing: no change"
    assert observe(health, None, T0 + timedelta(hours=1)) == health, "304: no change"
    assert observe(health, "y", T0 + timedelta(hours=1)).changes == (T0, T0 + timedelta(hours=1))


def test_only_the_last_changes_are_remembered() -> None:
    health = changed_every(timedelta(hours=1), KEEP_CHANGES + 5)
    assert len(health.changes) == KEEP_CHANGES
    assert health.changes[-1] == T0 + timedelta(hours=KEEP_CHANGES + 4)


def test_silence_needs_min_changes_and_is_the_median_gap_times_the_factor_but_at_least_min_silence() -> None:
    assert silence_limit(changed_every(timedelta(hours=6), 2), POLICY) is None
    assert silence_limit(changed_every(timedelta(hours=6), 3), POLICY) == timedelta(hours=60)
    assert silence_limit(changed_every(timedelta(minutes=10), 5), POLICY) == timedelta(hours=24)


@pytest.mark.parametrize(("failures", "raised"), [(1, False), (2, False), (3, True), (7, True)])
def test_a_source_is_failing_after_n_failures_in_a_row(failures: int, raised: bool) -> None:
    decision = assess(SourceHealth(), failures=failures, last_error="HTTP 503", policy=POLICY, now=T0)
    assert (decision.event is Event.RAISE) is raised
    if raised:
        assert decision.problem is Problem.FAILING
        assert "HTTP 503" in decision.reason
        assert decision.health.raised is Problem.FAILING


def test_an_open_problem_is_said_once_not_on_every_poll_and_recovers_once() -> None:
    health, events = SourceHealth(), []
    for failures in (1, 2, 3, 4, 5, 6, 0, 0, 0):
        decision = assess(health, failures=failures, last_error="timeout", policy=POLICY, now=T0)
        health = decision.health
        events.append(decision.event)
    assert events == [None, None, Event.RAISE, None, None, None, Event.RECOVER, None, None]
    assert health.raised is None


def test_a_feed_that_stops_changing_goes_silent_once_and_recovers_when_it_changes() -> None:
    health = changed_every(timedelta(hours=6), 4)  # last change at T0 + 18h; silent after 60h
    last = health.changes[-1]
    quiet = assess(health, failures=0, last_error=None, policy=POLICY, now=last + timedelta(hours=59))
    assert quiet.event is None
    silent = assess(health, failures=0, last_error=None, policy=POLICY, now=last + timedelta(hours=61))
    assert silent.event is Event.RAISE
    assert silent.problem is Problem.SILENT
    assert "2d13h" in silent.reason
    later = assess(silent.health, failures=0, last_error=None, policy=POLICY, now=last + timedelta(hours=90))
    assert later.event is None, "still silent: nothing more"
    back = observe(later.health, "new listing", last + timedelta(hours=91))
    recovered = assess(back, failures=0, last_error=None, policy=POLICY, now=last + timedelta(hours=91))
    assert recovered.event is Event.RECOVER
    assert recovered.problem is Problem.SILENT
    assert recovered.since == last + timedelta(hours=61)


def test_a_source_without_enough_changes_is_never_silent() -> None:
    health = changed_every(timedelta(hours=1), 2)
    decision = assess(health, failures=0, last_error=None, policy=POLICY, now=T0 + timedelta(days=365))
    assert decision.event is None


def test_the_alert_is_of_category_ops_names_the_source_and_differs_between_raise_and_recovery() -> None:
    raised = assess(SourceHealth(), failures=3, last_error="HTTP 500", policy=POLICY, now=T0)
    alert = health_alert("bis", raised, T0)
    assert alert.categories == (OPS,)
    assert alert.item.source == "bis"
    assert "bis" in alert.item.title
    assert "failing" in alert.item.title
    recovered = assess(raised.health, failures=0, last_error=None, policy=POLICY, now=T0 + timedelta(hours=2))
    back = health_alert("bis", recovered, T0 + timedelta(hours=2))
    assert back.id != alert.id
    assert "recovered" in back.item.title
    again = health_alert("bis", raised, T0)
    assert again.id == alert.id, "the same event has the same id (claimed once)"


def test_health_survives_its_json_form() -> None:
    health = assess(changed_every(timedelta(hours=1), 3), failures=3, last_error="x", policy=POLICY, now=T0)
    assert SourceHealth.from_dict(health.health.to_dict()) == health.health
