"""The console destination: two readable, terminal-safe lines per alert."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO

import pytest

from rarewatch.delivery.console import ConsoleNotifier, format_alert, terminal_safe
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity

WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def make_alert(
    title: str = "China adds rare-earth magnets to export licence list", snippet: str = ""
) -> Alert:
    item = Item("i", "mofcom", title, "https://example.org/n/1", "", "", WHEN)
    matches = (
        Match("b-shortage", "export-licensing", Severity.MEDIUM, snippet="medium snippet"),
        Match("a-licensing", "export-licensing", Severity.HIGH, snippet=snippet or "the licence list now"),
    )
    return Alert("a1", item, matches, WHEN)


def test_the_line_names_severity_category_title_source_link_and_rules() -> None:
    assert format_alert(make_alert()) == (
        "[HIGH] export-licensing  China adds rare-earth magnets to export licence list  "
        "(source: mofcom) https://example.org/n/1  rules: a-licensing, b-shortage\n"
        "    the licence list now\n"
    )


def test_feed_text_cannot_control_the_terminal() -> None:
    evil = "Rare \x1b[2J\x1b]0;pwned\x07earth\r\nexport\u202eban\u2028news\x9b"
    text = format_alert(make_alert(title=evil, snippet="line one\nline\ttwo\x00"))
    lines = text.splitlines()
    assert len(lines) == 2
    for ch in "\x1b\x07\r\x00\u202e\u2028\x9b":
        assert ch not in text
    assert "Rare [2J ]0;pwned earth export ban news" in lines[0]
    assert lines[1] == "    line one line two"


def test_terminal_safe_keeps_ordinary_unicode() -> None:
    assert terminal_safe("稀土 出口管制 — “quoted”") == "稀土 出口管制 — “quoted”"


async def test_send_writes_to_the_given_stream() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier("console", out)
    await notifier.send(make_alert())
    await notifier.send(make_alert())
    await notifier.close()
    assert out.getvalue().count("[HIGH]") == 2
    assert notifier.name == "console"


async def test_the_default_stream_is_stdout_at_send_time(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleNotifier("console").send(make_alert())
    assert capsys.readouterr().out.startswith("[HIGH] export-licensing")


async def test_characters_the_terminal_cannot_encode_are_replaced() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    await ConsoleNotifier("console", stream).send(make_alert(title="稀土 export ban"))
    assert b"?? export ban" in raw.getvalue()


@pytest.fixture
def broken_pipe() -> Iterator[TextIO]:
    """A text stream whose reader has gone away: writing to it raises BrokenPipeError."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    stream = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    yield stream
    with contextlib.suppress(BrokenPipeError):
        stream.close()


async def test_a_broken_pipe_is_a_retryable_delivery_error(broken_pipe: TextIO) -> None:
    with pytest.raises(DeliveryError, match="cannot write to the console") as info:
        await ConsoleNotifier("console", broken_pipe).send(make_alert())
    assert info.value.retryable


def test_the_evidence_line_says_which_text_matched() -> None:
    alert = make_alert()
    located = replace(alert, matches=tuple(replace(m, matched_in="article") for m in alert.matches))
    assert format_alert(located).splitlines()[1] == "    matched in: article"


def test_the_evidence_line_names_the_publisher_materials_and_countries() -> None:
    alert = make_alert()
    named = replace(
        alert,
        item=replace(alert.item, publisher="Metals\x1b[31m Daily"),
        materials=("gallium",),
        countries=("china",),
    )
    line = format_alert(named).splitlines()[1]
    assert line == "    publisher: Metals [31m Daily; materials: gallium; countries: china"
