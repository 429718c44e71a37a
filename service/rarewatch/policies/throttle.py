"""Per-rule throttling: a rule with `throttle: {max, per}` sends at most `max` alerts per window; the
excess is recorded in the history, not sent."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rarewatch.models import Match
from rarewatch.ruleset.schema import Throttle


def within(count: int, throttle: Throttle | None) -> bool:
    """Whether the `count`-th alert of a rule in its window (this one included) may be sent."""
    return throttle is None or count <= throttle.max


def unthrottled(
    matches: Sequence[Match],
    throttles: Callable[[str], Throttle | None],
    counts: Mapping[str, int],
) -> list[Match]:
    """The matches whose rule is within its throttle; `counts[rule]` is that rule's count in its window
    including this alert (rules without a throttle need no count)."""
    return [m for m in matches if within(counts.get(m.rule, 0), throttles(m.rule))]
