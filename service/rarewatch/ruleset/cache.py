"""A cache of compiled rule packs on disk, so that `rarewatch match` does not parse and compile the same
rule files on every start.

An entry is keyed by a hash of everything the compiled pack depends on: the name and content of every
rule file, the source files of the rarewatch package by path, size and modification time (a changed
compiler must not reuse an old pack, even without a version bump), the versions of Python and of the
libraries whose objects the pack holds, and the entry format. An entry is used only when its header
names the same key and its payload has the recorded SHA-256; anything else (a missing, truncated,
corrupt, foreign or stale file, a file another user could have written) is ignored and the pack is
compiled from the files, as without a cache. The cache never decides what matches: a hit is the pickled
result of compiling the very same inputs.

Each key has two entries: the whole pack (`Ruleset`), and its match core (`core.MatchCore`: what
`rarewatch match` needs, which unpickles without importing pydantic or the rule schema). Both are
written together, under the same key, each with its own checksum, and each is checked on its own.

The directory is `$RAREWATCH_CACHE_DIR` when set, else the user cache directory (platformdirs).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import re
import stat
import sys
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import platformdirs

import rarewatch
from rarewatch.ruleset.core import MatchCore
from rarewatch.ruleset.files import read_rule_files

if TYPE_CHECKING:  # imported when a whole pack is read: it needs pydantic, the core does not
    from rarewatch.ruleset.matcher import Ruleset

log = logging.getLogger(__name__)

FORMAT = 2
_MAGIC = b"rarewatch compiled rule pack\n"
_CORE_MAGIC = b"rarewatch match core\n"
_KEEP = 8  # entries kept per directory: a few packs (bundled, a test pack, a draft) stay warm
_T = TypeVar("_T")
_LIBRARIES = ("pyahocorasick", "opencc", "pydantic", "pydantic-core")


def default_cache_dir() -> Path:
    """`$RAREWATCH_CACHE_DIR`, else the user cache directory of rarewatch."""
    configured = os.environ.get("RAREWATCH_CACHE_DIR")
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("rarewatch"))


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A hash of the rarewatch package's Python source files and the versions the pickled pack depends
    on. A source file counts by its path, size and modification time (in nanoseconds), as Python's own
    bytecode cache judges a source changed (by its seconds): an edit, a checkout or a reinstall changes
    them, and reading and hashing every file was most of a warm start's key (~10 ms)."""
    digest = hashlib.sha256(f"format {FORMAT}\n{sys.version}\n{rarewatch.__version__}\n".encode())
    for name in _LIBRARIES:
        digest.update(f"{name} {_version(name)}\n".encode())
    package = Path(rarewatch.__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        status = source.stat()
        digest.update(
            f"{source.relative_to(package).as_posix()}\0{status.st_size}\0{status.st_mtime_ns}\0".encode()
        )
    return digest.hexdigest()


def _version(distribution: str) -> str:
    """The installed version of `distribution`, or "-": read from the name of its `.dist-info` directory
    on `sys.path` ("pyahocorasick-2.1.0.dist-info"), else from `importlib.metadata` (which takes ~10 ms
    to import and reads every path entry's metadata: most of a warm start's key when it was asked)."""
    version = _dist_info_versions().get(_normalized(distribution))
    if version is not None:
        return version
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@lru_cache(maxsize=1)
def _dist_info_versions() -> dict[str, str]:
    """Normalised distribution name -> version, from the `.dist-info` directories on `sys.path` (the
    first entry that has one wins, as for imports)."""
    versions: dict[str, str] = {}
    for entry in sys.path:
        with contextlib.suppress(OSError):
            for found in os.listdir(entry or "."):
                if found.endswith(".dist-info"):
                    name, _, version = found[: -len(".dist-info")].partition("-")
                    if version:
                        versions.setdefault(_normalized(name), version)
    return versions


def _normalized(name: str) -> str:
    """A distribution's name as packaging compares them (PEP 503): case and runs of "-", "_", "." folded."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cache_key(files: Sequence[tuple[str, str]]) -> str:
    """The key of a pack compiled from `files`: (name as given, text) pairs, in load order."""
    digest = hashlib.sha256(_code_fingerprint().encode())
    for name, text in files:
        encoded = text.encode()
        digest.update(f"\n{name}\0{len(encoded)}\0".encode())
        digest.update(encoded)
    return digest.hexdigest()


def load_core(paths: Sequence[Path], cache: RulesetCache) -> MatchCore:
    """The match core of the rules under `paths`: from `cache` when it holds one for the same files and
    code, else the whole pack is loaded and compiled (and cached) as `load_ruleset` does, and its core
    returned. Raises `RuleError` as `load_ruleset` does (a file that cannot be read; on a miss, any
    problem in the rules). Imports neither pydantic nor the rule schema on a hit."""
    files = read_rule_files(paths)
    key = cache_key(files)
    core = cache.get_core(key)
    if core is not None:
        return core
    from rarewatch.ruleset.loader import compile_files

    ruleset = cache.get(key) or compile_files(files, paths)
    cache.put(key, ruleset)  # the core's entry was missing or unusable: write it (and the pack's)
    return ruleset.core


class RulesetCache:
    """Compiled packs in one directory, one file per key. `hits` and `misses` count lookups."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        """The file of the whole pack's entry with this key."""
        return self.directory / f"ruleset-{key[:40]}.pickle"

    def core_path(self, key: str) -> Path:
        """The file of the match core's entry with this key."""
        return self.directory / f"core-{key[:40]}.pickle"

    def get(self, key: str) -> Ruleset | None:
        """The pack stored under `key`, or None when there is no valid entry (never an error)."""
        from rarewatch.ruleset.matcher import Ruleset

        found = self._read(self.path(key), key, _MAGIC)
        return self._counted(self.path(key), found if isinstance(found, Ruleset) else None)

    def get_core(self, key: str) -> MatchCore | None:
        """The match core stored under `key`, or None when there is no valid entry (never an error).
        Imports neither pydantic nor the rule schema (unless the entry is not a core's)."""
        found = self._read(self.core_path(key), key, _CORE_MAGIC)
        return self._counted(self.core_path(key), found if isinstance(found, MatchCore) else None)

    def put(self, key: str, ruleset: Ruleset) -> None:
        """Store `ruleset` and its match core under `key`, each atomically; a cache that cannot be
        written is only logged."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write(self.path(key), key, _MAGIC, ruleset)
            self._write(self.core_path(key), key, _CORE_MAGIC, ruleset.core)
            self._prune(keep=(self.path(key), self.core_path(key)))
        except OSError as exc:
            log.info("rule cache not written to %s: %s", self.directory, exc)

    def _counted(self, path: Path, found: _T | None) -> _T | None:
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(path)  # recently used: pruning keeps it
        return found

    def _write(self, path: Path, key: str, magic: bytes, value: object) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        header = f"{FORMAT} {key} {hashlib.sha256(payload).hexdigest()}\n".encode()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".ruleset-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(magic + header + payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self, path: Path, key: str, magic: bytes) -> object | None:
        try:
            with path.open("rb") as infile:
                info = os.fstat(infile.fileno())
                if not _trusted(info):
                    log.info("rule cache %s ignored: not owned by this user, or writable by others", path)
                    return None
                blob = infile.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.info("rule cache %s ignored: %s", path, exc)
            return None
        payload = _payload(blob, key, magic)
        if payload is None:
            log.info("rule cache %s ignored: damaged or stale", path)
            return None
        try:
            found: object = pickle.loads(payload)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as exc:
            # The checksum matched, so this is an entry of another build that hashed the same: recompile.
            log.info("rule cache %s ignored: %s", path, exc)
            return None
        return found

    def _prune(self, keep: tuple[Path, ...]) -> None:
        """Remove all but the `_KEEP` most recently used entries of each kind (and never `keep`)."""
        for pattern in ("ruleset-*.pickle", "core-*.pickle"):
            entries = sorted(self.directory.glob(pattern), key=_mtime, reverse=True)
            for old in entries[_KEEP:]:
                if old not in keep:
                    old.unlink(missing_ok=True)


def _payload(blob: bytes, key: str, magic: bytes) -> bytes | None:
    """The pickled value of an entry whose magic, format, key and checksum are right; else None."""
    if not blob.startswith(magic):
        return None
    end = blob.find(b"\n", len(magic))
    if end < 0:
        return None
    fields = blob[len(magic) : end].split(b" ")
    payload = blob[end + 1 :]
    if len(fields) != 3 or fields[0] != str(FORMAT).encode() or fields[1] != key.encode():
        return None
    if hashlib.sha256(payload).hexdigest().encode() != fields[2]:
        return None
    return payload


def _trusted(info: os.stat_result) -> bool:
    """A regular file of this user that nobody else may write: unpickling runs what the file says."""
    if not stat.S_ISREG(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    return not hasattr(os, "getuid") or info.st_uid == os.getuid()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
