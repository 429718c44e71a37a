"""The rule language: YAML rule files -> a compiled `Ruleset` that matches items. Pure and synchronous.

    ruleset = load_ruleset([Path("rules/")])
    ruleset.match(item)  # -> [Match], sorted by rule id

`schema` holds the file format, `loader` reads and cross-checks files, `compile` builds the single term
automaton and the rule expressions, `matcher` runs them, `text` is the normalisation both sides share.
"""

from rarewatch.ruleset.entities import Entities
from rarewatch.ruleset.loader import load_ruleset, rule_files
from rarewatch.ruleset.matcher import RuleOrigin, Ruleset
from rarewatch.ruleset.schema import CATEGORIES, Rule, Vocabulary

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
