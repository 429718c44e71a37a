"""Entities: the materials and countries an item names, as canonical lower-case English names.

They come from vocabularies with `kind` and `entities` (see `schema.Vocabulary`) and are read off the
same automaton pass and the same filtered hits as the rules: "Graphite Capital" names no material when
the materials vocabulary excludes it. Routes match on them ("a dysprosium buyer's channel") and alerts
carry them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rarewatch.ruleset.nodes import Hit


@dataclass(frozen=True)
class Entities:
    """What an item names, each in order of first mention (title first), without repeats."""

    materials: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()


NONE = Entities()


def collect(names: Mapping[int, tuple[tuple[str, str], ...]], hits: Mapping[int, list[Hit]]) -> Entities:
    """The entities named by the term `hits` of one item; `names` maps term ids to (kind, name)."""
    found = [tid for tid in hits if tid in names]  # the item's few terms, not every name
    if not found:
        return NONE
    firsts = sorted((min((h.field, h.start) for h in hits[tid]), tid) for tid in found)
    by_kind: dict[str, dict[str, None]] = {"materials": {}, "countries": {}}
    for _, tid in firsts:
        for kind, name in names[tid]:
            by_kind[kind].setdefault(name, None)
    return Entities(tuple(by_kind["materials"]), tuple(by_kind["countries"]))
