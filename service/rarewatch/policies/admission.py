"""Story admission: whether a matching item is a new story, another report of a known one, or nothing.

One story, one alert. An item is *seen* when its own stable id is claimed. It reports a *known story*
when its canonical link is claimed by an alert of that story, or when its title is a near-duplicate of a
report of that story (a candidate found through the LSH index, then checked exactly) and the two do not
name disjoint materials or categories. A report is matched against every indexed report of a story, not
only the first, so which outlet's copy arrives first never splits a story.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from rarewatch.models import Alert, AlertKind, Item
from rarewatch.policies.digest import delivery_plan
from rarewatch.policies.updates import over_update_cap
from rarewatch.store.keys import item_key, link_key
from rarewatch.stories import DEFAULT_THRESHOLD, same_story

# Near-duplicate candidates checked exactly per item, the ones sharing most LSH bands first.
MAX_CANDIDATES = 3


def story_keys(item: Item) -> tuple[str, ...]:
    """The dedup keys of a story: its stable id and, when it has one, its canonical link.

    The link key makes the same article seen through two sources (each with its own guid) one story.
    """
    keys = [item_key(item.id)]
    if item.link:
        keys.append(link_key(item.link))
    return tuple(keys)


def is_seen(keys: Sequence[str], held: Mapping[str, str | None]) -> bool:
    """This very item was claimed before (its stable id, the first of `story_keys`, is held)."""
    return keys[0] in held


def same_event(known: Alert, new: Alert, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Near-duplicate titles about the same kind of event, not about different materials.

    The materials must overlap, not be equal: one outlet's summary naming an extra material does not
    make its copy of a near-identical headline another story; "gallium" and "germanium" controls do stay
    two stories.
    """
    if known.materials and new.materials and not set(known.materials) & set(new.materials):
        return False
    if not set(known.categories) & set(new.categories):
        return False
    return same_story(known.item.title, new.item.title, threshold)


def candidates(keys: Sequence[str], similar: Sequence[str], held: Mapping[str, str | None]) -> list[str]:
    """The alert ids worth checking, in order: the owner of the item's link first (the same article),
    then the owners sharing the most LSH bands with its title (at most `MAX_CANDIDATES`)."""
    owners = [o for k in keys[1:] if (o := held.get(k))]
    bands = Counter(o for k in similar if (o := held.get(k)))
    ranked = [owner for owner, _ in bands.most_common(MAX_CANDIDATES)]
    return list(dict.fromkeys(owners + ranked))


def known_story(
    alert: Alert,
    keys: Sequence[str],
    held: Mapping[str, str | None],
    found: Mapping[str, Alert],
    threshold: float = DEFAULT_THRESHOLD,
) -> Alert | None:
    """The recorded report (`found`: the candidates loaded from the history) of the story `alert`
    reports again: the alert owning its canonical link, or a near-duplicate (see `same_event`)."""
    link_owners = {o for k in keys[1:] if (o := held.get(k))}
    for owner, known in found.items():
        if owner in link_owners or same_event(known, alert, threshold):
            return known
    return None


class Action(Enum):
    """What to do with a matching item."""

    SEEN = "seen"  # this very item was claimed before: nothing
    RECORD = "record"  # claim it and record the alert in the history, send it nowhere
    SEND = "send"  # claim it, record the alert and deliver it
    UNROUTED = "unrouted"  # claim it, record the alert as unrouted (no route took it): deliver nowhere yet


SEEN = "seen"
UPDATE_CAP = "update cap"  # an update over the story's cap: recorded, not sent
THROTTLED = "throttled"  # every rule that fired is over its throttle: recorded, not sent
UNROUTED = "no route took it"  # recorded as unrouted, to be sent later (`rarewatch alerts resend`)


@dataclass(frozen=True, slots=True)
class Plan:
    """The admission decision for one item: what to claim, what to remember, where to deliver."""

    action: Action
    alert: Alert | None = None
    keys: tuple[str, ...] = ()  # the claim keys (an update claims only those not yet held)
    remember: tuple[str, ...] = ()  # title signature keys to index to the alert
    destinations: tuple[str, ...] = ()
    held_until: dict[str, datetime] = field(default_factory=dict)
    reason: str = ""


def admit(
    alert: Alert,
    keys: Sequence[str],
    similar: Sequence[str],
    held: Mapping[str, str | None],
    known: Alert | None,
    *,
    throttled: bool,
    updates: int,
    max_updates: int,
    routes: Callable[[Alert], Mapping[str, timedelta | None]],
    now: datetime,
) -> Plan:
    """Decide what becomes of `alert` (built from a matching item).

    `known` is the known story it reports again (`known_story`), `throttled` whether every rule that
    fired is over its throttle, `updates` how many updates of `known`'s story there have been in the
    dedup window, this one included (ignored for a new story), `routes` is the router's plan.
    """
    if is_seen(keys, held):
        return Plan(Action.SEEN, reason=SEEN)
    remember = tuple(similar)
    if known is not None:
        alert = replace(alert, kind=AlertKind.UPDATE, story=known.story)
        keys = tuple(k for k in keys if k not in held)
        if over_update_cap(updates, max_updates):
            return Plan(Action.RECORD, alert, keys, reason=UPDATE_CAP)
    if throttled:
        return Plan(Action.RECORD, alert, tuple(keys), reason=THROTTLED)
    plan = delivery_plan(routes(alert), now)
    if not plan.destinations:
        return Plan(Action.UNROUTED, alert, tuple(keys), remember, reason=UNROUTED)
    return Plan(Action.SEND, alert, tuple(keys), remember, plan.destinations, plan.held_until)
