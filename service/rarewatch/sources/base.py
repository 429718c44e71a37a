"""The `Source` protocol, and `HttpSource`, what the HTTP kinds (`feed`, `json`, `html`) share."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import ClassVar, Protocol, TypedDict

import aiohttp
from pydantic import Field, ValidationInfo, field_validator

from rarewatch.configtypes import Duration, HttpUrl, Name, PositiveDuration, Strict
from rarewatch.durations import format_duration
from rarewatch.errors import SourceError
from rarewatch.httputil import redact_url
from rarewatch.models import FetchResult, SourceState
from rarewatch.sources import http

NO_HEADERS: Mapping[str, str] = MappingProxyType({})
# The shortest interval between polls of one source without `allow_fast_poll: true`.
MIN_INTERVAL = timedelta(seconds=60)


class Source(Protocol):
    """Fetches one configured source and parses what it got into `RawEntry`s.

    Raises `SourceError` (with `retry_after` when the server said so) for anything that went wrong:
    network errors, HTTP errors, oversized or undecodable bodies, unparseable documents.
    """

    name: str

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult: ...


class HttpOptions(TypedDict, total=False):
    """The keyword arguments every HTTP source kind takes (see `HttpSource`)."""

    timeout: float
    connect_timeout: float
    max_bytes: int
    headers: Mapping[str, str]
    lang: str | None
    executor: concurrent.futures.Executor | None


class SourceConfigBase(Strict):
    """The keys every source kind takes; each kind's module subclasses it with its `type` and own keys."""

    name: Name
    url: HttpUrl
    # Declared before `interval`, whose validator reads it: polls under MIN_INTERVAL need this opt-in.
    allow_fast_poll: bool = False
    interval: Duration = timedelta(minutes=30)
    initial_lookback: Duration | None = None  # None: the global `initial_lookback`
    timeout: PositiveDuration = timedelta(seconds=30)
    connect_timeout: PositiveDuration = timedelta(seconds=10)
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    lang: str | None = None
    enabled: bool = True

    @field_validator("interval")
    @classmethod
    def _polite_interval(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        """At least MIN_INTERVAL between polls of a public server, unless the source opts in."""
        if value <= timedelta(0):
            raise ValueError("interval must be positive (e.g. 15m)")
        if value < MIN_INTERVAL and not info.data.get("allow_fast_poll", False):
            raise ValueError(
                f"interval {format_duration(value)} is under the {format_duration(MIN_INTERVAL)} floor "
                "that keeps polls polite; set allow_fast_poll: true on this source if its server allows it"
            )
        return value


@dataclass(frozen=True)
class SourceDeps:
    """What building a source may use besides its config (`executor`: where parsing runs; None: the
    loop's default thread pool)."""

    executor: concurrent.futures.Executor | None = None


def http_options(config: SourceConfigBase, deps: SourceDeps) -> HttpOptions:
    """The `HttpSource` keyword arguments of a configured source."""
    return HttpOptions(
        timeout=config.timeout.total_seconds(),
        connect_timeout=config.connect_timeout.total_seconds(),
        max_bytes=config.max_bytes,
        headers=config.headers,
        lang=config.lang,
        executor=deps.executor,
    )


class HttpSource:
    """What every HTTP source kind shares: a checked http(s) URL, request headers led by the kind's
    `accept`, time and size limits, the items' language, and the executor that parses off the loop."""

    accept: ClassVar[str] = "*/*"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 30,
        connect_timeout: float = 10,
        max_bytes: int = 10 * 1024 * 1024,
        headers: Mapping[str, str] = NO_HEADERS,
        lang: str | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """Raises ValueError (naming the source) for a URL that is not http(s)."""
        try:
            self.checked_url = http.check_url(url)
        except SourceError as exc:
            raise ValueError(f"source {name}: {exc}") from None
        self.name = name
        self.url = url
        self.headers = {"Accept": self.accept, **headers}  # configured headers may override Accept
        self.lang = lang
        self.limits = http.Limits(timeout=timeout, connect_timeout=connect_timeout, max_bytes=max_bytes)
        self._executor = executor

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {redact_url(self.url)!r})"

    async def _get(
        self, session: aiohttp.ClientSession, state: SourceState, url: str | None = None
    ) -> http.HttpResponse:
        """A conditional GET of `url` (default: the source's) with the stored validators."""
        return await http.conditional_get(
            session, url or self.url, state, limits=self.limits, headers=self.headers
        )
