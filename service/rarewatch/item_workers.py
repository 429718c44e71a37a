"""`ItemWorkers`: a small pool of processes that turn a fetched feed body into matched items.

The cold cycle's per-item work (parsing the feed, normalising each entry, matching the items) is Python
that holds the interpreter lock; in one process it takes turns with the event loop and the store's
worker thread. With `pipeline.workers: N` (or `once --jobs N`) a feed's body goes to one of N worker
processes, which parse it, make its links absolute, normalise its entries and match them (a chunk of
`normalize.CHUNK` items at a time, as the pipeline does in process) and send back the items and their matches,
with what admitting each matching item needs (`ItemFacts`: its title signatures and entities). An item no
rule fired on, and whose article is not worth reading (or its source reads none), comes back only as its
id and its seen-item JSON text (`Listed`): the service keeps it in the seen-item log without building it.
The rest of the poll (enrichment, the seen items, admission, delivery) stays in the service process.

The workers are forked and inherit the rule pack they match with (nothing is pickled to start them);
`restart` forks new ones for a reloaded pack. Results are those of the in-process path item for item:
`Ruleset.match_many` answers each item on its own, whatever the items beside it.

A worker that dies (killed, or crashed by a body that breaks a C parser) breaks the pool, which is
replaced at once. Every fetch whose body was in the broken pool is tried again alone: in a worker of its
own, one body at a time, so that only the body that kills that worker is blamed. That body is its
source's `SourceError` (retried at its next poll, with backoff); the others go on as if nothing
happened. A body is never parsed in the service process instead: one that can crash a worker could
crash the service.

The workers ignore SIGINT (the service decides when to stop) and leave when the service process goes
away, even when it was killed without closing the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TYPE_CHECKING

from rarewatch import startup_gc
from rarewatch.errors import SourceError

if TYPE_CHECKING:
    from rarewatch.item_facts import ItemFacts
    from rarewatch.models import Item, Match
    from rarewatch.ruleset import Ruleset

log = logging.getLogger(__name__)

_PARENT_CHECK = 1.0  # seconds between a worker's looks at whether the service process is still there

Matched = list[tuple["Item", list["Match"], "ItemFacts | None"]]
"""A fetch's items the service needs whole, in feed order: those that fired a rule (with the rules and
their facts) and those whose article is worth reading."""

Listed = list[tuple[int, str, str]]
"""A fetch's other items, in feed order: (how many of `Matched`'s items come before it in the feed, the
item's id, its `item_json`)."""

Done = tuple[int, Matched, Listed]
"""A worker's answer for one body: its number of entries, and its items, matched or listed."""

_ruleset: Ruleset | None = None  # a worker's pack, inherited at fork


class WorkerFailed(RuntimeError):
    """A worker raised something other than a `SourceError` (a bug): its type and message, as text (an
    arbitrary exception may not survive the trip between processes)."""


def _start(ruleset: Ruleset, parent: int) -> None:
    """A worker's start: keep the pack, ignore SIGINT, stop listening to the service's signal wake-up,
    and leave when the service process goes away."""
    global _ruleset
    _ruleset = ruleset
    startup_gc.started()  # forked during `once`'s start-up: freeze the inherited pack, collect from here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)  # asyncio's, inherited at fork: not this process's to write to
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """End this worker once its parent is gone (it would otherwise wait on its task queue forever)."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK)
    os._exit(0)


def parse_and_match(
    body: bytes,
    content_type: str | None,
    name: str,
    lang: str | None,
    url: str,
    now: datetime,
    enrich: bool,
) -> Done:
    """What a worker does with one feed body (`enrich`: its source reads articles): its number of
    entries and its items, matched or listed; or raises the parser's `SourceError`. Any other exception
    becomes a `WorkerFailed` naming it.

    A matching item's matches are located here (which text completed them: up to two more matches per
    matching item) and its facts worked out, and a listed item's seen-item text made, in the worker
    rather than on the service's event loop."""
    from rarewatch.enrichment import locate, wants_article
    from rarewatch.item_facts import item_facts
    from rarewatch.models import item_json
    from rarewatch.normalize import normalized_and_matched
    from rarewatch.sources.feed import absolute_links
    from rarewatch.sources.feedparse import parse_feed

    ruleset = _ruleset
    assert ruleset is not None
    matched: Matched = []
    listed: Listed = []
    try:
        entries = list(absolute_links(parse_feed(body, content_type, name, lang), url))
        for chunk in normalized_and_matched(entries, now, ruleset.match_many):
            for item, matches in chunk:
                if matches:
                    located = list(locate(ruleset, item, matches, from_article=False))
                    matched.append((item, located, item_facts(ruleset, item)))
                elif enrich and wants_article(ruleset, item, matches):
                    matched.append((item, matches, None))
                else:
                    listed.append((len(matched), item.id, item_json(item)))
    except SourceError as exc:
        raise SourceError(str(exc), retry_after=exc.retry_after) from None
    except Exception as exc:  # noqa: BLE001 - sent back as text, raised in the service as this poll's error
        raise WorkerFailed(f"{type(exc).__name__}: {exc}") from None
    return len(entries), matched, listed


def _noop() -> None:
    """A first task, so that the workers are forked when the pool is made."""


class ItemWorkers:
    """`jobs` worker processes matching with `ruleset` (see the module's docstring)."""

    def __init__(self, ruleset: Ruleset, jobs: int) -> None:
        """Fork the workers now (before the service starts its threads, where the caller can)."""
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.jobs = jobs
        self.ruleset = ruleset
        self.restarts = 0  # pools replaced after a worker died
        self._pool = self._new_pool(jobs)
        self._alone: concurrent.futures.ProcessPoolExecutor | None = None  # the one-body-at-a-time worker
        self._alone_lock = asyncio.Lock()

    def _new_pool(self, jobs: int) -> concurrent.futures.ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_start, initargs=(self.ruleset, os.getpid())
        )
        pool.submit(_noop).result()
        return pool

    def restart(self, ruleset: Ruleset) -> None:
        """Match with `ruleset` from now on: new workers, forked with it (fetches under way finish on the
        old ones)."""
        old, alone, self.ruleset = self._pool, self._alone, ruleset
        self._pool, self._alone = self._new_pool(self.jobs), None
        old.shutdown(wait=False)
        if alone is not None:
            alone.shutdown(wait=False)

    async def parse_and_match(
        self,
        ruleset: Ruleset,
        body: bytes,
        content_type: str | None,
        name: str,
        lang: str | None,
        url: str,
        now: datetime,
        enrich: bool,
    ) -> Done | None:
        """`parse_and_match` of one body in a worker; None when the workers hold another pack than
        `ruleset` (the caller then does the work itself). A worker dying is handled as the module says."""
        if ruleset is not self.ruleset:
            return None
        args = (body, content_type, name, lang, url, now, enrich)
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(parse_and_match, *args))
        except BrokenProcessPool:
            self._replace(pool)
            log.warning("source %s: a parsing worker died; the feed's body is tried again alone", name)
        async with self._alone_lock:  # one body at a time: a death there is that body's doing
            if ruleset is not self.ruleset:  # reloaded meanwhile
                return None
            alone = self._alone = self._alone or self._new_pool(1)
            try:
                return await asyncio.wrap_future(alone.submit(parse_and_match, *args))
            except BrokenProcessPool:
                alone.shutdown(wait=False, cancel_futures=True)
                self._alone = None
        raise SourceError("the feed's body killed the parsing worker that read it alone; not parsed")

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """A fresh pool in place of `broken` (once, however many fetches saw it break)."""
        if self._pool is broken:
            self.restarts += 1
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool(self.jobs)

    def close(self) -> None:
        """Stop the workers: pending bodies are dropped, the one being parsed finishes, then they exit."""
        if self._alone is not None:
            self._alone.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def pids(self) -> list[int]:
        """The workers' process ids (for tests and diagnostics)."""
        processes: dict[int, multiprocessing.process.BaseProcess] | None = getattr(
            self._pool, "_processes", None
        )
        return sorted(processes or {})
