"""Commands that run against a configured service: `once`, `outbox ...`, `test-destination`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TextIO

from rarewatch import startup_gc
from rarewatch.delivery.payload import test_alert
from rarewatch.durations import format_duration
from rarewatch.errors import DeliveryError, StoreError
from rarewatch.models import DeliveryStatus
from rarewatch.pipeline import ONCE_CONCURRENCY, SourceRun, run_cycle
from rarewatch.ruleset.cache import RulesetCache, default_cache_dir
from rarewatch.runtime import open_runtime
from rarewatch.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


async def run_once(settings: Settings, out: TextIO, err: TextIO, backfill: timedelta | None = None) -> int:
    """Fetch every source, match, deliver until nothing due is left, then exit 0 (failed sources listed).

    Prints a table per source (see `source_table`), then the counts: deliveries delivered and
    dead-lettered by this run, and every delivery still pending afterwards ("to retry": failed ones
    waiting for their next attempt, and those of destinations that are paused or whose circuit is open).
    With `backfill`, matches published within that span alert even when a first poll would mark them (or
    marked them) seen without an alert. The compiled rule pack comes from the rule cache when it holds
    one of the same files and code (`rarewatch.ruleset.cache`): a run is short, and compiling the pack
    would be a large part of it.
    """
    cache = RulesetCache(default_cache_dir())
    async with open_runtime(settings, stdout=out, rules_cache=cache) as runtime:
        startup_gc.started()
        sources = tuple(replace(p, backfill=backfill) for p in runtime.sources)
        try:
            runs = await run_cycle(runtime.pipeline, sources, force=True, concurrency=ONCE_CONCURRENCY)
            report = await runtime.outbox.drain_due()
            pending = len(
                [
                    d
                    for d in await runtime.store.deliveries(DeliveryStatus.PENDING, limit=10**9)
                    if d.destination in runtime.notifiers
                ]
            )
        except StoreError as exc:
            print(f"rarewatch: store unavailable: {exc}", file=err)
            return EXIT_FAILED
    failed = [r for r in runs if r.status == "error"]
    alerts = sum(len(r.alerts) for r in runs)
    unrouted = sum(len(r.unrouted) for r in runs)
    print(source_table(runs), file=err)
    print(
        f"once: {len(runs)} sources ({len(failed)} failed), {alerts} new alerts, "
        f"{report.delivered} delivered, {pending} to retry, {report.dead} dead",
        file=err,
    )
    for run in failed:
        print(f"  source {run.source}: {run.error}", file=err)
    seen = sum(r.seen for r in runs)
    if seen:
        print(
            f"note: {seen} matching items older than the first poll's initial_lookback "
            f"({format_duration(settings.initial_lookback)} unless a source sets its own) were marked seen "
            "without an alert; `rarewatch once --backfill 7d` alerts on those published in the last 7 days",
            file=err,
        )
    silenced = sum(len(r.silenced) for r in runs)
    if silenced:
        print(
            f"note: {silenced} new alerts were muted by silences: recorded (with silenced_by), not sent; "
            "see `rarewatch silence list`",
            file=err,
        )
    if unrouted:
        print(
            f"warning: {unrouted} new alerts were taken by no route and recorded as unrouted; "
            "see `rarewatch alerts unrouted`, send one with `rarewatch alerts resend ID --to DEST`",
            file=err,
        )
    return EXIT_OK


_COLUMNS = ("fetched", "new", "matched", "seen-without-alert", "unrouted")


def source_table(runs: Sequence[SourceRun]) -> str:
    """One line per source: status, items fetched, new alerts, items that matched a rule, matching items
    a first poll marked seen without an alert (older than `initial_lookback`), new unrouted alerts."""
    width = max([len("source"), *(len(r.source) for r in runs)])
    lines = [f"{'source':<{width}}  {'status':<12}  " + "  ".join(_COLUMNS)]
    for r in runs:
        counts = (r.entries, len(r.alerts), r.matched, r.seen, len(r.unrouted))
        cells = "  ".join(f"{n:>{len(c)}}" for n, c in zip(counts, _COLUMNS, strict=True))
        lines.append(f"{r.source:<{width}}  {r.status:<12}  {cells}")
    return "\n".join(lines)


async def outbox_command(
    settings: Settings, action: str, status: str | None, destination: str | None, out: TextIO
) -> int:
    """`outbox list|retry|purge`: look at deliveries, make dead ones due again, delete old records."""
    async with open_runtime(settings, stdout=out) as runtime:
        store, now = runtime.store, runtime.clock.now()
        if action == "list":
            wanted = DeliveryStatus(status) if status else None
            rows = await store.deliveries(wanted, destination)
            for d in rows:
                error = f"  last error: {d.last_error}" if d.last_error else ""
                print(
                    f"{d.status:<9} {d.destination:<16} {d.alert_id}  attempts={d.attempts} "
                    f"next={d.next_attempt.isoformat(timespec='seconds')}{error}",
                    file=out,
                )
            print(f"{len(rows)} deliveries", file=out)
        elif action == "retry":
            count = await store.retry(now, destination)
            print(f"{count} deliveries due again now", file=out)
        else:
            if status is None:
                print("rarewatch: outbox purge needs --status (pending, delivered or dead)", file=sys.stderr)
                return EXIT_USAGE
            count = await store.purge(DeliveryStatus(status), destination)
            print(f"{count} {status} deliveries purged", file=out)
    return EXIT_OK


async def test_destination(settings: Settings, name: str, out: TextIO) -> int:
    """Send a clearly marked test alert straight to one destination and report the exact outcome."""
    async with open_runtime(settings, stdout=out) as runtime:
        notifier = runtime.notifiers.get(name)
        if notifier is None:
            known = ", ".join(sorted(runtime.notifiers)) or "none"
            print(f"rarewatch: no destination named {name!r} (configured: {known})", file=sys.stderr)
            return EXIT_USAGE
        try:
            await notifier.send(test_alert(runtime.clock.now()))
        except DeliveryError as exc:
            kind = "retryable" if exc.retryable else "permanent"
            print(f"test alert to {name} FAILED ({kind}): {exc}", file=out)
            return EXIT_FAILED
    print(f"test alert delivered to {name}", file=out)
    return EXIT_OK
