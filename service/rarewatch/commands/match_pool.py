"""`rarewatch match --jobs N`: the lines matched by N worker processes, written in input order.

Each worker holds the rule pack (inherited at fork where the platform forks, so it is loaded once, else
sent once when the worker starts). `Pool.imap` hands the results back in the order the work was read, so
the output is line for line what one process writes.

Input that never makes rarewatch wait (a regular file) goes to the workers in blocks of text
(`BLOCK` characters, cut after a newline): the parent only reads, counts newlines and writes what the
workers send back, one string per block. It reads through the input's own text layer, so lines end
where one process's lines end. Input that can wait (a pipe, a terminal) goes line by line in chunks of
at most `CHUNK` lines, cut short when reading on would wait, so a consumer still sees each result before
rarewatch waits.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from rarewatch.ruleset import Ruleset

CHUNK = 1000  # lines per task from a pipe: large enough that the hand-off costs little per line
BLOCK = 1 << 20  # characters per task from a file: about 2,500 news items of 400 characters

# (line number, output line, or None for a blank input line)
Result = tuple[int, str | None]
# A block's output: the lines up to its last non-blank line, and the numbers of the blank lines after it
# (reported only if a later line is not blank: blank lines at the end of the input are ignored).
BlockResult = tuple[str, list[int]]
_ruleset: Ruleset | None = None  # one per worker process
_explain = False


def _start(ruleset: Ruleset, explain: bool) -> None:
    global _ruleset, _explain
    _ruleset, _explain = ruleset, explain


def _work(chunk: list[tuple[int, str]]) -> list[Result]:
    from rarewatch.commands.rules import encode_line

    assert _ruleset is not None
    return [(n, encode_line(_ruleset, line, n, _explain) if line.strip() else None) for n, line in chunk]


def _work_block(task: tuple[int, str]) -> BlockResult:
    from rarewatch.commands.rules import encode_block

    assert _ruleset is not None
    return encode_block(_ruleset, task, _explain)


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


def blocks(infile: TextIO) -> Iterator[tuple[int, str]]:
    """(number of the first line, text) of whole lines of `infile`, about `BLOCK` characters at a time."""
    number, rest = 1, ""
    while text := infile.read(BLOCK):
        text = rest + text
        cut = text.rfind("\n") + 1
        if cut == 0:  # one line longer than a block: read on
            rest = text
            continue
        yield number, text[:cut]
        number += text.count("\n", 0, cut)
        rest = text[cut:]
    if rest:
        yield number, rest


def match_parallel(
    ruleset: Ruleset, explain: bool, jobs: int, infile: TextIO, would_wait: Callable[[], bool]
) -> Iterable[list[Result]]:
    """Each chunk's results, in input order, matched by `jobs` processes (input that can wait)."""
    with _pool(ruleset, explain, jobs) as pool:
        yield from pool.imap(_work, chunks(infile, would_wait))


def match_blocks(ruleset: Ruleset, explain: bool, jobs: int, infile: TextIO) -> Iterable[BlockResult]:
    """Each block's output, in input order, matched by `jobs` processes (input that never waits)."""
    with _pool(ruleset, explain, jobs) as pool:
        yield from pool.imap(_work_block, blocks(infile))


def _pool(ruleset: Ruleset, explain: bool, jobs: int) -> multiprocessing.pool.Pool:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return context.Pool(jobs, initializer=_start, initargs=(ruleset, explain))
