"""The jsonl destination: one payload per line, appended, on real files."""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rarewatch.delivery import jsonl
from rarewatch.delivery.jsonl import JsonlNotifier
from rarewatch.delivery.payload import alert_payload
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity

WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def make_alert(alert_id: str) -> Alert:
    item = Item("i", "mofcom", "稀土 export licence", "https://example.org/1", "s", "", WHEN)
    return Alert(alert_id, item, (Match("r", "c", Severity.LOW),), WHEN)


async def test_payloads_are_appended_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    notifier = JsonlNotifier("archive", path)
    await notifier.send(make_alert("a1"))
    await notifier.send(make_alert("a2"))
    await notifier.close()
    text = path.read_text(encoding="utf-8")
    assert "稀土" in text  # ensure_ascii=False: readable, not \\u escapes
    lines = text.splitlines()
    assert [json.loads(line) for line in lines] == [
        alert_payload(make_alert("a1")),
        alert_payload(make_alert("a2")),
    ]
    assert text.endswith("\n")


async def test_a_missing_folder_is_not_created_and_the_write_fails_retryably(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "alerts.jsonl"
    with pytest.raises(DeliveryError, match="No such file or directory") as caught:
        await JsonlNotifier("archive", path).send(make_alert("a1"))
    assert caught.value.retryable
    assert not (tmp_path / "typo").exists()


async def test_existing_content_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"old": true}\n', encoding="utf-8")
    await JsonlNotifier("archive", path).send(make_alert("a1"))
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0]) == {"old": True}


async def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"torn": ', encoding="utf-8")
    await JsonlNotifier("archive", path).send(make_alert("a1"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"torn": '
    assert json.loads(lines[1])["id"] == "a1"


async def test_an_os_error_is_a_retryable_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    notifier = JsonlNotifier("archive", blocker / "alerts.jsonl")
    with pytest.raises(DeliveryError, match="cannot write") as info:
        await notifier.send(make_alert("a1"))
    assert info.value.retryable


async def test_a_batch_is_the_lines_its_alerts_sent_one_at_a_time_would_write(tmp_path: Path) -> None:
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    for path in (one, many):
        path.write_text('{"torn": ', encoding="utf-8")  # a torn last line still gets its newline first
    alerts = [make_alert(f"a{n}") for n in range(3)]
    for alert in alerts:
        await JsonlNotifier("archive", one).send(alert)
    await JsonlNotifier("archive", many).send_many(alerts)
    assert many.read_bytes() == one.read_bytes()
    await JsonlNotifier("archive", tmp_path / "new.jsonl").send_many(alerts[:1])
    assert (tmp_path / "new.jsonl").read_bytes() == one.read_bytes().splitlines(keepends=True)[1]


async def test_a_batch_cut_short_is_taken_back_off_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails part-way (disk full) leaves nothing of the batch: the outbox then sends its
    alerts one at a time, and no line of it may be in the file twice."""
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"old": true}\n', encoding="utf-8")
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 100:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonl.os, "write", half_then_full)
    with pytest.raises(DeliveryError, match="No space left on device") as caught:
        await JsonlNotifier("archive", path).send_many([make_alert("a1"), make_alert("a2")])
    assert caught.value.retryable
    assert path.read_text(encoding="utf-8") == '{"old": true}\n'


async def test_a_batch_into_a_missing_folder_fails_retryably(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "alerts.jsonl"
    with pytest.raises(DeliveryError, match="No such file or directory") as caught:
        await JsonlNotifier("archive", path).send_many([make_alert("a1")])
    assert caught.value.retryable
    assert not (tmp_path / "typo").exists()


LINES = [b'{"id": "a1"}\n', b'{"id": "a2"}\n', b'{"id": "a3"}\n']


@pytest.mark.parametrize(
    ("tail", "at_start", "expected"),
    [
        (b'{"old": 1}\n' + b"".join(LINES), False, 3),  # the whole batch is the file's end
        (b'{"old": 1}\n' + b"".join(LINES[:2]), False, 2),  # its first two: only the third is new
        (b"".join(LINES[:1]), True, 1),  # the whole file, from its start
        (b"".join(LINES[:1]), False, 0),  # the file's last bytes, but not known to begin a line
        (b'{"old": 1}\n' + LINES[1], False, 0),  # a later line alone is no leading run of the batch
        (b'{"old": 1}\n' + LINES[0] + b'{"torn": ', False, 0),  # a torn last line
        (b'{"old": 1}\n' + b"x" + LINES[0], False, 0),  # the bytes match but inside another line
        (b'{"old": 1}\n', False, 0),
    ],
)
def test_written_already_counts_the_leading_lines_the_file_ends_with(
    tail: bytes, at_start: bool, expected: int
) -> None:
    assert jsonl.written_already(tail, at_start, LINES) == expected


async def test_a_send_the_file_already_ends_with_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    notifier = JsonlNotifier("archive", path)
    alerts = [make_alert(f"a{n}") for n in range(1, 4)]
    await notifier.send_many(alerts[:2])
    await notifier.send_many(alerts)  # the first two again (a batch not recorded before a crash), and a3
    await notifier.send(alerts[2])  # a3 again, alone
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert ids == ["a1", "a2", "a3"]
    # Sent again later, after another alert, it is a new line: only a repeat right after itself is skipped.
    await notifier.send(make_alert("a4"))
    await notifier.send(alerts[0])
    ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert ids == ["a1", "a2", "a3", "a4", "a1"]
