"""The `Store` protocol: everything rarewatch persists, behind one small async interface.

Both implementations (SQLite, the embedded default; Redis) pass one contract suite
(`tests/integration/test_store_contract.py`). Key and table names live in `store/keys.py` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from rarewatch.models import Alert, Delivery, DeliveryStatus, SourceState


class Store(Protocol):
    """Persistent state. Every method may raise `StoreError` when the backend is unreachable."""

    async def open(self) -> None:
        """Connect and migrate the schema forward. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def claim(
        self,
        keys: Sequence[str],
        ttl: timedelta,
        now: datetime,
        alert: Alert | None = None,
        destinations: Sequence[str] = (),
    ) -> bool:
        """Claim a story once, atomically.

        Returns True when none of `keys` was claimed within its TTL: then all keys are claimed for `ttl`
        and, in the same atomic step, `alert` is recorded in the history and one pending delivery per
        destination is created (due at `now`). Returns False, changing nothing, when any key is held.
        With `alert=None` the keys are only marked as seen (first poll of a new source).
        """

    async def get_source_state(self, source: str) -> SourceState | None:
        """The stored state of a source, or None if it was never polled."""

    async def put_source_state(self, source: str, state: SourceState) -> None:
        """Replace the stored state of a source."""

    async def get_alert(self, alert_id: str) -> Alert | None:
        """One alert from the history."""

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """The newest alerts first."""

    async def due_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose next attempt is due at `now`, oldest first."""

    async def deliveries(
        self, status: DeliveryStatus | None = None, destination: str | None = None, limit: int = 1000
    ) -> list[Delivery]:
        """Delivery records filtered by status and destination, oldest first."""

    async def mark_delivered(self, alert_id: str, destination: str, now: datetime) -> None:
        """Record a successful delivery (attempts + 1). Never called for a failed attempt."""

    async def mark_failed(
        self, alert_id: str, destination: str, error: str, next_attempt: datetime, now: datetime
    ) -> None:
        """Record a failed attempt (attempts + 1) and when to try again."""

    async def mark_dead(self, alert_id: str, destination: str, error: str, now: datetime) -> None:
        """Give up on a delivery (dead letter); it stays listed with its last error."""

    async def retry(self, now: datetime, destination: str | None = None) -> int:
        """Make dead (and pending) deliveries due again at `now`; returns how many."""

    async def purge(self, status: DeliveryStatus, destination: str | None = None) -> int:
        """Delete delivery records of a status; returns how many."""
