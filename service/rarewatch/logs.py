"""The log: its set-up (`log_format: text|json`) and the service's events, one line each with ids.

At `info`, the service says what it is doing, one line per step:

- `poll`: one poll of one source: `source`, `status` (`ok`, `not_modified`, `error`, `skipped`: backed
  off), `items` (entries fetched), `new` (alerts this poll raised: new stories and updates), `matched`
  (items that fired a rule, seen before or not), `duration_ms`; and `error` for a failed poll.
- `alert`: one alert raised: `alert` (its id), `kind`, `story`, `rule` and `category` (comma-separated
  when several), `severity`, `source`, `publisher`, `destinations`.
- `unrouted` (at warning): an alert no route (nor `fallback_to`) took, recorded to be sent later:
  `alert`, `kind`, `rule`, `category`, `source`, and `resend` (the command that sends it).
- `delivery`: one delivery attempt and its outcome: `delivery` (`<alert id>/<destination>`, what
  `rarewatch outbox list` shows), `alert`, `destination`, `outcome` (`delivered`, `failed`: retried at
  `retry_at`, `dead`: dead-lettered), `attempt` (1 for the first; absent when nothing was sent, e.g. a
  disabled destination), and `error`. A failure is logged at warning, a dead letter at error.

`log_format: text` (the default) writes `<time> <LEVEL> <logger>: <message>`, an event's message being
its name and its fields as `key=value` (values quoted when they hold spaces or quotes), e.g.

    2026-11-23 08:04:12,345 INFO rarewatch.pipeline: poll source=bis status=ok items=20 new=1 …

`log_format: json` writes one JSON object per line for every record: `time` (RFC 3339 UTC, with
milliseconds), `level`, `logger`, `message`, and for an event `event` plus its fields as JSON values
(numbers as numbers, lists as arrays); a record with an exception adds `exc` (its traceback as one
string). Feed text in a field (a publisher's name) is data: JSON-escaped, or quoted in text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from rarewatch.models import Alert

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers of libraries that are chatty at info; quietened unless debugging.
_NOISY = ("apscheduler", "watchfiles")


def configure(level: str, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Send every record at `level` or above to `stream` (stderr), as text lines or JSON lines.

    Replaces the root logger's handlers, so calling it again (a second command in one process, tests)
    never doubles the lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else logging.WARNING)


class TextFormatter(logging.Formatter):
    """`logging.Formatter` with its `asctime` text made once a second: a cycle logs thousands of lines a
    second, and `time.strftime` was a tenth of each line's cost. The text is the same as the base class's."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        # the base class's default_msec_format, '%s,%03d'
        return f"{self._second_text},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _rfc3339_ms(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, str):
            data["event"] = event
            fields = getattr(record, "fields", None) or {}
            data.update({k: v for k, v in fields.items() if k not in data})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        # ensure_ascii=False keeps Chinese readable; json escapes newlines, so a record is one line.
        return json.dumps(data, ensure_ascii=False, default=str)


def _rfc3339_ms(created: float) -> str:
    when = datetime.fromtimestamp(created, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log the event `name` with `fields` (None values left out): `name key=value ...` as text, the
    fields themselves in JSON lines."""
    if not logger.isEnabledFor(level):
        return
    present = {k: v for k, v in fields.items() if v is not None}
    # makeRecord and handle rather than logger.log: an event's line names no source file or line, so the
    # frame walk of logger.log (findCaller, a fifth of a line's cost) is skipped; filters and handlers run
    # as before.
    extra = {"event": name, "fields": present}
    record = logger.makeRecord(logger.name, level, "", 0, "%s", (_logfmt(name, present),), None, extra=extra)
    logger.handle(record)


def _logfmt(name: str, fields: Mapping[str, Any]) -> str:
    return " ".join([name, *(f"{key}={_value(value)}" for key, value in fields.items())])


# What makes a logfmt value need quotes: whitespace (`\s` is `str.isspace`), a quote, "=" or a backslash.
_NEEDS_QUOTES = re.compile(r"[\s\"'=\\]").search


def _value(value: Any) -> str:
    if type(value) is int:  # counts and durations, most of an event's fields: never quoted
        return str(value)
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and not _NEEDS_QUOTES(text) and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, with newlines and quotes escaped


# ---------------------------------------------------------------------------------------------------
# The service's events


def log_poll(
    logger: logging.Logger,
    *,
    source: str,
    status: str,
    items: int,
    new: int,
    matched: int,
    duration_ms: int,
    error: str | None = None,
) -> None:
    """One poll of one source (see the module docstring)."""
    event(
        logger,
        logging.INFO,
        "poll",
        source=source,
        status=status,
        items=items,
        new=new,
        matched=matched,
        duration_ms=duration_ms,
        error=error,
    )


def log_alert(logger: logging.Logger, alert: Alert, destinations: Sequence[str]) -> None:
    """One alert raised, and where it goes."""
    event(
        logger,
        logging.INFO,
        "alert",
        alert=alert.id,
        kind=alert.kind.value,
        story=alert.story,
        rule=_rules(alert),
        category=",".join(alert.categories),
        severity=alert.severity.label,
        source=alert.item.source,
        publisher=alert.item.publisher or None,
        destinations=list(destinations),
    )


def _rules(alert: Alert) -> str:
    """The rules an alert fired, once each, sorted and comma-separated."""
    return ",".join(sorted({m.rule for m in alert.matches}))


def log_unrouted(logger: logging.Logger, alert: Alert) -> None:
    """An alert no route took: recorded, sent nowhere until `rarewatch alerts resend`."""
    event(
        logger,
        logging.WARNING,
        "unrouted",
        alert=alert.id,
        kind=alert.kind.value,
        rule=_rules(alert),
        category=",".join(alert.categories),
        source=alert.item.source,
        resend=f"rarewatch alerts resend {alert.id} --to DESTINATION",
    )


Outcome = Literal["delivered", "failed", "dead"]
_OUTCOME_LEVEL = {"delivered": logging.INFO, "failed": logging.WARNING, "dead": logging.ERROR}


def delivery_id(alert_id: str, destination: str) -> str:
    """A delivery's id in the log: `<alert id>/<destination>` (one alert, one destination)."""
    return f"{alert_id}/{destination}"


def log_delivery(
    logger: logging.Logger,
    *,
    alert_id: str,
    destination: str,
    outcome: Outcome,
    attempt: int | None,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """One delivery attempt's outcome (or a dead letter without an attempt, `attempt=None`)."""
    event(
        logger,
        _OUTCOME_LEVEL[outcome],
        "delivery",
        delivery=delivery_id(alert_id, destination),
        alert=alert_id,
        destination=destination,
        outcome=outcome,
        attempt=attempt,
        retry_at=retry_at.isoformat(timespec="seconds") if retry_at is not None else None,
        error=error,
    )
