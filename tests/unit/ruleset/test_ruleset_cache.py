"""The compiled-pack cache: used when nothing changed, ignored on any change, damage or doubt."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from rarewatch.models import Item
from rarewatch.ruleset import Ruleset, load_ruleset
from rarewatch.ruleset import cache as cache_module
from rarewatch.ruleset.cache import _KEEP, FORMAT, RulesetCache, cache_key, load_core
from rarewatch.ruleset.core import MatchCore
from rarewatch.ruleset.nodes import Regex
from rarewatch.ruleset.scanning import Scanner
from tests.unit.ruleset.conftest import RuleWriter, rule

_T = TypeVar("_T")

GALLIUM = rule("ga", "{all: [gallium, export ban]}")
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def fired(ruleset: Ruleset, title: str) -> list[str]:
    return [m.rule for m in ruleset.match(Item("i", "s", title, "https://example.org/", "", "", NOW))]


def entry(cache_dir: Path) -> Path:
    (path,) = cache_dir.glob("ruleset-*.pickle")
    return path


def core_entry(cache_dir: Path) -> Path:
    (path,) = cache_dir.glob("core-*.pickle")
    return path


def core_fired(core: MatchCore, title: str) -> list[str]:
    search = "\n".join((title.lower(), "", ""))
    if not core.gate_may_open(search):
        return []
    return [r.id for r in core.firing_rules_gated((title, "", ""), search)]


def test_an_unchanged_pack_is_read_back_from_the_cache(write_rules: RuleWriter, tmp_path: Path) -> None:
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    first = load_ruleset([path], cache)
    second = load_ruleset([path], cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert fired(second, "Gallium export ban announced") == ["ga"] == fired(first, "Gallium export ban")
    assert second.version == first.version
    assert second.origins == first.origins


def test_a_changed_rule_file_invalidates_the_cache(write_rules: RuleWriter, tmp_path: Path) -> None:
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    assert fired(load_ruleset([path], cache), "Gallium export ban") == ["ga"]
    write_rules(GALLIUM.replace("gallium", "germanium"))  # same file name, same size class
    changed = load_ruleset([path], cache)
    assert (cache.hits, cache.misses) == (0, 2)
    assert fired(changed, "Gallium export ban") == []
    assert fired(changed, "Germanium export ban") == ["ga"]


def test_a_renamed_rule_file_is_a_different_pack(write_rules: RuleWriter, tmp_path: Path) -> None:
    # Origins (file:line of rules and examples) name the file: a renamed file must not reuse them.
    cache = RulesetCache(tmp_path / "cache")
    load_ruleset([write_rules(GALLIUM, "a.yaml")], cache)
    renamed = load_ruleset([write_rules(GALLIUM, "b.yaml")], cache)
    assert cache.hits == 0
    assert renamed.origins["ga"].file.endswith("b.yaml")


# Damage any cache entry can suffer (each test adds its own kind's)
DAMAGED_BYTES = [
    pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="flipped-bit"),
    pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
    pytest.param(lambda b: b"", id="empty"),
]


@pytest.mark.parametrize(
    "damage",
    [
        *DAMAGED_BYTES,
        pytest.param(lambda b: b"\x80\x05garbage", id="garbage"),
        pytest.param(lambda b: b.replace(f"\n{FORMAT} ".encode(), b"\n9 ", 1), id="other-format"),
    ],
)
def test_a_damaged_cache_file_is_ignored_and_rewritten(
    write_rules: RuleWriter, tmp_path: Path, damage: object
) -> None:
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    load_ruleset([path], cache)
    stored = entry(tmp_path / "cache")
    stored.write_bytes(damage(stored.read_bytes()))  # type: ignore[operator]
    again = load_ruleset([path], cache)
    assert cache.hits == 0
    assert fired(again, "Gallium export ban") == ["ga"]
    load_ruleset([path], cache)  # the recompiled pack replaced the damaged entry
    assert cache.hits == 1


def test_an_entry_of_another_pack_under_this_name_is_ignored(write_rules: RuleWriter, tmp_path: Path) -> None:
    cache = RulesetCache(tmp_path / "cache")
    germanium = write_rules(GALLIUM.replace("gallium", "germanium"), "ge.yaml")
    load_ruleset([germanium], cache)
    gallium = write_rules(GALLIUM, "ga.yaml")
    key = cache_key([(str(gallium), gallium.read_text(encoding="utf-8"))])
    os.replace(entry(tmp_path / "cache"), cache.path(key))  # the germanium pack, filed as the gallium one
    loaded = load_ruleset([gallium], cache)
    assert cache.hits == 0
    assert fired(loaded, "Gallium export ban") == ["ga"]


def test_a_cache_file_others_may_write_is_ignored(write_rules: RuleWriter, tmp_path: Path) -> None:
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    load_ruleset([path], cache)
    entry(tmp_path / "cache").chmod(0o666)
    load_ruleset([path], cache)
    assert cache.hits == 0


def test_an_unwritable_cache_directory_only_costs_the_cache(write_rules: RuleWriter, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    cache = RulesetCache(blocker / "cache")
    path = write_rules(GALLIUM)
    assert fired(load_ruleset([path], cache), "Gallium export ban") == ["ga"]
    assert fired(load_ruleset([path], cache), "Gallium export ban") == ["ga"]
    assert (cache.hits, cache.misses) == (0, 2)


def test_old_entries_are_pruned(write_rules: RuleWriter, tmp_path: Path) -> None:
    cache = RulesetCache(tmp_path / "cache")
    for i in range(_KEEP + 3):
        load_ruleset([write_rules(rule(f"r{i}", "{all: [gallium]}"), f"r{i}.yaml")], cache)
    assert len(list((tmp_path / "cache").glob("ruleset-*.pickle"))) == _KEEP
    assert not list((tmp_path / "cache").glob(".ruleset-*"))  # no temporary file left behind


def test_without_a_cache_nothing_is_written(write_rules: RuleWriter, tmp_path: Path) -> None:
    load_ruleset([write_rules(GALLIUM)])
    assert not list(tmp_path.rglob("*.pickle"))


def test_the_match_core_is_read_back_without_the_rule_models(write_rules: RuleWriter, tmp_path: Path) -> None:
    # What `rarewatch match` loads: the core's own entry, which needs neither pydantic nor the schema.
    path = write_rules(GALLIUM)
    cache = tmp_path / "cache"
    load_ruleset([path], RulesetCache(cache))
    script = (
        "import sys; from pathlib import Path; from rarewatch.ruleset.cache import RulesetCache, load_core\n"
        f"c = RulesetCache(Path({str(cache)!r})); core = load_core([Path({str(path)!r})], c)\n"
        "s = 'gallium export ban\\n\\n'\n"
        "fired = [r.id for r in core.firing_rules_gated(('Gallium export ban', '', ''), s)]\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('pydantic', 'rarewatch.ruleset.schema')))\n"
        "print(c.hits, c.misses, fired, heavy)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.split("\n")[0] == "1 0 ['ga'] []"


def test_a_changed_rule_file_invalidates_the_match_core(write_rules: RuleWriter, tmp_path: Path) -> None:
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    assert core_fired(load_core([path], cache), "gallium export ban") == ["ga"]
    write_rules(GALLIUM.replace("gallium", "germanium"))
    changed = load_core([path], cache)
    assert cache.hits == 0
    assert core_fired(changed, "gallium export ban") == []
    assert core_fired(changed, "germanium export ban") == ["ga"]
    assert core_fired(load_core([path], cache), "germanium export ban") == ["ga"]
    assert cache.hits == 1


@pytest.mark.parametrize(
    "damage",
    [
        *DAMAGED_BYTES,
        pytest.param(lambda b: b.replace(b"match core", b"match kore", 1), id="other-magic"),
    ],
)
def test_a_damaged_match_core_is_ignored_and_rewritten(
    write_rules: RuleWriter, tmp_path: Path, damage: object
) -> None:
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    load_core([path], cache)
    stored = core_entry(tmp_path / "cache")
    stored.write_bytes(damage(stored.read_bytes()))  # type: ignore[operator]
    again = load_core([path], cache)
    assert core_fired(again, "gallium export ban") == ["ga"]
    assert (cache.hits, cache.misses) == (1, 3)  # the pack's entry served; the core's was rewritten
    load_core([path], cache)
    assert cache.hits == 2


def test_a_whole_pack_entry_is_no_match_core(write_rules: RuleWriter, tmp_path: Path) -> None:
    # Each entry is read as its own kind only: a pack's file under the core's name is ignored.
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    load_core([path], cache)
    os.replace(entry(tmp_path / "cache"), core_entry(tmp_path / "cache"))
    assert core_fired(load_core([path], cache), "gallium export ban") == ["ga"]
    assert cache.hits == 0


def test_the_match_core_brings_the_traditional_characters_without_opencc(
    write_rules: RuleWriter, tmp_path: Path
) -> None:
    # The characters t2s changes are pickled with the core: a warm start builds the same character class
    # without importing OpenCC, which a Traditional text still brings in to be converted; and builds it
    # only on the first text that needs it (a process that meets none compiles no class).
    path = write_rules(GALLIUM)
    cache = tmp_path / "cache"
    load_ruleset([path], RulesetCache(cache))
    script = (
        "import sys; from pathlib import Path; from rarewatch.ruleset.cache import RulesetCache, load_core\n"
        "from rarewatch.ruleset import chinese\n"
        f"load_core([Path({str(path)!r})], RulesetCache(Path({str(cache)!r})))\n"
        "built = chinese._pattern is not None; before = 'opencc' in sys.modules\n"
        "found = chinese.has_traditional('出口許可證'); loaded = chinese._pattern.pattern\n"
        "print(built, before, found, 'opencc' in sys.modules, chinese.to_simplified('出口許可證'))\n"
        "print(loaded == '[' + chinese.traditional_chars() + ']', 'opencc' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.split("\n")[:2] == ["False False True False 出口许可证", "True True"]


def test_a_rule_s_test_is_compiled_when_an_item_first_reaches_the_rule(
    write_rules: RuleWriter, tmp_path: Path
) -> None:
    """A match core read back from the cache compiles no rule test until an item wakes the rule: a
    steady `once` (every feed unchanged) matches nothing and compiles none."""
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    load_core([path], cache)
    core = load_core([path], cache)
    stand_ins = list(core.tests)
    assert core_fired(core, "Nothing about metals here") == []
    assert list(core.tests) == stand_ins, "no rule woken, no test compiled"
    assert core_fired(core, "a gallium export ban") == ["ga"]
    assert list(core.tests) != stand_ins, "compiled on first use, in the stand-in's place"
    compiled = list(core.tests)
    assert core_fired(core, "another gallium export ban") == ["ga"]
    assert list(core.tests) == compiled, "compiled once"


def _regex_nodes(root: object) -> list[Regex]:
    """Every `Regex` node reachable from `root` (the pack's internals, walked as the collector sees them)."""
    return _reachable(root, Regex)


def _reachable(root: object, kind: type[_T]) -> list[_T]:
    """Every object of `kind` reachable from `root` (walked as the garbage collector sees them)."""
    seen, stack, found = set(), [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type):
            continue
        seen.add(id(obj))
        if isinstance(obj, kind):
            found.append(obj)
        stack.extend(gc.get_referents(obj))
    return found


def test_a_pack_read_back_compiles_a_regex_only_when_an_item_reaches_it(
    write_rules: RuleWriter, tmp_path: Path
) -> None:
    """The cache keeps a regex's text, not its compiled form: reading a pack back compiles none of its
    regexes (start-up), and the first item that reaches one compiles it and matches as before."""
    path = write_rules(
        rule("re", "{all: [gallium, {regex: 'export\\s+bans?'}]}")
        + "---\n"
        + rule("other", "{all: [tungsten, {regex: 'quota\\s+cuts?'}]}")
    )
    cache = RulesetCache(tmp_path / "cache")
    fresh = load_ruleset([path], cache)
    again = load_ruleset([path], cache)
    assert cache.hits == 1
    nodes = _regex_nodes(again)
    assert len(nodes) == 2 and all(node._compiled is None for node in nodes)
    assert fired(again, "Gallium export bans announced") == ["re"] == fired(fresh, "Gallium export ban")
    compiled = {node.source: node._compiled is not None for node in nodes}
    assert compiled == {"export\\s+bans?": True, "quota\\s+cuts?": False}
    assert fired(again, "Tungsten quota cut") == ["other"]
    assert not [node for node in _regex_nodes(pickle.loads(pickle.dumps(again))) if node._compiled]


def test_a_pack_read_back_builds_its_quick_gates_only_when_an_item_reaches_them(
    write_rules: RuleWriter, tmp_path: Path
) -> None:
    """Reading a pack back builds none of its scanners' derived automata and negators (a steady `once`,
    every feed unchanged, matches nothing and never needs them); the first item builds them, and the pack
    matches as the freshly compiled one does."""
    path = write_rules(GALLIUM)
    cache = RulesetCache(tmp_path / "cache")
    fresh = load_ruleset([path], cache)
    again = load_ruleset([path], cache)
    assert cache.hits == 1
    scanners = _reachable(again, Scanner)
    assert scanners and all(not set(Scanner._DERIVED) & vars(s).keys() for s in scanners)
    assert fired(again, "Gallium export ban announced") == ["ga"] == fired(fresh, "Gallium export ban")
    assert fired(again, "Tungsten quota cut") == []
    assert all(set(Scanner._DERIVED) <= vars(s).keys() for s in scanners)
    with pytest.raises(AttributeError):
        _ = scanners[0].no_such_attribute


def test_a_compiled_regex_is_pickled_as_its_text(write_rules: RuleWriter) -> None:
    """A regex already searched (compiled) goes to the cache as its text: unpickling a compiled pattern
    would compile it again at start-up, the cost the cache is there to spare."""
    pack = load_ruleset([write_rules(rule("re", "{all: [gallium, {regex: 'export\\s+bans?'}]}"))])
    assert fired(pack, "Gallium export bans announced") == ["re"]
    (node,) = _regex_nodes(pack)
    assert node._compiled is not None
    data = pickle.dumps(node)
    assert b"_compile" not in data
    assert pickle.loads(data).pattern.pattern == "export\\s+bans?"


def test_a_library_s_version_is_read_from_its_dist_info_as_importlib_metadata_reads_it() -> None:
    import importlib.metadata

    for name in cache_module._LIBRARIES:
        assert cache_module._version(name) == importlib.metadata.version(name)
    assert cache_module._version("no-such-distribution-here") == "-"
    assert cache_module._normalized("Py__Aho.Corasick") == "py-aho-corasick"


def test_a_library_s_version_comes_from_its_dist_info_name_without_importlib_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key's libraries are read from the `.dist-info` names on `sys.path`; `importlib.metadata` (~10 ms of
    a warm start) is only the fallback for a distribution installed some other way."""
    import importlib.metadata

    expected = {name: importlib.metadata.version(name) for name in cache_module._LIBRARIES}

    def refuse(name: str) -> str:
        raise AssertionError(f"importlib.metadata asked for {name}")

    monkeypatch.setattr(importlib.metadata, "version", refuse)
    assert {name: cache_module._version(name) for name in cache_module._LIBRARIES} == expected


def test_a_source_file_of_the_package_touched_or_changed_is_new_code() -> None:
    """The code's share of the key: each source file's path, size and modification time, so that an
    edited compiler never reuses an old pack (an edit changes the time, as a checkout or an install)."""
    source = Path(cache_module.__file__)
    before = source.stat()
    key = cache_module._code_fingerprint.__wrapped__()
    assert cache_module._code_fingerprint.__wrapped__() == key, "the same files, the same key"
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
        assert cache_module._code_fingerprint.__wrapped__() != key
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache_module._code_fingerprint.__wrapped__() == key
