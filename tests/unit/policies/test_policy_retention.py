"""`policies.retention`: which finished outbox records are forgotten, and that pending ones never are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rarewatch.models import DeliveryStatus
from rarewatch.policies.retention import OutboxRetention, forget_before

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_delivered_and_dead_are_forgotten_after_their_own_periods() -> None:
    cutoffs = forget_before(OutboxRetention(delivered=timedelta(days=7), dead=timedelta(days=60)), NOW)
    assert cutoffs == {
        DeliveryStatus.DELIVERED: NOW - timedelta(days=7),
        DeliveryStatus.DEAD: NOW - timedelta(days=60),
    }


def test_pending_deliveries_are_never_forgotten() -> None:
    assert DeliveryStatus.PENDING not in forget_before(OutboxRetention(), NOW)


def test_the_defaults_keep_delivered_30_days_and_dead_90() -> None:
    cutoffs = forget_before(OutboxRetention(), NOW)
    assert cutoffs[DeliveryStatus.DELIVERED] == NOW - timedelta(days=30)
    assert cutoffs[DeliveryStatus.DEAD] == NOW - timedelta(days=90)


@pytest.mark.parametrize("period", [timedelta(0), timedelta(days=-1)])
def test_a_period_must_be_positive(period: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        OutboxRetention(delivered=period)
    with pytest.raises(ValueError, match="positive"):
        OutboxRetention(dead=period)
