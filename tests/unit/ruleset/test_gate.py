"""The matcher's gate: the small automaton every item passes first. Items that name nothing a rule
needs stop there, which keeps matching fast on general news (`bench/bench_matcher.py`).

Rules that name no material (list designations, dual-use bans, engineers recalled) add their own few
specific terms to the gate, never a large shared vocabulary such as the countries or staff words, and
a pack that adds many rules on another subject keeps the bundled rules gated on theirs."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rarewatch.commands.rules import _search_texts
from rarewatch.models import Item
from rarewatch.normalize import plain_text
from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.ruleset.nodes import Hit
from rarewatch.ruleset.scanning import Scanner
from rarewatch.ruleset.terms import NegationCheck, TermOptions, TermTable

LABELLED = Path(__file__).parents[2] / "data" / "labelled.jsonl"


@pytest.fixture(scope="module")
def pack() -> Ruleset:
    return load_ruleset([bundled_rules_dir()])


def opens(ruleset: Ruleset, text: str) -> bool:
    return ruleset._scanner.gate_open(text.lower())  # the gate itself is what is under test


@pytest.mark.parametrize(
    "text",
    [
        "Japanese engineers visit a trade fair in Germany",  # countries and staff words alone
        "中国工程师赴日本参加展会",
        "Prison reform bill passes the Senate",  # a case word without a material
        "New technology park opens in Vietnam",
        # the common words of the branches that name no material (firms, investment, exports, limits)
        "US firms expect exports of wine to rise as the company raises its investment",
        "City council votes to limit speed on school roads; new limits from May",
        "Pension fund takes a stake in a stadium; the government orders a review",
        # the words of branches that need more beside them: "military" alone, supplies provided
        "Military band plays at the city's spring festival",
        "公司为客户提供供应链服务",
        # session 45's gate words before its review narrowed them: "labeled", "regulators", 列入, "list"
        "The jam jars are labeled with the date they were made",
        "Her shopping list grows longer before the holidays",
        "Regulators approve the merger of two regional banks",
        "该项目已列入市政府今年的重点工程计划",
        # session 46's gate words before its review narrowed them: "procurement", "sales to"
        "The school board reviews its procurement of new desks",
        "Online sales to shoppers rose in the holidays",
        # session 53's gate words before its review narrowed them: "ban", "bar", "prohibit" with China
        # named (half of bench_match_cli's lines; the branch's import and export activities are its gate now)
        "China bans fireworks in its cities as a bar reopens",
        "Beijing bars cars from the city centre on Sundays",
    ],
)
def test_general_news_stops_at_the_gate(pack: Ruleset, text: str) -> None:
    assert not opens(pack, text)


@pytest.mark.parametrize(
    "text",
    [
        "China adds 12 US defence firms to its unreliable entity list",
        "商务部禁止两用物项对日本军事用户出口",
        "Rare earth magnet shortage halts a motor plant",
    ],
)
def test_news_of_the_beat_opens_the_gate(pack: Ruleset, text: str) -> None:
    assert opens(pack, text)


def test_many_added_rules_on_one_subject_keep_the_bundled_rules_gated_on_theirs(tmp_path: Path) -> None:
    """Twenty extra rules on `{vocab: materials}` make that set the most shared: the bundled rules, which
    require materials-or-sector, must still not fall back to their action words ("prison")."""
    extra = "---\n".join(
        f"id: extra-{i:02d}\ntitle: Extra {i}\ncategory: supply-disruption\nseverity: low\n"
        f"match:\n  all:\n    - {{vocab: materials}}\n    - any: [glut, oversupply]\n"
        for i in range(20)
    )
    (tmp_path / "extra.yaml").write_text(extra, encoding="utf-8")
    ruleset = load_ruleset([bundled_rules_dir(), tmp_path / "extra.yaml"])
    assert not opens(ruleset, "Prison reform bill passes the Senate")
    assert opens(ruleset, "Gallium glut weighs on prices")


def test_each_line_s_verdict_is_its_own_whatever_the_lines_around_it(pack: Ruleset) -> None:
    """`gate_may_open_lines` asks one automaton about many lines at once and counts the newlines up to
    each match to know its line: each line's verdict is the one it gets alone, whether it holds one key
    or several, stands first or last, or sits between empty lines."""
    scanner = pack._scanner
    lines = [
        "gallium export ban",
        "",
        "the council met",
        "gallium and germanium and graphite",
        "",
        "",
        "稀土出口管制",
        "road repairs",
        "antimony",
        "稀土 and gallium, 镓",
    ]
    for shift in range(len(lines)):
        turned = lines[shift:] + lines[:shift]
        alone = []
        for line in turned:
            verdict = scanner.gate_may_open_lines(line.encode())
            assert verdict is not None and len(verdict) == 1
            alone.append(verdict[0])
        assert scanner.gate_may_open_lines("\n".join(turned).encode()) == alone, turned
        assert scanner.gate_may_open_lines(("\n".join(turned) + "\n").encode()) == [*alone, False]
    assert 0 < sum(alone) < len(lines)


def _gate_texts(pack: Ruleset) -> list[tuple[str, str, str]]:
    """The labelled set, every rule example, and texts where a veto decides ("magnet school")."""
    texts: list[tuple[str, str, str]] = []
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        texts.append((data.get("title") or "", data.get("summary") or "", data.get("content") or ""))
    for rule in pack.rules:
        for example in (*rule.examples.match, *rule.examples.no_match):
            if isinstance(example, str):
                texts.append((example, "", ""))
            else:
                texts.append((example.title, example.summary or "", example.content or ""))
    vetoed = ["a magnet school opened", "Graphite Capital raised money", "the magnet school's new wing"]
    for text in vetoed:
        texts += [(text, "", ""), ("", "", text), (text, "magnets for carmakers", "")]
    texts += [("a magnet school", "so magnet", ""), ("a magnet school magnet", "", "")]
    return texts


def _read_from_the_scan(scanner: Scanner, texts: tuple[str, str, str]) -> tuple[bool, bool]:
    """(the gate's own verdict, the verdict read from the term pass) on `texts`."""
    search = _search_texts(texts)
    plain = tuple(map(plain_text, texts))
    return scanner.gate_open(search), scanner.scan_gated(plain, search) is not None


def test_the_gate_read_from_the_term_pass_is_the_gate_s_own(pack: Ruleset) -> None:
    """`rarewatch match` reads the gate from the hits of the term pass (`Scanner.scan_gated`) rather
    than passing the gate automaton too: the same verdict, vetoes included."""
    scanner = pack._scanner
    assert scanner._gate_in_scan  # the bundled pack's term pass holds every key of its gate
    verdicts = [_read_from_the_scan(scanner, texts) for texts in _gate_texts(pack)]
    assert all(own == read for own, read in verdicts)
    assert sum(own for own, _ in verdicts) > 300, "many open"
    vetoed = [t for t in _gate_texts(pack) if scanner.gate_may_open(_search_texts(t))]
    assert sum(not scanner.gate_open(_search_texts(t)) for t in vetoed) >= 6, "a veto closes some"


def _magnets(other_spelling: bool) -> Scanner:
    """A gate of "magnet", vetoed by "magnet school"; with `other_spelling`, "magnet school" also spells
    a term that is no veto (the same phrase with a negation check), so its key is no veto."""
    terms = TermTable()
    school = terms.add("magnet school")
    ids = {school}
    if other_spelling:
        ids.add(terms.add("magnet school", TermOptions(negations=(NegationCheck(frozenset(), 1, 1, 1, 1),))))
    magnet = terms.add("magnet", TermOptions(excludes=frozenset({school})))
    return Scanner(terms, frozenset({magnet}), frozenset({*ids, magnet}))


@pytest.mark.parametrize("other_spelling", [False, True])
def test_a_veto_s_key_that_spells_another_term_too_is_no_veto(other_spelling: bool) -> None:
    scanner = _magnets(other_spelling)
    own, read = _read_from_the_scan(scanner, ("a magnet school", "", ""))
    assert own == read == other_spelling
    # A veto covers the gate's hits in its own field only.
    assert _read_from_the_scan(scanner, ("a magnet school", "the magnet", "")) == (True, True)


def test_a_veto_closes_only_on_the_hits_it_holds() -> None:
    """A veto is an exclusion phrase, which holds the term it excludes: a gate term's hit that the veto
    only overlaps stays open, as the filters keep it. Before, "lithium battery" (lithium's exclusion)
    closed the gate on "lithium battery technology", where "battery technology" is a gate term of its
    own, so no rule was asked (session 18's real sets: a plea over stolen battery technology)."""
    terms = TermTable()
    battery = terms.add("lithium battery")
    lithium = terms.add("lithium", TermOptions(excludes=frozenset({battery})))
    technology = terms.add("battery technology")
    scanner = Scanner(terms, frozenset({lithium, technology}), frozenset({battery, lithium, technology}))
    assert _read_from_the_scan(scanner, ("stole lithium battery technology", "", "")) == (True, True)
    assert _read_from_the_scan(scanner, ("a lithium battery maker", "", "")) == (False, False)
    assert _read_from_the_scan(scanner, ("a lithium battery maker", "lithium prices", "")) == (True, True)


def test_the_bundled_pack_matches_a_term_that_an_exclusion_overlaps(pack: Ruleset) -> None:
    title = "Former engineer pleads guilty in a case over stolen lithium battery technology"
    item = Item("i1", "src", title, "", "", "", datetime(2026, 12, 4, tzinfo=UTC))
    assert [m.category for m in pack.match(item)] == ["prosecution"]


def test_a_gate_whose_keys_the_term_pass_lacks_is_asked_itself() -> None:
    """Where the term pass's automata do not hold every key of the gate (a gate term no rule matches),
    the gate's own pass decides."""
    terms = TermTable()
    gallium, tin = terms.add("gallium"), terms.add("tin")
    scanner = Scanner(terms, frozenset({gallium, tin}), frozenset({gallium, terms.add("export")}))
    assert not scanner._gate_in_scan
    assert _read_from_the_scan(scanner, ("gallium export", "", "")) == (True, True)
    assert _read_from_the_scan(scanner, ("tin export", "", "")) == (True, True)
    assert _read_from_the_scan(scanner, ("zinc export", "", "")) == (False, False)
    chinese = TermTable()
    scanner = Scanner(chinese, frozenset({chinese.add("镓")}), frozenset({chinese.add("export")}))
    assert not scanner._gate_in_scan  # the term pass has no automaton for Chinese keys at all
    assert _read_from_the_scan(scanner, ("镓 export", "", "")) == (True, True)


def test_a_gate_of_no_key_never_opens() -> None:
    terms = TermTable()
    scanner = Scanner(terms, frozenset(), frozenset({terms.add("export")}))
    assert _read_from_the_scan(scanner, ("gallium export", "", "")) == (False, False)


class _Unread(list[Hit]):
    """Hits that must not be looked at one by one."""

    def __iter__(self) -> Iterator[Hit]:
        raise AssertionError("hits read one by one")


def test_without_a_veto_s_hit_the_gate_opens_on_its_terms_alone() -> None:
    """An item holding no veto opens the gate when it holds a gate term, with no look at the hits."""
    scanner = _magnets(False)
    magnet, other = scanner._gate_ids, frozenset({99})
    assert scanner._opens_gate({tid: _Unread([Hit(0, 0, 6)]) for tid in magnet})
    assert not scanner._opens_gate({tid: _Unread([Hit(0, 0, 6)]) for tid in other})


def _items(pack: Ruleset) -> list[Item]:
    """`_gate_texts` as items (plain texts), with items of no text and of one text among three."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    texts = [*_gate_texts(pack), ("", "", ""), ("", "", "gallium export ban"), ("稀土出口管制", "", "")]
    return [
        Item(f"i{n}", "src", plain_text(title), "", plain_text(summary), plain_text(content), when)
        for n, (title, summary, content) in enumerate(texts)
    ]


def test_matching_a_fetch_s_items_together_is_matching_each_alone(pack: Ruleset) -> None:
    """`Ruleset.match_many` (the pipeline's: one quick gate call for a fetch's items) gives each item
    what `match` gives it alone, whatever the items around it: ASCII or not, gate open or closed,
    first or last, empty texts."""
    items = _items(pack)
    alone = [pack.match(item) for item in items]
    assert 0 < sum(map(bool, alone)) < len(items)
    assert pack.match_many(items) == alone
    for size in (1, 2, 3, 50):
        for shift in (0, 1, 7):
            turned = items[shift:] + items[:shift]
            expected = alone[shift:] + alone[:shift]
            got = [m for at in range(0, len(turned), size) for m in pack.match_many(turned[at : at + size])]
            assert got == expected, (size, shift)
    assert pack.match_many([]) == []


def test_the_quick_gate_of_many_texts_is_each_text_s_own(pack: Ruleset) -> None:
    scanner = pack._scanner
    texts = [_search_texts(t) for t in _gate_texts(pack)]
    texts += ["", "gallium", "", "稀土", "road repairs", ""]
    alone = [scanner.gate_may_open(text) for text in texts]
    assert 0 < sum(alone) < len(texts)
    for shift in range(0, len(texts), 5):
        turned = texts[shift:] + texts[:shift]
        assert scanner.gate_may_open_many(turned) == alone[shift:] + alone[:shift]
    ascii_only = [t for t in texts if t.isascii()]
    assert scanner.gate_may_open_many(ascii_only) == [scanner.gate_may_open(t) for t in ascii_only]


def test_the_rules_firing_on_a_prefix_are_those_matching_finds(pack: Ruleset) -> None:
    """`first_fields` asks which rules fire on the texts before a field (`Ruleset._firing`, without
    building evidence or snippets): the same rules, in the same order, as a whole match finds."""
    texts = _gate_texts(pack)
    fired = 0
    for title, summary, content in texts:
        for raw in ((title, summary, content), (title, "", ""), (title, summary, "")):
            plain = tuple(map(plain_text, raw))
            expected = [
                m.rule
                for m in pack.match_fields(dict(zip(("title", "summary", "content"), plain, strict=True)))
            ]
            assert pack._firing(plain, None) == expected
            fired += bool(expected)
    assert fired


def _quick_verdicts(scanner: Scanner, text: str) -> tuple[bool, bool, bool]:
    """The three quick gates' verdicts on `text` (a search text): alone, among others (first and not),
    as a folded line (the first and not); the same verdict wherever the text lies, or an AssertionError."""
    many = scanner.gate_may_open_many(["weather", text, "road repairs"])[1]
    assert scanner.gate_may_open_many([text, "weather"])[0] is many
    lines = scanner.gate_may_open_lines(f'"weather"\n"{text}"\n"road"'.encode())
    first = scanner.gate_may_open_lines(f"{text}\nroad".encode())
    assert lines is not None and first is not None
    assert first[0] is lines[1]
    return scanner.gate_may_open(text), many, lines[1]


def _gate_of(*words: str) -> Scanner:
    terms = TermTable()
    gate = frozenset(terms.add(word) for word in words)
    return Scanner(terms, gate, gate)


@pytest.mark.parametrize(
    ("text", "may_open"),
    [
        ("record exports of wine", False),  # "port" inside words: the term pass would drop it
        ("the report says support is important", False),
        ("2port", False),
        ("port closure", True),
        ("a strike at the port", True),
        ("ports shut", True),
        ("(port) shut", True),
        ("港口 port", True),
        ("portfolio grows", True),  # off its end boundary only: asked further, as before
        ("exports to the port", True),  # a key inside a word, then the same key on its boundaries
    ],
)
def test_a_key_inside_a_word_does_not_open_the_quick_gate(text: str, may_open: bool) -> None:
    """The quick gates pass over a key of letters and digits found right after a letter or digit:
    "port" in "export", "report" and "support" sent most English news of the beat to the full term pass
    for nothing (three in four of the items that got that far in `bench/bench_match_cli.py`'s file)."""
    scanner = _gate_of("port")
    assert _quick_verdicts(scanner, text) == (may_open,) * 3
    assert scanner.gate_open(text) is (may_open and "portfolio" not in text)


@pytest.mark.parametrize(
    ("words", "text"),
    [
        # Found first by a search that reports the match that ends first, "port" would hide "export ban".
        (("port", "export ban"), "export ban"),
        # A key with a space is never passed over: "port controls" in "export controls" hides "controls".
        (("port controls", "controls"), "export controls"),
        (("port", "controls on"), "export controls on"),
    ],
)
def test_a_key_passed_over_inside_a_word_hides_no_key_on_its_boundaries(
    words: tuple[str, ...], text: str
) -> None:
    scanner = _gate_of(*words)
    assert scanner.gate_open(text)
    assert _quick_verdicts(scanner, text) == (True, True, True)


def test_the_quick_gates_never_close_on_a_text_the_gate_opens_on() -> None:
    """Texts made at random of gate keys, their pieces and letters, spaces and signs around them: where
    the gate opens, every quick gate says it may."""
    words = ("port", "ports", "export ban", "rare earth", "ree", "controls on", "on", "镓", "稀土")
    scanner = _gate_of(*words)
    pieces = [*words, "ex", "re", "s", "x", "a", "1", " ", " ", ",", "(", "-", "é", "港"]
    rng = random.Random(13)
    opened = 0
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))).strip()
        text = " ".join(text.split())
        if scanner.gate_open(text):
            opened += 1
            assert _quick_verdicts(scanner, text) == (True, True, True), text
    assert 1000 < opened < 4000


def test_english_news_of_exports_and_reports_stops_at_the_bundled_pack_s_quick_gate(pack: Ruleset) -> None:
    assert not pack._scanner.gate_may_open("exports rose, the report says, with support from importers")
