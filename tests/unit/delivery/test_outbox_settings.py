"""Outbox construction: nonsensical retry settings fail at start-up, not at the first failure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rarewatch.clock import FakeClock
from rarewatch.delivery.outbox import DEFAULT_SCHEDULE, Outbox
from rarewatch.store.sqlite import SQLiteStore


def test_the_default_schedule_is_the_documented_one() -> None:
    assert [d.total_seconds() for d in DEFAULT_SCHEDULE] == [
        0,
        1,
        2,
        3,
        5,
        10,
        30,
        60,
        300,
        1800,
        7200,
        18000,
        36000,
    ]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"schedule": ()}, "schedule"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.0}, "jitter"),
        ({"batch": 0}, "batch"),
    ],
)
def test_bad_options_are_rejected(tmp_path: Path, option: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(SQLiteStore(tmp_path / "s.db"), {}, clock=FakeClock(), max_age=timedelta(hours=1), **option)
