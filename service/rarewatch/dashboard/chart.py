"""Alerts per category per day as an SVG bar chart, built on the server: no charting library, no script.

Pure: `daily_counts` counts alerts by (day, category) over the last `days` days; `bar_chart` draws them as
stacked bars, one per day, one colour per category, each bar a `<rect class="bar">` carrying its day,
category and count (and a `<title>` a browser shows on hover). Every text in it is escaped here
(`html.escape`), since the page inserts the chart as markup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

from rarewatch.categories import ALERT_CATEGORIES
from rarewatch.models import Alert

# One colour per category, in `ALERT_CATEGORIES` order (colour-blind-safe Okabe-Ito palette).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#999999")
WIDTH, HEIGHT, PAD, LEGEND = 720, 240, 32, 120


@dataclass(frozen=True, slots=True)
class DailyCounts:
    days: tuple[date, ...]
    counts: Counter[tuple[date, str]]

    def total(self, day: date) -> int:
        return sum(n for (d, _), n in self.counts.items() if d == day)


def daily_counts(alerts: Iterable[Alert], now: datetime, days: int = 14) -> DailyCounts:
    """Alerts raised in the last `days` days (UTC dates, today included), counted once per category they
    carry."""
    today = now.date()
    span = tuple(today - timedelta(days=n) for n in range(days - 1, -1, -1))
    first = span[0]
    counts: Counter[tuple[date, str]] = Counter()
    for alert in alerts:
        day = alert.created.date()
        if first <= day <= today:
            for category in alert.categories:
                counts[(day, category)] += 1
    return DailyCounts(span, counts)


def colour(category: str) -> str:
    index = ALERT_CATEGORIES.index(category) if category in ALERT_CATEGORIES else len(PALETTE) - 1
    return PALETTE[index % len(PALETTE)]


def bar_chart(data: DailyCounts, categories: Sequence[str] = ALERT_CATEGORIES) -> str:
    """The chart as an `<svg>` element (a string of escaped markup)."""
    peak = max((data.total(d) for d in data.days), default=0) or 1
    plot_w, plot_h = WIDTH - LEGEND - PAD, HEIGHT - 2 * PAD
    step = plot_w / max(len(data.days), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="Alerts per category per day">',
        f'<line x1="{PAD}" y1="{PAD + plot_h}" x2="{PAD + plot_w}" y2="{PAD + plot_h}" stroke="#444"/>',
        f'<text x="{PAD}" y="{PAD - 12}" font-size="11">max {peak} a day</text>',
    ]
    for i, day in enumerate(data.days):
        x = PAD + i * step + step * 0.15
        y: float = PAD + plot_h
        for category in categories:
            n = data.counts.get((day, category), 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            label = escape(f"{day.isoformat()} {category}: {n}")
            parts.append(
                f'<rect class="bar" data-day="{day.isoformat()}" data-category="{escape(category)}" '
                f'data-count="{n}" x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colour(category)}"><title>{label}</title></rect>'
            )
        if i % 2 == 0 or len(data.days) <= 7:
            parts.append(
                f'<text x="{PAD + i * step + step / 2:.1f}" y="{PAD + plot_h + 14}" font-size="10" '
                f'text-anchor="middle">{day.strftime("%m-%d")}</text>'
            )
    for j, category in enumerate(categories):
        ly = PAD + j * 16
        parts.append(
            f'<rect x="{WIDTH - LEGEND + 4}" y="{ly}" width="10" height="10" fill="{colour(category)}"/>'
            f'<text x="{WIDTH - LEGEND + 18}" y="{ly + 9}" font-size="11">{escape(category)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
