"""The cyclic garbage collector kept off while a one-shot command starts, its start-up frozen after.

A command's start-up (imports, the configuration, the rule pack read back from the cache) makes a few
hundred thousand objects that live until the process exits. The collector, run by allocation counts,
walks them over and over and frees nothing; and once started again, its next full collection walks them
all once more. `paused()` keeps it off while the command starts; `started()`, called when the start-up
is over, moves every object then alive to the permanent generation (`gc.freeze`), out of the
collector's walks, and turns it on for the command's work (a steady `rarewatch once` of 1,000 unchanged
feeds: CPU 0.84x, its start-up 0.8x; README, Performance).

`started()` does something only under `paused()` (the `rarewatch` command's `once` and `match`): the
service, tests and any code calling a command's function directly keep the collector as it was, and
nothing of theirs is frozen. A forked worker inherits the pause: `started()` in its initializer freezes
what it inherited (so the collector never touches, and so never copies, the parent's pages) and turns
its collector on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_paused = False  # inside `paused()`, until `started()`


@contextmanager
def paused(*, thaw: bool = True) -> Iterator[None]:
    """Keep the collector off until `started()` (or the block's end), then restore it as it was. With
    `thaw`, what `started()` froze is unfrozen on leaving the block, back in the collector's reach (a
    command called in a longer process: tests). Without, it stays frozen: for the process's own command,
    which exits next (thawing would only have the collection at exit walk it all: ~0.05 s)."""
    global _paused
    was_enabled = gc.isenabled()
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        _paused = False
        if thaw:
            gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


def started() -> None:
    """The start-up is over: freeze what it made and turn the collector on. Outside `paused()`, nothing."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()
