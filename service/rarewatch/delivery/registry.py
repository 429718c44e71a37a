"""The destination kinds, keyed on `type`: each kind's module owns its config model and its `build`.

Adding a kind is one module plus one line here; adding an option to a kind is a change to its module only.
`settings` takes its `destinations:` union from here (`DestinationConfig`); `runtime` builds with
`build_notifier`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Generic, TypeVar

from pydantic import Field

from rarewatch.configtypes import type_tag
from rarewatch.delivery import alertmanager, apprise_notifier, console, jsonl, slack, webhook
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import DestinationConfigBase, NotifierDeps
from rarewatch.errors import ConfigError

C = TypeVar("C", bound=DestinationConfigBase)


@dataclass(frozen=True)
class DestinationKind(Generic[C]):
    """One kind of destination: its config model (with a `type: Literal[...]` field) and its constructor."""

    config: type[C]
    build: Callable[[C, NotifierDeps], Notifier]

    @property
    def type(self) -> str:
        return type_tag(self.config)


def _kinds(*kinds: DestinationKind[Any]) -> Mapping[str, DestinationKind[Any]]:
    return MappingProxyType({k.type: k for k in kinds})


KINDS: Mapping[str, DestinationKind[Any]] = _kinds(
    DestinationKind(webhook.WebhookDestination, webhook.build),
    DestinationKind(console.ConsoleDestination, console.build),
    DestinationKind(jsonl.JsonlDestination, jsonl.build),
    DestinationKind(slack.SlackDestination, slack.build),
    DestinationKind(alertmanager.AlertmanagerDestination, alertmanager.build),
    DestinationKind(apprise_notifier.AppriseDestination, apprise_notifier.build),
)

# The `destinations:` entries of the configuration file, told apart by `type`. Spelled out for type
# checkers; tests/unit/delivery/test_registry.py checks it holds exactly the registered models.
DestinationConfig = Annotated[
    webhook.WebhookDestination
    | console.ConsoleDestination
    | jsonl.JsonlDestination
    | slack.SlackDestination
    | alertmanager.AlertmanagerDestination
    | apprise_notifier.AppriseDestination,
    Field(discriminator="type"),
]


def kind(type_: str) -> DestinationKind[Any]:
    """The kind registered for `type_`; a `ConfigError` listing the known types otherwise."""
    try:
        return KINDS[type_]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ConfigError(f"unknown destination type {type_!r} (known: {known})") from None


def build_notifier(config: DestinationConfigBase, deps: NotifierDeps) -> Notifier:
    """The notifier of one configured destination, built by its kind (errors name the destination)."""
    return kind(type_tag(type(config))).build(config, deps)
