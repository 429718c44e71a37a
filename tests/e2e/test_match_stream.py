"""`rarewatch match` as a filter in a pipe: output is batched, yet each result reaches the reader before
rarewatch waits for more input; the compiled pack is cached between runs."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

from tests.support import TEST_RULES


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    return {**env, "RAREWATCH_CACHE_DIR": str(cache)}


def _rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(TEST_RULES, encoding="utf-8")
    return path


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s while the input pipe stays open"
    return proc.stdout.readline()


def test_each_result_is_flushed_before_waiting_for_input(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rarewatch", "match", "--rules", str(_rules(tmp_path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_env(tmp_path / "cache"),
    )
    assert proc.stdin is not None
    try:
        for i in range(3):
            proc.stdin.write(json.dumps({"id": f"x{i}", "title": "nothing here"}).encode() + b"\n")
            proc.stdin.flush()
            assert json.loads(_read_line(proc, timeout=30)) == {"id": f"x{i}", "matches": []}
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0


def test_the_compiled_pack_is_cached_between_runs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "rarewatch", "match", "--rules", str(_rules(tmp_path))]
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            command, input=b'{"id": 1, "title": "x"}\n', capture_output=True, env=_env(cache)
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == b'{"id":1,"matches":[]}\n'
    assert len(list(cache.glob("ruleset-*.pickle"))) == 1
