"""`rarewatch once` loads only what its configuration uses: no redis client on a SQLite store, no Slack SDK
without a Slack destination, no article extractor when no article is read, no feedparser while every
feed parses on the fast path, no Jinja2 without a templated destination (each ~0.015-0.1 s of start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import TEST_RULES

# Runs `python -m rarewatch` and, at exit, prints which of the optional libraries it loaded.
PROBE = """
import atexit, json, runpy, sys
optional = ("feedparser", "redis", "slack_sdk", "trafilatura", "jinja2")
atexit.register(lambda: print("LOADED " + json.dumps([m for m in optional if m in sys.modules])))
runpy.run_module("rarewatch", run_name="__main__")
"""


def loaded_by_once(tmp_path: Path, destination: dict[str, str]) -> list[str]:
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    config = {
        "store": f"sqlite:///{tmp_path / 'state.db'}",
        "rules": [str(tmp_path / "rules.yaml")],
        "sources": [],
        "destinations": [destination],
        "routes": [{"to": [destination["name"]]}],
    }
    (tmp_path / "rarewatch.yaml").write_text(json.dumps(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    env["RAREWATCH_CACHE_DIR"] = str(tmp_path / "cache")
    env["SLACK_TOKEN"] = "xoxb-test"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "once", "--config", str(tmp_path / "rarewatch.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))
    return list(json.loads(line.removeprefix("LOADED ")))


def test_once_on_sqlite_with_a_file_destination_loads_no_optional_library(tmp_path: Path) -> None:
    assert loaded_by_once(tmp_path, {"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}) == []


def test_a_slack_destination_still_loads_no_sdk_until_it_sends(tmp_path: Path) -> None:
    slack = {"name": "team", "type": "slack", "channel": "#alerts", "token": "${SLACK_TOKEN}"}
    assert loaded_by_once(tmp_path, slack) == []


def test_a_templated_webhook_loads_jinja2_and_a_plain_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "ticket.txt.j2").write_text("{{ alert.severity }}: {{ alert.title }}", encoding="utf-8")
    hook = {"name": "tickets", "type": "webhook", "url": "http://127.0.0.1:9/hook"}
    assert loaded_by_once(tmp_path, hook) == []
    assert loaded_by_once(tmp_path, {**hook, "template": "ticket.txt.j2"}) == ["jinja2"]
