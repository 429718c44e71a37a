"""`rarewatch match --jobs N`: the lines matched by N worker processes, written in input order.

Each worker holds the rule pack (inherited at fork where the platform forks, so it is loaded once, else
sent once when the worker starts). `Pool.imap` hands the results back in the order the work was read, so
the output is line for line what one process writes.

Input that never makes rarewatch wait (a regular file) goes to the workers in blocks of whole lines
(about `BLOCK` characters or bytes, cut after a newline), each returned as one string. Where the workers
are forked and the file is UTF-8 with no carriage return (so bytes and text cut lines alike), a task is
only where its block lies in the file: each worker reads and decodes its own blocks, and the parent only
finds the cuts, counts newlines and writes (decoding the text and handing it to the workers was most
of the parent's time, and the parent shares the cores with them). Otherwise the parent reads through
the input's own text layer, so lines end where one process's lines end. Input that can wait (a pipe, a
terminal) goes line by line in chunks of at most `CHUNK` lines, cut short when reading on would wait,
so a consumer still sees each result before rarewatch waits.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, AnyStr, TextIO

from rarewatch.ruleset.core import MatchCore

if TYPE_CHECKING:  # `match` without `--explain` loads only the match core: no pydantic, no schema
    import multiprocessing.pool

    from rarewatch.ruleset import Ruleset

CHUNK = 1000  # lines per task from a pipe: large enough that the hand-off costs little per line
BLOCK = 1 << 20  # characters per task from a file: about 2,500 news items of 400 characters

# (line number, output line, or None for a blank input line)
Result = tuple[int, str | None]
# A block's output: the lines up to its last non-blank line, and the numbers of the blank lines after it
# (reported only if a later line is not blank: blank lines at the end of the input are ignored).
BlockResult = tuple[str, list[int]]
# A block of whole lines: (number of its first line, its text), or (number of its first line, offset,
# length) of its bytes in the input file, which the worker reads itself.
Block = tuple[int, str] | tuple[int, int, int]
_ruleset: Ruleset | MatchCore | None = None  # one per worker process
_explain = False
_fd = -1  # the input file, inherited at fork, when tasks say where their block lies


def _start(ruleset: Ruleset | MatchCore, explain: bool, fd: int = -1) -> None:
    global _ruleset, _explain, _fd
    _ruleset, _explain, _fd = ruleset, explain, fd


def _work(chunk: list[tuple[int, str]]) -> list[Result]:
    from rarewatch.commands.rules import encode_line

    assert _ruleset is not None
    return [(n, encode_line(_ruleset, line, n, _explain) if line.strip() else None) for n, line in chunk]


def _work_block(task: Block) -> BlockResult:
    from rarewatch.commands.rules import encode_block

    assert _ruleset is not None
    if len(task) == 3:
        first, offset, length = task
        return encode_block(_ruleset, (first, read_span(_fd, offset, length).decode("utf-8")), _explain)
    return encode_block(_ruleset, task, _explain)


def read_span(fd: int, offset: int, length: int) -> bytes:
    """`length` bytes of the file `fd` from `offset` (fewer at its end), whatever its position."""
    parts = []
    while length > 0 and (part := os.pread(fd, length, offset)):
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return b"".join(parts)


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


def _whole_lines(pieces: Iterable[AnyStr], newline: AnyStr) -> Iterator[tuple[int, int, AnyStr]]:
    """(number of the first line, position from the start, text) of whole lines of the text read as
    `pieces`, one block per piece, cut after its last newline (a line longer than a piece reads on)."""
    number, start = 1, 0
    rest: AnyStr | None = None
    for piece in pieces:
        data = piece if rest is None else rest + piece
        cut = data.rfind(newline) + 1
        if cut == 0:  # one line longer than a block: read on
            rest = data
            continue
        yield number, start, data[:cut]
        number += data.count(newline, 0, cut)
        start += cut
        rest = data[cut:]
    if rest:
        yield number, start, rest


def blocks(infile: TextIO) -> Iterator[tuple[int, str]]:
    """(number of the first line, text) of whole lines of `infile`, about `BLOCK` characters at a time."""
    for number, _, text in _whole_lines(iter(lambda: infile.read(BLOCK), ""), "\n"):
        yield number, text


def spans(fd: int, offset: int) -> Iterator[tuple[int, int, int]]:
    """(number of the first line, offset, length) of whole lines of the file `fd` from `offset`, about
    `BLOCK` bytes at a time: the cuts of `blocks` on a file whose lines end in "\n" only."""
    for number, start, data in _whole_lines(_pieces(fd, offset), b"\n"):
        yield number, offset + start, len(data)


def _pieces(fd: int, offset: int) -> Iterator[bytes]:
    """The file `fd` from `offset` to its end, `BLOCK` bytes at a time."""
    while piece := read_span(fd, offset, BLOCK):
        yield piece
        offset += len(piece)


def file_blocks(infile: TextIO) -> Iterator[tuple[int, str]]:
    """`blocks(infile)`, the same lines, read as bytes and decoded a block at a time where `_spans_of`
    allows it: the text layer's `read(n)` counts `n` characters and translates newlines, and cost
    about four times as much as reading the bytes and decoding them."""
    at = _spans_of(infile)
    if at is None:
        yield from blocks(infile)
        return
    fd, offset = at
    for number, start, length in spans(fd, offset):
        yield number, read_span(fd, start, length).decode("utf-8")


def _spans_of(infile: TextIO) -> tuple[int, int] | None:
    """(descriptor, position) of `infile` when it can be read by byte spans with the lines its text
    layer gives: a regular file, read as strict UTF-8, nothing of it read ahead, and no carriage return
    in it (the text layer ends a line at one, `spans` would not); else None."""
    try:
        fd = infile.fileno()
        offset = infile.tell()
    except (OSError, ValueError):  # io.UnsupportedOperation (StringIO) is both
        return None
    utf8 = codecs.lookup(infile.encoding).name == "utf-8" and infile.errors == "strict"
    if not utf8 or offset != os.lseek(fd, 0, os.SEEK_CUR):
        return None
    if any(b"\r" in piece for piece in _pieces(fd, offset)):
        return None
    return fd, offset


def _file_at(infile: TextIO) -> tuple[int, int] | None:
    """(descriptor, position) of `infile` when its workers can read it by byte spans: `_spans_of`, and
    workers that are forked (they inherit the descriptor); else None."""
    import multiprocessing  # here: one process (no `--jobs`) never needs it

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    return _spans_of(infile)


def match_parallel(
    ruleset: Ruleset | MatchCore, explain: bool, jobs: int, infile: TextIO, would_wait: Callable[[], bool]
) -> Iterable[list[Result]]:
    """Each chunk's results, in input order, matched by `jobs` processes (input that can wait)."""
    with _pool(ruleset, explain, jobs) as pool:
        yield from pool.imap(_work, chunks(infile, would_wait))


def match_blocks(
    ruleset: Ruleset | MatchCore, explain: bool, jobs: int, infile: TextIO
) -> Iterable[BlockResult]:
    """Each block's output, in input order, matched by `jobs` processes (input that never waits)."""
    at = _file_at(infile)
    tasks: Iterator[Block] = blocks(infile) if at is None else spans(*at)
    with _pool(ruleset, explain, jobs, -1 if at is None else at[0]) as pool:
        yield from pool.imap(_work_block, tasks)


def _pool(ruleset: Ruleset | MatchCore, explain: bool, jobs: int, fd: int = -1) -> multiprocessing.pool.Pool:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return context.Pool(jobs, initializer=_start, initargs=(ruleset, explain, fd))
