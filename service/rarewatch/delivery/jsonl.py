"""The jsonl destination: append each alert's webhook payload as one line of a JSON Lines file.

Each write opens the file in append mode, writes one whole line, flushes, fsyncs and closes it. Opening
per write (rather than keeping a handle) means log rotation (`mv` + a new file) needs no signal, and
fsync means a line reported as delivered survives a crash. The outbox hands it the due alerts of a pass
together (`send_many`): their lines go in one write and one fsync, written whole or not at all (a failed
write is cut back off the file), and are recorded as delivered together after the fsync.

A crash between the fsync and that record makes the outbox send the same alerts again after the restart.
So that they are still written once, a write first looks at the end of the file: the leading lines of a
send that the file already ends with, byte for byte and starting on a line of their own, were written by
the attempt that was not recorded, and are skipped (an alert's line carries its id, so two different
alerts never share a line; only the same alert sent again right after itself is skipped).
The blocking file work runs in a worker thread so the event loop is never stalled by a slow disk.

Lines are always valid UTF-8: a lone surrogate in feed text (which UTF-8 cannot encode) is written as
U+FFFD, the replacement character, rather than failing the write on every attempt.

If an earlier write was cut short (disk full, crash), the file may end without a newline; the next write
starts a fresh line first, so one torn line never corrupts the next record.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Literal

from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import DestinationConfigBase, NotifierDeps
from rarewatch.delivery.payload import alert_payload
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert


class JsonlNotifier:
    """Appends alert payloads to a JSON Lines file. Its folder must exist (the configuration check refuses
    a missing one; a folder removed later fails each write, retryably)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        # Serialises writes from concurrent callers; the outbox already sends one at a time per destination.
        self._lock = asyncio.Lock()

    async def send(self, alert: Alert) -> None:
        """Append the payload line (unless the file already ends with it: a send not recorded before a
        crash); an OSError becomes a retryable DeliveryError."""
        await self.send_many([alert])

    async def send_many(self, alerts: Sequence[Alert]) -> None:
        """Append the payload lines of `alerts`, in order, with one write and one fsync (the leading lines
        the file already ends with are skipped: a batch not recorded before a crash); on an OSError the
        file is cut back to its length before the write (nothing of the batch is left) and a retryable
        DeliveryError is raised."""
        data = [utf8(json.dumps(alert_payload(a), ensure_ascii=False) + "\n") for a in alerts]
        async with self._lock:
            try:
                await asyncio.to_thread(_append_lines, self.path, data)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise DeliveryError(f"cannot write {self.path}: {reason}", retryable=True) from exc

    async def close(self) -> None:
        """Nothing to release: no handle is kept between writes."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8(text: str) -> bytes:
    """`text` as valid UTF-8: a lone surrogate (`\\ud800` in JSON, `&#55296;` in XML) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def written_already(tail: bytes, at_start: bool, lines: Sequence[bytes]) -> int:
    """How many leading `lines` the file already ends with: `lines[:k]` where the file's last line is
    `lines[k - 1]` and the bytes before it are the lines before that, the match beginning a line of its own.
    `tail` is the file's last bytes (the lines' total length plus one at least, or the whole file, then
    `at_start`). A file whose last line is none of `lines` costs one search."""
    last = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    if last not in lines:
        return 0
    count = lines.index(last) + 1
    size = sum(len(line) for line in lines[:count])
    if size > len(tail) or tail[len(tail) - size :] != b"".join(lines[:count]):
        return 0
    if size == len(tail):
        return count if at_start else 0
    return count if tail[len(tail) - size - 1] == ord("\n") else 0


def _append_lines(path: Path, lines: Sequence[bytes]) -> None:
    """Append `lines` (each ending with a newline), written whole or not at all: on an OSError once the
    file is open, it is cut back to the length it had (best effort). Unbuffered, so that nothing of a
    failed write is left to be flushed after the cut. The leading lines the file already ends with are
    skipped (`written_already`)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            torn = False
            if end > 0:
                want = min(end, sum(len(line) for line in lines) + 1)
                tail = os.pread(fd, want, end - want)
                lines = lines[written_already(tail, want == end, lines) :]
                torn = not tail.endswith(b"\n")
            if not lines:
                return
            data = b"".join(lines)
            if torn:
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with suppress(OSError):
                os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


class JsonlDestination(DestinationConfigBase):
    """Append the webhook payload of each alert to a JSON Lines file."""

    type: Literal["jsonl"]
    path: Path


def build(config: JsonlDestination, deps: NotifierDeps) -> Notifier:
    """The `JsonlNotifier` of a configured `jsonl` destination (a relative path: the config file's folder)."""
    return JsonlNotifier(config.name, deps.resolve_path(config.path))
