"""Which destinations an alert goes to. Pure: no I/O, no configuration objects.

Every route whose match fits the alert applies (there is no Alertmanager-style `continue: false`).
Within one route every non-empty field must fit; an empty field fits anything. A field fits when ANY
of the alert's matches has a listed category, severity or rule; `sources` is compared with the item's
source. The destinations of all fitting routes are merged, first-seen order, each at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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

    def fits(self, alert: Alert) -> bool:
        """True when every non-empty filter of this route fits the alert."""
        matches = alert.matches
        return (
            _any_in(self.categories, (m.category for m in matches))
            and _any_in(self.severities, (m.severity for m in matches))
            and _any_in(self.rules, (m.rule for m in matches))
            and _any_in(self.sources, (alert.item.source,))
        )


def _any_in(wanted: frozenset[T], values: Iterable[T]) -> bool:
    """An empty filter fits anything; otherwise at least one value must be listed."""
    return not wanted or any(v in wanted for v in values)


class Router:
    """Applies an ordered list of routes to alerts."""

    def __init__(self, routes: Sequence[RouteRule]) -> None:
        self._routes = tuple(routes)

    def route(self, alert: Alert) -> tuple[str, ...]:
        """The destinations of every route that fits `alert`, deduplicated in first-seen order."""
        seen: dict[str, None] = {}
        for route in self._routes:
            if route.fits(alert):
                seen.update(dict.fromkeys(route.to))
        return tuple(seen)
