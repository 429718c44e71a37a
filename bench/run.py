"""Run every benchmark in turn; each prints its figures and its ratio against a same-run baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = [
    "bench_parse.py",
    "bench_yaml.py",
    "bench_matcher.py",
    "bench_match_cli.py",
    "bench_store.py",
    "bench_redis_memory.py",
    "bench_pipeline.py",
    "bench_once.py",
    "bench_delivery.py",
    "bench_memory.py",
    "bench_latency.py",
]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = 0
    for name in BENCHES:
        print(f"\n=== {name}", flush=True)
        failed += subprocess.call([sys.executable, str(here / name)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
