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

With `--steady`, the steady cycle instead (issue 13: 1,000 unchanged feeds, at most 1 s of wall time and
0.3 s of CPU beyond start-up): one cold `once` fills the store, a second one settles it (every feed then
answers 304 Not Modified to its validators), then each run times `once` on that store and, right after it,
`once` with a configuration of no sources (the process's start-up, configuration and store opening
included); the figure beyond start-up is the median of the run-by-run differences.

The processes write bytecode whatever the calling shell says (`PYTHONDONTWRITEBYTECODE` is dropped from
their environment), as an installed service has it. Each figure is the median of `--runs` runs. Nothing
here is a test: the figures are printed, not judged.
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
    command = once_command(python, config)
    return timed(command + (["--jobs", str(jobs)] if jobs else []), env, config.parent)


def once_command(python: str, config: Path) -> list[str]:
    """`rarewatch once` on `config` under `python`."""
    return [python, "-m", "rarewatch", "once", "--config", str(config)]


def write_empty_config(path: Path) -> None:
    """The same configuration with no sources: what `once` costs before its first poll."""
    lines = ["store: sqlite:///run/empty.db", "sources: []", "destinations:", "  - name: archive"]
    lines += ["    type: jsonl", "    path: run/empty-alerts.jsonl", "routes:", "  - to: [archive]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def steady_runs(
    python: str, config: Path, empty: Path, env: dict[str, str], runs: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(steady `once`, start-up) (wall, CPU) pairs, `runs` of each, alternated, on a filled, settled store."""
    run_once(python, config, env)  # fills the store
    timed(once_command(python, config), env, config.parent)  # settles it: every feed now has its validators
    steady, startup = [], []
    for _ in range(runs):
        steady.append(timed(once_command(python, config), env, config.parent))
        startup.append(timed(once_command(python, empty), env, config.parent))
    return steady, startup


def report_steady(label: str, steady: list[tuple[float, float]], startup: list[tuple[float, float]]) -> None:
    wall, cpu = median(steady)
    base_wall, base_cpu = median(startup)
    beyond_wall = statistics.median(s[0] - b[0] for s, b in zip(steady, startup, strict=True))
    beyond_cpu = statistics.median(s[1] - b[1] for s, b in zip(steady, startup, strict=True))
    print(f"  {label:<44} {wall:6.2f} s  CPU {cpu:5.2f} s", end="")
    print(f"   start-up {base_wall:5.2f} s, CPU {base_cpu:5.2f} s")
    print(f"  {'':<44} beyond start-up: {beyond_wall:5.2f} s, CPU {beyond_cpu:5.2f} s")


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
    parser.add_argument("--steady", action="store_true", help="time the steady cycle instead (see above)")
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
            # Bytecode is written (PYTHONDONTWRITEBYTECODE dropped): an installed service has it, and
            # without it every process compiles rarewatch's modules again (~0.13 s of CPU a process here,
            # more of it in a steady `once` than in start-up alone, since the cycle imports more).
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith("RAREWATCH_") and k != "PYTHONDONTWRITEBYTECODE"
            }
            env["RAREWATCH_CACHE_DIR"] = str(workdir / "cache")
            if args.steady:
                empty = workdir / "empty.yaml"
                write_empty_config(empty)
                print(f"steady `rarewatch once`, {args.feeds:,} unchanged feeds, whole process")
                print(f"(median of {args.runs} runs each): wall, CPU; start-up = `once` with no sources")
                for name, python in pythons.items():
                    label = "rarewatch once" if name == "this" else f"rarewatch once ({python})"
                    report_steady(label, *steady_runs(python, config, empty, env, args.runs))
                return
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
