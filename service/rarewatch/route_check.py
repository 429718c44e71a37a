"""Configuration checked against what exists: route filters against the rule pack and the sources, and
the folders of `jsonl` destinations against the file system.

Route filters are checked against what exists: a route that names an unknown category, rule, source,
material or country would take nothing, and the alerts it was meant for would go elsewhere or nowhere.

Composition level, as `runtime` (it sees `Settings`): run when the service starts, before a rule reload
is accepted (a reload that would orphan a route is refused), and by `rules check|match|eval --config`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rarewatch.categories import ALERT_CATEGORIES
from rarewatch.delivery.jsonl import JsonlDestination
from rarewatch.errors import ConfigError
from rarewatch.policies.source_health import HEALTH_RULE
from rarewatch.ruleset import Ruleset
from rarewatch.settings import Settings
from rarewatch.store_identity import OPERATIONAL_CATEGORY, OPERATIONAL_RULE

# Every category a route may name: those alerts can carry (`categories.ALERT_CATEGORIES`: the rule
# categories and `ops`), plus the store-identity alert's, which is sent to every destination anyway.
ROUTE_CATEGORIES: tuple[str, ...] = (*ALERT_CATEGORIES, OPERATIONAL_CATEGORY)
# Rule ids that are not in any rule file but do reach the routes' view of alerts.
BUILTIN_RULES: tuple[str, ...] = (HEALTH_RULE, OPERATIONAL_RULE)


def entity_names(ruleset: Ruleset, kind: str) -> frozenset[str]:
    """The canonical names of every entity of `kind` (`materials`, `countries`) in the rule pack."""
    return frozenset(
        name.lower() for v in ruleset.vocabularies.values() if v.kind == kind for name in v.entities
    )


def check_routes(settings: Settings, ruleset: Ruleset) -> None:
    """Raise `ConfigError` (file:line, or the environment variable, and a did-you-mean) for the first route
    filter value that names nothing: a category, rule id, source, material or country unknown to this
    configuration and `ruleset`."""
    known: dict[str, Iterable[str]] = {
        "category": ROUTE_CATEGORIES,
        "rule": (*(r.id for r in ruleset.rules), *BUILTIN_RULES),
        "source": [s.name for s in settings.sources],
        "material": entity_names(ruleset, "materials"),
        "country": entity_names(ruleset, "countries"),
    }
    for i, route in enumerate(settings.routes):
        for key, valid in known.items():
            names = frozenset(valid)
            for j, value in enumerate(getattr(route.match, key)):
                wanted = value.lower() if key in ("material", "country") else value
                if wanted not in names:
                    loc: tuple[str | int, ...] = ("routes", i, "match", key, j)
                    raise _unknown(settings, loc, key, value, names)


def _unknown(
    settings: Settings, loc: tuple[str | int, ...], key: str, value: str, names: frozenset[str]
) -> ConfigError:
    dotted = ".".join(str(p) for p in loc)
    close = difflib.get_close_matches(value.lower(), sorted(names), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if not names:
        listed = "none are defined"
    elif len(names) <= 12:
        listed = "known: " + ", ".join(sorted(names))
    else:
        listed = f"{len(names)} known"
    message = (
        f"{dotted}: unknown {key} {value!r}{hint} ({listed}); "
        "a route filter that names nothing would never take the alerts meant for it"
    )
    return settings.origin.error(loc, message)


def check_destination_paths(settings: Settings) -> None:
    """Raise `ConfigError` (file:line) for a `jsonl` destination whose folder does not exist: a typo there
    would otherwise create a folder nobody reads, and the alerts would pile up unseen."""
    for i, dest in enumerate(settings.destinations):
        if not isinstance(dest, JsonlDestination):
            continue
        folder = settings.resolve_path(dest.path).parent
        if not folder.is_dir():
            raise settings.origin.error(
                ("destinations", i, "path"),
                f"destinations.{i}.path: the folder {folder} of jsonl destination {dest.name!r} does not "
                "exist; create it (rarewatch does not, so that a typo is not a new folder nobody reads)",
            )
