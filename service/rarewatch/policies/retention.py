"""How long finished outbox records are kept (`outbox.retention:` in the configuration).

A delivered or dead-lettered delivery record, and the alert it refers to once no record refers to it and
it has left the history, would otherwise stay until `rarewatch outbox purge`: the store grew with every
alert. The policy says which records to forget; the outbox's periodic sweep (`Outbox.sweep`) asks the store
to forget them (`Store.forget_deliveries`). Pending deliveries, held for a digest or not, are never
forgotten: they are work still to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rarewatch.models import DeliveryStatus

# A record is forgotten once this long has passed since it was created (the score every store indexes it by).
DEFAULT_KEEP_DELIVERED = timedelta(days=30)
DEFAULT_KEEP_DEAD = timedelta(days=90)
SWEEP_EVERY = timedelta(minutes=10)  # how often a running service sweeps (each replica: it is idempotent)


@dataclass(frozen=True, slots=True)
class OutboxRetention:
    """Keep delivered records `delivered` and dead ones `dead` after their creation."""

    delivered: timedelta = DEFAULT_KEEP_DELIVERED
    dead: timedelta = DEFAULT_KEEP_DEAD

    def __post_init__(self) -> None:
        if self.delivered <= timedelta(0) or self.dead <= timedelta(0):
            raise ValueError("outbox retention periods must be positive")


def forget_before(retention: OutboxRetention, now: datetime) -> dict[DeliveryStatus, datetime]:
    """Per finished status, the creation time before which its records are forgotten at `now`. Pending is
    never among them."""
    return {
        DeliveryStatus.DELIVERED: now - retention.delivered,
        DeliveryStatus.DEAD: now - retention.dead,
    }
