"""Helpers for the rule-language tests: write rule files into tmp_path and load them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from rarewatch.ruleset import Ruleset, load_ruleset

RuleWriter = Callable[..., Path]


def rule(rule_id: str, match: str, **extra: str) -> str:
    """One rule document; `match` is the YAML of the expression (flow style), `extra` more keys."""
    lines = [
        f"id: {rule_id}",
        f"title: Rule {rule_id}",
        "category: export-licensing",
        "severity: high",
        f"match: {match}",
    ]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_rules(tmp_path: Path) -> RuleWriter:
    """`write_rules(text, name="rules.yaml")` writes a (dedented) rule file and returns its path."""

    def write(text: str, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def ruleset_of(write_rules: RuleWriter) -> Callable[[str], Ruleset]:
    """`ruleset_of(text)`: the ruleset of one rule file holding `text`."""

    def load(text: str) -> Ruleset:
        return load_ruleset([write_rules(text)])

    return load
