"""The README's examples are real: the rule example passes `rules check`, the config keys load."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rarewatch.commands.rules import rules_check

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_rule_example_is_a_valid_rule_file_whose_examples_pass(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(vocabulary: materials .*?)```", text, re.S)
    assert block is not None
    path = tmp_path / "example.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    out = io.StringIO()
    assert rules_check([path], out) == 0, out.getvalue()
    assert "0 failures" in out.getvalue()
