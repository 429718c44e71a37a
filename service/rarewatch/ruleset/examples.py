"""Running the `examples` of every rule: each `match` example must make its rule fire, each `no_match`
example must not. `rarewatch rules check` reports the results; the tests of the bundled pack use them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rarewatch.ruleset.matcher import Ruleset
from rarewatch.ruleset.schema import Example, Rule


@dataclass(frozen=True)
class ExampleResult:
    rule_id: str
    kind: str  # "match" or "no_match"
    text: str  # the example's title (or first non-empty field), for messages
    file: str
    line: int
    fired: bool
    terms: tuple[str, ...]  # what fired, when the rule fired

    @property
    def passed(self) -> bool:
        return self.fired == (self.kind == "match")


def run_examples(ruleset: Ruleset) -> Iterator[ExampleResult]:
    """Every example of every rule, in rule order, each matched against the whole rule pack."""
    for rule in ruleset.rules:
        origin = ruleset.origins[rule.id]
        for kind in ("match", "no_match"):
            examples: tuple[Example, ...] = getattr(rule.examples, kind)
            for example, line in zip(examples, origin.example_lines[kind], strict=True):
                yield _run(ruleset, rule, kind, example, origin.file, line)


def _run(ruleset: Ruleset, rule: Rule, kind: str, example: Example, file: str, line: int) -> ExampleResult:
    if isinstance(example, str):
        fields, source, text = {"title": example}, None, example
    else:
        fields = {"title": example.title, "summary": example.summary, "content": example.content}
        source, text = example.source, example.title or example.summary or example.content
    if source is None and rule.sources:
        source = rule.sources[0]  # an example of a source-restricted rule comes from one of its sources
    mine = [m for m in ruleset.match_fields(fields, source=source) if m.rule == rule.id]
    terms = mine[0].terms if mine else ()
    return ExampleResult(rule.id, kind, text, file, line, bool(mine), terms)
