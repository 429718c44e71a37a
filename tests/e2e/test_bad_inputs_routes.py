"""A route filter that names nothing is a configuration error, with file:line and a did-you-mean: real
`rarewatch` processes, one per typo and command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TEST_RULES

MATERIALS = """\
---
vocabulary: test-materials
kind: materials
entities:
  dysprosium: [dysprosium oxide]
  terbium: [terbium metal]
---
vocabulary: test-countries
kind: countries
entities:
  japan: [Japanese]
"""

# (route filter key, typo, what it should have been): each makes `rarewatch` exit 2 naming the line.
TYPOS = [
    ("category", "export-licencing", "export-licensing"),
    ("category", "supply-disruptions", "supply-disruption"),
    ("rule", "test-licencing", "test-licensing"),
    ("source", "feed-alpah", "feed-alpha"),
    ("material", "dysprosum", "dysprosium"),
    ("country", "japn", "japan"),
]


def _config(tmp_path: Path, key: str, value: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES + MATERIALS, encoding="utf-8")
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        f"""\
store: sqlite:///state.db
rules: [rules/]
sources:
  - {{name: feed-alpha, type: feed, url: "http://127.0.0.1:9/feed.xml"}}
destinations:
  - {{name: local, type: console}}
routes:
  - to: [local]
    match:
      severity: [high]
      {key}: [{value}]
""",
        encoding="utf-8",
    )
    return config


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "rarewatch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        check=False,
    )


COMMANDS = [
    ("once", "--config", "{config}"),
    ("rules", "check", "--config", "{config}"),
    ("match", "--config", "{config}"),
    ("eval", "--config", "{config}", "{labelled}"),
]


@pytest.mark.parametrize(("key", "typo", "meant"), TYPOS)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_route_typo_is_a_config_error_with_line_and_suggestion(
    tmp_path: Path, key: str, typo: str, meant: str, command: tuple[str, ...]
) -> None:
    config = _config(tmp_path, key, typo)
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"id": "1", "title": "x", "labels": []}\n', encoding="utf-8")
    args = [a.format(config=config, labelled=labelled) for a in command]
    done = run(*args)
    assert done.returncode == 2, done.stderr + done.stdout
    message = done.stderr + done.stdout
    assert "Traceback" not in message
    assert f"{config}:11: routes.0.match.{key}.0: unknown {key} '{typo}'" in message
    assert f"did you mean '{meant}'?" in message
    assert len(message.strip().splitlines()) == 1, "one line"


def test_route_typo_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    config = _config(tmp_path, "category", "export-licensing")
    routes = [{"to": ["local"], "match": {"material": ["terbum"]}}]
    done = run("once", "--config", str(config), env={"RAREWATCH_ROUTES": json.dumps(routes)})
    assert done.returncode == 2
    assert done.stderr.startswith(
        "rarewatch: environment variable RAREWATCH_ROUTES: routes.0.match.material.0: unknown material"
    )
    assert "did you mean 'terbium'?" in done.stderr


def test_known_values_pass_and_the_operational_category_is_known(tmp_path: Path) -> None:
    config = _config(tmp_path, "category", "export-licensing")
    assert run("rules", "check", "--config", str(config)).returncode == 0
    config = _config(tmp_path, "category", "operational")
    assert run("rules", "check", "--config", str(config)).returncode == 0
    config = _config(tmp_path, "material", "Dysprosium")  # entity names are compared without case
    assert run("rules", "check", "--config", str(config)).returncode == 0


def test_rule_commands_use_the_configured_rule_paths(tmp_path: Path) -> None:
    config = _config(tmp_path, "category", "export-licensing")
    item = json.dumps({"title": "Rare earth export licence regime tightened"}) + "\n"
    done = run("match", "--config", str(config), stdin=item)
    assert done.returncode == 0, done.stderr
    assert [m["rule"] for m in json.loads(done.stdout)["matches"]] == ["test-licensing"]
    bundled = run("match", stdin=item)
    assert "test-licensing" not in bundled.stdout, "without --config: the bundled rules"
    check = run("rules", "check", "--config", str(config))
    assert check.returncode == 0 and check.stdout.startswith("2 rules,"), check.stdout
    both = run("rules", "check", "--config", str(config), str(tmp_path / "rules"))
    assert both.returncode == 2 and "either --config or rule paths" in both.stderr


def test_match_explain_says_why_not(tmp_path: Path) -> None:
    config = _config(tmp_path, "category", "export-licensing")
    rules = tmp_path / "rules" / "veto.yaml"
    rules.write_text(
        """\
id: test-veto
title: Vetoed (test)
category: prosecution
severity: low
description: Test rule, written for the suite.
match:
  all:
    - any: ["smuggling"]
    - any: ["rare earth"]
    - none: ["film"]
exclude: ["smuggling claims"]
""",
        encoding="utf-8",
    )
    lines = [
        {"id": "a", "title": "Rare earth magnet plant reports a good year"},
        {"id": "b", "title": "Rare earth smuggling film wins award"},
        {"id": "c", "title": "Rare earth export licence rules", "source": "x"},
        {"id": "d", "title": "Rare earth smuggling claims rejected"},
    ]
    done = run(
        "match", "--explain", "--config", str(config), stdin="".join(json.dumps(x) + "\n" for x in lines)
    )
    assert done.returncode == 0, done.stderr
    out = {r["id"]: r for r in map(json.loads, done.stdout.splitlines())}
    why_a = {w["rule"]: w for w in out["a"]["why_not"]}
    assert why_a["test-shortage"]["failed"] == ["any of [halts production, shortage]"]
    assert why_a["test-licensing"]["failed"] == ["any of [export licence, 出口管制]"]
    why_b = {w["rule"]: w for w in out["b"]["why_not"]}
    assert why_b["test-veto"]["vetoed_by"] == ["film"] and "failed" not in why_b["test-veto"]
    why_d = {w["rule"]: w for w in out["d"]["why_not"]}
    assert why_d["test-veto"]["failed"] == ["any of [smuggling]"]
    assert why_d["test-veto"]["discounted"] == ["smuggling"], "found, but excluded"
    assert [m["rule"] for m in out["c"]["matches"]] == ["test-licensing"]
    assert "test-licensing" not in {w["rule"] for w in out["c"]["why_not"]}, "a rule that fired is no why_not"
    plain = run("match", "--config", str(config), stdin=json.dumps(lines[0]) + "\n")
    assert "why_not" not in plain.stdout, "only with --explain"


def test_a_jsonl_destination_in_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, "category", "export-licensing")
    text = config.read_text(encoding="utf-8").replace(
        "  - {name: local, type: console}\n",
        "  - {name: local, type: console}\n  - {name: archive, type: jsonl, path: archve/alerts.jsonl}\n",
    )
    config.write_text(text, encoding="utf-8")
    done = run("once", "--config", str(config))
    assert done.returncode == 2
    assert f"{config}:7: destinations.1.path: the folder {tmp_path / 'archve'}" in done.stderr
    assert not (tmp_path / "archve").exists(), "not created"
    (tmp_path / "archve").mkdir()
    assert run("once", "--config", str(config)).returncode == 0
