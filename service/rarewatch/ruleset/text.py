"""The text form that terms are searched in, and the spelling variants a term is searched under.

Search text: NFKC, lower case, hyphens/dashes/apostrophes/double quotes turned into spaces, every run of
whitespace collapsed to one space. Terms go through the same function, so "Rare-Earth" in a rule and
"rare  earths" in a story meet as "rare earth". Lower-casing is kept one character for one character and
the only step that changes lengths is the whitespace collapse, so a position in the search text can be
mapped back to the displayed (NFKC) text for snippets, lazily, only for rules that fired.

Chinese: text holding Traditional characters is converted to Simplified (`chinese.to_simplified`) before
folding, one character for one, so that Simplified rule terms match Taiwan and Hong Kong stories.
Displayed text (snippets, regexes) keeps the original characters.

Spelling: a term is stored in a canonical spelling ("licence" -> "license", "-ise" -> "-ize") and searched
under every variant of it (both spellings, a hyphenated compound also written closed, a final "-y" also
as "-ies"). Variants cost nothing per item: they are extra keys of the one automaton.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from rarewatch.ruleset.chinese import has_traditional, to_simplified
from rarewatch.ruleset.forms import expand

# Dashes, apostrophes and double quotes separate words: "rare-earth" = "rare earth", "earth's" = "earth
# s", and a quoted name is read as if unquoted ("a list of “military end users”" = "a list of military end
# users"). CJK corner brackets are left alone: Chinese terms match as substrings, with no space to fold.
_SEPARATORS = (
    "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d'`\u2018\u2019\u02bc\uff07"
    '"\u201c\u201d\u201e\u201f\u00ab\u00bb'
)
_FOLD = str.maketrans(dict.fromkeys(_SEPARATORS, " "))
# The same fold for ASCII text, as a bytes table (several times faster than `str.translate`): lower
# case, and separators and control whitespace to spaces (`str.split` would treat them as spaces anyway).
_ASCII_FOLD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-'`\"\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f",
    b"abcdefghijklmnopqrstuvwxyz             ",
)
# `_ASCII_FOLD` keeping "\n" (many lines folded at once stay one per line) and the double quote (in a
# JSON line without escapes every one is the JSON's own, around a string or a key, and folding them to
# spaces would leave two spaces to collapse at every `": "` and `", "`): `fold_ascii_lines`.
_ASCII_FOLD_LINES = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-'`\t\r\x0b\x0c\x1c\x1d\x1e\x1f",
    b"abcdefghijklmnopqrstuvwxyz           ",
)
# What `str.split` takes for whitespace (`str.isspace`), but the newline: folded to spaces line by line.
WHITESPACE = (
    "\t\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Separators only, case kept: the case-sensitive twin of `_ASCII_FOLD`.
_ASCII_SEPARATORS = bytes.maketrans(b"-'`\"\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f", b"             ")
_SEPARATOR = re.compile(f"[{re.escape(_SEPARATORS)}]")
# What `fold_lines` turns into spaces: the separators but the double quote (see `_ASCII_FOLD_LINES`), and
# what `str.split` takes for whitespace but the newline.
_LINE_SPACES = tuple(c for c in _SEPARATORS if c != '"') + tuple(WHITESPACE)
_TOKEN = re.compile(r"\S+")

# (British, American) pairs folded to the second spelling; every variant is searched.
SPELLING_PAIRS: tuple[tuple[str, str], ...] = (
    ("licenc", "licens"),
    ("defenc", "defens"),
    ("offenc", "offens"),
)
# Word endings "-ise/-ised/-ising/-isation" <-> "-ize/...", after at least two letters ("rise" stays).
_ISE = re.compile(r"(?<=[a-z]{2})is(e|ed|es|ing|ation|ations)\b")
_IZE = re.compile(r"(?<=[a-z]{2})iz(e|ed|es|ing|ation|ations)\b")
_Y_PLURAL = re.compile(r"(?<=[b-df-hj-np-tv-z])y$")
_HYPHEN_BETWEEN_WORDS = re.compile(r"(?<=\w)[-\u2010\u2011](?=\w)")


def is_cjk(char: str) -> bool:
    """Han, kana, Hangul and their punctuation: scripts written without spaces between words."""
    o = ord(char)
    return 0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF


def holds_cjk_letter(text: str) -> bool:
    """Whether `text` holds a Han, kana or Hangul letter (not CJK punctuation or a symbol): a character
    that search texts keep as it is, so that text holding one has a search text that is not ASCII."""
    return any(is_cjk(c) and unicodedata.category(c) == "Lo" for c in text)


def is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (Latin, Greek, Cyrillic, ...).

    CJK characters are not word characters: "稀土NdFeB" has a word boundary before "NdFeB".
    """
    return char.isalnum() and (char < "\u2e80" or not is_cjk(char))


def _lower(s: str) -> str:
    low = s.lower()
    if len(low) == len(s):
        return low
    # A few characters lower-case to two ("İ" -> "i̇"): keep those as they are, so lengths stay equal.
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in s)


def fold(display: str) -> str:
    """Lower case, separators to spaces; one character for one character of `display`."""
    low = _lower(display)
    # `str.translate` walks every character in Python-level table lookups: skip it when there is
    # nothing to translate, as in most Chinese text.
    return low.translate(_FOLD) if _SEPARATOR.search(low) else low


def display_text(raw: str) -> str:
    """The text as shown in snippets and searched by regexes: NFKC (ASCII is already NFKC)."""
    return raw if raw.isascii() else unicodedata.normalize("NFKC", raw)


def search_text(raw: str) -> str:
    """The text terms are searched in (see the module docstring). Hot path: runs once per field."""
    if raw.isascii():
        return _collapse(raw.encode("ascii").translate(_ASCII_FOLD).decode("ascii"))
    return " ".join(fold(to_simplified(display_text(raw))).split())


def raw_search_text(raws: Sequence[str]) -> str | None:
    """The search texts of the plain texts of `raws` joined by "\n" (each `search_text` of
    `rarewatch.normalize.plain_text`: tags and entities out, NFKC, whitespace collapsed; "" for an empty
    one), computed straight from `raws` when they are ASCII with no markup and no entity: the plain
    text is then the raw text with its whitespace collapsed, which the search text collapses anyway.
    None when the plain texts are needed first (HTML, an entity, not ASCII, or a NUL)."""
    raw = "\0".join(raws)
    if not raw.isascii() or "<" in raw or "&" in raw or raw.count("\0") != len(raws) - 1:
        return None
    # One fold for all the fields: NUL (neither whitespace nor folded) marks where one field ends.
    folded = raw.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
    if "  " in folded or " \0" in folded or "\0 " in folded or folded[:1] == " " or folded[-1:] == " ":
        folded = _collapse_joined(folded)  # only where there is something to collapse (most texts)
    return folded.replace("\0", "\n")


def _collapse_joined(text: str) -> str:
    """Texts joined by NUL with the whitespace of each collapsed, as each would be on its own: a space the
    collapse leaves beside a NUL is one it put between two texts' words."""
    return " ".join(text.split()).replace(" \0", "\0").replace("\0 ", "\0")


def lower_in_place(text: str) -> str | None:
    """`text` lower-cased one character for one, or None where a fold of it would not be exact in place:
    Traditional characters (converted by phrases, which may convert differently or change length in a
    longer text), or a character lower-casing lengthens (`_lower` then goes character by character)."""
    if has_traditional(text):
        return None
    low = text.lower()
    return low if len(low) == len(text) else None


def fold_ascii_lines(text: str) -> bytes:
    """ASCII `text` folded as search texts are (lower case; separators and whitespace but "\n" and the
    double quote to spaces; runs of spaces collapsed), line by line, as bytes. The search text of any
    ASCII substring of a line without a double quote (a string of a JSON line without escapes, which
    ends at a quote: no tag, no entity) is a substring of that line's fold: the fold is one character
    for one, and collapsing a whole line collapses every run inside the substring too. One call for many
    lines: a prefilter asks an automaton about all of them at once (no key holds a double quote, which
    search texts fold to a space)."""
    return _squeeze(text.encode("ascii").translate(_ASCII_FOLD_LINES))


def _squeeze(folded: bytes) -> bytes:
    """`folded` with every run of spaces made one: `bytes.replace` halves the runs on each pass, and is
    several times faster than a regex substitution (most runs are one or two spaces long)."""
    while b"  " in folded:
        folded = folded.replace(b"  ", b" ")
    return folded


def fold_lines(text: str) -> bytes | None:
    """`fold_ascii_lines` for text that is not pure ASCII, as UTF-8: NFKC text without invisible
    characters (as plain texts are) lower-cased and folded, whitespace but "\n" collapsed to single
    spaces, double quotes kept. The search text of a substring of a line that holds no double quote and
    is bounded by characters that are stable for NFKC and stop the final sigma rule (a JSON string's
    quotes) is a substring of the line's fold, as every step goes character by character or whitespace
    run by run. None when that would not hold: Traditional characters (converted by phrases), a
    character lower-casing lengthens (`_lower` then goes character by character), or a lone surrogate
    (which a plain text replaces: the lines are then asked one by one)."""
    low = lower_in_place(text)
    if low is None:
        return None
    # `str.replace` for the few characters present rather than `str.translate`, which looks up every
    # character in Python, or a regex substitution.
    for space in _LINE_SPACES:
        if space in low:
            low = low.replace(space, " ")
    try:
        return _squeeze(low.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        return None


def joined_search_text(plain: str) -> str | None:
    """The search texts of plain texts joined by NUL (`normalize.plain_texts_joined`), joined by
    "\n", in one pass over them all, or None where that would not be exact: text that Traditional to
    Simplified conversion would change (a phrase may convert differently, or change its length, in
    a longer text) or that holds a character lower-casing lengthens (`_lower` then goes character by
    character, which would change how a Greek final sigma in another text lowers). Exact otherwise:
    NUL is a stable boundary for NFKC, stops the final sigma rule as the end of a text does, and is
    neither folded nor whitespace."""
    low = lower_in_place(display_text(plain))
    if low is None:
        return None
    folded = low.translate(_FOLD) if _SEPARATOR.search(low) else low
    return _collapse_joined(folded).replace("\0", "\n")


def cased_text(raw: str) -> str:
    """`search_text` with the case kept: same length, same positions. Case-sensitive terms and
    exclusions are checked against it; it is computed only for items where one was found."""
    if raw.isascii():
        return _collapse(raw.encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii"))
    text = to_simplified(display_text(raw))
    return " ".join((text.translate(_FOLD) if _SEPARATOR.search(text) else text).split())


def _collapse(text: str) -> str:
    if "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text  # already collapsed: the common case for normalised items
    return " ".join(text.split())


def canonical_term(term: str) -> str:
    """The canonical search form of a rule term: `search_text` plus the spelling folds."""
    key = search_text(term)
    for british, american in SPELLING_PAIRS:
        key = key.replace(british, american)
    return _ISE.sub(r"iz\1", key)


def term_variants(term: str) -> frozenset[str]:
    """Every spelling a term is searched under (the canonical one included); words ending in `~` are
    expanded to their inflections (see `forms`)."""
    keys = set(expand(canonical_term(term)))
    keys |= {_IZE.sub(r"is\1", k) for k in keys}
    for british, american in SPELLING_PAIRS:
        keys |= {k.replace(american, british) for k in keys}
    if _HYPHEN_BETWEEN_WORDS.search(display_text(term)):
        # "anti-dumping" is also written "antidumping" (but "rare earth" is never "rareearth").
        keys |= expand(canonical_term(_HYPHEN_BETWEEN_WORDS.sub("", display_text(term))))
    keys |= {_Y_PLURAL.sub("ies", k) for k in keys}
    # Traditional text writes the particle 着 as 著, which t2s keeps (著 is Simplified too: 显著), so 隨著
    # becomes 随著: a term with 着 is searched with 著 as well.
    keys |= {k.replace("着", "著") for k in keys if "着" in k}
    return frozenset(keys)


def search_offset_to_display(display: str, pos: int) -> int:
    """Map a position in `search_text(display)` back to a position in `display` (undo the collapse)."""
    cursor = 0
    for token in _TOKEN.finditer(fold(display)):
        length = token.end() - token.start()
        if pos <= cursor + length:
            return token.start() + (pos - cursor)
        cursor += length + 1
    return len(display)


def snippet(display: str, start: int, end: int, width: int = 160) -> str:
    """About `width` characters of `display` around [start, end), whitespace collapsed, "…" where cut."""
    lead = max(0, (width - (end - start)) // 3)
    a = max(0, start - lead)
    b = min(len(display), a + width)
    a = max(0, b - width)
    if a > 0:  # do not start or end inside a word when a space is near
        space = display.find(" ", a, min(start, a + 20))
        a = space + 1 if space >= 0 else a
    if b < len(display):
        space = display.rfind(" ", max(end, b - 20), b)
        b = space if space >= 0 else b
    text = " ".join(display[a:b].split())
    return ("…" if a > 0 else "") + text + ("…" if b < len(display) else "")
