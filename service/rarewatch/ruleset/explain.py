"""Why a rule did not fire on an item (`rarewatch match --explain`: `why_not`).

Only the rules the item came close to are explained: those woken by a term found in it (and rules with
no anchor term). For each: the `source` restriction that excluded it, the groups of its `match` that did
not hold, the veto (a `none` group) that fired, and the terms found but not counted (an exclusion, a
negation). Pure and synchronous, as the matcher; slower than matching (no gate), so for tools only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rarewatch.ruleset.compile import CompiledRule
from rarewatch.ruleset.nodes import AllOf, AnyOf, Evidence, Near, Node, NoneOf, Regex, Scan, TermSet

_SHOWN_TERMS = 4  # terms of a group shown in its description before "…"


def describe(node: Node) -> str:
    """A short description of a compiled expression node: what it needs."""
    if isinstance(node, TermSet):
        labels = sorted({node.labels[t] for t in node.tids})
        more = "…" if len(labels) > _SHOWN_TERMS else ""
        return "any of [" + ", ".join(labels[:_SHOWN_TERMS]) + more + "]"
    if isinstance(node, Near):
        return f"near({describe(node.left)}, {describe(node.right)}) within {node.within}"
    if isinstance(node, Regex):
        return f"regex /{node.written}/"
    if isinstance(node, AllOf):
        return "all of (" + "; ".join(describe(c) for c in node.children) + ")"
    if isinstance(node, AnyOf):
        return "one of (" + "; ".join(describe(c) for c in node.children) + ")"
    return "none of (" + "; ".join(describe(c) for c in node.children) + ")"


def why_not(
    rules: Sequence[CompiledRule],
    woken: Sequence[int],
    scan: Scan,
    unfiltered: Mapping[int, int],
    source: str | None,
) -> list[dict[str, Any]]:
    """For each rule of `woken` (indexes into `rules`) that does not fire on `scan` (filtered), why not.
    `unfiltered` is the term masks before exclusions and negation were applied."""
    out = []
    for index in woken:
        rule = rules[index]
        if rule.sources is not None and source not in rule.sources:
            out.append(_record(rule, failed=[f"source: only {', '.join(sorted(rule.sources))}"]))
            continue
        if rule.expr.test(scan, rule.fields):
            continue
        parts = _closest_parts(rule.expr, scan, rule.fields)
        failed, vetoes = [], []
        for part in parts:
            if part.test(scan, rule.fields):
                continue
            if isinstance(part, NoneOf):
                vetoes.extend(_vetoes(part, scan, rule.fields))
            else:
                failed.append(describe(part))
        terms = rule.expr.term_ids()
        discounted = sorted(
            {
                _label(rule.expr, t)
                for t in unfiltered
                if t in terms and not (scan.masks.get(t, 0) & rule.fields)
            }
            - {""}
        )
        out.append(_record(rule, failed=failed, vetoed_by=vetoes, discounted=discounted))
    return out


def _closest_parts(expr: Node, scan: Scan, fields: int) -> Sequence[Node]:
    """The groups to explain: those of an `all`; of an `any` of alternatives, those of the alternative
    that came closest (fewest groups failing), as the one the author most likely meant."""
    if isinstance(expr, AnyOf):
        branches = [_closest_parts(c, scan, fields) for c in expr.children]
        return min(branches, key=lambda parts: sum(not p.test(scan, fields) for p in parts))
    if not isinstance(expr, AllOf):
        return (expr,)
    parts: list[Node] = []
    for child in expr.children:  # a failing `any` inside an `all`: its closest alternative's groups
        failing_any = isinstance(child, AnyOf) and not child.test(scan, fields)
        parts.extend(_closest_parts(child, scan, fields) if failing_any else (child,))
    return parts


def _record(rule: CompiledRule, **reasons: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {"rule": rule.rule.id, "category": rule.rule.category}
    record.update({k: v for k, v in reasons.items() if v})
    return record


def _vetoes(group: NoneOf, scan: Scan, fields: int) -> list[str]:
    """The terms (or regex matches) of a `none` group's children that held: what vetoed the rule."""
    found: list[Evidence] = []
    for child in group.children:
        if child.test(scan, fields):
            child.evidence(scan, fields, found)
    return list(dict.fromkeys(e.label for e in sorted(found))) or [describe(group)]


def _label(node: Node, tid: int) -> str:
    """The label of term `tid` as some term set under `node` knows it."""
    if isinstance(node, TermSet):
        return node.labels[tid] if tid in node.tids else ""
    if isinstance(node, Near):
        return _label(node.left, tid) or _label(node.right, tid)
    if isinstance(node, AllOf | AnyOf | NoneOf):
        for child in node.children:
            if label := _label(child, tid):
                return label
    return ""
