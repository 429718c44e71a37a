"""What every destination kind's config shares, and what building a notifier may use besides its config.

Each kind's module (`webhook`, `slack`, `console`, `jsonl`, `alertmanager`, `apprise_notifier`) subclasses
`DestinationConfigBase` with its `type` and own keys and defines `build(config, deps) -> Notifier`;
`delivery.registry` maps `type` to the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, model_validator

from rarewatch.clock import Clock
from rarewatch.configtypes import Name, Strict, expand_env


class DestinationConfigBase(Strict):
    """The keys every destination kind takes."""

    name: Name
    # Storm guard: more single messages than this in a rolling hour are folded into one digest.
    max_alerts_per_hour: int | None = Field(default=None, gt=0)


class HttpDestinationConfig(DestinationConfigBase):
    """A destination reached over HTTP, with extra request headers (e.g. a receiver's own auth)."""

    headers: dict[str, str] = Field(default_factory=dict)  # values may be "${ENV_VAR}"

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> HttpDestinationConfig:
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
        return {k: expand_env(v, f"headers.{k}") for k, v in self.headers.items()}


@dataclass(frozen=True)
class NotifierDeps:
    """What building a notifier may use: the shared HTTP session, the clock, standard output, and how
    a path in the configuration resolves (relative to the configuration file's folder)."""

    session: aiohttp.ClientSession
    clock: Clock
    stdout: TextIO
    resolve_path: Callable[[Path], Path]
