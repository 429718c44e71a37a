"""`rarewatch.logs`: the `log_format` setting, JSON lines and key=value text, one line per record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rarewatch.errors import ConfigError
from rarewatch.logs import TEXT_FORMAT, TextFormatter, configure, event, log_delivery
from rarewatch.settings import load_settings


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(fmt: str, level: str = "info") -> io.StringIO:
    out = io.StringIO()
    configure(level, fmt, out)  # type: ignore[arg-type]
    return out


def test_an_event_is_one_json_object_with_typed_fields() -> None:
    out = capture("json")
    event(
        logging.getLogger("rarewatch.t"),
        logging.INFO,
        "poll",
        source="bis",
        items=3,
        gone=None,
        to=["a", "b"],
    )
    [line] = out.getvalue().splitlines()
    data = json.loads(line)
    assert data["event"] == "poll" and data["level"] == "info" and data["logger"] == "rarewatch.t"
    assert (data["source"], data["items"], data["to"]) == ("bis", 3, ["a", "b"])
    assert "gone" not in data  # None: left out
    assert data["message"] == "poll source=bis items=3 to=a,b"
    datetime.fromisoformat(data["time"].replace("Z", "+00:00"))


def test_every_record_is_json_and_a_traceback_stays_on_its_line() -> None:
    out = capture("json")
    log = logging.getLogger("rarewatch.t")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed: %s", "here")
    log.warning("plain message with\nnewline")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "it failed: here" and "ValueError: bad\nthing" in first["exc"]
    assert "event" not in first
    assert second == {**second, "level": "warning", "message": "plain message with\nnewline"}


def test_text_values_with_spaces_quotes_or_newlines_are_quoted_so_a_line_stays_one_line() -> None:
    out = capture("text")
    log = logging.getLogger("rarewatch.t")
    event(log, logging.INFO, "alert", alert="a1", publisher='Wire "&" Co\nLtd', empty="")
    [line] = out.getvalue().splitlines()
    assert line.endswith('INFO rarewatch.t: alert alert=a1 publisher="Wire \\"&\\" Co\\nLtd" empty=""')


def test_delivery_outcomes_have_their_levels_and_ids() -> None:
    out = capture("json", "debug")
    log = logging.getLogger("rarewatch.t")
    retry = datetime(2026, 1, 1, 8, 0, 5, tzinfo=UTC)
    log_delivery(
        log, alert_id="a1", destination="hook", outcome="failed", attempt=2, error="503", retry_at=retry
    )
    log_delivery(log, alert_id="a1", destination="hook", outcome="dead", attempt=None, error="disabled")
    failed, dead = (json.loads(line) for line in out.getvalue().splitlines())
    assert failed["level"] == "warning" and failed["delivery"] == "a1/hook" and failed["attempt"] == 2
    assert failed["retry_at"] == "2026-01-01T08:00:05+00:00"
    assert dead["level"] == "error" and "attempt" not in dead


def test_configure_replaces_its_handler_and_quietens_apscheduler_unless_debugging() -> None:
    configure("info", "text", io.StringIO())
    out = capture("json")
    assert logging.getLogger().handlers[0].stream is out  # type: ignore[attr-defined]
    assert len(logging.getLogger().handlers) == 1
    assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.WARNING
    capture("json", "debug")
    assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.DEBUG


def test_info_events_are_not_written_at_warning() -> None:
    out = capture("json", "warning")
    event(logging.getLogger("rarewatch.t"), logging.INFO, "poll", source="x")
    assert out.getvalue() == ""


def test_log_format_defaults_to_text_and_a_bad_value_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rarewatch.yaml"
    path.write_text("store: sqlite:///x.db\n", encoding="utf-8")
    assert load_settings(path).log_format == "text"
    path.write_text("store: sqlite:///x.db\nlog_format: yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}:2:") and "log_format" in str(info.value)


def test_the_text_formatter_writes_what_logging_formatter_writes_across_seconds() -> None:
    """The once-a-second time text is the base class's text, whatever the order of the records' times."""
    ours, theirs = TextFormatter(TEXT_FORMAT), logging.Formatter(TEXT_FORMAT)
    base = datetime(2026, 12, 6, 9, 59, 59, tzinfo=UTC).timestamp()
    for offset in (0.0, 0.0004, 0.5, 0.9996, 1.0, 1.25, 0.75, 61.001, 3600.9):
        record = logging.makeLogRecord(
            {
                "name": "rarewatch.pipeline",
                "levelno": 20,
                "levelname": "INFO",
                "msg": "poll source=a",
                "created": base + offset,
                "msecs": ((base + offset) % 1) * 1000,
            }
        )
        assert ours.format(record) == theirs.format(record)


def test_an_event_record_goes_through_the_loggers_filters_and_names_its_logger() -> None:
    out = capture("text")
    logger = logging.getLogger("rarewatch.pipeline")
    dropped = logging.Filter("rarewatch.elsewhere")  # a filter that refuses this logger's records
    logger.addFilter(dropped)
    try:
        event(logger, logging.INFO, "poll", source="a")
    finally:
        logger.removeFilter(dropped)
    event(logger, logging.INFO, "poll", source="b", items=3)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO rarewatch.pipeline: poll source=b items=3")
