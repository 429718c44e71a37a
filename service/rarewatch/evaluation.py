"""Score a classifier against a labelled, held-out evaluation set.

The set (`tests/data/labelled.jsonl`) holds one JSON object per line::

    {"id": "en-001", "title": "...", "summary": "...", "lang": "en",
     "labels": ["export-licensing"], "also": ["trade-restrictions"], "trap": "..."}

`labels` are the categories an item MUST trigger (empty for a negative); `also` are categories that are
acceptable but not required; `trap` (negatives only, optional) names the trap family the item exercises
and `note` is a free comment. The scorer ignores `trap` and `note`. Optional descriptive keys, by which
a report can be split (`--by`): `source_url` (where the story, or the story it imitates, was read),
`origin` (`"synthetic"` or `"real-style"`) and `script` (`"hans"` or `"hant"`, for Chinese items).

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

Per rule (`rule_false_positives`): the items each rule fired on with a category in neither `labels` nor
`also`, negatives first. On a set exported from readers' votes (`rarewatch feedback export`) these are
the rules behind the "not relevant" votes.

The confusion table counts items by required category (rows, `(negative)` for an item without labels)
and predicted category (columns, `(none)` when nothing is predicted). An item counts once in every
cell of its required x predicted pairs, so an export-licensing item predicted trade-restrictions shows
in the row export-licensing, column trade-restrictions, whether or not `also` allows it: the table shows
where the boundaries between categories fall, the scores judge them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rarewatch.categories import RULE_CATEGORIES
from rarewatch.evaluation_fields import BY_FIELDS

CATEGORIES: tuple[str, ...] = RULE_CATEGORIES
"""The fixed category names, in report order (the rule categories: `rarewatch.categories`)."""

_REQUIRED_KEYS = frozenset({"id", "title", "summary", "labels"})
_OPTIONAL_KEYS = frozenset({"lang", "also", "trap", "note", "source_url", "origin", "script"})
_CHOICES = {"origin": ("synthetic", "real-style"), "script": ("hans", "hant")}
_ERROR_LIMIT = 50

NEGATIVE = "(negative)"
"""The confusion table's row of items that require no category."""
NOTHING = "(none)"
"""The confusion table's column of items for which nothing was predicted; also the group of items
that lack the field a report is split by."""


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
    source_url: str | None = None
    origin: str | None = None  # "synthetic" | "real-style"
    script: str | None = None  # "hans" | "hant"

    @property
    def is_negative(self) -> bool:
        """True when the item must not trigger any category."""
        return not self.labels

    def group(self, field: str) -> str:
        """The item's value of a `BY_FIELDS` field, `(none)` when it has none."""
        if field not in BY_FIELDS:
            raise ValueError(f"cannot split by {field!r} (one of {', '.join(BY_FIELDS)})")
        value: str | None = getattr(self, field)
        return value or NOTHING


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
class Confusion:
    """Items counted by (required category, predicted category); see the module docstring."""

    rows: tuple[str, ...]  # the categories, then `(negative)`
    columns: tuple[str, ...]  # the categories, then `(none)`
    counts: dict[tuple[str, str], int]

    def count(self, required: str, predicted: str) -> int:
        """How many items require `required` (or are negatives) and were predicted `predicted`."""
        return self.counts.get((required, predicted), 0)


@dataclass(frozen=True)
class EvalReport:
    """Per-category scores, the negative-item alert count, the list of wrong items and the confusion
    table between categories."""

    scores: tuple[CategoryScore, ...]
    negatives: int
    negatives_alerting: int
    errors: tuple[ItemError, ...]
    confusion: Confusion | None = None
    items: int = 0

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
        source_url=_source_url(raw),
        origin=_choice(raw, "origin"),
        script=_choice(raw, "script"),
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


def _choice(raw: dict[str, Any], key: str) -> str | None:
    """An optional field with a fixed set of values (`origin`, `script`)."""
    value = _optional_text(raw, key)
    choices = _CHOICES[key]
    if value is not None and value not in choices:
        raise ValueError(f"field {key!r} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _source_url(raw: dict[str, Any]) -> str | None:
    """The optional `source_url`: an http(s) URL."""
    value = _optional_text(raw, "source_url")
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"field 'source_url' must be an http(s) URL, not {value!r}")
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
    confusion: dict[tuple[str, str], int] = {}
    for item in items:
        predicted = frozenset(predict(item))
        _count(counts, item, predicted)
        _confuse(confusion, item, predicted)
        error = _item_error(item, predicted)
        if error is not None:
            errors.append(error)
        if item.is_negative:
            negatives += 1
            negatives_alerting += bool(predicted - item.also)
    categories = _ordered(counts)
    scores = tuple(CategoryScore.from_counts(c, *counts[c]) for c in categories)
    table = Confusion((*categories, NEGATIVE), (*categories, NOTHING), confusion)
    return EvalReport(scores, negatives, negatives_alerting, tuple(errors), table, len(items))


def evaluate_by(
    items: Sequence[LabelledItem], predict: Predictor, field: str
) -> tuple[EvalReport, dict[str, EvalReport]]:
    """The report of all `items`, and one per value of `field` (one of `BY_FIELDS`; items without
    it form the group `(none)`), in order of the values. `predict` runs once per item."""
    predictions = {id(item): frozenset(predict(item)) for item in items}

    def recall(item: LabelledItem) -> frozenset[str]:
        return predictions[id(item)]

    groups: dict[str, list[LabelledItem]] = {}
    for item in items:
        groups.setdefault(item.group(field), []).append(item)
    by_value = {value: evaluate(groups[value], recall) for value in sorted(groups, key=_group_order)}
    return evaluate(items, recall), by_value


def _group_order(value: str) -> tuple[bool, str]:
    return value == NOTHING, value  # `(none)` last


def _confuse(cells: dict[tuple[str, str], int], item: LabelledItem, predicted: frozenset[str]) -> None:
    """Count `item` in every (required, predicted) cell of the confusion table."""
    for required in item.labels or {NEGATIVE}:
        for category in predicted or {NOTHING}:
            cells[(required, category)] = cells.get((required, category), 0) + 1


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


# --------------------------------------------------------------------------- per rule

RuleFirer = Callable[[LabelledItem], Iterable[tuple[str, str]]]
"""The (rule id, category) of every rule that fires on an item."""
_RULE_IDS_SHOWN = 10


@dataclass(frozen=True)
class RuleFalsePositives:
    """One rule's false positives: the items it fired on with a category they neither require nor allow
    (`items`, negatives first), and how many of those are negatives."""

    rule: str
    category: str
    items: tuple[str, ...]
    negatives: int


def rule_false_positives(items: Sequence[LabelledItem], fire: RuleFirer) -> list[RuleFalsePositives]:
    """Each rule that raised a false positive, most first (then by rule id)."""
    found: dict[tuple[str, str], list[LabelledItem]] = {}
    for item in items:
        for rule, category in dict.fromkeys(fire(item)):
            if category not in item.labels and category not in item.also:
                found.setdefault((rule, category), []).append(item)
    rows = []
    for (rule, category), wrong in found.items():
        ordered = sorted(wrong, key=lambda i: not i.is_negative)  # stable: file order within each group
        negatives = sum(1 for i in wrong if i.is_negative)
        rows.append(RuleFalsePositives(rule, category, tuple(i.id for i in ordered), negatives))
    return sorted(rows, key=lambda r: (-len(r.items), r.rule, r.category))


def format_rule_false_positives(rows: Sequence[RuleFalsePositives]) -> list[str]:
    """The per-rule section of the report: each rule, its count, and the first item ids."""
    if not rows:
        return ["rules firing outside the labels: none"]
    lines = [
        "rules firing outside the labels (false positives; negatives, e.g. 'not relevant' votes, first):"
    ]
    for row in rows:
        shown = ", ".join(row.items[:_RULE_IDS_SHOWN])
        more = f", … {len(row.items) - _RULE_IDS_SHOWN} more" if len(row.items) > _RULE_IDS_SHOWN else ""
        lines.append(
            f"  {row.rule} [{row.category}]: {len(row.items)} ({row.negatives} negative"
            f"{'s' if row.negatives != 1 else ''}): {shown}{more}"
        )
    return lines


# --------------------------------------------------------------------------- report


def format_report(report: EvalReport) -> str:
    """Render the report: a score table, the negatives line, up to 50 errors, then the confusion table."""
    lines = _summary(report)
    lines.extend(_error_lines(report.errors))
    if report.confusion is not None:
        lines.append("")
        lines.extend(format_confusion(report.confusion))
    return "\n".join(lines)


def format_report_by(overall: EvalReport, by_value: dict[str, EvalReport], field: str) -> str:
    """The full report of all items, then per value of `field` its scores, negatives and confusion
    (its errors are in the full report's list)."""
    parts = [format_report(overall)]
    for value, report in by_value.items():
        count = f"{report.items} item{'s' if report.items != 1 else ''}"
        heading = f"== {field} = {value}: {count}, {len(report.errors)} wrong"
        lines = ["", heading, *_summary(report)]
        if report.confusion is not None:
            lines.append("")
            lines.extend(format_confusion(report.confusion))
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _summary(report: EvalReport) -> list[str]:
    lines = _table(report)
    lines.append("")
    lines.append(
        f"negatives: {report.negatives}, alerting: {report.negatives_alerting} "
        f"({report.negative_alert_rate:.1%})"
    )
    return lines


def format_confusion(confusion: Confusion) -> list[str]:
    """The confusion table: required categories down, predicted across (abbreviated, with a legend).
    Cells off the diagonal are the boundary errors; `.` is zero."""
    short = {c: _abbreviation(c) for c in confusion.columns}
    width = max(len(r) for r in confusion.rows)
    cell = max(5, *(len(a) for a in short.values()))
    columns = " ".join(f"{short[c]:>{cell}}" for c in confusion.columns)
    header = f"{'required':<{width}}  {columns}"
    lines = [
        "confusion (items; rows: required category, columns: predicted category):",
        header,
        "-" * len(header),
    ]
    for row in confusion.rows:
        cells = " ".join(f"{confusion.count(row, c) or '.':>{cell}}" for c in confusion.columns)
        lines.append(f"{row:<{width}}  {cells}")
    legend = ", ".join(f"{a} = {c}" for c, a in short.items() if a != c)
    if legend:
        lines.append(f"columns: {legend}")
    return lines


def _abbreviation(category: str) -> str:
    """`export-licensing` -> `expo-lice`: short enough for seven columns on one terminal line."""
    if category.startswith("("):
        return category
    return "-".join(part[:4] for part in category.split("-"))


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
