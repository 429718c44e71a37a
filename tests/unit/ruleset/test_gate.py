"""The matcher's gate: the small automaton every item passes first. Items that name nothing a rule
needs stop there, which keeps matching fast on general news (`bench/bench_matcher.py`).

Rules that name no material (list designations, dual-use bans, engineers recalled) add their own few
specific terms to the gate, never a large shared vocabulary such as the countries or staff words, and
a pack that adds many rules on another subject keeps the bundled rules gated on theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import Ruleset, load_ruleset


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
