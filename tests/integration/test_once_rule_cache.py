"""`rarewatch once` reads its compiled rule pack back from the rule cache, as `match` does."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rarewatch.commands.service import run_once
from rarewatch.ruleset import loader
from rarewatch.settings import Settings
from tests.support import TEST_RULES


def settings(tmp_path: Path) -> Settings:
    (tmp_path / "rules.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(tmp_path / "rules.yaml")],
        sources=[],
        destinations=[{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],
        routes=[{"to": ["archive"]}],
        config_dir=tmp_path,
    )


async def test_second_once_reads_the_pack_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAREWATCH_CACHE_DIR", str(cache))
    assert await run_once(settings(tmp_path), io.StringIO(), io.StringIO()) == 0
    assert len(list(cache.glob("ruleset-*.pickle"))) == 1

    def no_compile(*args: object) -> None:
        raise AssertionError("the pack was compiled again")

    monkeypatch.setattr(loader, "_compile", no_compile)
    assert await run_once(settings(tmp_path), io.StringIO(), io.StringIO()) == 0


async def test_a_changed_rule_file_is_compiled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAREWATCH_CACHE_DIR", str(cache))
    assert await run_once(settings(tmp_path), io.StringIO(), io.StringIO()) == 0
    changed = settings(tmp_path)
    (tmp_path / "rules.yaml").write_text(TEST_RULES + "\n# edited\n", encoding="utf-8")
    assert await run_once(changed, io.StringIO(), io.StringIO()) == 0
    assert len(list(cache.glob("ruleset-*.pickle"))) == 2
