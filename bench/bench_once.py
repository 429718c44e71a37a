"""Cold `rarewatch once` as a whole process: items/s over a loopback feed farm, start-up included.

    python bench/bench_once.py [--feeds 1000] [--items 50] [--runs 3] [--jobs N] [--other-python PATH]

A feed farm (the one of `bench_pipeline.py`: one aiohttp server in its own process on 127.0.0.1, RSS 2.0
feeds of `--items` items, about 5% naming a watched material) and a YAML configuration of `--feeds` feed
sources (article reading off, one JSON-lines destination). Each run is a fresh process against an empty
SQLite store and an empty output directory, so every item is new; the compiled rule pack comes from the
rule cache (warmed by one run that is not counted), as it does for a user's second `once`.

Timed, each as a whole process from start to exit (wall seconds; CPU = user + sys of the child):

- `python -m rarewatch once --config ...` with this interpreter (with `--jobs N`: `once --jobs N`, items
  parsed and matched in N worker processes);
- with `--other-python`, the same command under another interpreter (e.g. another work tree's venv),
  run in turn with it (A B A B ...), so that both see the same machine;
- the baseline, in the same run: a sequential loop in one process that fetches each feed with urllib,
  parses it with feedparser and searches title and summary of every entry with one regex of material
  names (no store, no rules, no delivery).

Each figure is the median of `--runs` runs. Nothing here is a test: the figures are printed, not judged.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import MATERIALS, free_port, serve

BASELINE = r"""
import re, sys, urllib.request
import feedparser
port, feeds = int(sys.argv[1]), int(sys.argv[2])
pattern = re.compile(sys.argv[3], re.IGNORECASE)
items = hits = 0
for n in range(feeds):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/f{n}.xml") as response:
        parsed = feedparser.parse(response.read())
    for entry in parsed.entries:
        items += 1
        hits += bool(pattern.search(entry.get("title", "") + " " + entry.get("summary", "")))
print(items, hits)
"""


def write_config(path: Path, port: int, feeds: int) -> None:
    """A YAML configuration (block style, as a user writes it) of `feeds` farm feeds."""
    lines = [f"store: sqlite:///{path.parent / 'run' / 'rarewatch.db'}", "sources:"]
    for n in range(feeds):
        lines += [
            f"  - name: f{n}",
            "    type: feed",
            f"    url: http://127.0.0.1:{port}/f{n}.xml",
            "    enrich: false",
        ]
    lines += ["destinations:", "  - name: archive", "    type: jsonl", "    path: run/alerts.jsonl"]
    lines += ["routes:", "  - to: [archive]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_once(python: str, config: Path, env: dict[str, str], jobs: int = 0) -> tuple[float, float]:
    """(wall, CPU) seconds of one `once` process on an empty store (`jobs` item workers, 0: none)."""
    shutil.rmtree(config.parent / "run", ignore_errors=True)
    (config.parent / "run").mkdir()
    command = [python, "-m", "rarewatch", "once", "--config", str(config)]
    return timed(command + (["--jobs", str(jobs)] if jobs else []), env, config.parent)


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process, its output thrown away; it must exit 0."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime


def median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=0, help="`once --jobs N` (default: no item workers)")
    parser.add_argument("--other-python", help="also time `once` under this interpreter, in turn")
    args = parser.parse_args()
    port = free_port()
    farm = multiprocessing.Process(target=serve, args=(port, args.feeds, args.items), daemon=True)
    farm.start()
    time.sleep(1.5)
    pythons = {"this": sys.executable}
    if args.other_python:
        pythons["other"] = args.other_python
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in [*pythons, "baseline"]}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = workdir / "rarewatch.yaml"
            write_config(config, port, args.feeds)
            env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
            env["RAREWATCH_CACHE_DIR"] = str(workdir / "cache")
            for python in pythons.values():
                run_once(python, config, env, args.jobs)  # warms the rule cache and the OS's file cache
            pattern = "|".join(sorted(MATERIALS, key=len, reverse=True))
            baseline = [sys.executable, "-c", BASELINE, str(port), str(args.feeds), pattern]
            for _ in range(args.runs):
                for name, python in pythons.items():
                    results[name].append(run_once(python, config, env, args.jobs))
                results["baseline"].append(timed(baseline, env, workdir))
    finally:
        farm.terminate()
    n = args.feeds * args.items
    jobs = f", --jobs {args.jobs}" if args.jobs else ""
    size = f"{args.feeds:,} feeds x {args.items} items = {n:,} items"
    print(f"cold `rarewatch once`{jobs}, {size}, whole process")
    print(f"(median of {args.runs} runs each, run in turn): wall, items/s with start-up, CPU")
    labels = {"this": "rarewatch once", "other": f"rarewatch once ({args.other_python})"}
    labels["baseline"] = "urllib + feedparser + regex loop (baseline)"
    base_wall = median(results["baseline"])[0]
    for name, runs in results.items():
        wall, cpu = median(runs)
        ratio = f"  {base_wall / wall:4.1f}x the baseline" if name != "baseline" else ""
        print(f"  {labels[name]:<44} {wall:6.2f} s {n / wall:>8,.0f} items/s  CPU {cpu:6.2f} s{ratio}")


if __name__ == "__main__":
    main()
