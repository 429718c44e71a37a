"""Loading rule files: strict validation, errors that name file, line and rule, cross-file checks."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from rarewatch.errors import RuleError
from rarewatch.models import Severity
from rarewatch.ruleset import Ruleset, load_ruleset
from tests.k8s_layout import project_configmap
from tests.unit.ruleset.conftest import RuleWriter, rule

VOCAB = "vocabulary: materials\nterms: [rare earth, 稀土, gallium]\n"


def load_error(path: Path) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_ruleset([path])
    return info.value


def test_a_valid_file_loads_into_frozen_models_sorted_by_id(write_rules: RuleWriter) -> None:
    path = write_rules(rule("zeta", "rare earth") + "---\n" + rule("alpha", "gallium"))
    ruleset = load_ruleset([path])
    assert [r.id for r in ruleset.rules] == ["alpha", "zeta"]
    first = ruleset.rules[0]
    assert first.severity is Severity.HIGH
    assert first.fields == ("title", "summary", "content")
    with pytest.raises(ValidationError):
        first.title = "changed"  # type: ignore[misc]


def test_unknown_key_names_file_line_and_rule(write_rules: RuleWriter) -> None:
    path = write_rules(
        """\
        id: first
        title: First
        category: prosecution
        severity: low
        match: smuggling
        ---
        id: second-rule
        title: Second
        category: prosecution
        severity: low
        match: smuggling
        severty: high
        """
    )
    err = load_error(path)
    assert (err.file, err.line, err.rule_id) == (str(path), 12, "second-rule")
    assert "severty" in err.message and "not permitted" in err.message
    assert str(err).startswith(f"{path}:12 [rule second-rule]: ")


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("category: nonsense\nseverity: high\nmatch: smuggling\n", 4, "category"),
        ("category: prosecution\nseverity: urgent\nmatch: smuggling\n", 5, "unknown severity"),
        ("category: prosecution\nseverity: high\nmatch:\n  all: []\n", 7, "at least 1 item"),
        (
            "category: prosecution\nseverity: high\nmatch:\n  any:\n    - smuggling\n"
            "    - {regex: '(unclosed'}\n",
            9,
            "invalid regex",
        ),
        ("category: prosecution\nseverity: high\nmatch: {regex: 'x*'}\n", 6, "empty string"),
        # a regex in Traditional characters never matches (the text is converted to Simplified first)
        (
            "category: prosecution\nseverity: high\nmatch:\n  any:\n    - smuggling\n"
            "    - {regex: '走私稀土|停產'}\n",
            9,
            "Traditional characters (產)",
        ),
        (
            "category: prosecution\nseverity: high\nmatch:\n  all:\n    - smuggling\n"
            "    - {near: [a1b, c2d]}\n",
            9,
            "within",
        ),
        ("category: prosecution\nseverity: high\nmatch:\n  any: [smuggling, 42]\n", 7, "expected a term"),
        (
            "category: prosecution\nseverity: high\nmatch:\n  any:\n    - smuggling\n    - EU\n",
            9,
            "element symbols",
        ),
        ("category: prosecution\nseverity: high\nmatch: smuggling\nfields: [title, body]\n", 7, "fields.1"),
    ],
)
def test_schema_errors_point_at_the_offending_line(
    write_rules: RuleWriter, body: str, line: int, words: str
) -> None:
    path = write_rules("# a comment first\nid: broken\ntitle: Broken\n" + body)
    err = load_error(path)
    assert (err.file, err.line, err.rule_id) == (str(path), line, "broken")
    assert words in err.message


def test_the_error_path_hides_pydantic_union_tags(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(rule("r", "{all: [smuggling, {near: [smuggling, PR], within: 3}]}")))
    assert err.message.startswith("match.all.1.near.1: "), err.message
    assert "<" not in err.message.split(":")[0]


def test_invalid_yaml_names_the_line(write_rules: RuleWriter) -> None:
    err = load_error(write_rules("id: a\ntitle: [unclosed\ncategory: prosecution\n"))
    assert err.line is not None and err.line >= 2
    assert "invalid YAML" in err.message


def test_a_document_that_is_not_a_mapping_is_refused(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(rule("a", "smuggling") + "---\n- just\n- a list\n"))
    assert err.line == 7 and "a rule" in err.message and "vocabulary" in err.message


def test_duplicate_ids_across_files_name_both_places(write_rules: RuleWriter) -> None:
    first = write_rules(rule("same", "smuggling"), name="a.yaml")
    second = write_rules("# second file\n" + rule("same", "espionage"), name="b.yaml")
    with pytest.raises(RuleError) as info:
        load_ruleset([first.parent])
    err = info.value
    assert (err.file, err.line, err.rule_id) == (str(second), 2, "same")
    assert f"{first}:1" in err.message


def test_duplicate_vocabularies_are_refused(write_rules: RuleWriter) -> None:
    path = write_rules(VOCAB + "---\n" + VOCAB + "---\n" + rule("a", "{vocab: materials}"))
    err = load_error(path)
    assert err.line == 4 and "duplicate vocabulary 'materials'" in err.message


def test_unknown_vocabulary_names_the_reference_line(write_rules: RuleWriter) -> None:
    path = write_rules(
        VOCAB
        + "---\n"
        + rule(
            "a", "\n  all:\n    - {vocab: materials}\n    - any:\n        - ban\n        - {vocab: actions}"
        )
    )
    err = load_error(path)
    assert (err.line, err.rule_id) == (13, "a")
    assert "unknown vocabulary 'actions'" in err.message and "materials" in err.message


def test_unknown_vocabulary_inside_near_is_found(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(rule("a", "{near: [ban, [smuggling, {vocab: nope}]], within: 3}")))
    assert err.line == 5 and "unknown vocabulary 'nope'" in err.message


def test_a_rule_that_can_match_without_any_term_is_refused(write_rules: RuleWriter) -> None:
    err = load_error(write_rules(rule("a", "{none: [software]}")))
    assert err.rule_id == "a" and err.line == 5 and "none of its terms" in err.message


def test_empty_path_list_and_missing_paths_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "no rules found" in load_error(tmp_path / "empty").message
    missing = load_error(tmp_path / "missing.yaml")
    assert missing.file == str(tmp_path / "missing.yaml") and "no such" in missing.message


def test_directories_are_read_recursively_yaml_and_yml_only(write_rules: RuleWriter, tmp_path: Path) -> None:
    write_rules(VOCAB, name="vocabulary.yaml")
    write_rules(rule("deep", "{vocab: materials}"), name="sub/dir/deep.yml")
    write_rules(rule("top", "smuggling"), name="top.yaml")
    write_rules("not: [a rule", name="notes.txt")
    ruleset = load_ruleset([tmp_path])
    assert [r.id for r in ruleset.rules] == ["deep", "top"]
    assert ruleset.origins["deep"].file == str(tmp_path / "sub" / "dir" / "deep.yml")


def test_a_configmap_volume_is_read_through_its_links_not_its_hidden_folder(tmp_path: Path) -> None:
    files = {"a.yaml": rule("a", "smuggling"), "b.yaml": rule("b", "espionage", bogus="1")}
    project_configmap(files, tmp_path / "rules")  # as the kubelet mounts a ConfigMap
    err = load_error(tmp_path / "rules")
    assert err.file == str(tmp_path / "rules" / "b.yaml"), "the stable link, not ..<timestamp>/b.yaml"
    project_configmap({"a.yaml": rule("a", "smuggling")}, tmp_path / "fixed")
    (tmp_path / "fixed" / ".#a.yaml").write_text("not: [a rule", encoding="utf-8")  # an editor's lock file
    ruleset = load_ruleset([tmp_path / "fixed"])
    assert ruleset.origins["a"].file == str(tmp_path / "fixed" / "a.yaml")


def test_version_depends_on_contents_only(write_rules: RuleWriter, tmp_path: Path) -> None:
    write_rules(rule("a", "smuggling"), name="pack/a.yaml")
    first = load_ruleset([tmp_path / "pack"])
    assert len(first.version) == 12
    assert load_ruleset([tmp_path / "pack"]).version == first.version
    shutil.copytree(tmp_path / "pack", tmp_path / "moved")
    assert load_ruleset([tmp_path / "moved"]).version == first.version
    write_rules(rule("a", "espionage"), name="pack/a.yaml")
    assert load_ruleset([tmp_path / "pack"]).version != first.version


def test_origins_record_rule_and_example_lines(ruleset_of: Callable[[str], Ruleset]) -> None:
    ruleset = ruleset_of(
        rule("a", "smuggling")
        + "examples:\n  match:\n    - Gold smuggling ring\n    - {title: Smuggling}\n  no_match: [Nothing]\n"
    )
    origin = ruleset.origins["a"]
    assert origin.line == 1
    assert origin.example_lines == {"match": (8, 9), "no_match": (10,)}
