"""`match_jsonl` reads and writes JSON with orjson: the same values as the standard library, edge cases
included, and the standard library's messages for bad lines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rarewatch.commands.rules import match_jsonl
from tests.unit.ruleset.conftest import RuleWriter, rule

RULES = rule("ga", "{all: [gallium, export ban]}")


def run(rules: Path, lines: str) -> str:
    out = io.StringIO()
    assert match_jsonl([rules], False, io.StringIO(lines), out) == 0
    out.getvalue().encode("utf-8")  # as the command's standard output takes it: no lone surrogate
    return out.getvalue()


@pytest.mark.parametrize(
    "line",
    [
        '{"id": 18446744073709551616, "title": "Gallium export ban"}',  # beyond 64 bits: orjson refuses
        '{"id": -12345678901234567890123}',
        '{"id": NaN}',
        '{"id": Infinity, "title": "gallium export ban"}',
        '{"id": 1.5e300, "title": "x"}',
        '{"id": "稀土 \\ud83d\\ude00", "title": "Gallium export ban"}',
        '{"id": "\\ud800", "title": "Gallium export ban"}',  # a lone surrogate: written back escaped
        '{"id": ["稀土", "a\\udc00b"]}',
        '{"id": {"nested": [1, null, true]}}',
        '{"id": 7, "title": "a", "title": "Gallium export ban"}',  # a repeated key: the last one wins
    ],
)
def test_ids_come_back_as_the_standard_library_reads_them(write_rules: RuleWriter, line: str) -> None:
    (out,) = run(write_rules(RULES), line + "\n").splitlines()
    expected = json.loads(line)
    got = json.loads(out)
    assert json.dumps(got["id"]) == json.dumps(expected["id"])
    assert [m["rule"] for m in got["matches"]] == (
        ["ga"] if "gallium" in expected.get("title", "").lower() else []
    )


@pytest.mark.parametrize("line", ['{"id": 1,', "[1, 2", "{'id': 1}", '{"id": 1} x', '"\\x"'])
def test_invalid_json_gets_the_standard_library_message(write_rules: RuleWriter, line: str) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(line + "\n")  # as the command reads it, with its newline
    (out,) = run(write_rules(RULES), line + "\n").splitlines()
    expected = f"invalid JSON: {caught.value.msg} (column {caught.value.colno})"
    assert json.loads(out) == {"id": 1, "matches": [], "error": expected}


def test_every_line_is_written_in_order_across_batches(write_rules: RuleWriter) -> None:
    lines = "".join(json.dumps({"id": i, "title": f"Gallium export ban {i}"}) + "\n" for i in range(5000))
    out = [json.loads(line) for line in run(write_rules(RULES), lines).splitlines()]
    assert [o["id"] for o in out] == list(range(5000))
    assert all(o["matches"][0]["rule"] == "ga" for o in out)
