"""`rules_check` and `match_jsonl`: exit codes, messages and the JSON Lines contract."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest

from rarewatch.commands.evaluate import score_pack
from rarewatch.commands.rules import match_jsonl, rules_check
from rarewatch.evaluation import LabelledItem
from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import CATEGORIES, load_ruleset
from tests.unit.ruleset.conftest import RuleWriter, rule

GOOD = rule("lic", "{all: [rare earth, export licence]}") + (
    "examples:\n"
    "  match:\n"
    "    - Rare-earth export licences tightened\n"
    "    - {title: New rules, summary: rare earth export licence required}\n"
    "  no_match:\n"
    "    - Software export licence\n"
)


def mixed_lines(titles: list[str]) -> str:
    """199 input lines cycling through `titles`, with a line that is not JSON every 11th and a blank line
    every 13th: the input the chunked and the multi-process paths must answer line for line."""
    return "".join(
        "not json\n" if n % 11 == 5 else "\n" if n % 13 == 4 else json.dumps({"title": titles[n % 4]}) + "\n"
        for n in range(199)
    )


def outputs_by_jobs(rules: Path, lines: str, jobs: Sequence[int]) -> list[str]:
    """`match`'s output for `lines` read as a file, with each number of worker processes in `jobs`."""
    outs = []
    for j in jobs:
        out = io.StringIO()
        assert match_jsonl([rules], False, io.StringIO(lines), out, jobs=j) == 0
        outs.append(out.getvalue())
    return outs


def run_match(rules: Path, lines: str, explain: bool = False) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert match_jsonl([rules], explain, io.StringIO(lines), out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_rules_check_passes_a_good_pack(write_rules: RuleWriter) -> None:
    out = io.StringIO()
    assert rules_check([write_rules(GOOD)], out) == 0
    assert out.getvalue().startswith("1 rules, 3 examples, 0 failures")


def test_rules_check_reports_failing_examples_with_their_line(write_rules: RuleWriter) -> None:
    path = write_rules(GOOD.replace("Software export licence", "Rare earth export licence for software"))
    out = io.StringIO()
    assert rules_check([path], out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(
        f"{path}:11 [rule lic]: no_match example fired on ['rare earth', 'export licence']"
    )
    assert lines[-1].startswith("1 rules, 3 examples, 1 failures")


def test_rules_check_reports_a_match_example_that_does_not_fire(write_rules: RuleWriter) -> None:
    path = write_rules(GOOD.replace("    - Rare-earth export licences tightened", "    - Rare earth prices"))
    out = io.StringIO()
    assert rules_check([path], out) == 1
    assert f"{path}:8 [rule lic]: match example did not fire: 'Rare earth prices'" in out.getvalue()


def test_rules_check_exits_2_on_invalid_rules(write_rules: RuleWriter) -> None:
    path = write_rules(GOOD.replace("severity: high", "severity: severe"))
    out, err = io.StringIO(), io.StringIO()
    assert rules_check([path], out, err) == 2
    assert err.getvalue().startswith(f"rarewatch: {path}:4 [rule lic]: severity: unknown severity 'severe'")
    assert not out.getvalue(), "the error goes to standard error"


def test_rules_check_warns_of_a_term_a_vocabulary_lists_twice(write_rules: RuleWriter) -> None:
    vocab = (
        "vocabulary: acts\n"
        "terms:\n"
        "  - export licence\n"  # line 3
        "  - Export License\n"  # line 4: the same term, in another spelling and case
        "  - ban~\n"
        "  - {term: EU, case_sensitive: true}\n"  # line 6
        "  - {term: EU, case_sensitive: true}\n"  # line 7
        "  - {term: Rare Element, case_sensitive: true}\n"  # a name, matched as capitalised ...
        "  - rare element\n"  # ... and the words in any case: two terms
    )
    path = write_rules(vocab + "---\n" + rule("r", "{vocab: acts}"))
    out = io.StringIO()
    assert rules_check([path], out) == 0  # advice, not an error
    warnings = [line for line in out.getvalue().splitlines() if ": warning: " in line]
    assert warnings == [
        f"{path}:4: warning: vocabulary 'acts' lists 'Export License' twice (first at line 3)",
        f"{path}:7: warning: vocabulary 'acts' lists 'EU' twice (first at line 6)",
    ]


def test_the_bundled_pack_lists_no_term_twice() -> None:
    out = io.StringIO()
    rules_check([bundled_rules_dir()], out)
    assert ": warning: " not in out.getvalue(), out.getvalue()


def test_example_of_a_source_restricted_rule_uses_its_first_source(write_rules: RuleWriter) -> None:
    text = rule("r", "gallium", sources="[mofcom]") + (
        "examples:\n  match: [Gallium news]\n  no_match: [{title: Gallium news, source: other}]\n"
    )
    assert rules_check([write_rules(text)], io.StringIO()) == 0


def test_the_bundled_pack_passes_and_covers_every_category() -> None:
    out = io.StringIO()
    assert rules_check([bundled_rules_dir()], out) == 0, out.getvalue()
    ruleset = load_ruleset([bundled_rules_dir()])
    assert {r.category for r in ruleset.rules} == set(CATEGORIES)
    for r in ruleset.rules:
        assert len(r.examples.match) >= 5 and len(r.examples.no_match) >= 5, r.id


def test_match_jsonl_writes_one_line_per_input_line_in_order(write_rules: RuleWriter) -> None:
    rules = write_rules(GOOD + "---\n" + rule("other", "gallium").replace("export-licensing", "prosecution"))
    lines = (
        json.dumps({"id": "x1", "title": "Rare-earth export licences tightened", "link": "https://x.org"})
        + "\nnot json\n"
        + json.dumps({"title": "Gallium and rare earth export licence", "source": "s", "lang": "en"})
        + "\n[1, 2]\n\n"
        + json.dumps({"id": 7, "title": 5})
        + "\n"
        + json.dumps({"id": "x6"})
        + "\n\n  \n"
    )
    out = run_match(rules, lines)
    assert [o["id"] for o in out] == ["x1", 2, 3, 4, 5, 7, "x6"]
    assert out[0] == {
        "id": "x1",
        "matches": [{"rule": "lic", "category": "export-licensing", "severity": "high"}],
    }
    assert out[1]["matches"] == [] and out[1]["error"].startswith("invalid JSON")
    assert [m["rule"] for m in out[2]["matches"]] == ["lic", "other"]
    assert out[3] == {"id": 4, "matches": [], "error": "not a JSON object"}
    assert out[4] == {"id": 5, "matches": [], "error": "empty line"}
    assert out[5] == {"id": 7, "matches": [], "error": "not a string: title"}
    assert out[6] == {"id": "x6", "matches": []}


def test_match_jsonl_explain_adds_terms(write_rules: RuleWriter) -> None:
    line = json.dumps({"id": 1, "title": "稀土 news", "summary": "Rare earth export licence"}) + "\n"
    (out,) = run_match(write_rules(GOOD), line, explain=True)
    assert out["matches"][0]["terms"] == ["rare earth", "export licence"]


def test_match_jsonl_normalises_html_and_width(write_rules: RuleWriter) -> None:
    line = json.dumps({"summary": "<p><b>Rare</b> earth</p> ＥＸＰＯＲＴ &amp; export licence"}) + "\n"
    (out,) = run_match(write_rules(GOOD), line)
    assert [m["rule"] for m in out["matches"]] == ["lic"]


def test_eval_scores_the_plain_texts_that_match_matches(write_rules: RuleWriter) -> None:
    # Markup, an entity and pinyin after Chinese characters are out of the text the service matches.
    path = write_rules(GOOD + "---\n" + rule("zh", "{all: [稀土, 出口许可]}"))
    titles = [
        "<b>Rare</b> earth export licen<i></i>ce",
        "Rare earth export licence &amp; more",
        "稀(xī)土出口许(xǔ)可",
    ]
    items = [
        LabelledItem(str(n), title, "", None, frozenset({"export-licensing"}), frozenset())
        for n, title in enumerate(titles)
    ]
    report = score_pack(load_ruleset([path]), items)
    assert report.errors == ()
    for title in titles:  # as `rarewatch match` finds them
        (out,) = run_match(path, json.dumps({"title": title}, ensure_ascii=False) + "\n")
        assert out["matches"]


def test_match_jsonl_exits_2_on_invalid_rules(
    write_rules: RuleWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_rules(rule("x", "{any: [a]}"))
    out = io.StringIO()
    assert match_jsonl([path], False, io.StringIO("{}\n"), out) == 2
    assert out.getvalue() == ""
    assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize("block", [40, 97, 1 << 20])
def test_match_jsonl_with_jobs_writes_what_one_process_writes_in_order(
    write_rules: RuleWriter, monkeypatch: pytest.MonkeyPatch, jobs: int, block: int
) -> None:
    from rarewatch.commands import match_pool

    monkeypatch.setattr(match_pool, "CHUNK", 7)  # many chunks, so their order matters
    # Input that never waits goes in blocks of characters: small ones end inside lines, on blank
    # lines, and hold no whole line at all (a line longer than a block).
    monkeypatch.setattr(match_pool, "BLOCK", block)
    rules = write_rules(GOOD)
    titles = ["Rare-earth export licences tightened", "Software export licence", "", "weather"]
    lines = mixed_lines(titles)
    lines += "\n\n"  # trailing blank lines: no output, as with one process
    outs = outputs_by_jobs(rules, lines, (1, jobs))
    assert outs[1] == outs[0]
    # Input that can wait (a pipe) goes line by line instead, in chunks: the same output.
    out = io.StringIO()
    with _pipe(lines) as piped:
        assert match_jsonl([rules], False, piped, out, jobs=jobs) == 0
    assert out.getvalue() == outs[0]
    # A run of blank lines, then a last line with no newline.
    tail = lines.rstrip("\n") + "\n\n\n\n" + json.dumps({"title": titles[0]})
    tails = outputs_by_jobs(rules, tail, (1, jobs))
    assert tails[1] == tails[0]
    assert [json.loads(line)["id"] for line in tails[0].splitlines()][-4:] == [200, 201, 202, 203]
    ids = [json.loads(line)["id"] for line in outs[0].splitlines()]
    assert ids == list(range(1, 200)), "one line out per line in, in order"
    fired = sum(n % 4 == 0 and n % 11 != 5 and n % 13 != 4 for n in range(199))
    assert sum('"lic"' in line for line in outs[0].splitlines()) == fired


@contextlib.contextmanager
def _pipe(text: str) -> Iterator[TextIO]:
    """The read end of a pipe holding `text` (UTF-8, at most a pipe's buffer), its write end closed
    (so that no forked worker inherits it and keeps the reader from its end of file)."""
    read_fd, write_fd = os.pipe()
    with open(write_fd, "w", encoding="utf-8") as writer:
        writer.write(text)
    with open(read_fd, encoding="utf-8") as reader:
        yield reader


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("block", [40, 97, 1 << 20])
def test_match_jsonl_with_jobs_on_a_file_writes_what_one_process_writes(
    write_rules: RuleWriter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, newline: str, block: int
) -> None:
    """A regular file: forked workers read their own blocks by byte offsets (`spans`), where lines end
    as the text layer ends them (no carriage return); with one, the parent reads the text as before."""
    from rarewatch.commands import match_pool

    monkeypatch.setattr(match_pool, "BLOCK", block)
    rules = write_rules(GOOD)
    titles = ["Rare-earth export licences tightened", "稀土 export licence — 許可證", "", "weather"]
    lines = mixed_lines(titles)
    path = tmp_path / "items.jsonl"
    for text in (lines + "\n\n", lines + "\n\n\n" + json.dumps({"title": titles[0]}), "{\n" + lines):
        path.write_bytes(text.replace("\n", newline).encode())
        outs = []
        for jobs in (1, 2):
            out = io.StringIO()
            with path.open(encoding="utf-8") as infile:
                assert (match_pool._file_at(infile) is None) == (newline != "\n")
                assert match_jsonl([rules], False, infile, out, jobs=jobs) == 0
            outs.append(out.getvalue())
        assert outs[1] == outs[0]
        assert len(outs[0].splitlines()) >= 199


def test_match_jsonl_with_jobs_on_a_file_that_is_not_utf8_raises_as_one_process_does(
    write_rules: RuleWriter, tmp_path: Path
) -> None:
    from rarewatch.commands import match_pool

    rules = write_rules(GOOD)
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"title": "ok"}\n{"title": "\xff"}\n')
    for jobs in (1, 2):
        with path.open(encoding="utf-8") as infile, pytest.raises(UnicodeDecodeError):
            match_jsonl([rules], False, infile, io.StringIO(), jobs=jobs)
    assert match_pool._file_at(io.StringIO("{}\n")) is None, "no file: the text goes to the workers"
