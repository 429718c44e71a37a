"""The source and destination registries: one kind per `type`, each owning its config model and build.

Every registered kind's example configuration (README and config/example.yaml) validates, round-trips
through its own model, and builds; an unknown `type` is an error that lists the known types, at its line.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args

import aiohttp
import pytest
import yaml

from rarewatch.clock import SystemClock
from rarewatch.configtypes import type_tag
from rarewatch.delivery import registry as destinations
from rarewatch.delivery.config import DestinationConfigBase, NotifierDeps
from rarewatch.errors import ConfigError
from rarewatch.settings import Settings, load_settings
from rarewatch.sources import registry as sources
from rarewatch.sources.base import SourceConfigBase, SourceDeps

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
EXAMPLE = REPO / "config" / "example.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _example_entries(key: str) -> list[dict[str, Any]]:
    """Every `key:` entry of the README's YAML blocks and of config/example.yaml."""
    docs = [EXAMPLE.read_text(encoding="utf-8")]
    docs += re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    entries: list[dict[str, Any]] = []
    for text in docs:
        if not re.search(rf"^{key}:", text, re.M):
            continue
        for data in yaml.safe_load_all(text):
            if isinstance(data, dict) and isinstance(data.get(key), list):
                entries += data[key]
    return entries


SOURCE_EXAMPLES = _example_entries("sources")
DESTINATION_EXAMPLES = _example_entries("destinations")


@pytest.fixture(autouse=True)
def _example_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `${VAR}`s the examples read, set to values of the right shape."""
    text = README.read_text(encoding="utf-8") + EXAMPLE.read_text(encoding="utf-8")
    for var in set(_ENV_REF.findall(text)):
        if var.endswith("APPRISE_URL"):
            value = "json://localhost/"
        elif var.endswith("_URL"):
            value = "https://hooks.example.com/services/T0/B0/x"
        elif "SECRET" in var:
            value = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        else:
            value = "token-" + var.lower()
        monkeypatch.setenv(var, value)


@pytest.fixture
async def deps() -> AsyncIterator[NotifierDeps]:
    async with aiohttp.ClientSession() as session:
        yield NotifierDeps(
            session=session, clock=SystemClock(), stdout=io.StringIO(), resolve_path=lambda p: REPO / p
        )


# The registries


@pytest.mark.parametrize(
    ("registry", "union", "types"),
    [
        (sources, sources.SourceConfig, {"feed", "json", "html"}),
        (
            destinations,
            destinations.DestinationConfig,
            {"webhook", "console", "jsonl", "slack", "alertmanager", "apprise"},
        ),
    ],
    ids=["sources", "destinations"],
)
def test_the_config_union_holds_exactly_the_registered_models(
    registry: Any, union: Any, types: set[str]
) -> None:
    members = get_args(get_args(union)[0])
    assert set(registry.KINDS) == types
    assert {type_tag(m) for m in members} == types
    assert set(members) == {k.config for k in registry.KINDS.values()}
    for type_, kind in registry.KINDS.items():
        assert kind.type == type_


def test_settings_build_each_entry_with_its_kinds_model(tmp_path: Path) -> None:
    settings = Settings(
        sources=[{"name": "a", "type": "feed", "url": "https://a.example/"}],
        destinations=[
            {"name": "local", "type": "console"},
            {"name": "am", "type": "alertmanager", "url": "http://am:9093"},
        ],
        routes=[{"to": ["local"]}],
        config_dir=tmp_path,
    )
    assert type(settings.sources[0]) is sources.KINDS["feed"].config
    assert [type(d) for d in settings.destinations] == [
        destinations.KINDS["console"].config,
        destinations.KINDS["alertmanager"].config,
    ]


def test_kind_modules_never_import_settings() -> None:
    modules = {k.config.__module__ for k in sources.KINDS.values()}
    modules |= {k.config.__module__ for k in destinations.KINDS.values()}
    for name in modules:
        text = Path(sys.modules[name].__file__ or "").read_text(encoding="utf-8")
        assert "rarewatch.settings" not in text, name


def test_an_unknown_source_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        sources.kind("rss")
    assert caught.value.message == "unknown source type 'rss' (known: feed, html, json)"


def test_an_unknown_destination_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        destinations.kind("email")
    assert caught.value.message == (
        "unknown destination type 'email' (known: alertmanager, apprise, console, jsonl, slack, webhook)"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "sources:\n  - name: x\n    type: rss\n    url: https://a.example/\n",
            2,
            "sources.0: unknown type 'rss' (known: feed, json, html)",
        ),
        (
            "destinations:\n  - {name: local, type: console}\n  - {name: mail, type: email}\n",
            3,
            "destinations.1: unknown type 'email' (known: webhook, console, jsonl, slack, alertmanager, "
            "apprise)",
        ),
    ],
    ids=["source", "destination"],
)
def test_an_unknown_type_in_the_file_is_an_error_at_its_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "rarewatch.yaml"
    path.write_text(text + "routes: [{to: [local]}]\n" if "destinations" in text else text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert (caught.value.file, caught.value.line, caught.value.message) == (str(path), line, message)


def test_a_kinds_own_validation_keeps_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rarewatch.yaml"
    path.write_text(
        "sources:\n  - {name: a, type: feed, url: 'https://a.example/'}\n"
        "  - {name: b, type: html, url: 'https://b.example/', item: li}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.line == 3
    assert caught.value.message == ("sources.1.html: an html source needs title (or a preset that sets them)")


# Every registered kind's examples


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [f"{e['type']}:{e['name']}" for e in entries]


def _placeholder(entry: dict[str, Any]) -> bool:
    """An overview example with "…" for a value (`url: "https://…"`): it validates, it is not built.
    A "…" item of a list (`urls: [..., "mailto://…"]`) is left out instead (`_buildable`)."""
    return "…" in repr({k: v for k, v in entry.items() if not isinstance(v, list)})


def _buildable(config: Any) -> Any:
    values = config.model_dump()
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = [v for v in value if "…" not in _plain(v)]
    return type(config).model_validate(values)


def _plain(value: Any) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def test_every_registered_kind_has_an_example_that_builds() -> None:
    for examples, registry in ((SOURCE_EXAMPLES, sources), (DESTINATION_EXAMPLES, destinations)):
        assert {e["type"] for e in examples if not _placeholder(e)} == set(registry.KINDS)


@pytest.mark.parametrize("entry", SOURCE_EXAMPLES, ids=_ids(SOURCE_EXAMPLES))
def test_each_source_example_round_trips_and_builds(entry: dict[str, Any]) -> None:
    model = sources.kind(entry["type"]).config
    config: SourceConfigBase = model.model_validate(entry)
    assert model.model_validate(config.model_dump()) == config
    if _placeholder(entry):
        return
    source = sources.build_source(config, SourceDeps())
    assert source.name == entry["name"]


@pytest.mark.parametrize("entry", DESTINATION_EXAMPLES, ids=_ids(DESTINATION_EXAMPLES))
async def test_each_destination_example_round_trips_and_builds(
    entry: dict[str, Any], deps: NotifierDeps
) -> None:
    model = destinations.kind(entry["type"]).config
    config: DestinationConfigBase = model.model_validate(entry)
    assert model.model_validate(config.model_dump()) == config
    if _placeholder(entry):
        return
    notifier = destinations.build_notifier(_buildable(config), deps)
    try:
        assert notifier.name == entry["name"]
    finally:
        await notifier.close()


def _iter_kinds() -> Iterator[tuple[str, type[Any]]]:
    for registry in (sources, destinations):
        for type_, kind in registry.KINDS.items():
            yield type_, kind.config


@pytest.mark.parametrize(("type_", "model"), list(_iter_kinds()), ids=[t for t, _ in _iter_kinds()])
def test_each_kind_refuses_unknown_keys(type_: str, model: type[Any]) -> None:
    example = next(e for e in SOURCE_EXAMPLES + DESTINATION_EXAMPLES if e["type"] == type_)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        model.model_validate({**example, "no_such_option": 1})


def test_loading_the_kinds_does_not_import_apprise() -> None:
    """Apprise takes about 0.3 s to import: only configurations with an apprise destination pay for it."""
    code = "import sys, rarewatch.settings, rarewatch.runtime; print('apprise' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
