"""What the bad-input table test needs: a case type, a small valid setup to spoil, and the real CLI.

Each case writes files into a fresh folder (a valid rule file and whatever configuration the case gives),
runs `python -m rarewatch ARGS` there with a clean environment plus the case's variables, and the test
checks the outcome: exit code 2, no traceback, the message's key phrase, and where the mistake is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import TEST_RULES

# A feed URL nothing listens on: the cases fail before any fetch, so it is never requested.
FEED = "http://127.0.0.1:9/feed.xml"
SOURCE = f"  - {{name: wire, type: feed, url: '{FEED}'}}\n"
WEBHOOK = "  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/hook'"


@dataclass(frozen=True)
class Case:
    """One bad input. `where` is the `file:line` or variable the message must name ({dir}: the folder)."""

    name: str
    args: tuple[str, ...]
    phrase: str
    where: str
    config: str | None = None  # written to rarewatch.yaml
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)  # more files, relative to the folder
    absent: tuple[str, ...] = ()  # text the output must not contain (credentials)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def config(body: str, *, store: str = "sqlite:///state.db", rules: str = "[rules/]") -> str:
    """A configuration with the test rules and a local store, plus `body` (YAML, top-level keys)."""
    return f"store: {store}\nrules: {rules}\n{body}"


def prepare(case: Case, folder: Path) -> None:
    """Write the case's files into `folder`: the valid test rules, its configuration, its extra files."""
    (folder / "rules").mkdir()
    (folder / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    if case.config is not None:
        (folder / "rarewatch.yaml").write_text(case.config, encoding="utf-8")
    for name, text in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")


def run_cli(args: tuple[str, ...], folder: Path, env: dict[str, str], limit: float = 60) -> Outcome:
    """`python -m rarewatch ARGS` in `folder`, with no RAREWATCH_ variables but the given ones."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    proc = subprocess.run(
        [sys.executable, "-m", "rarewatch", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=limit,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)
