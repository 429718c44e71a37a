"""`rarewatch eval`: score a rule pack against a labelled JSONL set (see `rarewatch.evaluation`).

Prints precision, recall and F1 per category, the share of negatives that alert, the items the pack
got wrong, the confusion table between categories and the rules that fired outside the labels (on a
set exported from readers' votes: the rules behind the "not relevant" votes); with `by` (`lang`,
`script`, `origin`), the same scores and table again for each value of that item field. It reports and
does not judge: the exit status is 0 whatever the scores (2 when the rules or the data cannot be loaded).
`tests/unit/test_rule_pack_quality.py` holds the thresholds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from rarewatch.errors import ConfigError, RuleError
from rarewatch.evaluation import (
    EvalReport,
    LabelledItem,
    evaluate,
    evaluate_by,
    format_report,
    format_report_by,
    format_rule_false_positives,
    load_labelled,
    rule_false_positives,
)
from rarewatch.models import Match
from rarewatch.normalize import plain_text
from rarewatch.ruleset import Ruleset, load_ruleset


def score_pack(ruleset: Ruleset, items: Sequence[LabelledItem]) -> EvalReport:
    """The evaluation report of `ruleset` on `items`."""
    return evaluate(items, predictor(ruleset))


def _matches(ruleset: Ruleset, item: LabelledItem) -> list[Match]:
    """What `ruleset` fires on `item`, its title and summary matched as the service matches an item's
    plain texts (as `rarewatch match` does)."""
    fields = {"title": plain_text(item.title), "summary": plain_text(item.summary)}
    return ruleset.match_fields(fields, lang=item.lang)


def predictor(ruleset: Ruleset) -> Callable[[LabelledItem], set[str]]:
    """The categories `ruleset` fires on a labelled item, matched as `rarewatch eval` matches it."""

    def predict(item: LabelledItem) -> set[str]:
        return {m.category for m in _matches(ruleset, item)}

    return predict


def _firer(ruleset: Ruleset) -> Callable[[LabelledItem], list[tuple[str, str]]]:
    def fire(item: LabelledItem) -> list[tuple[str, str]]:
        return [(m.rule, m.category) for m in _matches(ruleset, item)]

    return fire


def evaluate_command(
    rule_paths: Sequence[Path],
    data: Path,
    out: TextIO,
    by: str | None = None,
    err: TextIO | None = None,
    check: Callable[[Ruleset], None] | None = None,
) -> int:
    """Load the rules under `rule_paths` and the labelled set `data`, print the report to `out`;
    with `by`, also split by that item field (one of `evaluation.BY_FIELDS`).

    Returns 0 once the report is printed, 2 (message on `err`, default standard error) when the rules or
    the data are invalid.
    """
    err = err or sys.stderr
    try:
        ruleset = load_ruleset(rule_paths)
        if check is not None:
            check(ruleset)  # a configuration's routes against the rules (`--config`)
    except (RuleError, ConfigError) as exc:
        print(f"rarewatch: {exc}", file=err)
        return 2
    try:
        items = load_labelled(data)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError):
            problem: object = f"cannot read {data}: {exc.strerror}"
        elif isinstance(exc, UnicodeDecodeError):
            problem = f"cannot read {data}: not UTF-8 text"
        else:
            problem = exc
        print(f"rarewatch: {problem}", file=err)
        return 2
    print(f"rule pack {ruleset.version} on {data} ({len(items)} items)", file=out)
    if by is None:
        print(format_report(score_pack(ruleset, items)), file=out)
    else:
        overall, by_value = evaluate_by(items, predictor(ruleset), by)
        print(format_report_by(overall, by_value, by), file=out)
    print("", file=out)
    print("\n".join(format_rule_false_positives(rule_false_positives(items, _firer(ruleset)))), file=out)
    return 0
