"""`ItemFacts`: what admitting a matching item needs beyond its matches, worked out once.

Admission asks two pure functions of a matching item: the LSH keys of its title (`signature_keys`, to
find other reports of its story) and the materials and countries it names (`Ruleset.entities`, carried
by the alert). An item worker computes both beside the match (`item_workers.parse_and_match`), so the
service's busy process does not; in process, or for an item whose text enrichment replaced, admission
computes them itself. Either way the values are the same: they depend on the item and the pack only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rarewatch.stories import signature_keys

if TYPE_CHECKING:
    from rarewatch.models import Item
    from rarewatch.ruleset import Ruleset
    from rarewatch.ruleset.entities import Entities


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """A matching item's title signatures (`similar`) and the entities it names."""

    similar: tuple[str, ...]
    entities: Entities


def item_facts(ruleset: Ruleset, item: Item) -> ItemFacts:
    """`item`'s facts under `ruleset`."""
    return ItemFacts(signature_keys(item.title), ruleset.entities(item))
