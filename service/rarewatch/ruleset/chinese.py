"""Traditional -> Simplified Chinese for the search text, so that rules written in Simplified characters
match stories from Taiwan and Hong Kong (許可證 = 许可证, 稀土出口管制 written 稀土出口管製).

OpenCC's `t2s` conversion does the work. It is only asked when a text holds a character that t2s would
change: one C-level regex scan finds those, and most Chinese news (already Simplified) never reaches
OpenCC. Positions must survive the conversion (snippets map search positions back to the text), so a
conversion that changes the length is redone one character at a time.

The converter and the character class are built once per process, on first use; the class's characters can
be handed in from the rule cache instead (`warm_up`).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Protocol


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


# Unified ideographs, extension A and the compatibility block: where t2s has single-character rules.
_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None  # the character class of `traditional_chars`
_chars: str | None = None  # `traditional_chars` as handed in by `warm_up`, until the class is built


@lru_cache(maxsize=1)
def _converter() -> _Converter:
    """The t2s converter (OpenCC imported here: a text with no Traditional character never needs it)."""
    import opencc

    converter: _Converter = opencc.OpenCC("t2s")
    return converter


@lru_cache(maxsize=1)
def traditional_chars() -> str:
    """Every character the t2s conversion changes on its own, in code point order."""
    chars = [chr(c) for start, end in _RANGES for c in range(start, end + 1)]
    # One call for all characters: phrases never span the newlines between them.
    converted = _converter().convert("\n".join(chars)).split("\n")
    return "".join(c for c, s in zip(chars, converted, strict=True) if s != c)


def _traditional() -> re.Pattern[str]:
    """A character class of `traditional_chars`, built once per process, on the first text that is not
    ASCII (from the characters `warm_up` was handed, when it was)."""
    global _pattern
    if _pattern is None:
        with _lock:
            if _pattern is None:
                _pattern = re.compile("[" + (_chars if _chars is not None else traditional_chars()) + "]")
    return _pattern


def has_traditional(text: str) -> bool:
    """Whether `text` holds a character that the t2s conversion would change."""
    return _traditional().search(text) is not None


def to_simplified(text: str) -> str:
    """`text` with Traditional characters converted to Simplified; same length as `text`."""
    if text.isascii() or _traditional().search(text) is None:
        return text
    converter = _converter()
    simplified = converter.convert(text)
    if len(simplified) == len(text):
        return simplified
    # A phrase rule changed the length (rare): convert character by character, keeping one for one.
    return "".join(_one(converter, c) for c in text)


def _one(converter: _Converter, char: str) -> str:
    converted = converter.convert(char)
    return converted if len(converted) == 1 else char


def warm_up(chars: str | None = None) -> None:
    """Without `chars`, build the character class now (at rule compilation) rather than on the first
    Chinese story. With `chars`, what `traditional_chars` gave with the same OpenCC (the rule cache
    keeps it with the pack, its key naming OpenCC's version): keep them for the class, built from them
    on the first text that is not ASCII, without importing OpenCC or converting every character (about
    35 ms), and without compiling the class (about 8 ms) in a process that never meets such a text."""
    global _chars
    if chars is None:
        _traditional()
        return
    with _lock:
        if _pattern is None:
            _chars = chars
