"""`rarewatch feedback export [--since 30d] [-o FILE]`: readers' votes as a labelled JSON Lines set in the
`eval` format (mapping: `rarewatch.feedback`), so `rarewatch eval FILE` scores a rule pack on them and
lists the rules behind the "not relevant" votes.

Opens the store on its own (no HTTP session, no notifiers, no identity check): it only reads. The records
go to `-o FILE` (written whole, then moved into place) or standard output; what was written and skipped
goes to standard error, so the output stays a clean data file.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from rarewatch.clock import Clock, SystemClock
from rarewatch.durations import format_duration
from rarewatch.errors import ConfigError
from rarewatch.feedback import ExportStats, export, find_alert, jsonl
from rarewatch.models import Alert
from rarewatch.runtime import item_retention
from rarewatch.settings import Settings
from rarewatch.store import open_store

EXIT_OK = 0


async def feedback_export(
    settings: Settings,
    since: timedelta,
    output: Path | None,
    out: TextIO,
    err: TextIO,
    *,
    clock: Clock | None = None,
) -> int:
    """Write the votes cast within `since` as labelled records to `output` (None: `out`), and say on `err`
    what was written and skipped. `ConfigError` when `output` cannot be written."""
    start = (clock or SystemClock()).now() - since
    store = open_store(settings.store_url(), items=item_retention(settings))
    await store.open()
    try:
        votes = await store.votes(start)
        alerts: dict[str, Alert] = {}
        for alert_id in dict.fromkeys(v.alert_id for v in votes):
            if (alert := await find_alert(store, alert_id)) is not None:
                alerts[alert_id] = alert
    finally:
        await store.close()
    records, stats = export(votes, alerts)
    text = jsonl(records)
    if output is None:
        out.write(text)
    else:
        _write(output, text)
    print(_summary(stats, format_duration(since), output), file=err)
    return EXIT_OK


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (a temporary file beside it, then renamed)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"-o {path}: cannot write: {exc.strerror}") from None


def _summary(stats: ExportStats, since: str, output: Path | None) -> str:
    where = f" to {output}" if output is not None else ""
    skipped = (
        f"skipped: {stats.ties} tied, {stats.forgotten} alerts no longer in the store, "
        f"{stats.operational} operational"
    )
    return (
        f"{stats.written} alerts labelled{where} from {stats.votes} votes in the last {since}: "
        f"{stats.relevant} relevant (labels: their categories), {stats.not_relevant} not relevant "
        f"(negatives); {skipped}"
    )
