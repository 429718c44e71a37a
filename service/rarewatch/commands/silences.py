"""`rarewatch silence add|list|expire`: mute a rule, a source, a category, a material or one story for a
while, as Alertmanager's silences (see `rarewatch.policies.silences`).

The matchers are checked at `add` against what exists (`rarewatch.silence_check`, shared with the API),
with a did-you-mean, so a typo never becomes a silence that mutes nothing. The store is opened on its own:
these commands never alert.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TextIO

from rarewatch.clock import Clock, SystemClock
from rarewatch.errors import ConfigError
from rarewatch.models import Silence
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.runtime import item_retention
from rarewatch.settings import Settings
from rarewatch.silence_check import check_matchers, checked_story_values, did_you_mean, known_names
from rarewatch.store import open_store

EXIT_OK = 0


def known_values(settings: Settings, ruleset: Ruleset) -> dict[str, frozenset[str]]:
    """What each matcher field (but `story`) may name, for the configured sources (see `silence_check`)."""
    return known_names(ruleset, (s.name for s in settings.sources))


async def silence_add(
    settings: Settings,
    matchers: Sequence[tuple[str, str]],
    duration: timedelta,
    reason: str,
    author: str,
    out: TextIO,
    *,
    clock: Clock | None = None,
) -> int:
    """Check the matchers, store a silence from now for `duration`, print its id."""
    if not reason.strip():
        raise ConfigError("--reason: say why (it is shown with the silence)")
    if not author.strip():
        raise ConfigError("--author: say who (it is shown with the silence)")
    ruleset = load_ruleset(settings.rule_paths())
    checked = check_matchers(matchers, known_values(settings, ruleset))
    now = (clock or SystemClock()).now()
    store = open_store(settings.store_url(), items=item_retention(settings))
    await store.open()
    try:
        checked = await checked_story_values(store, checked)
        silence = Silence(str(uuid.uuid4()), checked, now, now + duration, reason, author, now)
        await store.add_silence(silence, now)
    finally:
        await store.close()
    print(silence.id, file=out)
    print(f"silences {silence.describe()} until {_when(silence.ends)}", file=out)
    return EXIT_OK


async def silence_list(settings: Settings, show_all: bool, out: TextIO, *, clock: Clock | None = None) -> int:
    """Print the active and pending silences (with `show_all`, the ended ones too), oldest first."""
    now = (clock or SystemClock()).now()
    store = open_store(settings.store_url(), items=item_retention(settings))
    await store.open()
    try:
        found = await store.silences()
    finally:
        await store.close()
    shown = [s for s in found if show_all or s.ends > now]
    for s in shown:
        state = "active" if s.active(now) else "pending" if s.starts > now else "expired"
        print(
            f"{s.id}  {state:<7}  {_when(s.starts)} .. {_when(s.ends)}  {s.describe()}  "
            f"by {s.author}: {s.reason}",
            file=out,
        )
    print(f"{len(shown)} silences", file=out)
    return EXIT_OK


async def silence_expire(
    settings: Settings, silence_id: str, out: TextIO, *, clock: Clock | None = None
) -> int:
    """End a silence now. What it muted stays recorded and is not sent; new alerts are sent again."""
    now = (clock or SystemClock()).now()
    store = open_store(settings.store_url(), items=item_retention(settings))
    await store.open()
    try:
        before = {s.id: s for s in await store.silences()}
        silence = await store.expire_silence(silence_id, now)
    finally:
        await store.close()
    if silence is None:
        raise ConfigError(f"no silence {silence_id!r}{did_you_mean(silence_id, before)}")
    was = before.get(silence_id)
    if was is not None and was.ends <= now:
        print(f"silence {silence_id} had already ended at {_when(silence.ends)}", file=out)
    else:
        print(f"silence {silence_id} expired at {_when(silence.ends)}", file=out)
    return EXIT_OK


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
