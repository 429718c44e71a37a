"""The bundled rule pack, scored on the labelled evaluation set: every category at 0.9 precision and
recall or better, and at most 5% of the negatives (traps) alerting. `rarewatch rules evaluate` prints
the same report (see `rarewatch.commands.evaluate`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rarewatch.commands.evaluate import evaluate_command, score_pack
from rarewatch.evaluation import CATEGORIES, EvalReport, format_report, load_labelled
from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import load_ruleset

DATA = Path(__file__).resolve().parents[1] / "data" / "labelled.jsonl"


@pytest.fixture(scope="module")
def report() -> EvalReport:
    return score_pack(load_ruleset([bundled_rules_dir()]), load_labelled(DATA))


@pytest.mark.parametrize("category", CATEGORIES)
def test_precision_and_recall_per_category(report: EvalReport, category: str) -> None:
    score = report.score(category)
    assert score.precision >= 0.9, format_report(report)
    assert score.recall >= 0.9, format_report(report)


def test_negatives_rarely_alert(report: EvalReport) -> None:
    assert report.negative_alert_rate <= 0.05, format_report(report)


def test_evaluate_command_prints_the_report_and_exits_0() -> None:
    out = io.StringIO()
    assert evaluate_command([bundled_rules_dir()], DATA, out) == 0
    text = out.getvalue()
    assert "precision" in text and "negatives:" in text
    assert all(category in text for category in CATEGORIES)


def test_evaluate_command_by_lang_adds_a_report_per_language() -> None:
    out = io.StringIO()
    assert evaluate_command([bundled_rules_dir()], DATA, out, by="lang") == 0
    text = out.getvalue()
    assert text.count("confusion (items;") == 3  # all items, then en and zh
    assert "== lang = en: " in text and "== lang = zh: " in text


def test_evaluate_command_exits_2_on_bad_input(tmp_path: Path) -> None:
    out = io.StringIO()
    assert evaluate_command([tmp_path / "missing"], DATA, out) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n", encoding="utf-8")
    out = io.StringIO()
    assert evaluate_command([bundled_rules_dir()], bad, out) == 2
    assert "bad.jsonl:1" in out.getvalue()
