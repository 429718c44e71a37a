"""`rarewatch backtest --rules PATH [--since 30d] [--json]`: replay the items the store kept through a rule
pack and print the alerts it would add and remove (see `rarewatch.backtest`).

Opens the store on its own (no HTTP session, no notifiers, no identity check): it only reads, and never
alerts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from rarewatch.backtest import Change, ItemChange, Report, alert_candidates, replay
from rarewatch.clock import Clock, SystemClock
from rarewatch.durations import format_duration
from rarewatch.models import Alert
from rarewatch.ruleset import load_ruleset
from rarewatch.runtime import item_retention
from rarewatch.settings import Settings
from rarewatch.store import open_store

EXIT_OK = 0
_TITLE = 100  # characters of a title in the text report


async def backtest(
    settings: Settings,
    rule_paths: Sequence[Path],
    since: timedelta,
    out: TextIO,
    *,
    as_json: bool = False,
    clock: Clock | None = None,
) -> int:
    """Replay the items fetched within `since` through the rules under `rule_paths` and print the
    difference (raises `RuleError` for a bad rule file, before the store is opened)."""
    ruleset = load_ruleset(rule_paths)
    start = (clock or SystemClock()).now() - since
    store = open_store(settings.store_url(), items=item_retention(settings))
    await store.open()
    try:
        seen = await store.seen_items(start)
        history: dict[str, Alert] = {}
        for alert_id in alert_candidates(seen):
            if (alert := await store.get_alert(alert_id)) is not None:
                history[alert_id] = alert
    finally:
        await store.close()
    report = replay(seen, ruleset, history)
    if as_json:
        data = {"since": start.isoformat(), "rules": [str(p) for p in rule_paths], **report.to_dict()}
        print(json.dumps(data, ensure_ascii=False), file=out)
    else:
        _print_report(report, format_duration(since), rule_paths, out)
    return EXIT_OK


def _print_report(report: Report, since: str, rule_paths: Sequence[Path], out: TextIO) -> None:
    packs = ", ".join(f"{version or 'unknown'} ({n})" for version, n in report.judged_by) or "none"
    where = ", ".join(str(p) for p in rule_paths)
    print(f"{report.items} items fetched in the last {since}, judged by rule pack {packs}", file=out)
    print(f"replayed on rule pack {report.rules_version} ({where})", file=out)
    for change in report.changes:
        _print_change(change, out)
    added, removed, changed = (len(report.of(c)) for c in Change)
    print(
        f"{added} alerts added, {removed} removed, {changed} with other rules, {report.unchanged} unchanged",
        file=out,
    )


def _print_change(change: ItemChange, out: TextIO) -> None:
    item = change.seen.item
    if change.alert is not None:
        muted = f", silenced by {change.alert.silenced_by}" if change.alert.silenced_by else ""
        alerted = f"alerted ({change.alert.kind.value}{muted})"
    else:
        alerted = "not alerted" if change.seen.rules else "no alert"
    print(
        f"{change.change.value.upper():<7} {item.id}  {item.source}  {alerted}  {item.title[:_TITLE]}",
        file=out,
    )
    print(f"        {item.link}", file=out)
    for rule in change.rules:
        sign = "+" if rule.added else "-"
        terms = ", ".join(rule.terms) if rule.terms else "(terms not recorded)"
        kind = f" [{rule.category}/{rule.severity}]" if rule.category else ""
        print(f"        {sign} {rule.rule}{kind}: {terms}", file=out)
