"""The libyaml fast path of `yamlpos` gives exactly what the ruamel path gives: values (with their types),
document start lines and the line of every location; whatever it is unsure of goes to ruamel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rarewatch import yamlpos
from rarewatch.paths import bundled_rules_dir, default_config_file

REPO = Path(__file__).resolve().parents[2]

TRICKY = [
    "a: 1\nb: -2\nc: +3\nd: 0\ne: 1.5\nf: -0.25\n",
    "yes: no\non: off\ny: n\n",  # YAML 1.1 booleans are strings in YAML 1.2
    "a: 010\nb: 0o17\nc: 0x1F\nd: 1_000\ne: 1e5\nf: .inf\ng: -.Inf\nh: .NaN\ni: 1:20\n",
    "a: 2025-01-01\nb: 2025-01-01T10:00:00Z\nc: 15m\nd: 3 days\n",
    "a: ~\nb: null\nc: NULL\nd:\ne: True\nf: FALSE\ng: 'true'\nh: \"1\"\n",
    "a: !!str 12\nb: !!int '7'\nc: !custom x\nd: !!binary aGk=\ne: !!set {x}\n",
    "base: &b {x: 1}\nmerged:\n  <<: *b\n  y: 2\n",
    "list: &l [a, b]\nagain: *l\n",
    "1: one\n2: two\ntrue: t\nnull: n\n",
    "a: 1\na: 2\n",  # a duplicate key: ruamel's error
    "- a\n-\n  - b\n  -\n    c: d\n- {e: [f, {g: h}]}\n",
    "# comment\n\n---\nid: x\nmatch: {all: [a, b]}\n---\n---\nid: y\n",
    "%YAML 1.1\n---\na: yes\n",
    "key: |\n  block\n  text\nother: >\n  folded\n",
    "a: [1, 2\n",  # bad YAML
    "a: 'unclosed\nb: 2\n",
    "稀土: 出口管制\nlist: [镓, 锗]\n",
    "[" * 150 + "]" * 150,
    "plain scalar document\n",
    "",
]


def locations(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    yield (*prefix, "<tag>", "missing")
    if isinstance(data, dict):
        for key, value in data.items():
            yield from locations(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from locations(value, (*prefix, index))
        yield (*prefix, len(data))


def slow(text: str) -> list[yamlpos.YamlDocument] | str:
    try:
        return list(yamlpos._slow_documents(text))
    except yamlpos.YamlSyntaxError as exc:
        return f"{exc} @ {exc.line}"


def public(text: str) -> list[yamlpos.YamlDocument] | str:
    try:
        return list(yamlpos.load_documents(text))
    except yamlpos.YamlSyntaxError as exc:
        return f"{exc} @ {exc.line}"


def assert_same(text: str) -> None:
    expected, got = slow(text), public(text)
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
        return
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert repr(a.data) == repr(b.data)
        assert a.start_line == b.start_line
        for loc in locations(b.data):
            try:
                want = b.line_of(loc)
            except KeyError:  # ruamel's positions of merged (`<<`) keys; both sides are ruamel's here
                continue
            assert a.line_of(loc) == want, loc


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_documents_load_as_ruamel_loads_them(text: str) -> None:
    assert_same(text)


def repo_yaml() -> list[Path]:
    files = [*sorted(bundled_rules_dir().glob("*.yaml")), default_config_file()]
    return files + sorted(p for p in (REPO / "config").rglob("*.y*ml"))


@pytest.mark.parametrize("path", repo_yaml(), ids=lambda p: p.name)
def test_the_projects_yaml_takes_the_fast_path_with_the_same_result(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert yamlpos._fast_documents(text) is not None  # no silent fallback for ordinary files
    assert_same(text)


def test_a_rule_file_whose_regexes_hold_thousands_of_brackets_takes_the_fast_path() -> None:
    """Brackets inside quoted regexes are no nesting: 4,000 of them (the bundled trade rules hold ~1,000)."""
    rules = "".join(f'- id: r{n}\n  match: {{regex: "[^.;]{{0,40}}?(?:a|b)[{n}]"}}\n' for n in range(1_000))
    assert rules.count("[") + rules.count("{") > 3_000
    assert yamlpos._fast_documents(rules) is not None
    assert_same(rules)


@pytest.mark.parametrize("depth", [2_000, 9_000])
def test_deep_flow_nesting_within_the_bracket_bound_is_refused_by_libyaml_itself(depth: int) -> None:
    """libyaml stops at its own nesting limit (no crash, no deep C recursion); the slow path says where."""
    text = "a: 1\nb: " + "[" * depth + "]" * depth + "\n"
    assert text.count("[") <= yamlpos._MAX_BRACKETS
    assert yamlpos._fast_documents(text) is None
    with pytest.raises(yamlpos.YamlSyntaxError, match="nested more than") as err:
        list(yamlpos.load_documents(text))
    assert err.value.line == 2


def test_simple_documents_take_the_fast_path_and_unsure_ones_do_not() -> None:
    assert yamlpos._fast_documents("a: 1\nb: [x, 'y']\n") is not None
    assert yamlpos._fast_documents("a: yes\n") is not None  # a string in YAML 1.2, and so here
    unsure = (
        "a: 010\n",
        "a: 2025-01-01\n",
        "a: 1\na: 2\n",
        "a: !custom 1\n",
        "a: [1\n",
        "%YAML 1.1\n---\na: 1\n",
    )
    for text in unsure:
        assert yamlpos._fast_documents(text) is None, text


# Plain scalars starting with every kind of character, the ones ruamel's resolver has patterns for
# (digits, signs, '.', '~', t/f/n, '<', '=') and the ones it has none for.
FIRST_CHARACTERS = [chr(c) for c in range(32, 127)] + ["é", "稀", "\u00a0"]
TAILS = ["", "x", "1", "rue", "alse", "ull", "ULL", "RUE", "0", ".5", "inf", "nf", "<", "=", ":20"]


@pytest.mark.parametrize("first", FIRST_CHARACTERS)
def test_a_plain_scalars_tag_is_the_resolvers_whatever_its_first_character(first: str) -> None:
    # The fast path answers "string" without the resolver for a first character it has no pattern for;
    # for every character and tail, that must be what the resolver itself says (or both are unsure).
    def outcome(tag_of: Any, value: str) -> str:
        try:
            return str(tag_of(value))
        except yamlpos._Unsure:
            return "unsure"

    for tail in TAILS:
        value = first + tail
        assert outcome(yamlpos._plain_tag, value) == outcome(yamlpos._resolved_tag.__wrapped__, value), value
