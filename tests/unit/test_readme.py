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


def _payload_section(text: str) -> str:
    start = text.index("## Webhook payload")
    return text[start : text.index("\n## ", start + 1)]


def _table_fields(section: str) -> list[str]:
    """Every field named in the first column of the payload table (`a`, `b` rows name several)."""
    table = section[section.index("| field | meaning |") :]
    names: list[str] = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        names += re.findall(r"`([a-z_]+)`", line.split("|")[1])
    return names


def _every_payload_key() -> set[str]:
    """The keys of a real alert's payload and of a digest's (which adds `alerts` and `count`)."""
    from datetime import UTC, datetime

    from rarewatch.delivery.payload import alert_payload, digest_alert, test_alert

    now = datetime(2026, 1, 1, tzinfo=UTC)
    alert = test_alert(now)
    return set(alert_payload(alert)) | set(alert_payload(digest_alert([alert], now, "d")))


def test_the_readme_payload_table_lists_every_payload_field_once_and_no_other() -> None:
    names = _table_fields(_payload_section(README.read_text(encoding="utf-8")))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"fields listed twice in the README payload table: {duplicates}"
    assert set(names) == _every_payload_key()


def test_the_readme_payload_example_is_a_complete_alert_payload() -> None:
    import json

    section = _payload_section(README.read_text(encoding="utf-8"))
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    example = json.loads(block.group(1))
    digest_only = {"alerts", "count"}
    assert set(example) == _every_payload_key() - digest_only


def test_the_readme_metrics_table_lists_every_metric_once_and_no_other() -> None:
    from rarewatch.metrics import Metrics

    text = README.read_text(encoding="utf-8")
    start = text.index("### Metrics")
    table = text[text.index("| metric | labels | what |", start) :]
    names: list[str] = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        names += re.findall(r"`(rarewatch_[a-z_]+)`", line.split("|")[1])
    exposed = {f.name + ("_total" if f.type == "counter" else "") for f in Metrics().registry.collect()}
    assert sorted({n for n in names if names.count(n) > 1}) == [], "listed twice"
    assert set(names) == exposed
