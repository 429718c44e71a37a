"""The rule language: YAML rule files -> a compiled `Ruleset` that matches items. Pure and synchronous.

    ruleset = load_ruleset([Path("rules/")])
    ruleset.match(item)  # -> [Match], sorted by rule id

`schema` holds the file format, `loader` reads and cross-checks files, `compile` builds the single term
automaton and the rule expressions, `matcher` runs them, `text` is the normalisation both sides share.

The names below are imported on first use: importing a submodule runs this file, and `rarewatch match`
loads only the match core (`core`, `scanning`, `nodes`), which must not pay for pydantic and the schema.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rarewatch.ruleset.entities import Entities
    from rarewatch.ruleset.loader import load_ruleset, rule_files
    from rarewatch.ruleset.matcher import RuleOrigin, Ruleset
    from rarewatch.ruleset.schema import CATEGORIES, Rule, Vocabulary

_HOMES = {
    "CATEGORIES": "schema",
    "Entities": "entities",
    "Rule": "schema",
    "RuleOrigin": "matcher",
    "Ruleset": "matcher",
    "Vocabulary": "schema",
    "load_ruleset": "loader",
    "rule_files": "loader",
}

__all__ = [
    "CATEGORIES",
    "Entities",
    "Rule",
    "RuleOrigin",
    "Ruleset",
    "Vocabulary",
    "load_ruleset",
    "rule_files",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
