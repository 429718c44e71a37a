"""Configuration: one YAML file, every value overridable by `RAREWATCH_...` environment variables.

Built once, at the edge (`cli`/`app`); everything below receives plain values. Unknown keys and bad values
are `ConfigError`s that name the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rarewatch.durations import parse_duration, parse_positive_duration
from rarewatch.errors import ConfigError
from rarewatch.models import Severity
from rarewatch.paths import bundled_rules_dir, default_config_file
from rarewatch.sources import encoding as text_encoding
from rarewatch.sources import html as html_source
from rarewatch.sources import json_api
from rarewatch.yamlpos import YamlSyntaxError, load_single

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_positive_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    """Only http(s): a source or destination URL of another scheme is a configuration error."""
    if not re.match(r"^https?://[^/\s]+", value, re.IGNORECASE):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _SourceBase(_Strict):
    name: Name
    url: HttpUrl
    interval: Duration = timedelta(minutes=30)
    initial_lookback: Duration | None = None  # None: the global `initial_lookback`
    timeout: Duration = timedelta(seconds=30)
    connect_timeout: Duration = timedelta(seconds=10)
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    lang: str | None = None
    enabled: bool = True


class FeedSource(_SourceBase):
    """RSS 0.9x/1.0/2.0 or Atom."""

    type: Literal["feed"]
    enrich: bool = True  # read the linked article of items that name a watched term but fire no rule


class JsonFields(_Strict):
    """Dotted paths inside each JSON result (`html_url`, `agencies.0.name`); `title` and `link` required."""

    title: str | None = None
    link: str | None = None
    summary: str | None = None
    content: str | None = None
    published: str | None = None
    guid: str | None = None

    @field_validator("*")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        return json_api.check_path(v) if v else v


class JsonSource(_SourceBase):
    """An HTTP JSON API: `items` is the dotted path to the results, `fields` maps each entry field."""

    type: Literal["json"]
    preset: str | None = None  # fills items/fields/next_page; see rarewatch.sources.json_api.PRESETS
    items: str | None = None  # "" when the document itself is the list
    fields: JsonFields = Field(default_factory=JsonFields)
    next_page: str | None = None
    max_pages: int = Field(default=3, ge=1, le=100)
    params: dict[str, str | list[str]] = Field(default_factory=dict)
    html_fields: bool = False  # the mapped strings are HTML already (WordPress `rendered` fields)
    enrich: bool = False  # API documents usually carry their full text already

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return _with_preset(data, json_api.PRESETS, nested="fields")

    @field_validator("items", "next_page")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        return json_api.check_path(v) if v else v

    @model_validator(mode="after")
    def _complete(self) -> JsonSource:
        missing = [] if self.items is not None else ["items"]
        missing += [f"fields.{f}" for f in ("title", "link") if not getattr(self.fields, f)]
        if missing:
            raise ValueError(f"a json source needs {', '.join(missing)} (or a preset that sets them)")
        return self


class HtmlSource(_SourceBase):
    """A list page read with CSS selectors: `item` per entry, then `title`, `link`... inside it."""

    type: Literal["html"]
    preset: str | None = None  # fills item/title/link/date; see rarewatch.sources.html.PRESETS
    item: str | None = None
    title: str | None = None
    link: str | None = None  # default: the title element's href, else the item's first a[href]
    date: str | None = None
    summary: str | None = None
    encoding: str | None = None  # override the page's declared charset
    enrich: bool = False  # list pages link to documents (often PDFs) rather than articles

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return _with_preset(data, html_source.PRESETS)

    @field_validator("item", "title", "link", "date", "summary")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is not None:
            html_source.compile_selector(v)  # an invalid selector fails here, at its line
        return v

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: str | None) -> str | None:
        if v is not None:
            text_encoding.codec_for(v)
        return v

    @model_validator(mode="after")
    def _complete(self) -> HtmlSource:
        missing = [key for key in ("item", "title") if not getattr(self, key)]
        if missing:
            raise ValueError(f"an html source needs {' and '.join(missing)} (or a preset that sets them)")
        return self


def _with_preset(data: Any, presets: Mapping[str, Mapping[str, Any]], nested: str | None = None) -> Any:
    """`data` with the named preset's values filled in where the user set none (`nested`: merged by key)."""
    if not isinstance(data, dict) or data.get("preset") is None:
        return data
    name = data["preset"]
    if name not in presets:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(sorted(presets))})")
    merged = {**presets[name], **data}
    if nested and isinstance(data.get(nested), dict):
        merged[nested] = {**presets[name][nested], **data[nested]}
    return merged


SourceConfig = Annotated[FeedSource | JsonSource | HtmlSource, Field(discriminator="type")]


def _from_env(value: object) -> object:
    """A value (or each value of a list) with `${VAR}` read from the environment: secrets and
    credential-bearing URLs stay out of the configuration file."""
    if isinstance(value, str):
        return _expand_env(value, "", ValueError)  # pydantic's error already names the key
    if isinstance(value, list):
        return [_from_env(v) for v in value]
    return value


def _check_whsec(secret: SecretStr) -> SecretStr:
    if not secret.get_secret_value().startswith("whsec_"):
        raise ValueError("webhook secret must start with 'whsec_' (Standard Webhooks format)")
    return secret


EnvStr = Annotated[str, BeforeValidator(_from_env)]
EnvSecret = Annotated[SecretStr, BeforeValidator(_from_env)]
WebhookSecret = Annotated[SecretStr, BeforeValidator(_from_env), AfterValidator(_check_whsec)]


class _DestinationBase(_Strict):
    name: Name
    # Storm guard: more single messages than this in a rolling hour are folded into one digest.
    max_alerts_per_hour: int | None = Field(default=None, gt=0)


class _HttpDestination(_DestinationBase):
    """A destination reached over HTTP, with extra request headers (e.g. a receiver's own auth)."""

    headers: dict[str, str] = Field(default_factory=dict)  # values may be "${ENV_VAR}"

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> _HttpDestination:
        # aiohttp refuses a request with both (ValueError on every send): say so at load instead.
        url = str(getattr(self, "url", "") or "")
        has_auth = any(k.lower() == "authorization" for k in self.headers)
        if has_auth and "@" in urlsplit(url).netloc:
            raise ValueError(
                "url carries credentials (user:password@) and headers set Authorization: keep only one"
            )
        return self

    def resolved_headers(self) -> dict[str, str]:
        """Header values with `${VAR}` replaced from the environment (missing variables are errors)."""
        return {k: _expand_env(v, f"headers.{k}") for k, v in self.headers.items()}


class WebhookDestination(_HttpDestination):
    """POST signed JSON (Standard Webhooks) to a URL."""

    type: Literal["webhook"]
    # Some webhook URLs are credentials (a Teams workflow URL carries a signature): "${TEAMS_URL}".
    url: Annotated[EnvStr, AfterValidator(_http_url)]
    secret: WebhookSecret | None = None  # "${TICKETS_SECRET}" keeps the secret out of the file
    # Rotation without downtime: sign with every listed secret (Standard Webhooks allows several).
    secrets: list[WebhookSecret] = Field(default_factory=list)
    timeout: Duration = timedelta(seconds=10)
    # A Jinja2 template renders the body instead of the v1 payload (rarewatch.delivery.template);
    # examples for Jira, ServiceNow and Teams are in deploy/templates/. Relative to the config file.
    template: Path | None = None
    template_vars: dict[str, str] = Field(default_factory=dict)  # the template's `params`
    template_json: bool | None = None  # check the output is JSON; default: the file ends in .json.j2
    content_type: str = "application/json"

    @model_validator(mode="after")
    def _template_options_need_a_template(self) -> WebhookDestination:
        if self.template is None and (self.template_vars or self.template_json is not None):
            raise ValueError("template_vars and template_json need a template")
        return self

    def signing_secrets(self) -> list[str]:
        """Every secret to sign with: `secret` first, then `secrets` (duplicates dropped)."""
        values = ([self.secret] if self.secret else []) + self.secrets
        return list(dict.fromkeys(s.get_secret_value() for s in values))


class ConsoleDestination(_DestinationBase):
    """A readable line per alert on standard output."""

    type: Literal["console"]


class JsonlDestination(_DestinationBase):
    """Append the webhook payload of each alert to a JSON Lines file."""

    type: Literal["jsonl"]
    path: Path


class SlackDestination(_DestinationBase):
    """A Slack channel: a bot token and a channel (Web API, threads possible) or an incoming webhook URL."""

    type: Literal["slack"]
    channel: str | None = None
    token: EnvSecret | None = None  # xoxb-...; "${SLACK_BOT_TOKEN}" reads the environment
    webhook_url: EnvSecret | None = None
    api_url: str | None = None  # non-default Slack API hosts (GovSlack, test servers)

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackDestination:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("a slack destination needs either token and channel, or webhook_url")
        if self.webhook_url is not None and self.token is not None:
            raise ValueError("a slack destination takes token and channel, or webhook_url, not both")
        return self


class AlertmanagerDestination(_HttpDestination):
    """A Prometheus Alertmanager (API v2): one Alertmanager alert per story, resolving by itself."""

    type: Literal["alertmanager"]
    url: HttpUrl  # the base URL, with any route prefix: http://alertmanager:9093
    timeout: Duration = timedelta(seconds=10)
    resolve_after: PositiveDuration = timedelta(hours=24)  # endsAt = raised + resolve_after


class AppriseDestination(_DestinationBase):
    """Any service Apprise speaks (email, Teams, PagerDuty, Telegram, ntfy, Matrix...), by Apprise URL."""

    type: Literal["apprise"]
    # Apprise URLs usually hold a token: "${TELEGRAM_URL}" reads one from the environment.
    urls: list[EnvSecret] = Field(min_length=1)
    title_template: str | None = None  # Jinja2, same context as payload templates
    body_format: Literal["markdown", "text", "html"] = "markdown"
    timeout: Duration = timedelta(seconds=30)


DestinationConfig = Annotated[
    WebhookDestination
    | ConsoleDestination
    | JsonlDestination
    | SlackDestination
    | AlertmanagerDestination
    | AppriseDestination,
    Field(discriminator="type"),
]


class RouteMatch(_Strict):
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


class Route(_Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    to: list[str] = Field(min_length=1)
    # hourly, daily, or a duration: fold this route's alerts into one message per period.
    digest: Annotated[Duration | None, BeforeValidator(_digest_period)] = None


class StoriesConfig(_Strict):
    """How later reports of a known story are recognised and how many are passed on."""

    near_duplicate_threshold: float = Field(default=0.7, gt=0, le=1)
    max_updates: int = Field(default=10, ge=0)  # per story within the dedup window


class EnrichmentConfig(_Strict):
    """How linked articles are read for sources with `enrich: true` (see `rarewatch.sources.article`)."""

    concurrency: int = Field(default=4, ge=1, le=64)  # article requests at once, all sources together
    timeout: PositiveDuration = timedelta(seconds=15)
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    max_bytes: int = Field(default=2 * 1024 * 1024, gt=0)  # counted after decompression
    cache_size: int = Field(default=1000, ge=0)  # articles remembered by canonical link (0: none)
    failure_ttl: Duration = timedelta(minutes=10)  # a page that failed is not tried again before this
    max_chars: int = Field(default=2000, ge=100, le=100_000)  # lead text kept per article
    allow_private_hosts: bool = False  # fetch links to localhost and private addresses (tests, intranets)


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class OutboxConfig(_Strict):
    max_age: Duration = timedelta(hours=72)  # then a delivery is dead-lettered
    batch: int = Field(default=100, gt=0)  # deliveries per pass of one destination
    max_retry_after: Duration = timedelta(hours=1)  # a receiver's Retry-After is honoured up to this
    breaker_threshold: int = Field(default=10, ge=0)  # failures in a row that open a circuit; 0: never
    breaker_cooldown: Duration = timedelta(seconds=10)  # open this long before one probe
    breaker_max_cooldown: Duration = timedelta(seconds=30)  # each failed probe doubles it, up to this


def _default_destinations() -> list[DestinationConfig]:
    return [ConsoleDestination(name="console", type="console")]


def default_store_url() -> str:
    data_dir = Path(platformdirs.user_data_dir("rarewatch"))
    return f"sqlite:///{data_dir / 'state.db'}"


class Settings(BaseSettings):
    """The whole configuration. Field names are the YAML keys; `RAREWATCH_<KEY>` overrides each."""

    model_config = SettingsConfigDict(
        env_prefix="RAREWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    store: str = Field(default_factory=default_store_url)
    rules: list[str] = Field(default_factory=lambda: [str(bundled_rules_dir())])
    sources: list[SourceConfig] = Field(default_factory=list)
    destinations: list[DestinationConfig] = Field(default_factory=_default_destinations)
    routes: list[Route] = Field(default_factory=lambda: [Route(to=["console"])])
    initial_lookback: Duration = timedelta(hours=48)
    dedup_window: Duration = timedelta(days=30)
    http: HttpConfig = Field(default_factory=HttpConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    stories: StoriesConfig = Field(default_factory=StoriesConfig)
    enrichment: EnrichmentConfig = Field(default_factory=EnrichmentConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    watch_rules: bool = (
        False  # reload the rules when a rule file changes (SIGHUP and POST /-/reload always do)
    )
    config_dir: Path = Field(default_factory=Path.cwd, exclude=True)

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


def _check_references(settings: Settings) -> None:
    names = [d.name for d in settings.destinations]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"destination names must be unique; repeated: {', '.join(sorted(dupes))}")
    source_names = [s.name for s in settings.sources]
    dupes = {n for n in source_names if source_names.count(n) > 1}
    if dupes:
        raise ValueError(f"source names must be unique; repeated: {', '.join(sorted(dupes))}")
    for i, route in enumerate(settings.routes):
        unknown = [t for t in route.to if t not in names]
        if unknown:
            raise ValueError(f"routes[{i}].to names unknown destination(s): {', '.join(unknown)}")
        for sev in route.match.severity:
            Severity.parse(sev)


def _expand_env(value: str, where: str, error: type[Exception] = ConfigError) -> str:
    """Replace `${VAR}` with the environment variable's value; a missing variable is an error."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in os.environ:
            prefix = f"{where}: " if where else ""
            raise error(f"{prefix}environment variable {var} is not set")
        return os.environ[var]

    return _ENV_REF.sub(sub, value)


def load_settings(path: Path | None) -> Settings:
    """Load the configuration file at `path`, or the bundled default configuration when `path` is None."""
    file = path or default_config_file()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration: {exc.strerror}", file=str(file)) from None
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
    try:
        return Settings(**data, config_dir=config_dir)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        line = doc.line_of(loc) if doc is not None else None
        dotted = ".".join(str(p) for p in loc)
        message = f"{dotted}: {first['msg']}" if dotted else first["msg"]
        more = len(exc.errors()) - 1
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        raise ConfigError(message, file=str(file), line=line) from None
