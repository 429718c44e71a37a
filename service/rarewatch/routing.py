"""Which destinations an alert goes to. Pure: no I/O, no configuration objects.

Every route whose match fits the alert applies (there is no Alertmanager-style `continue: false`).
Within one route every non-empty field must fit; an empty field fits anything. A field fits when ANY
of the alert's matches has a listed category, severity or rule; `sources` is compared with the item's
source; `materials` and `countries` with the evidence the rule pack found in the item. The destinations
of all fitting routes are merged, first-seen order, each at most once.

`fallback` destinations (the configuration's `fallback_to`, as Alertmanager's root receiver) take every
alert no route took. An alert that neither a route nor a fallback takes is *unrouted*: the pipeline records
it, counts it and logs it, and `rarewatch alerts resend` can send it later.

A route may ask for a digest (`digest: hourly|daily`): its destinations then get the alert folded into
one summary at the next period boundary instead of at once — unless another fitting route sends the
alert to the same destination directly, which wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from rarewatch.models import Alert, Severity

T = TypeVar("T")


@dataclass(frozen=True)
class RouteRule:
    """One route: where to send (`to`) the alerts that fit every non-empty filter."""

    to: tuple[str, ...]
    categories: frozenset[str] = frozenset()
    severities: frozenset[Severity] = frozenset()
    sources: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    materials: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    digest: timedelta | None = None  # fold into one message per period instead of sending at once

    def fits(self, alert: Alert) -> bool:
        """True when every non-empty filter of this route fits the alert."""
        matches = alert.matches
        return (
            _any_in(self.categories, (m.category for m in matches))
            and _any_in(self.severities, (m.severity for m in matches))
            and _any_in(self.rules, (m.rule for m in matches))
            and _any_in(self.sources, (alert.item.source,))
            and _any_in(self.materials, alert.materials)
            and _any_in(self.countries, alert.countries)
        )


def _any_in(wanted: frozenset[T], values: Iterable[T]) -> bool:
    """An empty filter fits anything; otherwise at least one value must be listed."""
    return not wanted or any(v in wanted for v in values)


class Router:
    """Applies an ordered list of routes to alerts."""

    def __init__(self, routes: Sequence[RouteRule], fallback: Sequence[str] = ()) -> None:
        self._routes = tuple(routes)
        self._fallback = tuple(dict.fromkeys(fallback))

    def route(self, alert: Alert) -> tuple[str, ...]:
        """The destinations of every route that fits `alert`, deduplicated in first-seen order."""
        return tuple(self.plan(alert))

    def plan(self, alert: Alert) -> dict[str, timedelta | None]:
        """Each destination of the fitting routes with its digest period (None: send at once)."""
        plan: dict[str, timedelta | None] = {}
        for route in self._routes:
            if not route.fits(alert):
                continue
            for dest in route.to:
                plan[dest] = _sooner(plan[dest], route.digest) if dest in plan else route.digest
        if not plan:  # no route took it: the fallback destinations do, at once
            return dict.fromkeys(self._fallback)
        return plan


def _sooner(a: timedelta | None, b: timedelta | None) -> timedelta | None:
    """The more immediate of two delivery modes: at once (None) beats any digest, a shorter digest wins."""
    if a is None or b is None:
        return None
    return min(a, b)


def next_boundary(now: datetime, period: timedelta) -> datetime:
    """The next multiple of `period` since the Unix epoch, in UTC (hourly: the next full hour; daily:
    the next midnight UTC)."""
    step = period.total_seconds()
    seconds = now.timestamp()
    return datetime.fromtimestamp((seconds // step + 1) * step, tz=UTC)
