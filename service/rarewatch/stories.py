"""Near-duplicate story detection: the same story from another outlet is an update, not a new alert.

Titles are reduced to sets of shingles — Latin words and Chinese character bigrams, after dropping an
outlet's suffix ("… - Reuters") and punctuation ("rare-earth" = "rare earth") — summarised by a MinHash
signature and split into LSH bands. Two titles sharing a band are *candidates*; `same_story` then checks
the exact Jaccard similarity against a threshold and requires the same numbers ("seven", "2026" aside,
"7 elements" vs "5 elements" are different events), so distinct events that happen to share a band never
merge. Callers add domain checks (the pipeline also requires the same materials). Pure functions, stable
across processes (no salted `hash()`).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from functools import lru_cache

from rarewatch.store.keys import similar_key

BANDS = 10
ROWS = 3  # 10 bands of 3 rows: Jaccard 0.7 becomes a candidate with p ≈ 0.985, Jaccard 0.2 with p ≈ 0.08
DEFAULT_THRESHOLD = 0.7
_HASHES = BANDS * ROWS
_UNPACK = struct.Struct(f"<{_HASHES}I").unpack
# "Title - Reuters", "Title | Mining.com", "标题_新浪财经": syndication suffixes naming the outlet.
_OUTLET_SUFFIX = re.compile(r"(?:\s+[-–—]|\s*[|_])\s*[^-|–—_]{2,40}$")
_NOISE = re.compile(r"[\W_]+", re.UNICODE)
_TOKEN = re.compile(r"[\u3400-\u9fff]+|[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_LATIN = re.compile(r"[^\W\d_]+", re.UNICODE)
_DOTTED = re.compile(r"\b([A-Z])\.([A-Z])\.?")  # "U.S." -> "US", "U.K" -> "UK"
# Names that rewrites of one story swap freely: the same actor, so never a sign of another event.
_NAME_ALIASES = {
    "beijing": "china",
    "chinese": "china",
    "prc": "china",
    "mofcom": "china",
    "washington": "us",
    "usa": "us",
    "america": "us",
    "american": "us",
    "bis": "us",
    "tokyo": "japan",
    "japanese": "japan",
    "brussel": "eu",
    "european": "eu",
    "europe": "eu",
    "seoul": "korea",
    "korean": "korea",
}
TITLE_CASE_SHARE = 0.6
"""Above this share of capitalised words (first word and short words aside) a title is in Title Case,
and its capitals say nothing about names."""


def title_key(title: str) -> str:
    """The comparable form of a title: NFKC, lower case, outlet suffix and punctuation removed."""
    text = unicodedata.normalize("NFKC", title).lower().strip()
    text = _OUTLET_SUFFIX.sub("", text)
    return _NOISE.sub(" ", text).strip()


def shingles(title: str) -> frozenset[str]:
    """Latin words (a plural "s" dropped) and Chinese character bigrams of the title key."""
    out: set[str] = set()
    for token in _TOKEN.findall(title_key(title)):
        if _CJK.match(token):
            out.update(token[i : i + 2] for i in range(max(1, len(token) - 1)))
        else:
            out.add(token[:-1] if len(token) > 3 and token.endswith("s") else token)
    return frozenset(out)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|, 0 for two empty sets."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _minhash(grams: frozenset[str]) -> list[int]:
    """MinHash over `_HASHES` hash functions: one SHAKE-128 digest per shingle supplies all of its
    hash values at once (far cheaper in Python than one multiply-mod per shingle and function)."""
    rows = [_UNPACK(hashlib.shake_128(g.encode()).digest(4 * _HASHES)) for g in grams]
    return [min(column) for column in zip(*rows, strict=True)]


@lru_cache(maxsize=512)  # a matching item's keys are wanted twice: its fetch's look-up, then its admission
def signature_keys(title: str) -> tuple[str, ...]:
    """The LSH band keys of a title (`store.keys.similar_key`); empty for a title with no text."""
    grams = shingles(title)
    if not grams:
        return ()
    mins = _minhash(grams)
    keys = []
    for band in range(BANDS):
        rows = mins[band * ROWS : (band + 1) * ROWS]
        digest = hashlib.blake2b(repr(rows).encode(), digest_size=8).hexdigest()
        keys.append(similar_key(band, digest))
    return tuple(keys)


def same_story(a: str, b: str, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether two titles report the same story: similar shingles (Jaccard ≥ threshold), same numbers,
    and no name swapped for another (`swapped_names`)."""
    if set(_NUMBER.findall(a)) != set(_NUMBER.findall(b)):
        return False
    return jaccard(shingles(a), shingles(b)) >= threshold and not swapped_names(a, b)


def _word(token: str) -> str:
    """A word's comparable form: lower case, a plural "s" dropped, a known alias resolved."""
    word = token.lower()
    word = word[:-1] if len(word) > 3 and word.endswith("s") else word
    return _NAME_ALIASES.get(word, word)


def _latin_tokens(title: str) -> list[str]:
    text = unicodedata.normalize("NFKC", title).strip()
    return _LATIN.findall(_DOTTED.sub(r"\1\2", _OUTLET_SUFFIX.sub("", text)))


def names(title: str) -> frozenset[str]:
    """The capitalised words after the first (acronyms anywhere) in comparable form (`_word`): who or
    what a sentence-case headline is about. Empty for a Title Case or all-capitals headline, whose
    capitals name nothing, and for Chinese, which has none."""
    tokens = _latin_tokens(title)
    rest = [t for t in tokens[1:] if len(t) > 3]
    if rest and sum(t[0].isupper() for t in rest) / len(rest) > TITLE_CASE_SHARE:
        return frozenset()
    found = {t for t in tokens[1:] if t[0].isupper()}
    found.update(t for t in tokens[:1] if len(t) > 1 and t.isupper())
    return frozenset(_word(t) for t in found)


def swapped_names(a: str, b: str) -> bool:
    """Each title names someone the other does not mention at all ("US adds Acme processor to the
    Entity List" / "US adds Zenith processor to the Entity List"): two events however alike the rest.
    A name on one side only ("…, Reuters reports") is an outlet's addition, not another event."""
    words_a = {_word(t) for t in _latin_tokens(a)}
    words_b = {_word(t) for t in _latin_tokens(b)}
    return bool(names(a) - words_b) and bool(names(b) - words_a)
