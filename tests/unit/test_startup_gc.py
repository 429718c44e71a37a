"""The collector kept off while a one-shot command starts, its start-up frozen after (`startup_gc`), and the
`match` and `once` commands using it; a forked item worker's collector is on (tests/integration)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rarewatch import cli, startup_gc

RULES = """\
id: test-licensing
title: Rare-earth export licensing
category: export-licensing
severity: high
match:
  all:
    - any: [rare earth, rare-earth]
    - any: [export licence, export licences]
"""


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """Each test leaves the test process's collector on and nothing frozen, whatever it asserted."""
    yield
    gc.unfreeze()
    gc.enable()


def test_the_collector_is_off_until_started_then_on_with_the_start_up_frozen() -> None:
    assert gc.get_freeze_count() == 0
    with startup_gc.paused():
        assert not gc.isenabled()
        startup_gc.started()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # thawed: a command called in a longer process leaves nothing frozen


def test_started_outside_a_pause_changes_nothing() -> None:
    startup_gc.started()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    startup_gc.started()
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_started_twice_freezes_once() -> None:
    with startup_gc.paused():
        startup_gc.started()
        frozen = gc.get_freeze_count()
        extra = [[] for _ in range(1000)]  # the command's own objects stay in the collector's reach
        startup_gc.started()
        assert gc.get_freeze_count() == frozen
        del extra


def test_the_process_own_command_leaves_its_start_up_frozen() -> None:
    with startup_gc.paused(thaw=False):
        startup_gc.started()
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_a_collector_that_was_off_is_off_again_after_the_command() -> None:
    gc.disable()
    with startup_gc.paused():
        startup_gc.started()
        assert gc.isenabled()
    assert not gc.isenabled()


def test_a_command_that_fails_before_its_start_up_ends_restores_the_collector() -> None:
    with pytest.raises(RuntimeError), startup_gc.paused():
        raise RuntimeError("bad configuration")
    assert gc.isenabled()
    startup_gc.started()  # no pause left behind
    assert gc.get_freeze_count() == 0


def _record_started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Replace `started` by one that records (collector on?, objects frozen) before it acts."""
    seen: list[tuple[bool, int]] = []
    real = startup_gc.started

    def recording() -> None:
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        real()

    monkeypatch.setattr(startup_gc, "started", recording)
    return seen


def test_match_starts_up_with_the_collector_off_and_matches_with_it_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAREWATCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "a", "title": "Rare-earth export licences tightened"}) + "\n")
    seen = _record_started(monkeypatch)
    assert cli.main(["match", "--rules", str(tmp_path / "rules.yaml"), str(items)]) == 0
    assert seen == [(False, 0)]  # paused through the pack's load, nothing frozen yet
    assert json.loads(capsys.readouterr().out)["matches"][0]["rule"] == "test-licensing"
    assert gc.isenabled() and gc.get_freeze_count() == 0  # called with arguments: thawed


def test_once_starts_up_with_the_collector_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAREWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        "store: sqlite:///run.db\nsources: []\ndestinations:\n  - name: archive\n    type: jsonl\n"
        "    path: alerts.jsonl\nroutes:\n  - to: [archive]\n",
        encoding="utf-8",
    )
    seen = _record_started(monkeypatch)
    assert cli.main(["once", "--config", str(config)]) == 0
    assert seen == [(False, 0)]
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_other_commands_leave_the_collector_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    seen = _record_started(monkeypatch)
    paused: list[bool] = []
    monkeypatch.setattr(startup_gc, "paused", lambda **_: paused.append(True))
    assert cli.main(["rules", "check", str(tmp_path / "rules.yaml")]) == 0
    assert seen == [] and paused == []


def test_the_command_line_of_the_process_leaves_its_start_up_frozen_for_the_exit(tmp_path: Path) -> None:
    # Thawing would only have the collection at the process's exit walk the whole start-up again.
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    argv = ["rarewatch", "match", "--rules", str(tmp_path / "rules.yaml"), str(tmp_path / "in")]
    probe = (
        f"import gc, sys\nfrom rarewatch.cli import main\nsys.argv = {argv!r}\n"
        "code = main()\nprint(code, gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    (tmp_path / "in").write_text('{"id": "a"}\n', encoding="utf-8")
    env = {**os.environ, "RAREWATCH_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stderr.split() == ["0", "True", "True"]
