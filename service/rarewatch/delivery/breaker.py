"""A circuit breaker per destination: a small, pure policy with an injected time.

States (as in Alertmanager-style notifiers and the classic pattern):

- **closed**: every delivery is attempted. Each retryable failure adds one to a run of consecutive
  failures; a success ends the run. `threshold` failures in a row open the breaker.
- **open**: nothing is attempted until `cooldown` has passed since it opened (due deliveries wait,
  unsent and without an attempt counted).
- **half-open**: after the cool-down exactly one delivery is let through as a probe. Its success closes
  the breaker (and the outbox makes the destination's waiting deliveries due at once); its failure opens
  it again, with the cool-down doubled up to `max_cooldown`.

While the destination is merely flaky (failures interleaved with successes) the breaker stays closed and
each delivery retries on its own schedule. The breaker never sleeps and never does I/O: it answers
`allow(now)` and is told `success(now)` / `failure(now)`; `ready_at` says when it next lets one through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class Breaker:
    """One destination's breaker. `threshold` < 1 disables it (always closed)."""

    threshold: int = 10
    cooldown: timedelta = timedelta(seconds=10)
    max_cooldown: timedelta = timedelta(seconds=30)
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive retryable failures
    opened_at: datetime | None = None
    current_cooldown: timedelta | None = None
    probing: bool = False  # half-open: the one probe is out

    def allow(self, now: datetime) -> bool:
        """May one delivery be attempted now? In half-open, True once (the probe) until it reports."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            ready = self.ready_at()
            if ready is not None and now < ready:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def ready_at(self) -> datetime | None:
        """When an open breaker lets its probe through; None when it is not open."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return None
        return self.opened_at + (self.current_cooldown or self.cooldown)

    def success(self, now: datetime) -> bool:
        """Record a success; True when it closed an open or half-open breaker (the destination is back)."""
        recovered = self.state is not BreakerState.CLOSED
        self.state, self.failures, self.probing = BreakerState.CLOSED, 0, False
        self.opened_at, self.current_cooldown = None, None
        return recovered

    def failure(self, now: datetime) -> bool:
        """Record a retryable failure; True when it opened the breaker."""
        if self.state is BreakerState.HALF_OPEN:
            doubled = (self.current_cooldown or self.cooldown) * 2
            self._open(now, min(doubled, max(self.max_cooldown, self.cooldown)))
            return True
        if self.state is BreakerState.OPEN:
            return False  # a send that started before it opened: already open
        self.failures += 1
        if self.threshold >= 1 and self.failures >= self.threshold:
            self._open(now, self.cooldown)
            return True
        return False

    def _open(self, now: datetime, cooldown: timedelta) -> None:
        self.state, self.opened_at, self.current_cooldown, self.probing = (
            BreakerState.OPEN,
            now,
            cooldown,
            False,
        )
