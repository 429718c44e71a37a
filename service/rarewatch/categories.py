"""Alert categories, defined once: the five categories rules raise, plus the operational one.

Routes may filter on any of `ALERT_CATEGORIES` (`category: [ops]` sends source-health alerts somewhere of
their own); rules may only use `RULE_CATEGORIES`. The rule categories stay declared beside the rule schema
(pydantic validates rule files against that `Literal`); this module is where everything else imports them.
"""

from __future__ import annotations

from rarewatch.ruleset.schema import CATEGORIES as RULE_CATEGORIES

OPS = "ops"
"""The operational category: alerts about rarewatch itself (a source failing or gone silent)."""

OPERATIONAL_CATEGORIES: tuple[str, ...] = (OPS,)
ALERT_CATEGORIES: tuple[str, ...] = RULE_CATEGORIES + OPERATIONAL_CATEGORIES
"""Every category an alert can carry, in report order."""

__all__ = ["ALERT_CATEGORIES", "OPERATIONAL_CATEGORIES", "OPS", "RULE_CATEGORIES"]
