"""A rule reload that would orphan a route is refused, and the rules in use stay in use."""

from __future__ import annotations

from pathlib import Path

import pytest

from rarewatch.errors import ConfigError
from rarewatch.runtime import open_runtime
from rarewatch.settings import load_settings
from tests.support import TEST_RULES


async def test_reload_that_orphans_a_route_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    rule_file = tmp_path / "rules" / "test.yaml"
    rule_file.write_text(TEST_RULES, encoding="utf-8")
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        "store: sqlite:///state.db\nrules: [rules/]\ndestinations: [{name: local, type: console}]\n"
        "routes:\n  - {match: {rule: [test-shortage]}, to: [local]}\n",
        encoding="utf-8",
    )
    settings = load_settings(config)
    async with open_runtime(settings) as runtime:
        before = runtime.ruleset
        rule_file.write_text(TEST_RULES.split("---")[0], encoding="utf-8")  # test-shortage removed
        with pytest.raises(ConfigError, match=r"rarewatch.yaml:5: routes.0.match.rule.0: unknown rule"):
            await runtime.reload_rules()
        assert runtime.ruleset is before
        assert {r.id for r in runtime.ruleset.rules} == {"test-licensing", "test-shortage"}
        rule_file.write_text(TEST_RULES.replace("magnet", "magnets"), encoding="utf-8")
        assert await runtime.reload_rules() is runtime.ruleset is not before, (
            "a reload that keeps the route is taken"
        )
