"""`rarewatch store status|init`: look at the store's identity marker, or write a fresh one.

Both open the store on its own (no HTTP session, no notifiers, no identity check), so they never alert.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rarewatch.clock import Clock, SystemClock
from rarewatch.httputil import redact_url
from rarewatch.settings import Settings
from rarewatch.store import open_store
from rarewatch.store.base import StoreMarker
from rarewatch.store_identity import init_marker

EXIT_OK, EXIT_USAGE = 0, 2


async def store_status(settings: Settings, out: TextIO) -> int:
    """Print the store's kind, redacted URL and identity marker."""
    url = settings.store_url()
    store = open_store(url)
    await store.open()
    try:
        marker = await store.get_marker()
    finally:
        await store.close()
    print(f"store:   {_kind(url)} {redact_url(url)}", file=out)
    if marker is None:
        why = "the file was empty" if store.found_blank else "a new store, or one that lost its memory"
        hint = "the service writes one on start, or run `rarewatch store init`"
        print(f"marker:  none ({why}; {hint})", file=out)
    else:
        _print_marker(marker, out)
    return EXIT_OK


async def store_init(settings: Settings, yes: bool, out: TextIO, *, clock: Clock | None = None) -> int:
    """Write a fresh marker (with `yes`; otherwise say what it would do and exit 2). Running services that
    held the old marker adopt the new one without alerting."""
    url = settings.store_url()
    if not yes:
        print(
            f"rarewatch: `store init` writes a fresh identity marker to {redact_url(url)}; a service started "
            "on it afterwards takes it as its own store, without the lost-memory alert. Pass --yes to do it.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    now = (clock or SystemClock()).now()
    store = open_store(url)
    await store.open()
    try:
        previous = await store.get_marker()
        marker = init_marker(now, previous.id if previous else None)
        await store.reset_marker(marker)
    finally:
        await store.close()
    print(f"store:   {_kind(url)} {redact_url(url)}", file=out)
    _print_marker(marker, out)
    print("a fresh identity marker was written", file=out)
    return EXIT_OK


def _print_marker(marker: StoreMarker, out: TextIO) -> None:
    print(f"marker:  {marker.id}", file=out)
    print(f"created: {marker.created.isoformat(timespec='seconds')}", file=out)
    if marker.previous:
        print(f"replaces: {marker.previous}", file=out)


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite:") else "redis"
