"""The query of `GET /api/v1/alerts`: filters, a time window and cursor pagination, read from the URL.

Pure: `parse_query` reads the query string (raising `QueryError` with a message for a 400), `select`
picks a page out of alerts the store returned. The store has no query language for alerts, so the
handler fetches the newest `SCAN_MAX` alerts and filters them here: filters and pages reach that far
back, no further.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rarewatch.categories import ALERT_CATEGORIES
from rarewatch.durations import parse_duration
from rarewatch.models import Alert, Severity

ALERTS_MAX = 500  # alerts in one page
ALERTS_DEFAULT = 50
SCAN_MAX = 5000  # the newest alerts a filtered or paged request looks through


class QueryError(ValueError):
    """A query parameter that is not valid; its message says which and why."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last alert listed (newest-first order is by `created`, then `id`)."""

    created: datetime
    id: str


@dataclass(frozen=True, slots=True)
class AlertQuery:
    limit: int = ALERTS_DEFAULT
    unrouted: bool = False
    category: str | None = None
    severity: Severity | None = None  # at least this severity
    source: str | None = None
    material: str | None = None
    country: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: Position | None = None  # from `cursor`

    @property
    def filtered(self) -> bool:
        """Whether more than the newest `limit` alerts may be needed to fill the page."""
        return any(
            v is not None
            for v in (
                self.category,
                self.severity,
                self.source,
                self.material,
                self.country,
                self.since,
                self.until,
                self.after,
            )
        )

    def admits(self, alert: Alert) -> bool:
        """Whether `alert` passes every filter (not the cursor)."""
        return (
            (self.category is None or self.category in alert.categories)
            and (self.severity is None or alert.severity >= self.severity)
            and (self.source is None or alert.item.source == self.source)
            and (self.material is None or self.material in alert.materials)
            and (self.country is None or self.country in alert.countries)
            and (self.since is None or alert.created >= self.since)
            and (self.until is None or alert.created < self.until)
        )


def parse_query(query: Mapping[str, str], now: datetime) -> AlertQuery:
    """The `AlertQuery` of a query string; `since`/`until` relative to `now`. Raises `QueryError`."""
    return AlertQuery(
        limit=_limit(query.get("limit")),
        unrouted=_flag(query, "unrouted"),
        category=_choice(query, "category", ALERT_CATEGORIES),
        severity=_severity(query.get("severity")),
        source=_text(query, "source"),
        material=_lower(query, "material"),
        country=_lower(query, "country"),
        since=_moment(query, "since", now),
        until=_moment(query, "until", now),
        after=decode_cursor(query["cursor"]) if "cursor" in query else None,
    )


def select(alerts: Sequence[Alert], query: AlertQuery) -> Iterator[Alert]:
    """The alerts of the page, newest first: those after the cursor that pass the filters. Lazy, so the
    caller takes as many as it needs (and one more, to know whether there is a next page)."""
    ordered = sorted(alerts, key=_order, reverse=True)
    for alert in ordered:
        if query.after is not None and _order(alert) >= (query.after.created, query.after.id):
            continue
        if query.admits(alert):
            yield alert


def encode_cursor(alert: Alert) -> str:
    """An opaque cursor pointing just past `alert`."""
    return encode_position(alert.created, alert.id)


def encode_position(moment: datetime, key: str) -> str:
    """An opaque cursor pointing just past the entry at (`moment`, `key`) of a newest-first listing."""
    raw = json.dumps([moment.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, alert_id = json.loads(raw)
        position = Position(_aware(datetime.fromisoformat(created)), str(alert_id))
    except (binascii.Error, ValueError, TypeError):  # JSONDecodeError and UnicodeDecodeError too
        raise QueryError("cursor is not one this API gave out (pass next_cursor as it is)") from None
    return position


def _order(alert: Alert) -> tuple[datetime, str]:
    return (alert.created, alert.id)


def parse_limit(value: str | None) -> int:
    """`?limit=`: a whole number from 1 (default `ALERTS_DEFAULT`, at most `ALERTS_MAX`); `QueryError`."""
    return _limit(value)


def parse_flag(query: Mapping[str, str], name: str) -> bool:
    """`?name=true|false` (default false); `QueryError` for anything else."""
    return _flag(query, name)


def _limit(value: str | None) -> int:
    if value is None:
        return ALERTS_DEFAULT
    if not value.isascii() or not value.isdigit():  # int() would take " 5", "+5", "5_0" and "٥"
        raise QueryError(f"limit must be a whole number from 1 (got {value!r})")
    limit = int(value)
    if limit < 1:
        raise QueryError(f"limit must be at least 1 (got {limit})")
    return min(limit, ALERTS_MAX)  # more is served as the most there is, as before


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise QueryError(f"{name} must be true or false")
    return value == "true"


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is not None and not value.strip():
        raise QueryError(f"{name} must not be empty")
    return value


def _lower(query: Mapping[str, str], name: str) -> str | None:
    value = _text(query, name)
    return value.strip().lower() if value is not None else None  # canonical names are lower-case


def _choice(query: Mapping[str, str], name: str, choices: Sequence[str]) -> str | None:
    value = query.get(name)
    if value is not None and value not in choices:
        raise QueryError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def _severity(value: str | None) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise QueryError(f"severity: {exc}") from None


def _moment(query: Mapping[str, str], name: str, now: datetime) -> datetime | None:
    """An ISO 8601 time (UTC when it has no offset), or a duration back from now (`24h`, `7d`)."""
    value = query.get(name)
    if value is None:
        return None
    try:
        return _aware(datetime.fromisoformat(value.strip()))
    except ValueError:
        pass
    try:
        return now - parse_duration(value)
    except (ValueError, OverflowError):
        raise QueryError(
            f"{name} must be an ISO 8601 time or a duration such as 24h (got {value!r})"
        ) from None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
