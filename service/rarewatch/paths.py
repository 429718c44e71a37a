"""Where bundled files live: the default rules, the default configuration, the demo feeds."""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled_rules_dir() -> Path:
    """The rule pack shipped with rarewatch: `rules/` of the checkout, or the installed copy."""
    for candidate in (_PACKAGE.parents[1] / "rules", Path(sys.prefix) / "share" / "rarewatch" / "rules"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parents[1] / "rules"


def default_config_file() -> Path:
    """The configuration used when no `--config` is given."""
    return _PACKAGE / "defaults" / "config.yaml"


def demo_feeds_dir() -> Path:
    """The sample feeds `rarewatch demo` serves offline."""
    return _PACKAGE / "demo" / "feeds"


def demo_articles_dir() -> Path:
    """The sample article pages the demo feeds link to (read by enrichment)."""
    return _PACKAGE / "demo" / "articles"
