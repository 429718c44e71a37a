"""The shared text normalisation: search text, canonical terms and variants, offsets, snippets."""

from __future__ import annotations

import pytest

from rarewatch.ruleset.text import (
    canonical_term,
    display_text,
    search_offset_to_display,
    search_text,
    snippet,
    term_variants,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Rare-Earth  Exports", "rare earth exports"),
        ("  China’s\tban\n", "china s ban"),
        ("ＥＸＰＯＲＴ　ＣＯＮＴＲＯＬ", "export control"),  # full width letters and space
        ("稀土 — 出口", "稀土 出口"),
        ("x\x0by", "x y"),
        # a quoted name reads as if unquoted, so a phrase term spans the quotes
        ("list of “Military End Users”", "list of military end users"),
        ('the "unreliable entity" list', "the unreliable entity list"),
        ("«liste» „Zitat‟", "liste zitat"),
        ("列入「不可靠实体清单」", "列入「不可靠实体清单」"),  # CJK brackets are no word separators
        ("", ""),
    ],
)
def test_search_text(raw: str, expected: str) -> None:
    assert search_text(raw) == expected


def test_ascii_fast_path_agrees_with_the_general_path() -> None:
    text = "  Rare-Earth's   EXPORT\tcontrols, `quoted'  "
    text += ' "double" '
    general = " ".join(
        text.lower().replace("-", " ").replace("'", " ").replace("`", " ").replace('"', " ").split()
    )
    assert search_text(text) == general


def test_canonical_term_folds_british_spellings() -> None:
    assert canonical_term("Export Licence") == "export license"
    assert canonical_term("defence") == "defense"
    assert canonical_term("authorisation") == "authorization"
    assert canonical_term("rise") == "rise"


def test_term_variants() -> None:
    assert term_variants("export licence") >= {"export license", "export licence"}
    assert term_variants("anti-dumping") == {"anti dumping", "antidumping"}
    assert term_variants("supply") == {"supply", "supplies"}
    assert term_variants("稀土") == {"稀土"}


def test_search_offsets_map_back_to_the_displayed_text() -> None:
    display = "  Rare -  Earth’s  export\n\nban"
    search = search_text(display)
    assert search == "rare earth s export ban"
    for word in ("rare", "earth", "export", "ban"):
        start = search.index(word)
        mapped = search_offset_to_display(display, start)
        assert display[mapped : mapped + len(word)].lower() == word


def test_display_text_is_nfkc() -> None:
    assert display_text("ＮｄＦｅＢ") == "NdFeB"
    assert display_text("plain") == "plain"


def test_snippet_keeps_short_text_whole_and_cuts_long_text_at_spaces() -> None:
    assert snippet("Gallium ban", 0, 7) == "Gallium ban"
    text = " ".join(f"word{i}" for i in range(100))
    start = text.index("word50")
    cut = snippet(text, start, start + 6)
    assert "word50" in cut and cut.startswith("…") and cut.endswith("…")
    assert all(w.startswith("word") for w in cut.strip("…").split())
    assert len(cut) <= 162
