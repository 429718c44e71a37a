"""Pydantic building blocks shared by `settings` and by each source and destination kind's config model.

Below `settings` and the kinds (it imports neither), so a kind module can own its config model without
importing `settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from rarewatch.durations import parse_duration, parse_positive_duration
from rarewatch.errors import ConfigError

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_positive_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Strict(BaseModel):
    """Unknown keys are errors; values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str) -> str:
    """Only http(s): a source or destination URL of another scheme is a configuration error."""
    if not re.match(r"^https?://[^/\s]+", value, re.IGNORECASE):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]


def expand_env(value: str, where: str, error: type[Exception] = ConfigError) -> str:
    """Replace `${VAR}` with the environment variable's value; a missing variable is an error."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in os.environ:
            prefix = f"{where}: " if where else ""
            raise error(f"{prefix}environment variable {var} is not set")
        return os.environ[var]

    return _ENV_REF.sub(sub, value)


def from_env(value: object) -> object:
    """A value (or each value of a list) with `${VAR}` read from the environment: secrets and
    credential-bearing URLs stay out of the configuration file."""
    if isinstance(value, str):
        return expand_env(value, "", ValueError)  # pydantic's error already names the key
    if isinstance(value, list):
        return [from_env(v) for v in value]
    return value


EnvStr = Annotated[str, BeforeValidator(from_env)]
EnvSecret = Annotated[SecretStr, BeforeValidator(from_env)]


def with_preset(data: Any, presets: Mapping[str, Mapping[str, Any]], nested: str | None = None) -> Any:
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


def type_tag(model: type[BaseModel]) -> str:
    """The `type` value of a kind's config model (its `type: Literal["..."]` field)."""
    (tag,) = get_args(model.model_fields["type"].annotation)
    return str(tag)
