"""Sentence and clause boundaries in the search text (lower case, separators folded to spaces).

`near` with `scope: sentence` or `scope: clause`, and negation, refuse to pair two hits with a boundary
between them. A field (title, summary, content) always ends a sentence: hits are never paired across
fields.

* sentence: `.` `!` `?` before a space or the end (not after a one-letter initial as in "u.s.", nor
  after "no", "inc", "ltd", "co", "corp", "st", "vs", "mr", "dr", nor after the titles "gov", "sen",
  "rep", "gen", "jr", "sr"), `…`, and `。！？`. Company suffixes and titles sit inside lists of named
  parties: "adds A Corp. and B Inc. to its entity list" is one sentence.
* clause: a sentence boundary, or `;` `；` `|`, and the words that start an unrelated item in a news
  wrap: "separately", "meanwhile", "elsewhere", "in other news", "另讯", "另一方面", "此外".

A space between two Chinese characters is no boundary: Chinese headlines join the two halves of one
story with it ("男子将钕铁硼工艺资料出售给境外 以间谍罪被判刑"). Market wraps that put two stories in
one headline ("稀土板块走强 钢铁股受反倾销消息拖累") are handled in the pack instead: a material named
as a stock-market board or share ("稀土板块", "rare-earth stocks") is excluded as a subject.

Commas do not end a clause: they separate the items of the lists that export-control news is full of
("gallium, germanium and antimony"). Colons and dashes do not either: "Rare earths: China tightens
export rules" is one statement. Negation (`negated_by`) additionally stops at commas (`NEGATION`): a
negator does not reach past one ("no delays, but a shortage of gallium"). The Chinese enumeration comma
、 is not among them: it only ever separates the items of a list, which a negator before the list covers
("决定暂时不对稀土、锂和其他关键矿物征收新关税").
"""

from __future__ import annotations

import re

_SENTENCE = (
    r"[!?…。！？]"
    r"|(?<![^a-z0-9][a-z])(?<!\bno)(?<!\bco)(?<!\bst)(?<!\bvs)(?<!\bmr)(?<!\bdr)(?<!\binc)(?<!\bltd)"
    r"(?<!\bcorp)(?<!\bgov)(?<!\bsen)(?<!\brep)(?<!\bgen)(?<!\bjr)(?<!\bsr)"
    r"\.(?= |$)"
)
_CLAUSE = (
    rf"{_SENTENCE}|[;；|]"
    r"|\b(?:separately|meanwhile|elsewhere|in other news)\b|另讯|另一方面|此外"
)

SENTENCE = re.compile(_SENTENCE)
CLAUSE = re.compile(_CLAUSE)
NEGATION = re.compile(rf"{_CLAUSE}|[,，]")

SCOPES: dict[str, re.Pattern[str] | None] = {"field": None, "sentence": SENTENCE, "clause": CLAUSE}


def crosses(boundary: re.Pattern[str] | None, text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` (the gap between two hits) holds a boundary."""
    return boundary is not None and end > start and boundary.search(text, start, end) is not None
