"""`rarewatch rules check` and `rarewatch match`: the rule pack from the command line."""

from __future__ import annotations

import json
import math
import os
import select
import stat
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from rarewatch import startup_gc
from rarewatch.commands.malloc import keep_freed_memory
from rarewatch.commands.match_pool import BlockResult, file_blocks, match_blocks, match_parallel
from rarewatch.errors import ConfigError, RuleError
from rarewatch.normalize import (
    has_lone_surrogate,
    has_pinyin,
    plain_text,
    plain_texts_joined,
    without_invisible,
)
from rarewatch.ruleset.cache import RulesetCache, load_core
from rarewatch.ruleset.core import MatchCore
from rarewatch.ruleset.text import (
    fold_ascii_lines,
    fold_lines,
    joined_search_text,
    lower_in_place,
    raw_search_text,
    search_text,
)

# The whole pack (pydantic rule models, the schema, the compiler) is imported where it is needed:
# `match` without `--explain` or a configuration's route check only needs the match core.
if TYPE_CHECKING:
    from rarewatch.ruleset import Ruleset

_TEXT_FIELDS = ("title", "summary", "content")
_TEXT_TYPES = frozenset({str, type(None)})
_NONE = type(None)
_CHECKED_FIELDS = (*_TEXT_FIELDS, "source", "lang")  # what must be a string or null


def load_checked(
    paths: Sequence[Path],
    check: Callable[[Ruleset], None] | None,
    cache: RulesetCache | None = None,
    files: Sequence[tuple[str, str]] | None = None,
) -> Ruleset:
    """The rules under `paths` (through `cache` when given; compiled from `files`, their texts as
    `read_rule_files` gives them, when the caller has read them already), passed through `check` (a
    configuration's route check) when given. Raises `RuleError` or `ConfigError`."""
    from rarewatch.ruleset import load_ruleset
    from rarewatch.ruleset.loader import compile_files

    ruleset = load_ruleset(paths, cache) if files is None else compile_files(files, paths)
    if check is not None:
        check(ruleset)
    return ruleset


def rules_check(
    paths: Sequence[Path],
    out: TextIO,
    err: TextIO | None = None,
    check: Callable[[Ruleset], None] | None = None,
) -> int:
    """Validate the rules under `paths` (and, with `check`, a configuration's routes against them) and run
    their examples.

    Prints each problem as `file:line [rule id]: message`, advice (`file:line: warning: …`, a term a
    vocabulary lists twice, a `word~` that looks cut short) and a summary line. Returns 2 when the rules
    do not load or a route names nothing (the error on `err`, default standard error), 1 when an example
    fails, 0 when everything passes.
    """
    from rarewatch.ruleset.examples import run_examples
    from rarewatch.ruleset.files import read_rule_files
    from rarewatch.ruleset.lint import cut_short_stems, duplicate_terms

    try:
        files = read_rule_files(paths)  # read once: for the pack and for the advice
        ruleset = load_checked(paths, check, files=files)
    except (RuleError, ConfigError) as exc:
        print(f"rarewatch: {exc}", file=err or sys.stderr)
        return 2
    for advice in [*duplicate_terms(files), *cut_short_stems(files)]:
        print(advice, file=out)
    examples = failures = 0
    for result in run_examples(ruleset):
        examples += 1
        if not result.passed:
            failures += 1
            if result.kind == "match":
                message = f"match example did not fire: {result.text!r}"
            else:
                message = f"no_match example fired on {list(result.terms)}: {result.text!r}"
            print(RuleError(message, file=result.file, line=result.line, rule_id=result.rule_id), file=out)
    print(
        f"{len(ruleset.rules)} rules, {examples} examples, {failures} failures (rule pack {ruleset.version})",
        file=out,
    )
    return 1 if failures else 0


def match_jsonl(
    paths: Sequence[Path],
    explain: bool,
    infile: TextIO,
    out: TextIO,
    check: Callable[[Ruleset], None] | None = None,
    cache: RulesetCache | None = None,
    jobs: int = 1,
) -> int:
    """Match JSON Lines items from `infile` against the rules under `paths`; one JSON line out per line in.

    Each input object may have `id`, `title`, `summary`, `content`, `link`, `source`, `lang`. Output:
    `{"id":...,"matches":[{"rule","category","severity"}]}` (plus `"terms"` with `explain`), the id
    being the line number when the input has none. A line that is not a JSON object gets an `"error"`
    and no matches, and the run goes on; blank lines at the end of the input are ignored. Returns 2
    (message on stderr) when the rules are invalid, else 0. Output is written in batches, and flushed
    whenever reading the next line could wait. `cache` keeps the compiled pack between runs. `jobs` > 1
    matches in that many worker processes (`match_pool`); the output is the same, in the same order.
    Without `explain` and `check`, only the pack's match core is loaded (from `cache`, when given).
    """
    ruleset: Ruleset | MatchCore
    try:
        if explain or check is not None or cache is None:
            ruleset = load_checked(paths, check, cache)
        else:
            ruleset = load_core(paths, cache)
    except (RuleError, ConfigError) as exc:
        print(f"rarewatch: {exc}", file=sys.stderr)
        return 2
    startup_gc.started()  # before `--jobs` forks: the workers inherit the frozen pack
    keep_freed_memory()  # each block's buffers reuse the last one's pages (before `--jobs` forks)
    batch = _Batch(out, infile)
    if not batch.input_can_wait:
        done = (
            match_blocks(ruleset, explain, jobs, infile)
            if jobs > 1
            else (encode_block(ruleset, block, explain) for block in file_blocks(infile))
        )
        carried: list[int] = []  # blank lines at the end of the blocks so far
        for body, trailing in done:
            if body:
                out.write("".join(map(blank_line, carried)) + body)
                carried = trailing
            else:
                carried += trailing
        out.flush()
        return 0
    if jobs > 1:
        results = match_parallel(ruleset, explain, jobs, infile, batch.input_would_wait)
        lines = (result for chunk in results for result in chunk)
    else:
        lines = (
            (n, encode_line(ruleset, line, n, explain) if line.strip() else None)
            for n, line in enumerate(infile, start=1)
        )
    blanks: list[int] = []  # blank lines are reported only once a later line shows they are not trailing
    for number, encoded in lines:
        if encoded is None:
            blanks.append(number)
            continue
        for blank in blanks:
            batch.add(blank_line(blank))
        blanks.clear()
        batch.add(encoded)
    batch.flush()
    return 0


def encode_line(
    ruleset: Ruleset | MatchCore,
    line: str,
    number: int,
    explain: bool,
    closed: bool | None = None,
) -> str:
    """The output line for input line `number` (not blank). `closed` is the line's gate verdict
    (`gate_verdicts`): True, the gate is known to be closed on its item, so it fires nothing once it
    proves a valid item; False, a key that can open it occurs in the line, so the item's own quick gate
    is not asked again; None, nothing is known."""
    return _encode(_match_line(ruleset, line, number, explain, closed))


def encode_block(ruleset: Ruleset | MatchCore, block: tuple[int, str], explain: bool) -> BlockResult:
    """The output of a block of whole lines (`match_pool.blocks`: the number of its first line, its
    text): the output lines up to its last non-blank line, and the numbers of the blank lines after
    that (reported only if a later block shows they are not trailing)."""
    first, text = block
    pieces = text.split("\n")
    if pieces[-1]:  # the input's last line, without a newline
        with_newline = len(pieces) - 1
    else:
        pieces.pop()
        with_newline = len(pieces)
        text = text[:-1]  # the lines joined, for the block pass (a copy, not a join of every line)
    verdicts = gate_verdicts(ruleset, pieces, explain, text)
    out: list[str] = []
    blanks: list[int] = []
    for index, (piece, shut) in enumerate(zip(pieces, verdicts, strict=True)):
        number = first + index
        if not piece or piece.isspace():
            blanks.append(number)
            continue
        if blanks:
            out.extend(blank_line(blank) for blank in blanks)
            blanks.clear()
        if shut and (encoded := _closed_item_line(piece, number)) is not None:
            out.append(encoded)
            continue
        # As a text file yields the line, newline kept (an error's column counts from its start).
        line = piece + "\n" if index < with_newline else piece
        out.append(encode_line(ruleset, line, number, explain, shut))
    return "".join(out), blanks


def _closed_item_line(line: str, number: int) -> str | None:
    """The output line of input line `number` when the gate is known to be closed on its item: what
    `encode_line` gives, for the common item (a JSON object, texts, source and lang strings or null, an
    id that is a string, an integer or missing), without building a record to encode; None for anything
    else (an error, another kind of id), which `encode_line` then answers."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    get = data.get
    # Each type tested on its own, by identity (no set of the five built, no set look-up): this runs for
    # most lines of a large input.
    for key in _CHECKED_FIELDS:
        kind = type(get(key))
        if kind is not str and kind is not _NONE:
            return None
    item_id = get("id")
    if item_id is None:
        return f'{{"id":{number},"matches":[]}}\n'
    if type(item_id) is str and "\\" not in line:
        # Written as it was read: in a line without a backslash a string holds no character JSON escapes
        # (a quote or backslash would need one, a control character or lone surrogate cannot be there).
        return '{"id":"' + item_id + '","matches":[]}\n'
    if type(item_id) is not str and type(item_id) is not int:  # a float, a bool, a list: `_decode`
        return None
    # What orjson decodes, it encodes (it reads an integer beyond 64 bits as a float, not handled here).
    return '{"id":' + orjson.dumps(item_id).decode() + ',"matches":[]}\n'


def gate_closed(ruleset: Ruleset | MatchCore, lines: Sequence[str], explain: bool) -> list[bool]:
    """For each of `lines` (without their newline), True when the gate is surely closed on its item
    (`Ruleset.gate_closed_lines`), asked of all the lines at once: a JSON line without escapes ("\\"),
    tags or entities holds its texts verbatim, between quotes, and they are folded in place (the ASCII
    lines together, then the others). False for the other lines, and with `explain` (which looks past
    the gate)."""
    return [verdict is True for verdict in gate_verdicts(ruleset, lines, explain)]


def gate_verdicts(
    ruleset: Ruleset | MatchCore, lines: Sequence[str], explain: bool, joined: str | None = None
) -> list[bool | None]:
    """`gate_closed`, telling the lines the block pass asked and found open to a key (False: a key that
    can open the gate occurs in the line's fold, so the item's own quick gate would say so too, or
    there is no gate) from those it did not ask (None: not verbatim, not foldable, or `explain`).
    `joined`: the lines joined by "\n", when the caller has that text already (a block's)."""
    closed: list[bool | None] = [None] * len(lines)
    if explain:
        return closed
    text = "\n".join(lines) if joined is None else joined
    if _verbatim(text):  # the common case: every line is (one test of the block, not one per line)
        if text.isascii():
            return list(ruleset.gate_closed_lines(fold_ascii_lines(text)))
        verbatim: Sequence[int] = range(len(lines))
    else:
        verbatim = [i for i, line in enumerate(lines) if _verbatim(line)]
    plain = [i for i in verbatim if lines[i].isascii()]
    if plain:
        folded = fold_ascii_lines("\n".join(lines[i] for i in plain))
        for i, shut in zip(plain, ruleset.gate_closed_lines(folded), strict=True):
            closed[i] = shut
    # The others as their plain texts are made (NFKC, invisible characters out), then folded, all
    # together; where `fold_lines` refuses them (Traditional characters, a character lower-casing
    # lengthens, a lone surrogate), again without the lines that hold such a character, which are left
    # to their item's own gate, so as not to hold back the rest of the block. Lines with pinyin after
    # Chinese characters are left to their own gate too: `plain_text` takes it out, which may join a key.
    other = [i for i in verbatim if not lines[i].isascii()]
    other, folded_other = _fold_other(lines, other)
    if folded_other is None:
        other, folded_other = _fold_other(lines, [i for i in other if _foldable(lines[i])])
    if folded_other is not None:
        for i, shut in zip(other, ruleset.gate_closed_lines(folded_other), strict=True):
            closed[i] = shut
    return closed


def _fold_other(lines: Sequence[str], indexes: Sequence[int]) -> tuple[list[int], bytes | None]:
    """The lines of `indexes` without those holding pinyin after Chinese characters (rare), and
    `fold_lines` of their plain texts joined by newlines; None when there are none or `fold_lines`
    refuses them."""
    kept = list(indexes)
    if not kept:
        return kept, None
    text = unicodedata.normalize("NFKC", without_invisible("\n".join(lines[i] for i in kept)))
    if has_pinyin(text):
        pairs = [(i, line) for i, line in zip(kept, text.split("\n"), strict=True) if not has_pinyin(line)]
        kept, text = [i for i, _ in pairs], "\n".join(line for _, line in pairs)
        if not kept:
            return kept, None
    return kept, fold_lines(text)


def _foldable(line: str) -> bool:
    """Whether `fold_lines` takes the line: the check it makes before folding, and no lone surrogate."""
    return not has_lone_surrogate(line) and lower_in_place(line) is not None


def _verbatim(line: str) -> bool:
    """Whether the texts of this JSON line are exactly as they are written in it (no escape) and their
    plain texts are their normalisation with whitespace collapsed (no tag, no entity)."""
    return "\\" not in line and "<" not in line and "&" not in line


def blank_line(number: int) -> str:
    """The output line for blank input line `number` (one that a later line shows is not trailing)."""
    return _encode({"id": number, "matches": [], "error": "empty line"})


class _Batch:
    """Output lines collected and written together: a flush per line was a sixth of a large run.

    A consumer reading the pipe must still see each result before rarewatch waits for more input, so
    the batch is also flushed when the input (a pipe or a terminal, not a file) has nothing to read.
    """

    SIZE = 2048  # lines

    def __init__(self, out: TextIO, infile: TextIO) -> None:
        self._out = out
        self._lines: list[str] = []
        self._input_fd = _waitable_fd(infile)

    @property
    def input_can_wait(self) -> bool:
        """Whether reading the input could ever wait (a pipe or a terminal, not a file)."""
        return self._input_fd is not None

    def input_would_wait(self) -> bool:
        """Whether reading the next input line could wait (never for a regular file)."""
        return self._input_fd is not None and _would_wait(self._input_fd)

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.SIZE or (self._input_fd is not None and _would_wait(self._input_fd)):
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._out.write("".join(self._lines))
            self._lines.clear()
        self._out.flush()


def _waitable_fd(infile: TextIO) -> int | None:
    """The file descriptor of `infile` when reading it can wait (not a regular file), else None."""
    try:
        fd = infile.fileno()
        return None if stat.S_ISREG(os.fstat(fd).st_mode) else fd
    except (OSError, ValueError):  # io.UnsupportedOperation (StringIO) is both
        return None


def _would_wait(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return not readable


def _encode(record: dict[str, Any]) -> str:
    """One output line: orjson, except for what only `json` writes as it was read (NaN and infinite
    ids, which orjson writes as null; integers beyond 64 bits, which it refuses; a lone surrogate, a
    JSON "\\ud800", which no UTF-8 output takes and which is written back escaped)."""
    item_id = record["id"]
    if isinstance(item_id, float) and not math.isfinite(item_id):
        return _json_line(record)  # orjson writes null
    try:
        return orjson.dumps(record).decode() + "\n"
    except orjson.JSONEncodeError:
        return _json_line(record)


def _json_line(record: dict[str, Any]) -> str:
    """`record` as the standard library writes it, non-ASCII characters as they are, but escaped
    throughout where the record holds a lone surrogate (an id read from "\\ud800"), so that the line
    always encodes as UTF-8."""
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if has_lone_surrogate(line):
        line = json.dumps(record, separators=(",", ":"))
    return line + "\n"


def _decode(line: str) -> Any:
    """One input line, as `json.loads` reads it: orjson first; `json` for what orjson refuses (NaN) and
    for the error message, and again when the id (the one value echoed) is a float: orjson reads an
    integer beyond 64 bits as a float, where `json` keeps it exact."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)
    if isinstance(data, dict) and isinstance(data.get("id"), float):
        return json.loads(line)
    return data


def _search_texts(texts: Sequence[str]) -> str:
    """The search texts of the plain texts of `texts` joined by "\n", as matching computes them (see
    `Ruleset.cannot_fire`), without the plain texts where they are not needed (`raw_search_text`), else
    with one normalisation of the three texts together where that is exact (`joined_search_text`)."""
    joined = raw_search_text(texts)
    if joined is None and (plain := plain_texts_joined(texts)) is not None:
        joined = joined_search_text(plain)  # one pass for the three texts (not ASCII, say)
    if joined is None:
        joined = "\n".join(search_text(plain) if (plain := plain_text(text)) else "" for text in texts)
    return joined


def _match_line(
    ruleset: Ruleset | MatchCore, line: str, number: int, explain: bool, closed: bool | None
) -> dict[str, Any]:
    try:
        data = _decode(line)
    except json.JSONDecodeError as exc:
        return {"id": number, "matches": [], "error": f"invalid JSON: {exc.msg} (column {exc.colno})"}
    if not isinstance(data, dict):
        return {"id": number, "matches": [], "error": "not a JSON object"}
    item_id = data.get("id")
    item_id = number if item_id is None else item_id
    title, summary, content = data.get("title"), data.get("summary"), data.get("content")
    # A JSON decoder's strings are exactly `str`: one set of types says that all are text or null.
    if (
        not {type(title), type(summary), type(content), type(data.get("source")), type(data.get("lang"))}
        <= _TEXT_TYPES
    ):
        bad = [k for k in (*_TEXT_FIELDS, "source", "lang") if not isinstance(data.get(k, ""), str | None)]
        return {"id": item_id, "matches": [], "error": f"not a string: {', '.join(bad)}"}
    if closed:
        return {"id": item_id, "matches": []}
    texts = (title or "", summary or "", content or "")
    if not explain:
        core = ruleset if isinstance(ruleset, MatchCore) else ruleset.core
        search = _search_texts(texts)
        # A line the block pass found a key in (`closed` False) is not asked again: the quick gate only
        # spares the term pass of an item it closes, and `firing_rules_gated` answers [] for those too.
        if closed is None and not core.gate_may_open(search):
            return {"id": item_id, "matches": []}  # most items: no plain texts, no match to build
        # The gate read from the term pass (no gate pass of its own): most items that get here open it.
        rules = core.firing_rules_gated(tuple(map(plain_text, texts)), search, data.get("source"))
        return {
            "id": item_id,
            "matches": [{"rule": r.id, "category": r.category, "severity": r.severity} for r in rules],
        }
    assert not isinstance(ruleset, MatchCore)  # `match_jsonl` loads the whole pack for `--explain`
    fields = dict(zip(_TEXT_FIELDS, map(plain_text, texts), strict=True))
    matches = ruleset.match_fields(fields, source=data.get("source"), lang=data.get("lang"))
    records = [
        {"rule": m.rule, "category": m.category, "severity": m.severity.label, "terms": list(m.terms)}
        for m in matches
    ]
    return {"id": item_id, "matches": records, "why_not": ruleset.why_not(fields, source=data.get("source"))}
