"""The circuit breaker on its own, with an injected time: closed → open → half-open → closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rarewatch.delivery.breaker import Breaker, BreakerState

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def test_stays_closed_while_failures_are_interleaved_with_successes() -> None:
    b = Breaker(threshold=3, cooldown=10 * S)
    for _ in range(20):
        assert b.allow(T0)
        assert not b.failure(T0)
        assert not b.failure(T0)
        assert not b.success(T0)  # a closed breaker did not "recover"
    assert b.state is BreakerState.CLOSED


def test_opens_after_threshold_consecutive_failures_and_refuses_until_the_cooldown() -> None:
    b = Breaker(threshold=3, cooldown=10 * S)
    assert [b.failure(T0) for _ in range(3)] == [False, False, True]
    assert b.state is BreakerState.OPEN
    assert b.ready_at() == T0 + 10 * S
    assert not b.allow(T0 + 9 * S)
    assert b.state is BreakerState.OPEN


def test_half_open_lets_exactly_one_probe_through_and_its_success_closes() -> None:
    b = Breaker(threshold=2, cooldown=10 * S)
    b.failure(T0)
    b.failure(T0)
    assert b.allow(T0 + 10 * S)  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(T0 + 10 * S), "one probe at a time"
    assert not b.allow(T0 + 11 * S)
    assert b.success(T0 + 11 * S) is True  # recovered: the outbox releases the waiting deliveries
    assert b.state is BreakerState.CLOSED and b.ready_at() is None
    assert b.allow(T0 + 11 * S) and b.allow(T0 + 11 * S)
    # The run starts again from zero.
    assert not b.failure(T0 + 12 * S)
    assert b.state is BreakerState.CLOSED


def test_a_failed_probe_reopens_with_a_doubled_cooldown_capped() -> None:
    b = Breaker(threshold=1, cooldown=10 * S, max_cooldown=30 * S)
    assert b.failure(T0)
    now = T0
    cooldowns = []
    for _ in range(4):
        ready = b.ready_at()
        assert ready is not None
        cooldowns.append(ready - now)
        now = ready
        assert b.allow(now)
        assert b.failure(now) is True
    assert cooldowns == [10 * S, 20 * S, 30 * S, 30 * S]
    assert b.allow(now + 30 * S)
    assert b.success(now + 30 * S)
    b.failure(now + 31 * S)
    assert b.ready_at() == now + 41 * S, "after recovering, the cool-down starts from the base again"


def test_a_late_failure_while_open_changes_nothing() -> None:
    b = Breaker(threshold=1, cooldown=10 * S)
    b.failure(T0)
    assert not b.failure(T0 + 5 * S)
    assert b.ready_at() == T0 + 10 * S


def test_threshold_zero_disables_the_breaker() -> None:
    b = Breaker(threshold=0)
    for _ in range(100):
        assert not b.failure(T0)
    assert b.allow(T0) and b.state is BreakerState.CLOSED
