"""The dashboard's chart: alerts counted per category per day, drawn as SVG bars."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rarewatch.dashboard.chart import bar_chart, daily_counts
from rarewatch.models import Alert, Item, Match, Severity

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def alert(n: int, created: datetime, *categories: str) -> Alert:
    item = Item(f"i{n}", "wire", "t", "https://x.example/", "", "", created)
    matches = tuple(Match(f"r-{c}", c, Severity.HIGH) for c in categories)
    return Alert(f"a{n}", item, matches, created)


def test_alerts_are_counted_per_day_and_category_within_the_window() -> None:
    alerts = [
        alert(1, NOW, "prosecution"),
        alert(2, NOW - timedelta(hours=1), "prosecution", "export-licensing"),
        alert(3, NOW - timedelta(days=2), "supply-disruption"),
        alert(4, NOW - timedelta(days=14), "prosecution"),  # one day before a 14-day window
    ]
    data = daily_counts(alerts, NOW, days=14)
    today, two_ago = NOW.date(), (NOW - timedelta(days=2)).date()
    assert len(data.days) == 14 and data.days[-1] == today
    assert dict(data.counts) == {
        (today, "prosecution"): 2,
        (today, "export-licensing"): 1,
        (two_ago, "supply-disruption"): 1,
    }


def test_each_count_is_one_bar_and_bars_are_as_tall_as_their_count() -> None:
    alerts = [alert(n, NOW, "prosecution") for n in range(4)] + [alert(9, NOW, "supply-disruption")]
    svg = bar_chart(daily_counts(alerts, NOW, days=3))
    bars = re.findall(r'<rect class="bar"[^>]*data-count="(\d+)"[^>]*height="([\d.]+)"', svg)
    assert sorted(int(n) for n, _ in bars) == [1, 4]
    heights = {int(n): float(h) for n, h in bars}
    assert abs(heights[4] - 4 * heights[1]) < 0.5


def test_an_empty_window_draws_no_bars() -> None:
    assert 'class="bar"' not in bar_chart(daily_counts([], NOW))
