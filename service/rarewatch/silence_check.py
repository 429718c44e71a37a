"""Checking a new silence's matchers against what exists, shared by `rarewatch silence add` and
`POST /api/v1/silences`: a typo becomes an error with a did-you-mean, never a silence that mutes nothing.

What each field may name: the pack's rule ids (and the built-in ones), the sources, the categories, the
pack's materials (lower case, as alerts are matched); a `story` is an http(s) link (kept in canonical form)
or the id of an alert in the history. `prefix` says how an error names a field: `--rule` on the command
line, `matchers.rule` in the API.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from rarewatch.categories import ALERT_CATEGORIES
from rarewatch.errors import ConfigError
from rarewatch.models import SILENCE_FIELDS
from rarewatch.normalize import canonical_link
from rarewatch.route_check import BUILTIN_RULES, entity_names
from rarewatch.ruleset import Ruleset
from rarewatch.store import Store

CLI_PREFIX = "--"


def known_names(ruleset: Ruleset, sources: Iterable[str]) -> dict[str, frozenset[str]]:
    """What each matcher field (but `story`) may name."""
    return {
        "rule": frozenset((*(r.id for r in ruleset.rules), *BUILTIN_RULES)),
        "source": frozenset(sources),
        "category": frozenset(ALERT_CATEGORIES),
        "material": entity_names(ruleset, "materials"),
    }


def check_matchers(
    matchers: Sequence[tuple[str, str]], known: Mapping[str, frozenset[str]], *, prefix: str = CLI_PREFIX
) -> tuple[tuple[str, str], ...]:
    """The matchers, materials in lower case; `ConfigError` (with a did-you-mean) for one naming nothing,
    and for none at all. A `story` matcher is checked by `story_value` (it may name a story yet to come)."""
    if not matchers:
        flags = ", ".join(f"{prefix}{name}" for name in SILENCE_FIELDS)
        raise ConfigError(f"silence add: give at least one matcher ({flags})")
    checked = []
    for name, value in matchers:
        if name == "material":
            value = value.lower()
        valid = known.get(name)
        if valid is not None and value not in valid:
            raise ConfigError(f"{prefix}{name}: unknown {name} {value!r}{did_you_mean(value, valid)}")
        checked.append((name, value))
    return tuple(checked)


def did_you_mean(value: str, valid: Iterable[str]) -> str:
    """`; did you mean 'x'? (the names)` for an unknown `value`, or the list of names alone."""
    names = sorted(valid)
    close = difflib.get_close_matches(value.lower(), names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if not names:
        return f"{hint} (none are defined)"
    listed = ", ".join(names) if len(names) <= 12 else f"{len(names)} known"
    return f"{hint} ({listed})"


async def story_value(store: Store, value: str, *, prefix: str = CLI_PREFIX) -> str:
    """A `story` matcher's value as matched: a link in canonical form, or the id of a recorded alert."""
    if value.startswith(("http://", "https://")):
        return canonical_link(value)
    if await store.get_alert(value) is not None:
        return value
    raise ConfigError(f"{prefix}story: {value!r} is neither an http(s) link nor the id of a recorded alert")


async def checked_story_values(
    store: Store, matchers: Sequence[tuple[str, str]], *, prefix: str = CLI_PREFIX
) -> tuple[tuple[str, str], ...]:
    """`matchers` with each `story` value checked and made canonical by `story_value`."""
    return tuple(
        [(n, await story_value(store, v, prefix=prefix)) if n == "story" else (n, v) for n, v in matchers]
    )
