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
import unicodedata
from collections.abc import Iterable

BANDS = 16
ROWS = 2  # 16 bands of 2 rows: titles with Jaccard 0.6 become candidates with p > 0.99, 0.1 with p < 0.15
DEFAULT_THRESHOLD = 0.7
_PRIME = (1 << 61) - 1
_SEEDS = [
    (int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=8).digest()) | 1,
     int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=8).digest()))
    for i in range(BANDS * ROWS)
]  # fmt: skip
# "Title - Reuters", "Title | Mining.com", "标题_新浪财经": syndication suffixes naming the outlet.
_OUTLET_SUFFIX = re.compile(r"(?:\s+[-–—]|\s*[|_])\s*[^-|–—_]{2,40}$")
_NOISE = re.compile(r"[\W_]+", re.UNICODE)
_TOKEN = re.compile(r"[\u3400-\u9fff]+|[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


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


def _base_hashes(items: Iterable[str]) -> list[int]:
    return [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest()) for s in items]


def signature_keys(title: str) -> tuple[str, ...]:
    """The LSH band keys of a title (`sim:<band>:<hash>`); empty for a title with no text."""
    grams = shingles(title)
    if not grams:
        return ()
    bases = _base_hashes(grams)
    mins = [min((a * h + b) % _PRIME for h in bases) for a, b in _SEEDS]
    keys = []
    for band in range(BANDS):
        rows = mins[band * ROWS : (band + 1) * ROWS]
        digest = hashlib.blake2b(repr(rows).encode(), digest_size=8).hexdigest()
        keys.append(f"sim:{band}:{digest}")
    return tuple(keys)


def same_story(a: str, b: str, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether two titles report the same story: similar shingles (Jaccard ≥ threshold), same numbers."""
    if set(_NUMBER.findall(a)) != set(_NUMBER.findall(b)):
        return False
    return jaccard(shingles(a), shingles(b)) >= threshold
