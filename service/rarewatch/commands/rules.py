"""`rarewatch rules check` and `rarewatch match`: the rule pack from the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from rarewatch.errors import ConfigError, RuleError
from rarewatch.normalize import plain_text
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.ruleset.examples import run_examples

_TEXT_FIELDS = ("title", "summary", "content")


def load_checked(paths: Sequence[Path], check: Callable[[Ruleset], None] | None) -> Ruleset:
    """The rules under `paths`, passed through `check` (a configuration's route check) when given.
    Raises `RuleError` or `ConfigError`."""
    ruleset = load_ruleset(paths)
    if check is not None:
        check(ruleset)
    return ruleset


def rules_check(
    paths: Sequence[Path],
    out: TextIO,
    err: TextIO | None = None,
    check: Callable[[Ruleset], None] | None = None,
) -> int:
    """Validate the rules under `paths` (and, with `check`, a configuration's routes against them) and run
    their examples.

    Prints each problem as `file:line [rule id]: message` and a summary line. Returns 2 when the rules
    do not load or a route names nothing (the error on `err`, default standard error), 1 when an example
    fails, 0 when everything passes.
    """
    try:
        ruleset = load_checked(paths, check)
    except (RuleError, ConfigError) as exc:
        print(f"rarewatch: {exc}", file=err or sys.stderr)
        return 2
    examples = failures = 0
    for result in run_examples(ruleset):
        examples += 1
        if not result.passed:
            failures += 1
            if result.kind == "match":
                message = f"match example did not fire: {result.text!r}"
            else:
                message = f"no_match example fired on {list(result.terms)}: {result.text!r}"
            print(RuleError(message, file=result.file, line=result.line, rule_id=result.rule_id), file=out)
    print(
        f"{len(ruleset.rules)} rules, {examples} examples, {failures} failures (rule pack {ruleset.version})",
        file=out,
    )
    return 1 if failures else 0


def match_jsonl(
    paths: Sequence[Path],
    explain: bool,
    infile: TextIO,
    out: TextIO,
    check: Callable[[Ruleset], None] | None = None,
) -> int:
    """Match JSON Lines items from `infile` against the rules under `paths`; one JSON line out per line in.

    Each input object may have `id`, `title`, `summary`, `content`, `link`, `source`, `lang`. Output:
    `{"id": ..., "matches": [{"rule", "category", "severity"}]}` (plus `"terms"` with `explain`), the id
    being the line number when the input has none. A line that is not a JSON object gets an `"error"`
    and no matches, and the run goes on; blank lines at the end of the input are ignored. Returns 2
    (message on stderr) when the rules are invalid, else 0.
    """
    try:
        ruleset = load_checked(paths, check)
    except (RuleError, ConfigError) as exc:
        print(f"rarewatch: {exc}", file=sys.stderr)
        return 2
    blanks: list[int] = []  # blank lines are reported only once a later line shows they are not trailing
    for number, line in enumerate(infile, start=1):
        if not line.strip():
            blanks.append(number)
            continue
        for blank in blanks:
            _write(out, {"id": blank, "matches": [], "error": "empty line"})
        blanks.clear()
        _write(out, _match_line(ruleset, line, number, explain))
    return 0


def _write(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()  # a consumer reading the pipe sees each result as soon as it exists


def _match_line(ruleset: Ruleset, line: str, number: int, explain: bool) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"id": number, "matches": [], "error": f"invalid JSON: {exc.msg} (column {exc.colno})"}
    if not isinstance(data, dict):
        return {"id": number, "matches": [], "error": "not a JSON object"}
    item_id = data.get("id")
    item_id = number if item_id is None else item_id
    bad = [k for k in (*_TEXT_FIELDS, "source", "lang") if not isinstance(data.get(k, ""), str | None)]
    if bad:
        return {"id": item_id, "matches": [], "error": f"not a string: {', '.join(bad)}"}
    fields = {k: plain_text(data.get(k) or "") for k in _TEXT_FIELDS}
    matches = ruleset.match_fields(fields, source=data.get("source"), lang=data.get("lang"))
    records = []
    for m in matches:
        record: dict[str, Any] = {"rule": m.rule, "category": m.category, "severity": m.severity.label}
        if explain:
            record["terms"] = list(m.terms)
        records.append(record)
    if not explain:
        return {"id": item_id, "matches": records}
    return {"id": item_id, "matches": records, "why_not": ruleset.why_not(fields, source=data.get("source"))}
