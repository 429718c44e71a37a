"""Score a classifier against a labelled, held-out evaluation set.

The set (`tests/data/labelled.jsonl`) holds one JSON object per line::

    {"id": "en-001", "title": "...", "summary": "...", "lang": "en",
     "labels": ["export-licensing"], "also": ["trade-restrictions"], "trap": "..."}

`labels` are the categories an item MUST trigger (empty for a negative); `also` are categories that are
acceptable but not required; `trap` (negatives only, optional) names the trap family the item exercises
and `note` is a free comment. The scorer ignores `trap` and `note`.

Labelling conventions used by the set:

* an alert needs a subject (a listed material or the sector) and an action on it, in the same clause;
* hedged or speculative items ("could", "may", "analysts warn", "weighs", 或将, 可能) are negatives;
* negated or denied items ("denies any ban", 不存在断供, 辟谣) are negatives;
* announced decisions with a later effective date are positives;
* lifting or suspending a ban is `trade-restrictions`, suspending licence requirements is
  `export-licensing` (each with the other in `also`);
* mining licences, trade statistics, ordinary price moves and laboratory research are negatives.

Scoring, per category C: a true positive when C is in `labels` and predicted; a false negative when C is
in `labels` and not predicted; a false positive when C is predicted and in neither `labels` nor `also`.
A predicted C that is only in `also` counts as neither. A negative "alerts" when it has any predicted
category outside its `also`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATEGORIES: tuple[str, ...] = (
    "export-licensing",
    "personnel-controls",
    "prosecution",
    "trade-restrictions",
    "supply-disruption",
)
"""The fixed category names, in report order."""

_REQUIRED_KEYS = frozenset({"id", "title", "summary", "labels"})
_OPTIONAL_KEYS = frozenset({"lang", "also", "trap", "note"})
_ERROR_LIMIT = 50


@dataclass(frozen=True)
class LabelledItem:
    """One labelled news item: what it says and which categories it must (or may) trigger."""

    id: str
    title: str
    summary: str
    lang: str | None
    labels: frozenset[str]
    also: frozenset[str]
    trap: str | None = None

    @property
    def is_negative(self) -> bool:
        """True when the item must not trigger any category."""
        return not self.labels


@dataclass(frozen=True)
class CategoryScore:
    """Counts and derived rates for one category."""

    category: str
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, category: str, tp: int, fp: int, fn: int) -> CategoryScore:
        """Build a score; precision/recall are 1.0 when their denominator is zero."""
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(category, tp, fp, fn, precision, recall, f1)


@dataclass(frozen=True)
class ItemError:
    """One item the predictor got wrong: the categories it missed and those it raised wrongly."""

    id: str
    expected: frozenset[str]
    predicted: frozenset[str]
    missing: frozenset[str]
    unexpected: frozenset[str]


@dataclass(frozen=True)
class EvalReport:
    """Per-category scores, the negative-item alert count and the list of wrong items."""

    scores: tuple[CategoryScore, ...]
    negatives: int
    negatives_alerting: int
    errors: tuple[ItemError, ...]

    @property
    def negative_alert_rate(self) -> float:
        """Share of negative items that raised an alert (0.0 when there are no negatives)."""
        return self.negatives_alerting / self.negatives if self.negatives else 0.0

    @property
    def micro(self) -> CategoryScore:
        """Scores pooled over all categories (micro-average), labelled `all`."""
        tp = sum(s.tp for s in self.scores)
        fp = sum(s.fp for s in self.scores)
        fn = sum(s.fn for s in self.scores)
        return CategoryScore.from_counts("all", tp, fp, fn)

    def score(self, category: str) -> CategoryScore:
        """The score of one category; KeyError when the report has none for it."""
        for s in self.scores:
            if s.category == category:
                return s
        raise KeyError(category)


Predictor = Callable[[LabelledItem], AbstractSet[str]]
"""A classifier under test: returns the categories predicted for an item."""


# --------------------------------------------------------------------------- loading


def load_labelled(path: Path) -> list[LabelledItem]:
    """Read a JSONL evaluation set; raise ValueError naming `file:line` on any bad line.

    Blank lines are skipped. Ids must be unique and categories must be among `CATEGORIES`.
    """
    items: list[LabelledItem] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                item = _parse_line(line)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if item.id in seen:
                raise ValueError(f"{where}: duplicate id {item.id!r} (first on line {seen[item.id]})")
            seen[item.id] = lineno
            items.append(item)
    return items


def _parse_line(line: str) -> LabelledItem:
    """Parse and validate one JSONL line."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    _check_keys(raw)
    labels = _categories(raw, "labels")
    also = _categories(raw, "also")
    if labels & also:
        raise ValueError(f"categories in both labels and also: {sorted(labels & also)}")
    return LabelledItem(
        id=_text(raw, "id"),
        title=_text(raw, "title"),
        summary=_text(raw, "summary", allow_empty=True),
        lang=_optional_text(raw, "lang"),
        labels=labels,
        also=also,
        trap=_optional_text(raw, "trap"),
    )


def _check_keys(raw: dict[str, Any]) -> None:
    """Reject missing required keys and unknown keys (a typo such as `lables` must not pass silently)."""
    missing = _REQUIRED_KEYS - raw.keys()
    if missing:
        raise ValueError(f"missing field(s): {', '.join(sorted(missing))}")
    unknown = raw.keys() - _REQUIRED_KEYS - _OPTIONAL_KEYS
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")


def _text(raw: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    """A required string field."""
    value = raw[key]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ValueError(f"field {key!r} must be a non-empty string")
    return value


def _optional_text(raw: dict[str, Any], key: str) -> str | None:
    """An optional string field (absent or null gives None)."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {key!r} must be a non-empty string or null")
    return value


def _categories(raw: dict[str, Any], key: str) -> frozenset[str]:
    """A list of known category names (absent means empty)."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {key!r} must be a list of category names")
    unknown = sorted(set(value) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"unknown category {unknown[0]!r} in {key!r} (known: {', '.join(CATEGORIES)})")
    return frozenset(value)


# --------------------------------------------------------------------------- scoring


def evaluate(items: Sequence[LabelledItem], predict: Predictor) -> EvalReport:
    """Run `predict` on every item and score the predictions against the labels."""
    counts: dict[str, list[int]] = {c: [0, 0, 0] for c in CATEGORIES}
    errors: list[ItemError] = []
    negatives = negatives_alerting = 0
    for item in items:
        predicted = frozenset(predict(item))
        _count(counts, item, predicted)
        error = _item_error(item, predicted)
        if error is not None:
            errors.append(error)
        if item.is_negative:
            negatives += 1
            negatives_alerting += bool(predicted - item.also)
    scores = tuple(CategoryScore.from_counts(c, *counts[c]) for c in _ordered(counts))
    return EvalReport(scores, negatives, negatives_alerting, tuple(errors))


def _count(counts: dict[str, list[int]], item: LabelledItem, predicted: frozenset[str]) -> None:
    """Add one item's TP/FP/FN to `counts` ([tp, fp, fn] per category; new categories are added)."""
    for category in item.labels | predicted:
        tally = counts.setdefault(category, [0, 0, 0])
        if category in item.labels:
            tally[0 if category in predicted else 2] += 1
        elif category not in item.also:
            tally[1] += 1


def _item_error(item: LabelledItem, predicted: frozenset[str]) -> ItemError | None:
    """The item's misses and false alarms, or None when the prediction is acceptable."""
    missing = item.labels - predicted
    unexpected = predicted - item.labels - item.also
    if not missing and not unexpected:
        return None
    return ItemError(item.id, item.labels, predicted, missing, unexpected)


def _ordered(categories: Iterable[str]) -> list[str]:
    """Known categories in their fixed order, then any other predicted category alphabetically."""
    extra = sorted(set(categories) - set(CATEGORIES))
    return [*CATEGORIES, *extra]


# --------------------------------------------------------------------------- report


def format_report(report: EvalReport) -> str:
    """Render the report: a score table, the negatives line, then up to 50 errors."""
    lines = _table(report)
    lines.append("")
    lines.append(
        f"negatives: {report.negatives}, alerting: {report.negatives_alerting} "
        f"({report.negative_alert_rate:.1%})"
    )
    lines.extend(_error_lines(report.errors))
    return "\n".join(lines)


def _table(report: EvalReport) -> list[str]:
    """The per-category table with a pooled `all` row."""
    width = max(len("category"), *(len(s.category) for s in report.scores))
    header = f"{'category':<{width}}  {'tp':>4} {'fp':>4} {'fn':>4}  {'precision':>9} {'recall':>6} {'F1':>5}"
    rows = [header, "-" * len(header)]
    rows.extend(_row(s, width) for s in report.scores)
    rows.append("-" * len(header))
    rows.append(_row(report.micro, width))
    return rows


def _row(score: CategoryScore, width: int) -> str:
    """One table row."""
    return (
        f"{score.category:<{width}}  {score.tp:>4} {score.fp:>4} {score.fn:>4}  "
        f"{score.precision:>9.3f} {score.recall:>6.3f} {score.f1:>5.3f}"
    )


def _error_lines(errors: Sequence[ItemError]) -> list[str]:
    """The error list, capped at 50 entries."""
    if not errors:
        return ["errors: none"]
    lines = [f"errors: {len(errors)}"]
    lines.extend(_error_line(e) for e in errors[:_ERROR_LIMIT])
    if len(errors) > _ERROR_LIMIT:
        lines.append(f"  ... and {len(errors) - _ERROR_LIMIT} more")
    return lines


def _error_line(error: ItemError) -> str:
    """One error: what was missed, what was raised wrongly, and the full expected/predicted sets."""
    parts = []
    if error.missing:
        parts.append(f"missing {_names(error.missing)}")
    if error.unexpected:
        parts.append(f"unexpected {_names(error.unexpected)}")
    sets = f"expected {_names(error.expected)}, got {_names(error.predicted)}"
    return f"  {error.id}: {'; '.join(parts)} ({sets})"


def _names(categories: frozenset[str]) -> str:
    """Categories as a stable, compact string; `-` when empty."""
    return ",".join(sorted(categories)) or "-"
