"""Routing: every fitting route applies; empty filters fit anything; destinations deduplicated in order."""

from __future__ import annotations

from datetime import UTC, datetime

from rarewatch.models import Alert, Item, Match, Severity
from rarewatch.routing import Router, RouteRule

WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def alert(*matches: Match, source: str = "mofcom") -> Alert:
    item = Item("i1", source, "Title", "https://example.org/1", "", "", WHEN)
    return Alert("a1", item, matches, WHEN)


LICENSING = Match("licensing", "export-licensing", Severity.HIGH)
SHORTAGE = Match("shortage", "supply-disruption", Severity.MEDIUM)


def test_an_empty_match_takes_every_alert() -> None:
    assert Router([RouteRule(to=("console",))]).route(alert(SHORTAGE)) == ("console",)


def test_no_routes_means_no_destinations() -> None:
    assert Router([]).route(alert(LICENSING)) == ()


def test_a_field_fits_when_any_match_has_a_listed_value() -> None:
    router = Router(
        [
            RouteRule(to=("by-category",), categories=frozenset({"export-licensing"})),
            RouteRule(to=("by-severity",), severities=frozenset({Severity.HIGH, Severity.CRITICAL})),
            RouteRule(to=("by-rule",), rules=frozenset({"licensing"})),
            RouteRule(to=("other",), categories=frozenset({"sanctions"})),
        ]
    )
    assert router.route(alert(SHORTAGE, LICENSING)) == ("by-category", "by-severity", "by-rule")
    assert router.route(alert(SHORTAGE)) == ()


def test_source_is_the_items_source() -> None:
    router = Router([RouteRule(to=("gov",), sources=frozenset({"mofcom", "bis"}))])
    assert router.route(alert(SHORTAGE, source="bis")) == ("gov",)
    assert router.route(alert(SHORTAGE, source="reuters")) == ()


def test_every_non_empty_field_must_fit() -> None:
    rule = RouteRule(
        to=("slack",), categories=frozenset({"export-licensing"}), severities=frozenset({Severity.CRITICAL})
    )
    # The category fits (LICENSING) but no match is critical.
    assert Router([rule]).route(alert(LICENSING)) == ()
    critical = Match("ban", "export-licensing", Severity.CRITICAL)
    assert Router([rule]).route(alert(critical)) == ("slack",)


def test_fields_may_fit_through_different_matches() -> None:
    # Documented semantics: each field is checked against all matches independently.
    rule = RouteRule(
        to=("x",), categories=frozenset({"supply-disruption"}), severities=frozenset({Severity.HIGH})
    )
    assert Router([rule]).route(alert(LICENSING, SHORTAGE)) == ("x",)


def test_destinations_are_deduplicated_in_first_seen_order() -> None:
    router = Router(
        [
            RouteRule(to=("slack", "archive")),
            RouteRule(to=("pager", "slack"), severities=frozenset({Severity.HIGH})),
            RouteRule(to=("archive", "pager", "email")),
        ]
    )
    assert router.route(alert(LICENSING)) == ("slack", "archive", "pager", "email")


def test_plan_prefers_immediate_delivery_over_a_digest() -> None:
    from datetime import timedelta

    router = Router(
        [
            RouteRule(to=("slack", "mail"), digest=timedelta(days=1)),
            RouteRule(to=("slack",), categories=frozenset({"export-licensing"})),
            RouteRule(to=("mail",), digest=timedelta(hours=1)),
        ]
    )
    licensing = alert(LICENSING)
    assert router.plan(licensing) == {"slack": None, "mail": timedelta(hours=1)}
    assert router.route(licensing) == ("slack", "mail")


def test_routes_match_on_materials_and_countries() -> None:
    from dataclasses import replace

    router = Router(
        [
            RouteRule(to=("dysprosium-buyers",), materials=frozenset({"dysprosium"})),
            RouteRule(to=("japan-desk",), countries=frozenset({"japan"})),
        ]
    )
    dy = replace(alert(SHORTAGE), materials=("dysprosium", "terbium"), countries=("china",))
    assert router.route(dy) == ("dysprosium-buyers",)


def test_next_boundary_is_the_next_full_period() -> None:
    from datetime import UTC, datetime, timedelta

    from rarewatch.routing import next_boundary

    now = datetime(2026, 11, 28, 21, 40, 5, tzinfo=UTC)
    assert next_boundary(now, timedelta(hours=1)) == datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    assert next_boundary(now, timedelta(days=1)) == datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


def test_fallback_destinations_take_only_what_no_route_took() -> None:
    router = Router(
        [RouteRule(to=("tickets",), categories=frozenset({"export-licensing"}))], fallback=("ops",)
    )
    assert router.route(alert(LICENSING)) == ("tickets",)
    assert router.route(alert(SHORTAGE)) == ("ops",)
    assert router.plan(alert(SHORTAGE)) == {"ops": None}, "a fallback sends at once"
    assert Router([], fallback=("ops", "ops")).route(alert(LICENSING)) == ("ops",)
