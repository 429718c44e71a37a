"""`rarewatch.api_query`: the query of `GET /api/v1/alerts`, read and applied without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rarewatch.api_query import (
    ALERTS_MAX,
    QueryError,
    decode_cursor,
    encode_cursor,
    parse_query,
    select,
)
from rarewatch.models import Alert, Item, Match, Severity

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def alert(n: int, created: datetime, severity: Severity = Severity.HIGH) -> Alert:
    item = Item(f"i{n}", "wire", f"t{n}", f"https://n.example/{n}", "", "", created)
    return Alert(f"alert-{n}", item, (Match("r", "export-licensing", severity),), created)


def test_defaults_and_the_limit_bound() -> None:
    assert parse_query({}, NOW).limit == 50
    assert parse_query({"limit": "100000"}, NOW).limit == ALERTS_MAX
    assert not parse_query({"limit": "7"}, NOW).filtered


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "", "ten", "٣", " 5", "+5", "5_0"])
def test_a_bad_limit_is_refused(value: str) -> None:
    with pytest.raises(QueryError, match="limit"):
        parse_query({"limit": value}, NOW)


def test_since_and_until_read_iso_times_and_durations() -> None:
    query = parse_query({"since": "2026-05-31T00:00:00", "until": "1h30m"}, NOW)
    assert query.since == datetime(2026, 5, 31, tzinfo=UTC), "no offset: UTC"
    assert query.until == NOW - timedelta(hours=1, minutes=30)
    assert parse_query({"since": "2026-05-31T02:00:00+02:00"}, NOW).since == datetime(2026, 5, 31, tzinfo=UTC)


def test_severity_is_a_minimum() -> None:
    query = parse_query({"severity": "medium"}, NOW)
    kept = [a.id for a in select([alert(1, NOW, Severity.LOW), alert(2, NOW, Severity.CRITICAL)], query)]
    assert kept == ["alert-2"]


def test_the_cursor_continues_after_the_alert_it_names_even_among_equal_times() -> None:
    alerts = [alert(n, NOW - timedelta(minutes=n // 2)) for n in range(6)]  # pairs share a time
    first = list(select(alerts, parse_query({}, NOW)))
    cursor = encode_cursor(first[2])
    rest = list(select(alerts, parse_query({"cursor": cursor}, NOW)))
    assert [a.id for a in first[:3] + rest] == [a.id for a in first]
    assert decode_cursor(cursor).id == first[2].id


@pytest.mark.parametrize("cursor", ["", "!!", "bm90IGpzb24", "WzEsMl0", "WyJ4IiwiYSJd"])
def test_a_cursor_not_given_out_is_refused(cursor: str) -> None:
    with pytest.raises(QueryError, match="cursor"):
        decode_cursor(cursor)
