"""The per-story update cap: at most `max_updates` later reports of one story are sent within the dedup
window; the rest are recorded in the history only."""

from __future__ import annotations


def over_update_cap(count: int, max_updates: int) -> bool:
    """Whether the `count`-th update of a story (this one included) is one too many."""
    return count > max_updates
