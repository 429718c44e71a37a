"""Silences: which silence, if any, mutes an alert (Alertmanager's silencer stage).

Pure: the pipeline reads the silences once per poll and asks `silenced_by` for every new alert it is about
to send; a silenced alert is recorded (visible, with `silenced_by`) and claimed like any other, so it is
neither delivered nor sent again when the silence ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from rarewatch.models import Alert, Silence


def _rule(alert: Alert, value: str) -> bool:
    return any(m.rule == value for m in alert.matches)


def _source(alert: Alert, value: str) -> bool:
    return alert.item.source == value


def _category(alert: Alert, value: str) -> bool:
    return value in alert.categories


def _material(alert: Alert, value: str) -> bool:
    wanted = value.lower()
    return any(m.lower() == wanted for m in alert.materials)


def _story(alert: Alert, value: str) -> bool:
    # A story is named by its link or by its first alert's id; an update of it carries that id as `story`.
    return value in (alert.item.link, alert.story, alert.id)


FIELDS: dict[str, Callable[[Alert, str], bool]] = {
    "rule": _rule,
    "source": _source,
    "category": _category,
    "material": _material,
    "story": _story,
}


def fits(silence: Silence, alert: Alert) -> bool:
    """Whether `alert` fits every matcher of `silence` (a silence without matchers fits nothing)."""
    return bool(silence.matchers) and all(
        (test := FIELDS.get(name)) is not None and test(alert, value) for name, value in silence.matchers
    )


def silenced_by(alert: Alert, silences: Sequence[Silence], now: datetime) -> Silence | None:
    """The silence that mutes `alert` at `now`: the first active one it fits (by creation time, so the
    answer does not depend on the store's listing order), or None."""
    for silence in sorted(silences, key=lambda s: (s.created, s.id)):
        if silence.active(now) and fits(silence, alert):
            return silence
    return None
