"""Configuration: one YAML file, every value overridable by `RAREWATCH_...` environment variables.

Built once, at the edge (`cli`/`app`); everything below receives plain values. Unknown keys and bad values
are `ConfigError`s that name the file and line.

Each source and destination kind owns its config model (in `rarewatch.sources.<kind>` and
`rarewatch.delivery.<kind>`); the `sources:` and `destinations:` unions come from their registries
(`rarewatch.sources.registry`, `rarewatch.delivery.registry`). The kinds never import this module.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from rarewatch.configtypes import Duration, EnvSecret, PositiveDuration, Strict
from rarewatch.delivery import console, webhook
from rarewatch.delivery.outbox import STORM_WINDOW
from rarewatch.delivery.registry import DestinationConfig
from rarewatch.durations import format_duration
from rarewatch.errors import ConfigError
from rarewatch.models import Severity
from rarewatch.paths import bundled_rules_dir, default_config_file
from rarewatch.policies.retention import DEFAULT_KEEP_DEAD, DEFAULT_KEEP_DELIVERED
from rarewatch.sources import html as html_source
from rarewatch.sources import json_api
from rarewatch.sources.registry import SourceConfig
from rarewatch.store.urls import check_store_url
from rarewatch.validation import error_message, ordered_errors
from rarewatch.yamlpos import YamlDocument, YamlSyntaxError, load_single

# The source kinds' config models live in their modules (rarewatch.sources.<kind>); the names that
# callers of settings use stay here.
JsonSource = json_api.JsonSourceConfig
HtmlSource = html_source.HtmlSourceConfig

# The destination kinds' config models live in their modules (rarewatch.delivery.<kind>).
WebhookDestination = webhook.WebhookDestination


class RouteMatch(Strict):
    """Which alerts a route takes; every listed field must fit (empty: anything)."""

    category: list[str] = Field(default_factory=list)
    severity: list[Literal["info", "low", "medium", "high", "critical"]] = Field(default_factory=list)
    source: list[str] = Field(default_factory=list)
    rule: list[str] = Field(default_factory=list)
    material: list[str] = Field(default_factory=list)  # e.g. [dysprosium, terbium] for a buyer's channel
    country: list[str] = Field(default_factory=list)


def _digest_period(value: object) -> object:
    names = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}
    return names.get(value, value) if isinstance(value, str) else value


class Route(Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    to: list[str] = Field(min_length=1)
    # hourly, daily, or a duration: fold this route's alerts into one message per period.
    digest: Annotated[Duration | None, BeforeValidator(_digest_period)] = None


class StoriesConfig(Strict):
    """How later reports of a known story are recognised and how many are passed on."""

    near_duplicate_threshold: float = Field(default=0.7, gt=0, le=1)
    max_updates: int = Field(default=10, ge=0)  # per story within the dedup window


# The most item workers `pipeline.workers` and `once --jobs` take.
MAX_WORKERS = 32


class PipelineConfig(Strict):
    """Where a fetched feed's items are parsed, normalised and matched (see `rarewatch.item_workers`)."""

    # 0: in the service's own process (the default); N: in N worker processes
    workers: int = Field(default=0, ge=0, le=MAX_WORKERS)
    # HTTP requests at once to one host and port (sources, articles and deliveries together): however
    # many polls run at once, one server never sees more connections from this process than this.
    connections_per_host: int = Field(default=8, ge=1, le=100)


class EnrichmentConfig(Strict):
    """How linked articles are read for sources with `enrich: true` (see `rarewatch.sources.article`)."""

    concurrency: int = Field(default=4, ge=1, le=64)  # article requests at once, all sources together
    timeout: PositiveDuration = timedelta(seconds=15)
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    max_bytes: int = Field(default=2 * 1024 * 1024, gt=0)  # counted after decompression
    cache_size: int = Field(default=1000, ge=0)  # articles remembered by canonical link (0: none)
    failure_ttl: Duration = timedelta(minutes=10)  # a page that failed is not tried again before this
    max_chars: int = Field(default=2000, ge=100, le=100_000)  # lead text kept per article
    allow_private_hosts: bool = False  # fetch links to localhost and private addresses (tests, intranets)


API_TOKEN_MIN = 16  # characters: a bearer token short enough to guess is refused at load


def _long_enough(token: SecretStr) -> SecretStr:
    if len(token.get_secret_value()) < API_TOKEN_MIN:
        raise ValueError(f"must be at least {API_TOKEN_MIN} characters")
    return token


class HttpConfig(Strict):
    """The HTTP API of `rarewatch run`."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # The bearer token `POST /-/reload` requires ("${VAR}" reads the environment).
    token: Annotated[EnvSecret, AfterValidator(_long_enough)] | None = None
    # Allow `POST /-/reload` without a token (as Prometheus's --web.enable-lifecycle); a JSON
    # Content-Type is still required, so a cross-site form or simple request cannot trigger it.
    enable_lifecycle: bool = False
    # When set, every read under /api/v1 needs this bearer token (or `token`); /metrics, /healthz and
    # /readyz stay open (Prometheus and orchestrators probe them without credentials).
    read_token: Annotated[EnvSecret, AfterValidator(_long_enough)] | None = None
    # How long a client may take to send a request's headers (slow clients cannot hold connections).
    header_timeout: PositiveDuration = timedelta(seconds=10)


class OutboxRetentionConfig(Strict):
    """How long finished delivery records are kept after their creation (`rarewatch.policies.retention`):
    then they, and the alerts only they kept beyond the history, are forgotten. Pending ones never are."""

    delivered: PositiveDuration = DEFAULT_KEEP_DELIVERED
    dead: PositiveDuration = DEFAULT_KEEP_DEAD


class SlackAppConfig(Strict):
    """The Slack app whose interactivity URL `rarewatch run` serves (`POST /slack/interactions`): the
    feedback buttons' clicks. Without a signing secret the URL is not served."""

    # The app's Signing Secret (Basic Information page); "${SLACK_SIGNING_SECRET}" reads the environment.
    signing_secret: EnvSecret | None = None


class OutboxConfig(Strict):
    max_age: Duration = timedelta(hours=72)  # then a delivery is dead-lettered
    batch: int = Field(default=100, gt=0)  # deliveries per pass of one destination
    max_retry_after: Duration = timedelta(hours=1)  # a receiver's Retry-After is honoured up to this
    breaker_threshold: int = Field(default=10, ge=0)  # failures in a row that open a circuit; 0: never
    breaker_cooldown: Duration = timedelta(seconds=10)  # open this long before one probe
    breaker_max_cooldown: Duration = timedelta(seconds=30)  # each failed probe doubles it, up to this
    retention: OutboxRetentionConfig = Field(default_factory=OutboxRetentionConfig)

    @model_validator(mode="after")
    def _retention_outlasts_the_storm_guard(self) -> OutboxConfig:
        # A delivery can be made as late as `max_age` after its creation, and the storm guard
        # (`max_alerts_per_hour`) counts delivered records of the last STORM_WINDOW: forgetting one sooner
        # would let a storm through.
        least = self.max_age + STORM_WINDOW
        if self.retention.delivered <= least:
            raise ValueError(
                f"retention.delivered ({format_duration(self.retention.delivered)}) must be longer than "
                f"max_age + {format_duration(STORM_WINDOW)} ({format_duration(least)}), so every "
                "delivery still counts for max_alerts_per_hour"
            )
        return self


class SourceHealthConfig(Strict):
    """When a source raises one operational (`ops`) alert: `failures` failed polls in a row, or a listing
    unchanged for `silence_factor` times its usual gap between changes (at least `min_silence`, judged
    once `min_changes` changes were seen). See `rarewatch.policies.source_health`."""

    failures: int = Field(default=3, ge=1)
    silence_factor: float = Field(default=10.0, gt=1)
    min_silence: PositiveDuration = timedelta(hours=24)
    min_changes: int = Field(default=3, ge=2)


class StoreItemsConfig(Strict):
    """The items the sources listed, matched or not, that the store keeps for `rarewatch backtest`: each
    for `keep` after it was first seen, at most the newest `max` (0: keep none)."""

    keep: PositiveDuration = timedelta(days=30)
    max: int = Field(default=100_000, ge=0)


def _default_destinations() -> list[DestinationConfig]:
    return [console.ConsoleDestination(name="console", type="console")]


def default_store_url(config_file: Path | None = None) -> str:
    """The SQLite store used when the configuration names none: one per configuration file, so two
    configurations never share (and corrupt each other's view of) one store; `state.db` for the bundled
    default configuration (`config_file` None)."""
    data_dir = Path(platformdirs.user_data_dir("rarewatch"))
    if config_file is None:
        return f"sqlite:///{data_dir / 'state.db'}"
    absolute = str(config_file.resolve())
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"sqlite:///{data_dir / f'state-{config_file.stem}-{digest}.db'}"


@dataclass(frozen=True)
class ConfigOrigin:
    """Where the configuration's values came from, so later checks (`route_check`) can point at them."""

    file: str | None = None
    doc: YamlDocument | None = None

    def error(self, loc: tuple[str | int, ...], message: str) -> ConfigError:
        """A `ConfigError` about the value at `loc`: naming the `RAREWATCH_` variable that set it, else
        its file and line."""
        variable = _variable_for(loc) if loc else None
        if variable is not None:
            return ConfigError(message, variable=variable)
        line = self.doc.line_of(loc) if self.doc is not None else None
        return ConfigError(message, file=self.file, line=line)


class Settings(BaseSettings):
    """The whole configuration. Field names are the YAML keys; `RAREWATCH_<KEY>` overrides each."""

    model_config = SettingsConfigDict(
        env_prefix="RAREWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    store: Annotated[str, AfterValidator(check_store_url)] = Field(default_factory=default_store_url)
    rules: list[str] = Field(default_factory=lambda: [str(bundled_rules_dir())])
    sources: list[SourceConfig] = Field(default_factory=list)
    destinations: list[DestinationConfig] = Field(default_factory=_default_destinations)
    routes: list[Route] = Field(default_factory=lambda: [Route(to=["console"])])
    # Destinations that take every alert no route took (Alertmanager's root receiver). Without them such
    # an alert is recorded as unrouted, to be sent later with `rarewatch alerts resend`.
    fallback_to: list[str] = Field(default_factory=list)
    initial_lookback: Duration = timedelta(hours=48)
    dedup_window: Duration = timedelta(days=30)
    store_items: StoreItemsConfig = Field(default_factory=StoreItemsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    slack: SlackAppConfig = Field(default_factory=SlackAppConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    stories: StoriesConfig = Field(default_factory=StoriesConfig)
    enrichment: EnrichmentConfig = Field(default_factory=EnrichmentConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    source_health: SourceHealthConfig = Field(default_factory=SourceHealthConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line (rarewatch.logs)
    watch_rules: bool = (
        False  # reload the rules when a rule file changes (SIGHUP and POST /-/reload always do)
    )
    config_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    _origin: ConfigOrigin = PrivateAttr(default_factory=ConfigOrigin)

    @property
    def origin(self) -> ConfigOrigin:
        """Where the values came from (file and lines; set by `load_settings`)."""
        return self._origin

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the file, as operators expect from twelve-factor services.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        _check_references(self)
        return self

    # Resolved values: relative paths are relative to the configuration file's folder.
    def store_url(self) -> str:
        prefix = "sqlite:///"
        if self.store.startswith(prefix) and not self.store.startswith(prefix + "/"):
            return prefix + str((self.config_dir / self.store[len(prefix) :]).resolve())
        return self.store

    def rule_paths(self) -> list[Path]:
        return [self._resolve(p) for p in self.rules]

    def resolve_path(self, path: Path | str) -> Path:
        return self._resolve(path)

    def _resolve(self, path: Path | str) -> Path:
        p = Path(os.path.expanduser(str(path)))
        return p if p.is_absolute() else (self.config_dir / p).resolve()

    def lookback_for(self, source: SourceConfig) -> timedelta:
        return source.initial_lookback if source.initial_lookback is not None else self.initial_lookback


def _repeated(names: list[str]) -> set[str]:
    """The names that occur more than once (one pass: a configuration may hold thousands of sources)."""
    return {name for name, count in Counter(names).items() if count > 1}


def _check_references(settings: Settings) -> None:
    names = [d.name for d in settings.destinations]
    dupes = _repeated(names)
    if dupes:
        raise ValueError(f"destination names must be unique; repeated: {', '.join(sorted(dupes))}")
    source_names = [s.name for s in settings.sources]
    dupes = _repeated(source_names)
    if dupes:
        raise ValueError(f"source names must be unique; repeated: {', '.join(sorted(dupes))}")
    for i, route in enumerate(settings.routes):
        unknown = [t for t in route.to if t not in names]
        if unknown:
            raise ValueError(f"routes[{i}].to names unknown destination(s): {', '.join(unknown)}")
        for sev in route.match.severity:
            Severity.parse(sev)
    unknown = [t for t in settings.fallback_to if t not in names]
    if unknown:
        raise ValueError(f"fallback_to names unknown destination(s): {', '.join(unknown)}")


def checked_workers(workers: int | None, given: object = None) -> int:
    """`workers` if `pipeline.workers` takes it (0 to `MAX_WORKERS`); else ValueError saying so, naming
    `given` (what the user wrote) or `workers`. None: what was given is no whole number."""
    if workers is None or not 0 <= workers <= MAX_WORKERS:
        shown = workers if given is None else given
        raise ValueError(f"must be a whole number from 0 to {MAX_WORKERS}, not {shown!r}")
    return workers


def with_workers(settings: Settings, workers: int | None) -> Settings:
    """`settings` with `pipeline.workers` set to `workers` (`once --jobs`; 0: in the service's own
    process, whatever the configuration says), or as they are when `workers` is None."""
    if workers is None:
        return settings
    checked_workers(workers)
    return settings.model_copy(update={"pipeline": settings.pipeline.model_copy(update={"workers": workers})})


def load_settings(path: Path | None) -> Settings:
    """Load the configuration file at `path`, or the bundled default configuration when `path` is None."""
    file = path or default_config_file()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration: {exc.strerror}", file=str(file)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the configuration is not UTF-8 text (byte {exc.start})", file=str(file), line=1
        ) from None
    try:
        doc = load_single(text)
    except YamlSyntaxError as exc:
        raise ConfigError(str(exc), file=str(file), line=exc.line) from None
    data: dict[str, Any] = {} if doc is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a mapping of keys", file=str(file), line=1)
    config_dir = file.parent.resolve()
    if path is None:
        data.setdefault("rules", [str(bundled_rules_dir())])
    else:
        data.setdefault("store", default_store_url(path))  # (RAREWATCH_STORE still wins)
    try:
        settings = Settings(**data, config_dir=config_dir)
    except SettingsError as exc:  # an environment value that should be JSON and is not
        raise _env_parse_error(exc) from None
    except ValidationError as exc:
        raise _config_error(exc, file, doc) from None
    settings._origin = ConfigOrigin(str(file), doc)
    return settings


ENV_PREFIX = "RAREWATCH_"


def env_overrides() -> dict[tuple[str, ...], str]:
    """The configuration paths set from the environment, each with its variable's name
    (`("http", "port")` for RAREWATCH_HTTP__PORT); pydantic-settings matches names case-insensitively."""
    return {
        tuple(name[len(ENV_PREFIX) :].lower().split("__")): name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
    }


def _variable_for(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable that set the value at `loc`, if one did."""
    parts = tuple(str(p).lower() for p in loc)
    for path, name in env_overrides().items():
        if parts[: len(path)] == path:
            return name
    return None


def _config_error(exc: ValidationError, file: Path, doc: YamlDocument | None) -> ConfigError:
    """The first error of `exc` (unknown keys first) at its line, or naming the variable that set it."""
    errors = ordered_errors(exc)
    first = errors[0]
    loc = first["loc"]
    dotted = ".".join(str(p) for p in loc)
    msg = error_message(first, Settings)
    message = f"{dotted}: {msg}" if dotted else msg
    more = len(errors) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    variable = _variable_for(loc) if loc else None
    if variable is not None:
        return ConfigError(message, variable=variable)
    line = doc.line_of(loc) if doc is not None else None
    return ConfigError(message, file=str(file), line=line)


def _env_parse_error(exc: SettingsError) -> ConfigError:
    """pydantic-settings' "error parsing value for field ..." as a message naming the variable."""
    found = re.search(r'field "([^"]+)"', str(exc))
    field = found.group(1) if found else ""
    variable = _variable_for((field,)) if field else None
    return ConfigError(
        f"{field or 'value'}: not valid JSON; lists and mappings are given as JSON in the environment, "
        f"e.g. {variable or ENV_PREFIX + field.upper()}='[\"rules/\"]'",
        variable=variable or f"{ENV_PREFIX}{field.upper()}",
    )
