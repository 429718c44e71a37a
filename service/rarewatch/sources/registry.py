"""The source kinds, keyed on `type`: each kind's module owns its config model and its `build`.

Adding a kind is one module plus one line here; adding an option to a kind is a change to its module only.
`settings` takes its `sources:` union from here (`SourceConfig`); `runtime` builds with `build_source`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Generic, TypeVar

from pydantic import Field

from rarewatch.configtypes import type_tag
from rarewatch.errors import ConfigError
from rarewatch.sources import feed, html, json_api
from rarewatch.sources.base import Source, SourceConfigBase, SourceDeps

C = TypeVar("C", bound=SourceConfigBase)


@dataclass(frozen=True)
class SourceKind(Generic[C]):
    """One kind of source: its config model (with a `type: Literal[...]` field) and its constructor."""

    config: type[C]
    build: Callable[[C, SourceDeps], Source]

    @property
    def type(self) -> str:
        return type_tag(self.config)


def _kinds(*kinds: SourceKind[Any]) -> Mapping[str, SourceKind[Any]]:
    return MappingProxyType({k.type: k for k in kinds})


KINDS: Mapping[str, SourceKind[Any]] = _kinds(
    SourceKind(feed.FeedSourceConfig, feed.build),
    SourceKind(json_api.JsonSourceConfig, json_api.build),
    SourceKind(html.HtmlSourceConfig, html.build),
)

# The `sources:` entries of the configuration file, told apart by `type`. Spelled out for type checkers;
# tests/unit/sources/test_registry.py checks it holds exactly the registered models.
SourceConfig = Annotated[
    feed.FeedSourceConfig | json_api.JsonSourceConfig | html.HtmlSourceConfig,
    Field(discriminator="type"),
]


def kind(type_: str) -> SourceKind[Any]:
    """The kind registered for `type_`; a `ConfigError` listing the known types otherwise."""
    try:
        return KINDS[type_]
    except KeyError:
        raise ConfigError(f"unknown source type {type_!r} (known: {', '.join(sorted(KINDS))})") from None


def build_source(config: SourceConfigBase, deps: SourceDeps | None = None) -> Source:
    """The `Source` of one configured source, built by its kind.

    A kind that refuses its configuration (ValueError) becomes a `ConfigError` naming the source.
    """
    registered = kind(type_tag(type(config)))
    try:
        return registered.build(config, deps or SourceDeps())
    except ValueError as exc:
        raise ConfigError(f"source {config.name}: {exc}") from None
