"""Scoring, loading and reporting of the labelled evaluation set, and the shape of the set itself."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rarewatch.evaluation import (
    CATEGORIES,
    NEGATIVE,
    NOTHING,
    CategoryScore,
    EvalReport,
    LabelledItem,
    evaluate,
    evaluate_by,
    format_confusion,
    format_report,
    format_report_by,
    format_rule_false_positives,
    load_labelled,
    rule_false_positives,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "labelled.jsonl"

EL, PC, PR, TR, SD = CATEGORIES


def item(
    id: str, labels: set[str] | None = None, also: set[str] | None = None, lang: str | None = "en"
) -> LabelledItem:
    """A labelled item whose title is its id (handy for table-driven predictors)."""
    return LabelledItem(id, id, "", lang, frozenset(labels or ()), frozenset(also or ()))


def table(predictions: dict[str, set[str]]) -> Callable[[LabelledItem], set[str]]:
    """A predictor answering from a dict keyed by item id (unknown ids predict nothing)."""
    return lambda it: predictions.get(it.id, set())


def counts(report: EvalReport, category: str) -> tuple[int, int, int]:
    score = report.score(category)
    return score.tp, score.fp, score.fn


# --------------------------------------------------------------------------- scoring


def test_counts_tp_fp_fn_exactly() -> None:
    items = [
        item("a", {EL}),
        item("b", {EL, TR}),
        item("c", {PR}),
        item("d"),
        item("e"),
    ]
    predict = table({"a": {EL}, "b": {TR, SD}, "c": set(), "d": {PR}})
    report = evaluate(items, predict)

    assert counts(report, EL) == (1, 0, 1)
    assert counts(report, TR) == (1, 0, 0)
    assert counts(report, SD) == (0, 1, 0)
    assert counts(report, PR) == (0, 1, 1)
    assert counts(report, PC) == (0, 0, 0)
    assert (report.negatives, report.negatives_alerting) == (2, 1)
    assert report.negative_alert_rate == pytest.approx(0.5)


def test_rates_are_derived_from_counts() -> None:
    report = evaluate(
        [item("a", {EL}), item("b", {EL}), item("c", {EL}), item("d")],
        table({"a": {EL}, "b": {EL}, "d": {EL}}),
    )
    score = report.score(EL)
    assert (score.tp, score.fp, score.fn) == (2, 1, 1)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 / 3)


def test_also_category_is_neither_tp_nor_fp() -> None:
    items = [item("a", {TR}, also={SD}), item("b", also={EL})]
    report = evaluate(items, table({"a": {TR, SD}, "b": {EL}}))

    assert counts(report, TR) == (1, 0, 0)
    assert counts(report, SD) == (0, 0, 0)
    assert counts(report, EL) == (0, 0, 0)
    assert report.negatives_alerting == 0
    assert report.errors == ()


def test_also_category_need_not_be_predicted() -> None:
    report = evaluate([item("a", {TR}, also={SD})], table({"a": {TR}}))
    assert counts(report, SD) == (0, 0, 0)
    assert report.errors == ()


def test_negative_alerts_when_predicting_outside_also() -> None:
    report = evaluate([item("n", also={EL})], table({"n": {EL, PR}}))
    assert report.negatives_alerting == 1
    assert counts(report, PR) == (0, 1, 0)
    assert counts(report, EL) == (0, 0, 0)


def test_empty_set_gives_perfect_rates_and_zero_alert_rate() -> None:
    report = evaluate([], table({}))
    assert [s.category for s in report.scores] == list(CATEGORIES)
    assert all((s.tp, s.fp, s.fn) == (0, 0, 0) for s in report.scores)
    assert all(s.precision == 1.0 and s.recall == 1.0 for s in report.scores)
    assert (report.negatives, report.negatives_alerting, report.negative_alert_rate) == (0, 0, 0.0)
    assert report.errors == ()


def test_predicting_nothing_has_precision_one_and_recall_zero() -> None:
    score = evaluate([item("a", {PC})], table({})).score(PC)
    assert (score.precision, score.recall, score.f1) == (1.0, 0.0, 0.0)


def test_unknown_predicted_category_is_a_false_positive() -> None:
    report = evaluate([item("a", {EL})], table({"a": {EL, "mystery"}}))
    assert [s.category for s in report.scores][-1] == "mystery"
    assert counts(report, "mystery") == (0, 1, 0)


def test_errors_list_missing_and_unexpected() -> None:
    items = [item("ok", {EL}), item("miss", {PR, TR}), item("alarm"), item("both", {SD}, also={EL})]
    predict = table({"ok": {EL}, "miss": {PR}, "alarm": {PC}, "both": {EL, TR}})
    errors = {e.id: e for e in evaluate(items, predict).errors}

    assert set(errors) == {"miss", "alarm", "both"}
    assert errors["miss"].missing == {TR}
    assert errors["miss"].unexpected == frozenset()
    assert errors["alarm"].unexpected == {PC}
    assert errors["alarm"].expected == frozenset()
    assert errors["both"].missing == {SD}
    assert errors["both"].unexpected == {TR}
    assert errors["both"].predicted == {EL, TR}


def test_micro_pools_all_categories() -> None:
    report = evaluate([item("a", {EL}), item("b", {PR})], table({"a": {EL}, "b": {TR}}))
    assert (report.micro.tp, report.micro.fp, report.micro.fn) == (1, 1, 1)


def test_category_score_zero_denominators() -> None:
    score = CategoryScore.from_counts("x", 0, 0, 0)
    assert (score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- report


def test_format_report_has_table_negatives_line_and_errors() -> None:
    report = evaluate([item("a", {EL}), item("n")], table({"n": {TR}}))
    text = format_report(report)
    lines = text.splitlines()

    assert lines[0].split() == ["category", "tp", "fp", "fn", "precision", "recall", "F1"]
    assert any(line.startswith("export-licensing") and line.split()[1:4] == ["0", "0", "1"] for line in lines)
    assert "negatives: 1, alerting: 1 (100.0%)" in text
    assert "a: missing export-licensing" in text
    assert "n: unexpected trade-restrictions" in text


def test_format_report_caps_errors_at_fifty() -> None:
    items = [item(f"i{n:03d}", {EL}) for n in range(60)]
    text = format_report(evaluate(items, table({})))
    assert "i049:" in text
    assert "i050:" not in text
    assert "... and 10 more" in text


def test_format_report_without_errors() -> None:
    assert "errors: none" in format_report(evaluate([item("a", {EL})], table({"a": {EL}})))


# --------------------------------------------------------------------------- confusion and --by


def test_the_confusion_table_counts_items_by_required_and_predicted_category() -> None:
    items = [
        item("a", {EL}),
        item("b", {EL}, also={TR}),  # allowed by `also`, and still shown: the table shows boundaries
        item("c", {EL}),
        item("d", {EL, TR}),
        item("n1"),
        item("n2"),
    ]
    predict = table({"a": {EL}, "b": {TR}, "c": {TR}, "d": {EL}, "n1": {PR}})
    confusion = evaluate(items, predict).confusion
    assert confusion is not None
    assert confusion.rows == (*CATEGORIES, NEGATIVE)
    assert confusion.columns == (*CATEGORIES, NOTHING)
    assert confusion.count(EL, EL) == 2  # a, d
    assert confusion.count(EL, TR) == 2  # b, c: an export-licensing item predicted trade-restrictions
    assert confusion.count(TR, EL) == 1  # d counts in every pair of its categories
    assert confusion.count(NEGATIVE, PR) == 1
    assert confusion.count(NEGATIVE, NOTHING) == 1
    assert confusion.count(SD, SD) == 0
    assert sum(confusion.counts.values()) == 7


def test_the_confusion_table_has_a_row_per_category_and_a_legend() -> None:
    report = evaluate([item("a", {EL}), item("n")], table({"a": {TR}}))
    assert report.confusion is not None
    lines = format_confusion(report.confusion)
    assert lines[1].split() == [
        "required",
        "expo-lice",
        "pers-cont",
        "pros",
        "trad-rest",
        "supp-disr",
        NOTHING,
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:-1]}
    assert rows[EL] == [".", ".", ".", "1", ".", "."]
    assert rows[NEGATIVE] == [".", ".", ".", ".", ".", "1"]
    assert lines[-1].startswith("columns: expo-lice = export-licensing, ")


def test_the_report_keeps_its_output_first_and_adds_the_table_after() -> None:
    report = evaluate([item("a", {EL}), item("n")], table({"n": {TR}}))
    text = format_report(report)
    assert text.index("negatives: 1") < text.index("errors: 2") < text.index("confusion (items;")


def test_an_unknown_predicted_category_gets_a_column() -> None:
    confusion = evaluate([item("a", {EL})], table({"a": {"other"}})).confusion
    assert confusion is not None
    assert confusion.columns[-2:] == ("other", NOTHING)
    assert confusion.count(EL, "other") == 1


def test_evaluate_by_splits_by_an_item_field_and_predicts_once() -> None:
    items = [
        item("en-1", {EL}, lang="en"),
        item("zh-1", {EL}, lang="zh"),
        item("zh-2", lang="zh"),
        item("x-1", {PR}, lang=None),
    ]
    calls: list[str] = []

    def predict(it: LabelledItem) -> set[str]:
        calls.append(it.id)
        return {EL} if it.id != "zh-1" else {TR}

    overall, by_lang = evaluate_by(items, predict, "lang")
    assert sorted(calls) == sorted(i.id for i in items), "one prediction per item"
    assert list(by_lang) == ["en", "zh", NOTHING]
    assert [r.items for r in by_lang.values()] == [1, 2, 1]
    assert overall.items == 4
    assert by_lang["zh"].score(EL).fn == 1 and by_lang["zh"].score(EL).fp == 1
    assert by_lang["zh"].negatives_alerting == 1
    assert by_lang["en"].score(EL).tp == 1
    zh = by_lang["zh"].confusion
    assert zh is not None and zh.count(EL, TR) == 1 and zh.count(NEGATIVE, EL) == 1
    text = format_report_by(overall, by_lang, "lang")
    assert text.startswith(format_report(overall))
    assert "== lang = zh: 2 items, 2 wrong" in text
    assert text.index("== lang = en") < text.index("== lang = zh") < text.index("== lang = (none)")


def test_evaluate_by_script_and_origin(tmp_path: Path) -> None:
    lines = [
        {"id": "zh-1", "title": "t", "summary": "", "labels": [], "script": "hans", "origin": "synthetic"},
        {"id": "zh-2", "title": "t", "summary": "", "labels": [], "script": "hant", "origin": "real-style"},
        {"id": "en-1", "title": "t", "summary": "", "labels": [], "origin": "real-style"},
    ]
    items = load_labelled(write_lines(tmp_path, *(json.dumps(x) for x in lines)))
    _, by_script = evaluate_by(items, table({}), "script")
    assert {k: r.items for k, r in by_script.items()} == {"hans": 1, "hant": 1, NOTHING: 1}
    _, by_origin = evaluate_by(items, table({}), "origin")
    assert {k: r.items for k, r in by_origin.items()} == {"real-style": 2, "synthetic": 1}
    with pytest.raises(ValueError, match="cannot split by 'title'"):
        evaluate_by(items, table({}), "title")


# --------------------------------------------------------------------------- loader


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"id": "x-1", "title": "t", "summary": "s", "lang": "en", "labels": ["prosecution"]})


def test_loader_reads_items_and_skips_blank_lines(tmp_path: Path) -> None:
    second = json.dumps(
        {"id": "x-2", "title": "t", "summary": "", "labels": [], "also": [EL], "trap": "hedged"}
    )
    items = load_labelled(write_lines(tmp_path, GOOD, "", second))
    assert [i.id for i in items] == ["x-1", "x-2"]
    assert items[0].labels == {PR}
    assert items[0].lang == "en"
    assert items[1].lang is None
    assert items[1].also == {EL}
    assert items[1].trap == "hedged"
    assert items[1].is_negative


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "x-9", "title": "t", "summary": "s"}', "missing field"),
        ('{"id": "x-9", "title": "t", "summary": "s", "labels": [], "lables": []}', "unknown field"),
        ('{"id": "x-9", "title": "t", "summary": "s", "labels": ["export-license"]}', "unknown category"),
        (
            '{"id": "x-9", "title": "t", "summary": "s", "labels": [], "also": ["smuggling"]}',
            "unknown category",
        ),
        ('{"id": "x-9", "title": "t", "summary": "s", "labels": "prosecution"}', "list of category"),
        ('{"id": "", "title": "t", "summary": "s", "labels": []}', "'id'"),
        ('{"id": "x-9", "title": "t", "summary": "s", "labels": [], "lang": 3}', "'lang'"),
        (
            '{"id": "x-9", "title": "t", "summary": "s", "labels": ["prosecution"], "also": ["prosecution"]}',
            "both labels and also",
        ),
        (
            '{"id": "x-9", "title": "t", "summary": "s", "labels": [], "origin": "real"}',
            "'origin' must be one",
        ),
        (
            '{"id": "x-9", "title": "t", "summary": "s", "labels": [], "script": "Hans"}',
            "'script' must be one",
        ),
        (
            '{"id": "x-9", "title": "t", "summary": "s", "labels": [], "source_url": "x.org"}',
            "http\\(s\\) URL",
        ),
        ('{"id": "x-9", "title": "t", "summary": "s", "labels": [], "sources": "x"}', "unknown field"),
    ],
)
def test_loader_rejects_bad_line_naming_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = write_lines(tmp_path, GOOD, bad)
    with pytest.raises(ValueError, match=message) as info:
        load_labelled(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_loader_accepts_the_optional_descriptive_keys(tmp_path: Path) -> None:
    line = {
        "id": "zh-9",
        "title": "稀土",
        "summary": "",
        "labels": [],
        "source_url": "https://www.mofcom.gov.cn/a.html",
        "origin": "real-style",
        "script": "hant",
    }
    [loaded] = load_labelled(write_lines(tmp_path, json.dumps(line, ensure_ascii=False)))
    assert (loaded.source_url, loaded.origin, loaded.script) == (
        "https://www.mofcom.gov.cn/a.html",
        "real-style",
        "hant",
    )
    [plain] = load_labelled(write_lines(tmp_path, GOOD))
    assert (plain.source_url, plain.origin, plain.script) == (None, None, None)


def test_loader_rejects_duplicate_ids(tmp_path: Path) -> None:
    path = write_lines(tmp_path, GOOD, GOOD)
    with pytest.raises(ValueError, match=r":2: duplicate id 'x-1' \(first on line 1\)"):
        load_labelled(path)


# --------------------------------------------------------------------------- the data set itself

REQUIRED_TRAPS = {
    # licences, exports and lists outside the sector
    "software-licence",
    "driving-licence",
    "fishing-licence",
    "broadcast-licence",
    "arms-licence",
    "data-export",
    "it-control-list",
    "unrelated-export-control",
    # words with other meanings
    "grammar-sentence",
    "unrelated-crime",
    "rare-uncommon",
    "rare-earth-band",
    "magnet-school",
    "talent-magnet",
    "mri-magnet",
    "data-entity",
    "element-symbol",
    "named-entity",
    # subject without an action
    "lab-research",
    "price-move",
    # Chinese traps
    "zh-exit",
    "zh-traffic-control",
    "zh-criminal-penalty",
    "zh-software-licence",
    "zh-tariff-quota",
    "zh-passport",
    # sentence-level traps
    "negated",
    "hedged",
    "cross-clause",
}
# Each bare element-symbol trap must appear, as a whole token, in some element-symbol negative.
ELEMENT_SYMBOLS = {"EU", "PR", "ER", "LA", "SC", "ND", "PM", "TM", "TB", "CE", "SM"}
# Characters that exist only in Traditional script (their Simplified forms differ).
TRADITIONAL_ONLY = set("國護實關擴陸鎵鍺銻鐵廠貨處區將對這為與說經會時後發鎢檢預計費")


@pytest.fixture(scope="module")
def dataset() -> list[LabelledItem]:
    return load_labelled(DATA)


def test_dataset_size_language_and_negatives(dataset: list[LabelledItem]) -> None:
    total = len(dataset)
    zh = [i for i in dataset if i.lang == "zh"]
    negatives = [i for i in dataset if i.is_negative]
    assert total >= 320
    assert len(zh) >= 110
    assert len(negatives) / total >= 0.40
    assert {i.lang for i in dataset} == {"en", "zh"}


def test_dataset_has_traditional_chinese_items(dataset: list[LabelledItem]) -> None:
    traditional = [i for i in dataset if i.lang == "zh" and TRADITIONAL_ONLY & set(i.title + i.summary)]
    assert len(traditional) >= 12


def test_dataset_positives_per_category(dataset: list[LabelledItem]) -> None:
    per_category = Counter(c for i in dataset for c in i.labels)
    per_lang = Counter((i.lang, c) for i in dataset for c in i.labels)
    for category in CATEGORIES:
        assert per_category[category] >= 35, category
        assert per_lang[("en", category)] >= 10, category
        assert per_lang[("zh", category)] >= 10, category


def test_dataset_ids_are_unique_and_prefixed_by_language(dataset: list[LabelledItem]) -> None:
    ids = [i.id for i in dataset]
    assert len(ids) == len(set(ids))
    assert all(i.id.startswith(f"{i.lang}-") for i in dataset if i.origin == "synthetic")
    assert all(i.id.startswith(f"rw-{i.lang}-") for i in dataset if i.origin == "real-style")


def test_dataset_is_at_least_600_items_with_40_percent_real_style(dataset: list[LabelledItem]) -> None:
    """Issue 7: the development set holds real-style items (written in our own words after real
    coverage), each with the page that inspired it, beside the synthetic ones."""
    assert {i.origin for i in dataset} == {"synthetic", "real-style"}
    real = [i for i in dataset if i.origin == "real-style"]
    assert len(dataset) >= 600
    assert len(real) / len(dataset) >= 0.40
    assert all(i.source_url and i.source_url.startswith(("http://", "https://")) for i in real)
    assert {i.lang for i in real} == {"en", "zh"}
    assert {i.script for i in real if i.lang == "zh"} == {"hans", "hant"}


def test_dataset_uses_only_known_categories(dataset: list[LabelledItem]) -> None:
    used = {c for i in dataset for c in i.labels | i.also}
    assert used <= set(CATEGORIES)


def test_dataset_traps_mark_negatives_only(dataset: list[LabelledItem]) -> None:
    assert all(i.is_negative for i in dataset if i.trap)
    # the synthetic negatives each name their trap family; the real-style ones say why in `note`
    assert all(i.trap for i in dataset if i.is_negative and i.origin == "synthetic")


def test_dataset_covers_every_trap_family(dataset: list[LabelledItem]) -> None:
    present = {i.trap for i in dataset}
    assert REQUIRED_TRAPS - present == set()


def test_dataset_covers_every_bare_element_symbol(dataset: list[LabelledItem]) -> None:
    tokens = {t.strip(",.;:'") for i in dataset if i.trap == "element-symbol" for t in i.title.split()}
    assert ELEMENT_SYMBOLS - tokens == set()


def test_dataset_has_no_duplicate_titles(dataset: list[LabelledItem]) -> None:
    titles = Counter(i.title for i in dataset)
    assert [t for t, n in titles.items() if n > 1] == []


# --------------------------------------------------------------------------- per rule


def test_rules_firing_outside_the_labels_are_listed_most_first_negatives_first() -> None:
    items = [item("pos", {EL}), item("neg-1"), item("also", {EL}, {TR}), item("neg-2"), item("wrong", {PR})]
    fired = {
        "pos": [("lic", EL), ("tr", TR)],
        "neg-1": [("lic", EL)],
        "also": [("lic", EL), ("tr", TR)],  # TR is in `also`: no false positive
        "neg-2": [("tr", TR), ("tr", TR)],  # one rule firing twice counts once
        "wrong": [("lic", EL)],
    }
    rows = rule_false_positives(items, lambda i: fired[i.id])
    assert [(r.rule, r.category, r.items, r.negatives) for r in rows] == [
        ("lic", EL, ("neg-1", "wrong"), 1),
        ("tr", TR, ("neg-2", "pos"), 1),
    ]
    lines = format_rule_false_positives(rows)
    assert lines[1] == f"  lic [{EL}]: 2 (1 negative): neg-1, wrong"


def test_no_rule_outside_the_labels_says_none() -> None:
    assert rule_false_positives([item("pos", {EL})], lambda i: [("lic", EL)]) == []
    assert format_rule_false_positives([]) == ["rules firing outside the labels: none"]


def test_long_rule_listings_are_cut() -> None:
    items = [item(f"n{i:02}") for i in range(12)]
    [row] = rule_false_positives(items, lambda i: [("lic", EL)])
    assert format_rule_false_positives([row])[1].endswith("n09, … 2 more")
