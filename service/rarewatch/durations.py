"""Durations as operators write them: `30s`, `15m`, `2h`, `30d`, `1h30m`, or a number of seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The longest duration accepted. Far beyond any sensible setting, and far enough below datetime's and
# APScheduler's limits that "now + duration" never overflows.
MAX_DURATION = timedelta(days=36500)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse a duration; raise ValueError with a readable message when it is not one."""
    if isinstance(value, timedelta):
        return _bounded(value.total_seconds(), value)
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return _bounded(value, value)
    text = value.strip().lower().replace(" ", "")
    if text.startswith("-"):
        raise ValueError(f"duration must not be negative: {value!r}")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _bounded(float(text), value)
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 30d, 1h30m or seconds)")
    return _bounded(total, value)


def _bounded(seconds: float, given: object) -> timedelta:
    """`seconds` as a timedelta; ValueError (not OverflowError) beyond `MAX_DURATION` or for inf/NaN."""
    if seconds > MAX_DURATION.total_seconds() or not math.isfinite(seconds):  # ints never overflow here
        raise ValueError(f"duration {given!r} is too long (at most {MAX_DURATION.days} days)")
    return timedelta(seconds=seconds)


def parse_positive_duration(value: str | int | float | timedelta) -> timedelta:
    """`parse_duration`, refusing zero: for periods and windows, where zero means nothing sensible."""
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError(f"duration must be positive: {value!r}")
    return delta


def format_duration(delta: timedelta) -> str:
    """Render a duration compactly (`1h30m`), for logs and CLI output."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
