"""Backtest: replay the items the store kept through another rule pack and say what would change.

Pure: `replay(seen, ruleset, history)` compares, item by item, the rules that fired when the item was
fetched (recorded with it, under the pack that judged it then) with the rules the new pack fires, and
tells which alerts the new pack would ADD (it fires, nothing fired before), which it would REMOVE (nothing
fires, something did before) and which items keep alerting with other rules (CHANGE). `history` is the
store's alert history for those items (an alert's id is its item's id), so a removal says whether the
alert was actually recorded, and with which terms.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rarewatch.models import Alert, Match, SeenItem
from rarewatch.ruleset import Ruleset


class Change(enum.StrEnum):
    """What the new pack would do to one item's alert."""

    ADD = "add"
    REMOVE = "remove"
    CHANGE = "change"


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One rule that would newly fire (`added`) or no longer fire on an item, with its terms (for a
    removed rule: the terms its recorded alert carried, empty when no alert was recorded)."""

    rule: str
    added: bool
    category: str = ""
    severity: str = ""
    terms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "category": self.category,
            "severity": self.severity,
            "terms": list(self.terms),
        }


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One item the new pack judges differently."""

    change: Change
    seen: SeenItem
    rules: tuple[RuleChange, ...]
    alert: Alert | None  # the alert recorded for this item, if any

    def to_dict(self) -> dict[str, Any]:
        item = self.seen.item
        return {
            "change": self.change.value,
            "id": item.id,
            "title": item.title,
            "link": item.link,
            "source": item.source,
            "published": item.published.isoformat(),
            "fetched": self.seen.fetched.isoformat(),
            "judged_by": self.seen.rules_version,
            "rules_before": list(self.seen.rules),
            "added": [r.to_dict() for r in self.rules if r.added],
            "removed": [r.to_dict() for r in self.rules if not r.added],
            "alerted": self.alert is not None,
            "alert_kind": self.alert.kind.value if self.alert is not None else None,
            "silenced_by": (self.alert.silenced_by or None) if self.alert is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """A backtest's outcome: the changes (adds, then removes, then changes; newest items first within
    each), how many items were replayed and left unchanged, and which packs had judged them."""

    rules_version: str
    items: int
    changes: tuple[ItemChange, ...]
    judged_by: tuple[tuple[str, int], ...]

    def of(self, change: Change) -> list[ItemChange]:
        return [c for c in self.changes if c.change is change]

    @property
    def unchanged(self) -> int:
        return self.items - len(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "items": self.items,
            "judged_by": dict(self.judged_by),
            "add": [c.to_dict() for c in self.of(Change.ADD)],
            "remove": [c.to_dict() for c in self.of(Change.REMOVE)],
            "change": [c.to_dict() for c in self.of(Change.CHANGE)],
            "unchanged": self.unchanged,
        }


def replay(seen: Sequence[SeenItem], ruleset: Ruleset, history: Mapping[str, Alert]) -> Report:
    """Match every kept item with `ruleset` and compare with the rules that fired when it was fetched."""
    changes = [c for s in seen if (c := _compare(s, ruleset.match(s.item), history.get(s.item.id)))]
    order = {Change.ADD: 0, Change.REMOVE: 1, Change.CHANGE: 2}
    changes.sort(key=lambda c: order[c.change])  # stable: newest first within each kind
    judged = Counter(s.rules_version for s in seen)
    return Report(ruleset.version, len(seen), tuple(changes), tuple(sorted(judged.items())))


def _compare(seen: SeenItem, now: Sequence[Match], alert: Alert | None) -> ItemChange | None:
    """How `now` (the new pack's matches) differs from the rules recorded with `seen`; None: no change."""
    before, after = set(seen.rules), {m.rule for m in now}
    if before == after:
        return None
    added = tuple(_added(m) for m in now if m.rule not in before)
    recorded = {m.rule: m for m in alert.matches} if alert is not None else {}
    removed = tuple(_removed(rule, recorded.get(rule)) for rule in seen.rules if rule not in after)
    change = Change.ADD if not before else Change.REMOVE if not after else Change.CHANGE
    return ItemChange(change, seen, added + removed, alert)


def _added(match: Match) -> RuleChange:
    return RuleChange(match.rule, True, match.category, match.severity.label, match.terms)


def _removed(rule: str, recorded: Match | None) -> RuleChange:
    if recorded is None:
        return RuleChange(rule, False)
    return RuleChange(rule, False, recorded.category, recorded.severity.label, recorded.terms)


def alert_candidates(seen: Sequence[SeenItem]) -> list[str]:
    """The ids of the items whose alert history a backtest needs: those that fired a rule when fetched."""
    return [s.item.id for s in seen if s.rules]
