"""YAML loading: the libyaml fast path of `yamlpos.load_documents` against the ruamel path it replaces.

    python bench/bench_yaml.py [--sources 1000] [--rounds 3]

Loads the bundled rule files and a generated configuration with `--sources` feed sources, through the
fast path (libyaml composes, values built in Python with YAML 1.2 meanings) and, as the baseline in the
same run, through ruamel.yaml's round-trip loader (still used for anything the fast path is unsure of,
and for the error messages). Prints the best of `--rounds` rounds of each and the ratio.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator

from rarewatch import yamlpos
from rarewatch.paths import bundled_rules_dir


def config(sources: int) -> str:
    """A configuration with `sources` feed sources (parsed only, not validated)."""
    entries = "".join(
        f"  - name: source-{i}\n    feed:\n      url: https://news{i % 50}.example.org/feed/{i}.xml\n"
        f"      interval: 15m\n    tags: [news, en]\n"
        for i in range(sources)
    )
    return f"store: sqlite:///tmp/state.db\nsources:\n{entries}"


def best(load: Callable[[str], Iterator[yamlpos.YamlDocument]], texts: list[str], rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        for text in texts:
            for _doc in load(text):
                pass
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rules = [p.read_text(encoding="utf-8") for p in sorted(bundled_rules_dir().glob("*.yaml"))]
    cases = [("bundled rule files", rules), (f"config, {args.sources:,} sources", [config(args.sources)])]
    for label, texts in cases:
        fast = best(yamlpos.load_documents, texts, args.rounds)
        slow = best(yamlpos._slow_documents, texts, args.rounds)
        print(f"{label}:")
        print(f"  libyaml fast path   {fast * 1000:8.0f} ms")
        print(f"  ruamel (baseline)   {slow * 1000:8.0f} ms")
        print(f"  speed-up            {slow / fast:8.1f} x")


if __name__ == "__main__":
    main()
