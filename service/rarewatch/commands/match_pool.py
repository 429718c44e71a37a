"""`rarewatch match --jobs N`: the lines matched by N worker processes, written in input order.

The parent reads the input in chunks and writes the results; each worker holds the rule pack (inherited
at fork where the platform forks, else sent once when the worker starts) and turns a chunk of lines into
its output lines. `Pool.imap` hands the results back in the order the chunks were read, so the output is
line for line what one process writes. A chunk is cut short when reading on would wait (a pipe or a
terminal with nothing more to read yet), so a consumer still sees each result before rarewatch waits.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from rarewatch.ruleset import Ruleset

CHUNK = 1000  # lines per task: large enough that the hand-off costs little per line

# (line number, output line, or None for a blank input line)
Result = tuple[int, str | None]
_ruleset: Ruleset | None = None  # one per worker process
_explain = False


def _start(ruleset: Ruleset, explain: bool) -> None:
    global _ruleset, _explain
    _ruleset, _explain = ruleset, explain


def _work(chunk: list[tuple[int, str]]) -> list[Result]:
    from rarewatch.commands.rules import encode_line

    assert _ruleset is not None
    return [(n, encode_line(_ruleset, line, n, _explain) if line.strip() else None) for n, line in chunk]


def chunks(infile: TextIO, would_wait: Callable[[], bool]) -> Iterator[list[tuple[int, str]]]:
    """The numbered lines of `infile`, `CHUNK` at a time, or fewer when reading on would wait."""
    chunk: list[tuple[int, str]] = []
    for number, line in enumerate(infile, start=1):
        chunk.append((number, line))
        if len(chunk) >= CHUNK or would_wait():
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def match_parallel(
    ruleset: Ruleset, explain: bool, jobs: int, infile: TextIO, would_wait: Callable[[], bool]
) -> Iterable[list[Result]]:
    """Each chunk's results, in input order, matched by `jobs` processes."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(jobs, initializer=_start, initargs=(ruleset, explain)) as pool:
        yield from pool.imap(_work, chunks(infile, would_wait))
