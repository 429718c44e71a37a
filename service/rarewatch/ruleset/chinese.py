"""Traditional -> Simplified Chinese for the search text, so that rules written in Simplified characters
match stories from Taiwan and Hong Kong (許可證 = 许可证, 稀土出口管制 written 稀土出口管製).

OpenCC's `t2s` conversion does the work. It is only asked when a text holds a character that t2s would
change: one C-level regex scan finds those, and most Chinese news (already Simplified) never reaches
OpenCC. Positions must survive the conversion (snippets map search positions back to the text), so a
conversion that changes the length is redone one character at a time.

The converter and the character class are built once per process, on first use.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any, Protocol

import opencc


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


# Unified ideographs, extension A and the compatibility block: where t2s has single-character rules.
_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _tables() -> tuple[_Converter, re.Pattern[str]]:
    """The t2s converter and a character class of every character it changes on its own."""
    with _lock:
        converter: Any = opencc.OpenCC("t2s")
        chars = [chr(c) for start, end in _RANGES for c in range(start, end + 1)]
        # One call for all characters: phrases never span the newlines between them.
        converted = converter.convert("\n".join(chars)).split("\n")
        changed = [c for c, s in zip(chars, converted, strict=True) if s != c]
        pattern = re.compile("[" + "".join(changed) + "]")
    return converter, pattern


def has_traditional(text: str) -> bool:
    """Whether `text` holds a character that the t2s conversion would change."""
    return _tables()[1].search(text) is not None


def to_simplified(text: str) -> str:
    """`text` with Traditional characters converted to Simplified; same length as `text`."""
    converter, pattern = _tables()
    if pattern.search(text) is None:
        return text
    simplified = converter.convert(text)
    if len(simplified) == len(text):
        return simplified
    # A phrase rule changed the length (rare): convert character by character, keeping one for one.
    return "".join(_one(converter, c) for c in text)


def _one(converter: _Converter, char: str) -> str:
    converted = converter.convert(char)
    return converted if len(converted) == 1 else char


def warm_up() -> None:
    """Build the tables now (at rule load) rather than on the first Chinese story."""
    _tables()
