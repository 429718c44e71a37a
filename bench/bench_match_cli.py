"""`rarewatch match` from the command line: whole-process items/s over a generated JSON Lines file.

    python bench/bench_match_cli.py [--lines 200000] [--runs 3] [--seed 7] [--jobs 2]

Generates `--lines` JSON Lines items (deterministic; the corpus of `bench_matcher`: English and Chinese
news-like items, about 5% real matches, near misses and traps) into a temporary file, then times whole
processes, start-up, YAML, rule compilation and JSON I/O included, output to /dev/null:

- `rarewatch match` with the bundled rules and a cold rule cache (an empty cache directory each run);
- `rarewatch match` with a warm rule cache (the compiled pack read back from the cache directory), in
  one process and with `--jobs N` worker processes;
- the baseline, in the same run: a plain regex loop over the same file in one process (`json.loads` per
  line, one alternation of the corpus's material names searched in title, summary and content, a JSON
  line out per line in), which knows nothing of rules, word forms, negation, `near` or scopes. (An
  alternation of every term of the pack is no yardstick: Python's `re` takes minutes over this file.)

Each figure is the median of `--runs` runs, wall time and CPU time (user + sys, the process and its
workers): on a shared machine CPU time is the steadier one. The processes write bytecode whatever the
calling shell says, as an installed service has it. Nothing here is a test: the figures are printed,
not judged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_matcher import EN_MATERIALS, ZH_MATERIALS, corpus

BASELINE = r"""
import json, re, sys
pattern = re.compile(sys.argv[2], re.IGNORECASE)
with open(sys.argv[1], encoding="utf-8") as infile:
    for number, line in enumerate(infile, start=1):
        data = json.loads(line)
        text = " ".join(data.get(k) or "" for k in ("title", "summary", "content"))
        hit = pattern.search(text)
        print(json.dumps({"id": data.get("id", number), "matches": [hit.group(0)] if hit else []},
                         ensure_ascii=False))
"""


def write_input(path: Path, lines: int, seed: int) -> None:
    """`lines` JSON Lines items from the matcher benchmark's corpus."""
    items = corpus(lines, random.Random(seed))
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            record = {"id": item.id, "title": item.title, "summary": item.summary, "link": item.link}
            if item.content:
                record["content"] = item.content
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def material_pattern() -> str:
    """The baseline's regex: every material name the corpus uses, English and Chinese, longest first."""
    names = sorted({*EN_MATERIALS, *ZH_MATERIALS}, key=len, reverse=True)
    return "|".join(re.escape(n) for n in names)


def timed(
    command: list[str], env: dict[str, str], runs: int, before: list[str] | None = None
) -> tuple[float, float]:
    """The median wall and CPU seconds of `runs` whole-process runs of `command`, output to /dev/null."""
    seconds, cpu = [], []
    for _ in range(runs):
        if before is not None:
            subprocess.run(before, check=True)
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
        seconds.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
    return statistics.median(seconds), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the `--jobs` row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        cache = Path(tmp) / "cache"
        write_input(data, args.lines, args.seed)
        # bytecode written, as an installed service has it (see bench_once.py)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"XDG_CACHE_HOME": str(cache), "RAREWATCH_CACHE_DIR": str(cache / "rarewatch")}
        rarewatch = [sys.executable, "-m", "rarewatch", "match", str(data)]
        clear = [sys.executable, "-c", f"import shutil; shutil.rmtree({str(cache)!r}, ignore_errors=True)"]
        cold = timed(rarewatch, env, args.runs, before=clear)
        warm = timed(rarewatch, env, args.runs)
        jobs = timed([*rarewatch[:-1], "--jobs", str(args.jobs), str(data)], env, args.runs)
        base = timed([sys.executable, "-c", BASELINE, str(data), material_pattern()], env, args.runs)
    n = args.lines
    print(f"{n:,} JSON lines, bundled rules, whole process (median of {args.runs} runs): wall, CPU")
    rows = [
        ("rarewatch match, cold rule cache", cold),
        ("rarewatch match, warm rule cache", warm),
        (f"  the same, --jobs {args.jobs}", jobs),
        ("plain regex loop (baseline)", base),
    ]
    for label, (wall, cpu) in rows:
        print(f"  {label:<34} {wall:6.2f} s {n / wall:>9,.0f} items/s   CPU {cpu:6.2f} s")
    print(f"  rarewatch (warm) / baseline: wall {warm[0] / base[0]:5.2f}, CPU {warm[1] / base[1]:5.2f}")
    ratio = f"wall {jobs[0] / base[0]:5.2f}, CPU {jobs[1] / base[1]:5.2f}"
    print(f"  --jobs {args.jobs} / baseline:          {ratio}")


if __name__ == "__main__":
    main()
