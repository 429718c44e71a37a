"""YAML errors point at the line to fix; documents that expand without bound are refused."""

from __future__ import annotations

import pytest

from rarewatch.yamlpos import MAX_DEPTH, MAX_VALUES, YamlSyntaxError, load_documents, load_single


def error_of(text: str) -> YamlSyntaxError:
    with pytest.raises(YamlSyntaxError) as caught:
        list(load_documents(text))
    return caught.value


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # An unclosed quote is noticed at the end of the stream: the quote's line is the one to fix.
        ('a: 1\nb: "two\nc: 3\n', 2),
        # An unclosed bracket is noticed at the next key's colon, a line later.
        ("a: 1\nb: [x, y\nc: 3\n", 2),
        ("a: 1\nb: {x: 1\nc: 3\n", 2),
        # A key without its colon is noticed on the next line.
        ("a: 1\nb\nc: 3\n", 2),
        # Noticed at the end of the stream, after blank lines: the last line with content.
        ("a: 1\nb: [\n\n\n", 2),
        # Where the parser stops is the mistake itself.
        ("a:\n  b: 1\n c: 2\n", 3),
        ("a: 1\na: 2\n", 2),
        ("a:\n\tb: 1\n", 2),
    ],
)
def test_a_syntax_error_names_the_line_to_fix(text: str, line: int) -> None:
    err = error_of(text)
    assert err.line == line, str(err)
    assert str(err).startswith("invalid YAML: ")


def test_an_unclosed_construct_says_where_it_started() -> None:
    assert "(while scanning a quoted scalar that starts on line 2)" in str(error_of('a: 1\nb: "two\n'))


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    err = error_of("\n".join(lines) + "\nz: *a6\n")  # 10**7 values once expanded
    assert f"expands to more than {MAX_VALUES} values" in str(err)


def test_aliases_within_the_budget_still_work() -> None:
    doc = load_single("base: &b {x: 1}\nother: *b\n")
    assert doc is not None and doc.data == {"base": {"x": 1}, "other": {"x": 1}}


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 1000])  # 1000: beyond the stack, RecursionError
def test_absurd_nesting_is_refused_with_its_line(depth: int) -> None:
    err = error_of("a: 1\nb: " + "[" * depth + "]" * depth + "\n")
    assert f"nested more than {MAX_DEPTH} levels deep" in str(err)
    assert err.line == 2


def test_nesting_up_to_the_limit_loads() -> None:
    depth = MAX_DEPTH - 2
    doc = load_single("b: " + "[" * depth + "]" * depth + "\n")
    assert doc is not None


def test_a_key_brought_in_by_a_merge_is_placed_at_its_mapping() -> None:
    doc = load_single("sources:\n  - <<: {type: feed, interval: 5s}\n    name: s\n")
    assert doc is not None
    assert doc.line_of(("sources", 0, "name")) == 3
    # `interval` came from the merge: the error points at the entry that merged it, not a traceback.
    assert doc.line_of(("sources", 0, "interval")) == 2
