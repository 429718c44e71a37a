"""`rarewatch match` decides most items from search texts built straight from the raw fields (no plain
texts, no `match_fields`): it must give exactly what matching the plain texts gives, on the labelled
set, on every rule example of the bundled pack, and on texts made to trip a shortcut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rarewatch.commands.rules import _search_texts, encode_block, encode_line, gate_closed
from rarewatch.normalize import plain_text, plain_texts_joined
from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.ruleset.cache import RulesetCache, load_core
from rarewatch.ruleset.core import compile_test
from rarewatch.ruleset.nodes import AllOf, Near, NoneOf, Scan, TermSet
from rarewatch.ruleset.schema import Example
from rarewatch.ruleset.text import WHITESPACE, fold_lines, joined_search_text, raw_search_text, search_text

LABELLED = Path(__file__).parents[2] / "data" / "labelled.jsonl"
FIELDS = ("title", "summary", "content")

# Whitespace, separators, markup, entities, NUL, full-width and Traditional characters, in every field.
TRICKY = [
    "",
    " ",
    "  China bans  gallium exports ",
    "China bans gallium exports ",
    " China bans gallium exports",
    "rare-earth\texport\nban",
    "rare\u2013earth export ban",
    "Rare-Earth EXPORT BAN",
    "export ban on gallium's\x1crivals",
    "<b>gallium</b> export ban",
    "gallium &amp; germanium export ban",
    "&lt;gallium&gt; export ban",
    "China bans gal<i></i>lium exports",  # a key that only the plain text spells
    "China bans ga&#108;lium exports",
    "gallium\x00export ban",
    "ｇａｌｌｉｕｍ export ban",
    "稀土出口管製",
    "中国对镓、锗实施出口管制",
    "ga\u200bllium export ban",
    "magnet school export ban",
    "x-ray - export  --  ban",
    "`quoted` 'gallium' export ban ",
    # For the texts normalised together: what NFKC, lower-casing and Chinese conversion do at the edges.
    "ΟΔΟΣ",
    "Σ gallium",
    "İstanbul gallium export ban",
    "\u0301e gallium",
    "gallium e\u0301",
    "ﬁnal gallium export ban ﬁ",
    "\u3000稀土出口管制\u3000",
    "\u00a0gallium\u00a0",
    "稀土 出口 許可證",
    "镓\u200b出口管制",
    "gallium \ud800 export ban",
    "ｇａｌｌｉｕｍ\u2028export ban",
    # Pinyin injected after each character: no key is whole until `plain_text` takes it out.
    "稀(xī)土(tǔ)出(chū)口(kǒu)管(guǎn)制(zhì)",
    "镍矿生(shēng)产（chǎn）中断",
    "稀土（Reuters）出口管制(ppm)",
]


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset([bundled_rules_dir()])


def reference_search(texts: tuple[str, ...]) -> str:
    """What `Scanner.scan` searches: the search text of each plain text, joined by newlines."""
    return "\n".join(search_text(p) if (p := plain_text(t)) else "" for t in texts)


def reference_line(ruleset: Ruleset, data: dict[str, Any], number: int) -> str:
    """The output line by way of the plain texts and `match_fields`, as before the shortcut."""
    fields = {k: plain_text(data.get(k) or "") for k in FIELDS}
    matches = ruleset.match_fields(fields, source=data.get("source"), lang=data.get("lang"))
    records = [{"rule": m.rule, "category": m.category, "severity": m.severity.label} for m in matches]
    item_id = data.get("id")
    return json.dumps(
        {"id": number if item_id is None else item_id, "matches": records}, separators=(",", ":")
    )


def items(ruleset: Ruleset) -> Iterator[dict[str, Any]]:
    """The labelled set, every rule example of the pack, and the tricky texts in each field."""
    with LABELLED.open(encoding="utf-8") as lines:
        for line in lines:
            data = json.loads(line)
            yield {k: data[k] for k in ("id", "title", "summary", "lang") if k in data}
    for rule in ruleset.rules:
        for example in (*rule.examples.match, *rule.examples.no_match):
            yield _example(example, rule.sources[0] if rule.sources else None)
    for n, text in enumerate(TRICKY):
        yield {"id": f"t{n}", "title": text}
        yield {"id": f"t{n}", "title": "gallium export ban", "content": text}
        for other in TRICKY:
            yield {"id": f"t{n}", "title": text, "summary": other, "content": text + other}


def _example(example: Example, source: str | None) -> dict[str, Any]:
    if isinstance(example, str):
        return {"title": example, "source": source}
    fields = {"title": example.title, "summary": example.summary, "content": example.content}
    return {**fields, "source": example.source or source}


def test_search_texts_from_raw_fields_are_the_search_texts_of_the_plain_texts(ruleset: Ruleset) -> None:
    shortcut = together = 0
    for data in items(ruleset):
        texts = tuple(data.get(k) or "" for k in FIELDS)
        assert _search_texts(texts) == reference_search(texts), texts
        shortcut += raw_search_text(texts) is not None
        plain = plain_texts_joined(texts)
        if plain is not None:
            assert plain.split("\0") == [plain_text(t) for t in texts], texts
            together += raw_search_text(texts) is None and joined_search_text(plain) is not None
    assert shortcut > 300, "the shortcut is taken for plain ASCII items"
    assert together > 300, "the others' texts are normalised together where that is exact"


def test_match_lines_are_those_of_matching_the_plain_texts(ruleset: Ruleset) -> None:
    gated = fired = 0
    for number, data in enumerate(items(ruleset), start=1):
        line = json.dumps(data, ensure_ascii=False)
        assert encode_line(ruleset, line, number, False) == reference_line(ruleset, data, number) + "\n", data
        texts = tuple(data.get(k) or "" for k in FIELDS)
        gated += ruleset.cannot_fire(_search_texts(texts))
        fired += bool(ruleset.match_fields({k: plain_text(t) for k, t in zip(FIELDS, texts, strict=True)}))
    assert gated > 100, "many items are decided at the gate"
    assert fired > 300, "and many fire"


def test_blocks_give_what_matching_each_line_gives(ruleset: Ruleset) -> None:
    """A block's lines are first asked of the gate all at once (`gate_closed`, ASCII JSON lines without
    escapes, tags or entities): the output is still the reference's, line for line, whether the JSON is
    written with escapes (`ensure_ascii`) or not, and with the JSON's own spacing squeezed or spread."""
    data = list(items(ruleset))
    for ensure_ascii in (False, True):
        for separators in ((", ", ": "), (",", ":"), (" ,  ", " :  ")):
            lines = [json.dumps(d, ensure_ascii=ensure_ascii, separators=separators) for d in data]
            body, trailing = encode_block(ruleset, (1, "\n".join(lines) + "\n"), False)
            expected = [reference_line(ruleset, d, n) + "\n" for n, d in enumerate(data, start=1)]
            assert body.splitlines(keepends=True) == expected
            assert trailing == []


def test_the_match_core_read_back_from_the_cache_gives_the_reference_lines(
    ruleset: Ruleset, tmp_path: Path
) -> None:
    """`rarewatch match` without `--explain` matches with the pack's match core, read back from the rule
    cache on its own (no rule models): line for line what the whole pack gives, in blocks and alone."""
    cache = RulesetCache(tmp_path / "cache")
    load_core([bundled_rules_dir()], cache)  # compiled, both entries written
    core = load_core([bundled_rules_dir()], cache)
    assert (cache.hits, cache.misses) == (1, 2)  # the core's entry, after the core's and pack's misses
    assert core is not ruleset.core
    data = list(items(ruleset))
    lines = [json.dumps(d, ensure_ascii=False) for d in data]
    expected = [reference_line(ruleset, d, n) + "\n" for n, d in enumerate(data, start=1)]
    body, _ = encode_block(core, (1, "\n".join(lines) + "\n"), False)
    assert body.splitlines(keepends=True) == expected
    assert [encode_line(core, line, n, False) for n, line in enumerate(lines, start=1)] == expected


def test_the_gate_is_asked_of_many_lines_at_once_and_never_wrongly_closed(ruleset: Ruleset) -> None:
    unicode_lines = [json.dumps(d, ensure_ascii=False) for d in items(ruleset)]
    unicode_lines = [line for line in unicode_lines if not line.isascii()]
    lines = [json.dumps(d) for d in items(ruleset)] + unicode_lines
    lines += [
        json.dumps({"title": "Rare  earth\x0cexport  curbs", "summary": "weather"}),  # escaped: not asked
        '{"title": "RARE-EARTH  export curbs", "summary": "a  b"}',
        '{"title": "x",   "summary":   "China  bans   GALLIUM  exports"}',
        '{"title": "magnet school", "content": "no"}',
        '{"id": "gallium", "title": "weather"}',  # a key outside the texts: asked again, not wrongly closed
        "not json",
        "",
    ]
    closed = gate_closed(ruleset, lines, False)
    assert len(closed) == len(lines)
    assert sum(closed) > 50, "most plain ASCII lines are decided at once"
    assert sum(closed[-7 - len(unicode_lines) : -7]) > 20, "and many others"
    for line, shut in zip(lines, closed, strict=True):
        if not shut or not line.startswith("{"):  # closed or not, a line that is no item says so
            continue
        data = json.loads(line)
        texts = tuple(data.get(k) or "" for k in FIELDS)
        assert ruleset.cannot_fire(_search_texts(texts)), line
    assert not any(gate_closed(ruleset, lines, True)), "--explain looks past the gate"
    # A gate key, whatever its case, dashes and spaces; and one outside the texts (asked again).
    assert [closed[-6], closed[-5], closed[-3]] == [False, False, False]


def test_the_line_fold_takes_for_whitespace_what_str_split_takes() -> None:
    spaces = {c for c in map(chr, range(0x110000)) if c.isspace()}
    assert set(WHITESPACE) == spaces - {"\n", " "}
    folded = fold_lines("Rare\u2028\u2028earth  EXPORT\u3000—ban\nΟΔΟΣ")
    assert folded == "rare earth export ban\nοδος".encode()
    assert fold_lines("許可證") is None, "Traditional text is left to each item's own gate"
    assert fold_lines("İstanbul") is None


def test_a_block_is_folded_whole_only_when_every_line_holds_its_texts_verbatim(ruleset: Ruleset) -> None:
    """The block is folded in one piece when no line has an escape, a tag or an entity; one line that
    spells a gate key only through an escape keeps it from that, and is asked on its own."""
    weather = [json.dumps({"id": n, "title": "Weather for the week"}) for n in range(20)]
    ascii_block = [*weather, '{"id": "e", "title": "galli\\u0075m export ban"}']
    closed = gate_closed(ruleset, ascii_block, False)
    assert closed[-1] is False, "an escaped key is not wrongly closed"
    assert all(closed[:-1]), "and the other lines still are"
    mixed = [*weather, json.dumps({"title": "天气预报"}, ensure_ascii=False), ascii_block[-1]]
    closed = gate_closed(ruleset, mixed, False)
    assert closed[-1] is False
    assert all(closed[:-1])


def test_a_lone_surrogate_leaves_only_its_own_line_to_its_item(ruleset: Ruleset) -> None:
    assert fold_lines("镓 \ud800") is None, "no UTF-8 for the automaton: the line is asked on its own"
    lines = [json.dumps({"title": t}, ensure_ascii=False) for t in ("天气预报", "镓 \ud800", "今日新闻")]
    assert gate_closed(ruleset, lines, False) == [True, False, True]
    body, _ = encode_block(ruleset, (1, "\n".join(lines) + "\n"), False)
    expected = [reference_line(ruleset, json.loads(line), n) + "\n" for n, line in enumerate(lines, 1)]
    assert body.splitlines(keepends=True) == expected


def test_lines_the_gate_is_closed_on_are_written_as_each_line_alone_writes_them(ruleset: Ruleset) -> None:
    """A line the block pass closes the gate on is answered without a record to encode when it is a
    plain item; any other kind of id, a text that is not one, a line that is no object: as alone."""
    ids = ['"s"', '"été 😀"', "5", "-17", "0", "18446744073709551615", "-9223372036854775808"]
    ids += ["18446744073709551616", "12345678901234567890123", "1.5", "1.0", "1e400", "NaN", "-0.0"]
    ids += ["true", "false", "null", "[1, 2]", '{"id": "x"}']
    lines = [f'{{"id": {i}, "title": "Weather for the week"}}' for i in ids]
    lines += [
        '{"title": "Weather for the week"}',
        '{"title": 5}',
        '{"title": "Weather", "summary": ["x"]}',
        '{"title": "Weather", "content": {}}',
        '{"title": "Weather", "source": 5}',
        '{"title": "Weather", "lang": true}',
        '{"title": "Weather", "source": "s", "lang": "en", "summary": null}',
        "[1, 2]",
        '"Weather"',
        "42",
        "null",
        '{"title": "Weather"',
        '{"title": "Weather"} trailing',
        '{"id": "first", "id": "second", "title": "Weather"}',
        '{"title": "天气预报", "id": "zh"}',
    ]
    closed = gate_closed(ruleset, lines, False)
    assert all(closed), "every line is one the gate is closed on"
    for text in ("\n".join(lines) + "\n", "\n".join(lines)):
        body, _ = encode_block(ruleset, (1, text), False)
        alone = [encode_line(ruleset, line + "\n", n, False) for n, line in enumerate(lines, start=1)]
        assert body.splitlines(keepends=True)[:-1] == alone[:-1]
        assert body.splitlines(keepends=True)[-1] == alone[-1]


def test_a_line_of_whitespace_in_a_block_is_a_blank_line(ruleset: Ruleset) -> None:
    lines = ['{"id": 1, "title": "Weather"}', "   ", "\t", "", '{"id": 5, "title": "Weather"}', " ", ""]
    body, trailing = encode_block(ruleset, (1, "\n".join(lines) + "\n"), False)
    assert body.splitlines() == [
        '{"id":1,"matches":[]}',
        '{"id":2,"matches":[],"error":"empty line"}',
        '{"id":3,"matches":[],"error":"empty line"}',
        '{"id":4,"matches":[],"error":"empty line"}',
        '{"id":5,"matches":[]}',
    ]
    assert trailing == [6, 7]


def test_each_rule_s_compiled_test_answers_as_its_tree_of_nodes(ruleset: Ruleset) -> None:
    """`match` asks each woken rule one function made from its expression (`core.compile_test`): on the
    items that get that far, its answer is the expression's own, rule by rule, with or without source."""
    core, asked, held = ruleset.core, 0, 0
    for data in items(ruleset):
        texts = tuple(plain_text(data.get(k) or "") for k in FIELDS)
        scan = core._scanner.scan(texts, gated=False)
        assert scan is not None
        core._scanner.filter(scan)
        for rule in core.rules:
            test = compile_test(rule.expr)
            answer = test(scan, rule.fields, scan.found_in(rule.fields))
            assert answer == rule.expr.test(scan, rule.fields), (rule.id, data)
            asked += 1
            held += answer
    assert held > 300, "many rules hold"
    assert asked - held > 300, "and many do not"


class _SpyNear(Near):
    """A `near` that records each time it is asked, and says it holds."""

    __slots__ = ("asked",)

    def __init__(self, left: TermSet, right: TermSet) -> None:
        super().__init__(left, right, 3, [True, True, True])
        self.asked = 0

    def test(self, scan: Scan, fields: int) -> bool:
        self.asked += 1
        return True


@pytest.mark.parametrize(
    ("found", "asked"),
    [(frozenset(), 0), ({1}, 0), ({2}, 0), ({0}, 0), ({1, 2}, 1), ({0, 1, 2}, 1)],
)
def test_a_compiled_near_is_asked_only_when_both_its_sides_were_found(found: set[int], asked: int) -> None:
    """A rule's compiled test asks a `near` only when a term of each side is among the terms found in the
    rule's fields: two set tests spare the pairing of hits on most items that wake the rule."""
    labels = ["zero", "one", "two"]
    near = _SpyNear(TermSet(frozenset({1}), labels), TermSet(frozenset({2}), labels))
    scan = Scan(("",), ("",), {}, {})
    assert compile_test(near)(scan, 1, frozenset(found)) is bool(asked)
    assert near.asked == asked


def test_an_item_without_a_gate_key_is_answered_before_its_plain_texts(
    ruleset: Ruleset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line the block pass leaves to its item (an escape in it) whose texts hold no key that can open
    the gate is answered by the quick gate alone: no plain texts, no term pass."""

    def refused(text: str) -> str:
        raise AssertionError("plain texts made")

    monkeypatch.setattr("rarewatch.commands.rules.plain_text", refused)
    line = '{"id": "q", "title": "Council \\"approves\\" road budget", "summary": "Rates unchanged"}\n'
    assert encode_line(ruleset.core, line, 1, False) == '{"id":"q","matches":[]}\n'


@pytest.mark.parametrize(("found", "asked"), [({1, 2}, 0), ({1, 2, 3, 4, 5, 6}, 1)])
def test_a_compiled_all_asks_its_vetoes_last(found: set[int], asked: int) -> None:
    """In a rule's compiled test an `all` tries its `none` children after the others, whatever they cost:
    a veto seldom holds, so it decides an `and` only once the positive children have all held. Here the
    veto (a `near`, cost 3) is cheaper than the positive branch (four terms, cost 4), which it would
    precede if cost alone decided, and it is asked only on the item where the branch holds."""
    labels = ["zero", "one", "two", "three", "four", "five", "six"]
    veto = _SpyNear(TermSet(frozenset({1}), labels), TermSet(frozenset({2}), labels))
    branch = AllOf([TermSet(frozenset({t}), labels) for t in (3, 4, 5, 6)])
    rule = AllOf([NoneOf([veto]), branch])
    assert rule.children[0] is not branch, "cost alone would try the veto first"
    scan = Scan(("",), ("",), {}, {})
    assert compile_test(rule)(scan, 1, frozenset(found)) is False
    assert veto.asked == asked
