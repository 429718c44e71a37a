"""Word forms: a word written with a trailing `~` in a term stands for its English inflections.

    jail~          jail, jails, jailed, jailing
    ban~           ban, bans, banned, banning
    licence~       licence, licences, licenced, licencing (and every license/licensing spelling)
    supply~        supply, supplies, supplied, supplying
    halt~ output   halt output, halts output, halted output, halting output

The forms are generated at load time and become extra keys of the one automaton, so they cost nothing
per item. The generator is deliberately generous (it may also produce "prohibitted"): a form that no
one writes is never found, while a missing form is a missed alert. Agent nouns ("-er") are not
produced: "ban~" must not find "banner". Irregular verbs list their forms in `IRREGULAR`.
"""

from __future__ import annotations

import itertools
import re

STEM_MARK = "~"
_VOWELS = "aeiou"
# Irregular past forms of the verbs the field uses; the regular forms are generated as well.
IRREGULAR: dict[str, tuple[str, ...]] = {
    "hold": ("held",),
    "sell": ("sold",),
    "seize": ("seized",),
    "cut": ("cut",),
    "shut": ("shut",),
    "run": ("ran",),
    "put": ("put",),
    "set": ("set",),
    "bar": ("barred", "barring"),
    "stop": ("stopped", "stopping"),
    "freeze": ("froze", "frozen"),
    "steal": ("stole", "stolen"),
    "take": ("took", "taken"),
    "give": ("gave", "given"),
    "leave": ("left",),
    "dry": ("dried", "dries"),
    "spy": ("spied", "spies"),
}
_STEM_WORD = re.compile(r"^[a-z]{2,}~$")


def is_stem_word(word: str) -> bool:
    """Whether `word` (lower case) is a Latin word of two or more letters marked with `~`."""
    return bool(_STEM_WORD.match(word))


def inflections(word: str) -> frozenset[str]:
    """The forms of one lower-case English word: itself, -s/-es, -ed, -ing, with the usual spelling
    rules (final -e dropped, -y to -ie, a final consonant doubled after a short vowel)."""
    forms = {word, word + "s", *IRREGULAR.get(word, ())}
    if word.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(word + "es")
    if word.endswith("e"):
        forms |= {word + "d", word[:-1] + "ing"}
    elif word.endswith("y") and len(word) > 2 and word[-2] not in _VOWELS:
        forms |= {word[:-1] + "ies", word[:-1] + "ied", word + "ing"}
    else:
        forms |= {word + "ed", word + "ing"}
        if _short_final_syllable(word):
            forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    return frozenset(forms)


def _short_final_syllable(word: str) -> bool:
    """consonant-vowel-consonant at the end ("ban", "ship", "permit"): the consonant may double."""
    if len(word) < 3:
        return False
    a, b, c = word[-3], word[-2], word[-1]
    return a not in _VOWELS and b in _VOWELS and c not in _VOWELS and c not in "wxy"


def expand(key: str) -> frozenset[str]:
    """Every spelling of a search key whose words may end in `~` (no `~` in the results)."""
    if STEM_MARK not in key:
        return frozenset({key})
    options = [
        sorted(inflections(w[:-1])) if w.endswith(STEM_MARK) else [w.rstrip(STEM_MARK)]
        for w in key.split(" ")
    ]
    return frozenset(" ".join(combo) for combo in itertools.product(*options))
