"""The regex prefilter (`ruleset.literals`): a regex is searched only in items whose text holds one
literal of each of its needs. It may only ever say "cannot match": these tests hold it to that on the
bundled pack over the labelled set and on patterns made to trip it, and show that it does skip."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import load_ruleset
from rarewatch.ruleset.chinese import to_simplified
from rarewatch.ruleset.core import compile_test
from rarewatch.ruleset.literals import LiteralIndex, fold, required_literals
from rarewatch.ruleset.nodes import AnyOf, Near, Node, Regex, Scan
from rarewatch.ruleset.text import display_text, holds_cjk_letter, search_text

LABELLED = Path(__file__).parents[2] / "data" / "labelled.jsonl"


@pytest.mark.parametrize(
    ("pattern", "needs"),
    [
        # a literal run, with optional endings folded into it as alternatives, and the redundant ones dropped
        (r"(?i)\bthreaten(?:s|ed)?\s+to\b", [{"threaten"}]),
        # an optional part inside a literal: both spellings
        (r"\bre-?impose", [{"re-impose", "reimpose"}]),
        # each part of a sequence is needed: every set is kept (the most telling first), short words not
        (
            r"(?i)\b(?:since|after)\s+the\s+lifting\s+of\b",
            [{"lifting"}, {"since", "after"}],
        ),
        # alternatives of a branch: one of them; a sequence gives its most telling part
        (r"(?:abcd\s+efgh|ijkl)", [{"efgh", "ijkl"}]),
        # alternatives multiplied out with what follows, up to a bound
        (r"(?:alpha|beta)(?:gram|ware)", [{"alphagram", "alphaware", "betagram", "betaware"}]),
        # groups that capture or set flags are read like the others
        (r"\b(halt|stop)ped\b", [{"haltped", "stopped"}]),
        (r"\b(?i:suspend|halt)s\b", [{"halts", "suspends"}]),
        # past the bound, a new literal starts with the part that broke it
        (r"(?:a|b|c|d|e|f|g|h)(?:i|j|k|l|m|n|o|p)(?:qrst|uvwx)yz", [{"qrstyz", "uvwxyz"}]),
        (r"(?>halted|stopped)", [{"halted", "stopped"}]),
        # a small class of characters is a small set of strings
        (r"\bsmelter[s']\b", [{"smelter'", "smelters"}]),
        # case: literals are folded, whatever the flags
        (r"\bSTATE\s+Council\b", [{"council"}, {"state"}]),
        # a repeat of at least one holds one repetition's strings
        (r"(?:halts?){2,}", [{"halt"}]),
        (r"(?:halt){2,}ed", [{"halt"}]),
        # Chinese: two characters suffice
        (r"(?:如果|若是)[^，]{0,8}不", [{"如果", "若是"}]),
        # any character breaks a literal: what it stands for is not known
        (r"(?i)halt.edly", [{"halt"}, {"edly"}]),
        # lookarounds consume nothing: they neither add nor break a literal
        (r"(?<!will be )\bidled\b", [{"idled"}]),
    ],
)
def test_required_literals(pattern: str, needs: list[set[str]]) -> None:
    assert [set(n) for n in required_literals(pattern) or ()] == needs


@pytest.mark.parametrize(
    "pattern",
    [
        r"a|bcdef",  # one alternative needs too little
        r"(?:export)?\s+ban",  # optional, and the rest too short
        r"(\w+)\s+\1",  # a back-reference
        r"(?:\w+|halted)",  # an alternative that needs nothing
        r"[a-z]{5,}",  # a class, no literal
        r"hal(?:ted)*",  # too short once the repeat is optional
        r"to\s+be\s+on",  # ASCII words under four letters
    ],
)
def test_no_needs_where_nothing_useful_is_known(pattern: str) -> None:
    """Then the pattern is always searched."""
    assert required_literals(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"(?i)fine", "FİNE"),  # U+0130: its full lower case is two characters
        (r"(?i)fine", "fıne"),  # dotless i: `re` folds it to i, `str.lower` does not
        (r"(?i)close", "cloſe"),  # long s
        (r"(?i)σοφια", "ΣΟΦΙΑς"),  # final sigma
        (r"(?i)οδοσ", "ΟΔΟΣ"),  # a capital sigma lowers to the final form at the end of a word
        (r"(?i)kilo", "\u212ailo"),  # Kelvin sign
        (
            r"HALTED",
            "halted",
        ),  # a case-sensitive pattern does not match, but the test must not lie either way
    ],
)
def test_the_fold_keeps_what_ignorecase_matches(pattern: str, text: str) -> None:
    """Wherever `re` finds the pattern, the folded text holds its literals."""
    needs = required_literals(pattern)
    assert needs is not None
    if re.search(pattern, text):
        folded = fold(text)
        assert all(any(s in folded for s in need) for need in needs)


def test_every_character_folds_as_the_character_ignorecase_matches_it_to() -> None:
    """Over every code point: a character and the one `re` lower-cases it to fold alike, and so do the
    members of each class of characters `re` treats as one (its `_casefix`)."""
    import _sre
    import re._casefix

    for code in range(0x110000):
        lower = _sre.unicode_tolower(code)
        if lower != code and not 0xD800 <= code < 0xE000:
            assert fold(chr(code)) == fold(chr(lower)), hex(code)
    for code, others in re._casefix._EXTRA_CASES.items():
        assert {fold(chr(c)) for c in (code, *others)} == {fold(chr(code))}, hex(code)


_PIECES = [
    "halt",
    "HALT",
    "ed",
    "ing",
    " ",
    "-",
    "mine",
    "Mine",
    "s",
    "care",
    "and",
    "maintenance",
    "稀土",
    "停产",
]
_PATTERNS = [
    r"(?i)\bhalt(?:ed|ing)?\s+(?:the\s+)?mines?\b",
    r"(?i)(?:care\s+and\s+maintenance|halted)",
    r"(?i)\b(?:mine|halt)\w*\b[^.]{0,20}?\bcare\b",
    r"(?:稀土|镓)[^，]{0,4}停产",
    r"(?i)(?<!care )\bmaintenance\b",
    r"(?i)\bmine.care\b",
    r"(?i)care(?:halt){1,3}ing",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.sampled_from(_PATTERNS))
def test_a_text_the_pattern_matches_always_meets_its_needs(pieces: list[str], pattern: str) -> None:
    text = "".join(pieces)
    needs = required_literals(pattern)
    assert needs is not None
    if re.search(pattern, text):
        folded = fold(text)
        assert all(any(s in folded for s in need) for need in needs)


def _regexes(node: Node) -> Iterator[Regex]:
    if isinstance(node, Regex):
        yield node
    for child in getattr(node, "children", ()):
        yield from _regexes(child)
    if isinstance(node, Near):
        yield from _regexes(node.left)
        yield from _regexes(node.right)


def test_the_bundled_pack_never_skips_a_regex_that_would_match() -> None:
    """Every regex of the bundled pack, over the fields of every labelled item: where the pattern finds
    something, the item's literals meet its needs. Most regexes have needs, so the test has teeth."""
    pack = load_ruleset([bundled_rules_dir()])
    regexes = {r.key: r for c in pack.core.rules for r in _regexes(c.expr)}
    with_needs = [r for r in regexes.values() if r.needs is not None]
    assert len(with_needs) >= 0.8 * len(regexes)
    matched = 0
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        raw = (item["title"], item.get("summary") or "", "")
        scan = Scan(raw, raw, {}, {})
        for regex in with_needs:
            if any(regex.pattern.search(scan.regex_text(f)) for f in range(3) if raw[f]):
                matched += 1
                assert regex._needs_met(scan), (regex.written, item["id"])
    assert matched > 20  # the set exercises the pack's regexes


class _NoSearch:
    """A pattern that must not be searched."""

    pattern = "unused"

    def search(self, text: str) -> None:
        raise AssertionError(f"searched {text!r}")


def test_a_regex_is_not_searched_in_an_item_without_its_literals() -> None:
    index = LiteralIndex()
    regex = Regex(r"(?i)\bcare\s+and\s+maintenance\b", False, 1, index=index)
    assert regex.needs is not None
    regex._compiled = _NoSearch()  # type: ignore[assignment]
    text = ("Miner halts the Kwinana plant", "", "")
    assert not regex.test(Scan(text, text, {}, {}), 7)


def test_a_regex_is_searched_where_its_literals_are() -> None:
    index = LiteralIndex()
    regex = Regex(r"(?i)\bcare\s+and\s+maintenance\b", False, 1, index=index)
    text = ("Miner puts plant on CARE and maintenance", "", "")
    assert regex.test(Scan(text, text, {}, {}), 7)
    text = ("Miner says care and upkeep continue; maintenance later", "", "")
    assert not regex.test(Scan(text, text, {}, {}), 7)  # the literals are there, the pattern is not


def test_the_index_finds_every_literal_added_even_after_a_search() -> None:
    index = LiteralIndex()
    (first,) = index.add((frozenset({"gallium"}),))
    assert index.found("gallium ban") == first
    (second,) = index.add((frozenset({"germanium", "gallium"}),))
    assert index.found("germanium and gallium ban") == second
    assert index.found(fold("GERMANIUM")) == second - first
    assert LiteralIndex().found("anything") == frozenset()


def test_a_regex_made_outside_a_pack_is_always_searched() -> None:
    assert Regex(r"(?i)\bcare\s+and\s+maintenance\b", False, 1).needs is None


def test_a_rule_s_compiled_test_searches_a_regex_only_where_its_literals_are() -> None:
    """`core.compile_test` asks a regex's needs itself (set tests against the item's literals, found once
    for the item) and then searches it: not at all without them, once for the item where they are."""
    index = LiteralIndex()
    regex = Regex(r"(?i)\bcare\s+and\s+maintenance\b", False, 1, index=index)
    other = Regex(r"(?i)\bcare\s+and\b", False, 2, index=index)
    test = compile_test(AnyOf([regex, other]))
    regex._compiled = _NoSearch()  # type: ignore[assignment]
    text = ("Miner halts the Kwinana plant", "", "")
    scan = Scan(text, text, {}, {})
    assert not test(scan, 7, frozenset())
    assert scan.literal_ids == frozenset(), "found once, and none"
    regex._compiled = None
    for text, holds in [
        (("Miner puts plant on CARE and maintenance", "", ""), True),
        (("Miner says care and upkeep continue; maintenance later", "", ""), True),  # `other`'s
        (("Miner says care, upkeep and maintenance", "", ""), False),  # literals there, no match
    ]:
        scan = Scan(text, text, {}, {})
        assert test(scan, 7, frozenset()) is holds
        assert test(scan, 7, frozenset()) is holds, "asked again: the item's cached results"
        assert scan.literal_ids is not None


def test_a_regex_that_needs_chinese_is_not_asked_of_ascii_text() -> None:
    """A regex with a need of Chinese literals alone (`Regex.needs_cjk`) is answered False for an item whose
    search texts are ASCII, before the item's literals are looked for: the Chinese rules' regexes are
    asked of English items that name a material, and the literal pass was most of their cost there."""
    index = LiteralIndex()
    regex = Regex(r"不得[^，。]{0,6}?(?:美国|美方)", False, 1, index=index)
    mixed = Regex(r"(?:gallium|镓)\s*(?:export|出口)", False, 2, index=index)
    assert regex.needs_cjk and not mixed.needs_cjk
    test = compile_test(AnyOf([regex]))
    english = ("Firms may not pass gallium to US defence makers", "", "")
    scan = Scan(english, english, {}, {})
    assert scan.ascii
    assert not test(scan, 7, frozenset())
    assert scan.literal_ids is None, "no literal pass for an ASCII item"
    scan = Scan(english, english, {}, {})
    assert not regex.test(scan, 7)
    assert scan.literal_ids is None, "nor when the node is asked itself (`--explain`)"
    chinese = ("要求企业不得向美国军工企业转让含稀土产品", "", "")
    scan = Scan(chinese, chinese, {}, {})
    assert not scan.ascii
    assert test(scan, 7, frozenset())
    assert regex.test(Scan(chinese, chinese, {}, {}), 7)
    both = ("gallium export", "", "")
    assert compile_test(AnyOf([mixed]))(Scan(both, both, {}, {}), 7, frozenset())


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("ab ,.-\"'\u3000\u00a0\u200b\u3002\u300a\u300b\u3001\uff0c\uff21\u212a\u0130")
            + list("稀土禁止出口鎵鍺ア한")
        ),
        max_size=30,
    )
)
def test_text_holding_a_chinese_letter_never_has_an_ascii_search_text(raw: str) -> None:
    """The premise of `Regex.needs_cjk`: a Han, kana or Hangul letter in what regexes search (the display
    text, converted to Simplified) stays in the search text, so an ASCII search text means no such
    letter was there to meet a need."""
    if holds_cjk_letter(to_simplified(display_text(raw))):
        assert not search_text(raw).isascii()


def test_only_letters_of_the_cjk_scripts_count_as_chinese_literals() -> None:
    assert holds_cjk_letter("出口") and holds_cjk_letter("ア") and holds_cjk_letter("한")
    assert not holds_cjk_letter("。《》、") and not holds_cjk_letter("export") and not holds_cjk_letter("")
