"""The digest plan: which destinations get an alert at once and which hold it for their digest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rarewatch.routing import next_boundary


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """Every destination of an alert, and for those folded into a digest the time it is due."""

    destinations: tuple[str, ...] = ()
    held_until: dict[str, datetime] = field(default_factory=dict)


def delivery_plan(routes: Mapping[str, timedelta | None], now: datetime) -> DeliveryPlan:
    """From the router's plan (destination -> digest period, None for at once): a destination with a
    period is held until the period's next boundary (hourly: the next full hour, daily: midnight UTC)."""
    held = {dest: next_boundary(now, period) for dest, period in routes.items() if period is not None}
    return DeliveryPlan(tuple(routes), held)
