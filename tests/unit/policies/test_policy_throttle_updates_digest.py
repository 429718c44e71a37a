"""Per-rule throttling, the per-story update cap and the digest plan, each on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rarewatch.models import Match, Severity
from rarewatch.policies.digest import delivery_plan
from rarewatch.policies.throttle import unthrottled, within
from rarewatch.policies.updates import over_update_cap
from rarewatch.ruleset.schema import Throttle

NOW = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)
TWO_PER_HOUR = Throttle(max=2, per=timedelta(hours=1))
LOUD = Match("loud", "supply-disruption", Severity.MEDIUM)
QUIET = Match("quiet", "export-licensing", Severity.HIGH)


def test_a_rule_without_a_throttle_always_sends() -> None:
    assert within(1_000, None)


def test_a_throttle_sends_max_per_window_then_records_the_rest() -> None:
    assert [within(n, TWO_PER_HOUR) for n in (1, 2, 3, 4)] == [True, True, False, False]


def test_only_the_throttled_rules_matches_are_dropped() -> None:
    throttles = {"loud": TWO_PER_HOUR, "quiet": None}
    assert unthrottled([LOUD, QUIET], throttles.get, {"loud": 3}) == [QUIET]
    assert unthrottled([LOUD, QUIET], throttles.get, {"loud": 2}) == [LOUD, QUIET]
    assert unthrottled([LOUD], throttles.get, {"loud": 3}) == []


def test_the_update_cap_allows_max_updates_then_stops() -> None:
    assert [over_update_cap(n, 2) for n in (1, 2, 3, 10)] == [False, False, True, True]
    assert over_update_cap(1, 0), "max_updates: 0 sends no updates"


def test_direct_destinations_are_sent_at_once_and_digests_held_to_the_boundary() -> None:
    plan = delivery_plan({"tickets": None, "chat": timedelta(hours=1), "mail": timedelta(days=1)}, NOW)
    assert plan.destinations == ("tickets", "chat", "mail")
    assert plan.held_until == {
        "chat": datetime(2026, 11, 20, 13, 0, tzinfo=UTC),
        "mail": datetime(2026, 11, 21, 0, 0, tzinfo=UTC),
    }


def test_no_routes_no_destinations() -> None:
    plan = delivery_plan({}, NOW)
    assert plan.destinations == () and plan.held_until == {}
