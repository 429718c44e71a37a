"""`rarewatch match` of this tree against another tree's, byte for byte: a check to run before a change
to `match` is committed (it times nothing).

    python bench/check_match_output.py --other /path/to/other/.venv/bin/rarewatch [--lines 200000]

Inputs: `bench_match_cli.py`'s generated file (`--lines` lines), `tests/data/labelled.jsonl`, and a file of
odd lines (ids of every JSON type, integers beyond 64 bits, NaN and infinities, escapes, lone
surrogates, tags and entities, blank, whitespace-only and invalid lines, values that are not objects,
text fields that are not strings). Each is matched with and without `--explain`, in one process and with
`--jobs 2`, from the file and from a pipe, by both commands (each with a rule cache of its own); any
difference in standard output, standard error or exit status is printed and the exit status is 1.
`--explain` over the generated file reads its first `--explain-lines` lines (the whole pack's matching
with its evidence is slow over 200,000). `--keep DIR` stores the other command's results (keyed by input
size and flags) for the next run, while its tree is unchanged.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_match_cli import write_input

Result = tuple[bytes, bytes, int]  # standard output, standard error, exit status
ROOT = Path(__file__).resolve().parent.parent
MATERIAL = "China restricts exports of gallium and germanium"
ODD_LINES = [
    '{"id": "s1", "title": "' + MATERIAL + '"}',
    '{"id": 42, "title": "' + MATERIAL + '"}',
    '{"id": -7, "title": "nothing here"}',
    '{"id": 123456789012345678901234567890, "title": "' + MATERIAL + '"}',
    '{"id": -123456789012345678901234567890, "title": "plain"}',
    '{"id": 18446744073709551616, "title": "plain"}',
    '{"id": 9223372036854775807, "title": "plain"}',
    '{"id": 1.5, "title": "plain"}',
    '{"id": 1e400, "title": "plain"}',
    '{"id": 2.50, "title": "' + MATERIAL + '"}',
    '{"id": NaN, "title": "plain"}',
    '{"id": Infinity, "title": "' + MATERIAL + '"}',
    '{"id": -Infinity, "title": "plain"}',
    '{"id": true, "title": "plain"}',
    '{"id": false, "title": "' + MATERIAL + '"}',
    '{"id": null, "title": "' + MATERIAL + '"}',
    '{"id": [1, "a"], "title": "plain"}',
    '{"id": {"k": 1}, "title": "plain"}',
    '{"id": "tab\\there \\"quoted\\" \\\\ back", "title": "plain"}',
    '{"id": "\\ud800", "title": "plain"}',
    '{"id": "\\ud83d\\ude00 emoji", "title": "' + MATERIAL + '"}',
    '{"id": "é \\u00e9 \\u2028 \\u0000 \\u001f \\u007f", "title": "plain"}',
    '{"id": "raw \u007f \u2028 \u00a0 \U0001f600 é 中", "title": "plain"}',
    '{"id": "raw \u007f \u2028 \u00a0 \U0001f600 é 中 2", "title": "' + MATERIAL + '"}',
    '{"id": "z1", "title": "China restricts exports of \\u0067allium"}',
    '{"id": "z2", "title": "China <b>restricts</b> exports of gallium &amp; germanium"}',
    '{"id": "z3", "title": "中国对镓、锗相关物项实施出口管制", "summary": "商务部 海关总署 公告"}',
    '{"id": "z4", "title": "中國對鎵、鍺相關物項實施出口管制"}',
    '{"id": "z5", "title": "中国出口管制 xītǔ 稀土", "lang": "zh"}',
    '{"id": "z6", "title": "ＣＨＩＮＡ restricts exports of ｇａｌｌｉｕｍ"}',
    '{"id": "z7", "title": "China restricts exports of gallium\\ud800"}',
    '{"id": "z8", "title": "İstanbul ﬁrm: China restricts exports of gallium"}',
    '{"id": "z9", "title": null, "summary": "' + MATERIAL + '", "content": null, "source": null}',
    '{"id": "z10", "title": 5, "summary": "' + MATERIAL + '"}',
    '{"id": "z11", "title": "plain", "source": 3}',
    '{"id": "z12", "title": "plain", "lang": ["en"]}',
    '{"id": "z13", "title": "' + MATERIAL + '", "source": "reuters", "lang": "en"}',
    '{"id": "z14", "title": "' + MATERIAL + '", "id": "dup"}',
    '{"title": "no id at all"}',
    '{"title": "' + MATERIAL + ', no id"}',
    "",
    "   ",
    "\t",
    "not json at all",
    '{"id": "trunc", "title": "cut',
    "[1, 2, 3]",
    '"a string"',
    "42",
    "null",
    "{}",
    '  {"id": "padded", "title": "' + MATERIAL + '"}  ',
    '{"id":"compact","title":"' + MATERIAL + '"}',
    '{"id": "x\u00a0nbsp\u200bzwsp", "title": "China\u00a0restricts exports of gal\u00adlium"}',
    "",
    '{"id": "after blank", "title": "plain"}',
    "",
    "",
]


def odd_file(path: Path) -> None:
    """The odd lines, a blank line at the end (trailing blank lines are not reported)."""
    path.write_text("\n".join(ODD_LINES) + "\n", encoding="utf-8")


def head_file(source: Path, path: Path, lines: int) -> None:
    """The first `lines` lines of `source`."""
    with source.open(encoding="utf-8") as infile, path.open("w", encoding="utf-8") as out:
        for _, line in zip(range(lines), infile, strict=False):
            out.write(line)


def run(command: list[str], data: Path, pipe: bool, cache: Path) -> Result:
    """Standard output, standard error and exit status of `command` over `data` (a file argument, or
    standard input from a pipe)."""
    env = {"RAREWATCH_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    if pipe:
        with subprocess.Popen(["cat", str(data)], stdout=subprocess.PIPE) as cat:
            done = subprocess.run(command, stdin=cat.stdout, capture_output=True, env=env, check=False)
    else:
        done = subprocess.run([*command, str(data)], capture_output=True, env=env, check=False)
    return done.stdout, done.stderr, done.returncode


def kept(keep: Path | None, label: str, result: Callable[[], Result]) -> Result:
    """`result()`, stored under `keep` by `label` (with the input's size), or read back from there."""
    if keep is None:
        return result()
    path = keep / (label.replace(" ", "_").replace("/", "_") + ".pickle")
    if path.exists():
        loaded: Result = pickle.loads(path.read_bytes())
        return loaded
    keep.mkdir(parents=True, exist_ok=True)
    done = result()
    path.write_bytes(pickle.dumps(done))
    return done


def first_difference(a: bytes, b: bytes) -> str:
    """Where two outputs first differ, as line number and both lines."""
    for number, (x, y) in enumerate(zip(a.split(b"\n"), b.split(b"\n"), strict=False), start=1):
        if x != y:
            return f"line {number}: {x[:200]!r} vs {y[:200]!r}"
    return f"one is a prefix of the other ({len(a)} vs {len(b)} bytes)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, help="the other tree's rarewatch command")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--explain-lines", type=int, default=3_000)
    parser.add_argument(
        "--keep", type=Path, help="keep the other command's results here and reuse them (its tree unchanged)"
    )
    args = parser.parse_args()
    ours = [str(Path(sys.executable).with_name("rarewatch")), "match"]
    theirs = [args.other, "match"]
    failures = checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench, head, odd = work / "bench.jsonl", work / "head.jsonl", work / "odd.jsonl"
        write_input(bench, args.lines, 7)
        head_file(bench, head, args.explain_lines)
        odd_file(odd)
        labelled = ROOT / "tests" / "data" / "labelled.jsonl"
        for data, explain_data in ((bench, head), (labelled, labelled), (odd, odd)):
            for explain in (False, True):
                for jobs in ("1", "2"):
                    for pipe in (False, True):
                        flags = ["--jobs", jobs, *(["--explain"] if explain else [])]
                        source = explain_data if explain else data
                        label = f"{source.name} {' '.join(flags)} {'pipe' if pipe else 'file'}"
                        a = run([*ours, *flags], source, pipe, work / "cache-ours")
                        key = f"{label} {source.stat().st_size}"
                        other = [*theirs, *flags]
                        b = kept(args.keep, key, partial(run, other, source, pipe, work / "cache-theirs"))
                        checks += 1
                        if a != b:
                            failures += 1
                            where = first_difference(a[0], b[0]) if a[0] != b[0] else "stderr/status"
                            print(f"DIFFERENT {label}: {where}; stderr {a[1][-300:]!r} vs {b[1][-300:]!r}")
                        else:
                            print(f"same      {label}: {len(a[0]):,} bytes, status {a[2]}")
    print(json.dumps({"checks": checks, "different": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
