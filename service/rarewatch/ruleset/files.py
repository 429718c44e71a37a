"""Finding and reading rule files: what a rule pack's cache key is made of, without the schema (so that
`rarewatch match` can find its cached match core without importing pydantic)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rarewatch.errors import RuleError

_SUFFIXES = (".yaml", ".yml")


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """The rule files named by `paths` (files as given, directories searched), each once, in order.

    A directory's hidden files and folders are skipped: a Kubernetes ConfigMap volume keeps its files in
    a timestamped `..<time>` folder behind links, and errors and `/api/v1/rules` should name the links
    (`rules/watch.yaml`), which stay the same across updates; editors' `.#x.yaml` files are not rules.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = (
                p for p in path.rglob("*") if p.suffix in _SUFFIXES and _visible(p, path) and p.is_file()
            )
            files.extend(sorted(found, key=lambda p: p.relative_to(path).as_posix()))
        elif path.is_file():
            files.append(path)
        else:
            raise RuleError("no such rule file or directory", file=str(path))
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def _visible(file: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in file.relative_to(root).parts)


def read_rule_files(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """(name, text) of every rule file under `paths`, as `load_ruleset` reads them."""
    return [(str(file), _read(file)) for file in rule_files(paths)]


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"cannot read rule file: {exc.strerror}", file=str(file)) from None
    except UnicodeDecodeError:
        raise RuleError("rule file is not UTF-8 text", file=str(file)) from None
