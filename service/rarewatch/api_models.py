"""The request and response bodies of the JSON API under `/api/v1`, as pydantic models.

One home for the API's shapes: the handlers serialise through these models, and the OpenAPI document
(`rarewatch.api_openapi`) is generated from the same models, so the two cannot drift apart. Response
models are frozen; fields that a response may leave out (a source never polled has no state) have
defaults and are written with `exclude_unset`, so the JSON keeps the shape these endpoints always had.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorResponse(_Response):
    """Every 4xx and 5xx answer under `/api/v1` (and of `POST /-/reload`)."""

    status: Literal["error"] = "error"
    error: str = Field(description="What was wrong, in words: never a stack trace.")


class SourceHealthView(_Response):
    fingerprint: str | None = None
    changes: list[str] = Field(default_factory=list, description="RFC 3339 times the listing last changed.")
    raised: str | None = Field(None, description="The open source-health problem: failing, silent or null.")
    raised_at: str | None = None


class SourceView(_Response):
    """One source: its interval and, once polled, what rarewatch remembers about it."""

    name: str
    interval_seconds: float
    never_polled: bool | None = Field(None, description="Present (true) only for a source never polled.")
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    consecutive_failures: int | None = None
    not_before: str | None = Field(None, description="Backoff or Retry-After: no fetch before this time.")
    initialized: bool | None = None
    health: SourceHealthView | None = None


class SourcesResponse(_Response):
    sources: list[SourceView]


class PayloadMatch(_Response):
    rule: str
    category: str
    severity: str
    terms: list[str]
    snippet: str
    matched_in: str


class AlertView(BaseModel):
    """An alert as the webhook payload (see `rarewatch.delivery.payload`), plus `unrouted` and
    `silenced_by`. Extra keys
    are allowed: the payload grows additively (a digest carries `alerts` and `count`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    version: int
    type: str
    id: str
    test: bool
    title: str
    link: str
    source: str
    publisher: str
    published: str
    created: str
    severity: str
    categories: list[str]
    summary: str
    matches: list[PayloadMatch]
    story: str
    materials: list[str]
    countries: list[str]
    rules_version: str
    gloss: str
    matched_in: str
    unrouted: bool = Field(description="No route took it: recorded, not sent unless resent.")
    silenced_by: str | None = Field(
        None, description="The id of the silence that muted it (recorded, never sent); null: none."
    )


class AlertsResponse(_Response):
    alerts: list[AlertView] = Field(description="Newest first.")
    truncated: bool = Field(description="The byte bound left out some alerts of this page.")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null when there is none."
    )


class ReloadResponse(_Response):
    status: Literal["ok"] = "ok"
    rules: int
    version: str


class PollResponse(_Response):
    status: Literal["ok"] = "ok"
    source: str
    result: str = Field(description="The poll's outcome: ok, error, skipped, ...")
    items: int
    matched: int
    alerts: int
    error: str | None


class RuleView(_Response):
    id: str
    title: str
    category: str
    severity: str
    file: str
    line: int


class RulesResponse(_Response):
    version: str = Field(description="The rule pack's version (a content hash).")
    rules: list[RuleView]


class MatchRequest(BaseModel):
    """An item to match, as `rarewatch match` reads one line (`content` and `source` optional too)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    summary: str = ""
    content: str = ""
    lang: str | None = None
    link: str | None = None
    source: str | None = Field(None, description="The source name, for rules restricted to sources.")


class MatchView(_Response):
    rule: str
    category: str
    severity: str
    terms: list[str]
    snippet: str


class WhyNotView(_Response):
    """Why a rule the item came close to did not fire."""

    rule: str
    category: str
    failed: list[str] = Field(default_factory=list, description="Groups of its `match` that did not hold.")
    vetoed_by: list[str] = Field(default_factory=list, description="The `none` terms that fired.")
    discounted: list[str] = Field(default_factory=list, description="Terms found but excluded or negated.")


class MatchResponse(_Response):
    rules_version: str
    matches: list[MatchView]
    why_not: list[WhyNotView] | None = Field(None, description="Only with `?explain=true`.")


class OutboxCounts(_Response):
    pending: int
    dead: int
    oldest_pending: str | None


class DeliveryView(_Response):
    alert_id: str
    destination: str
    status: str
    attempts: int
    created: str
    next_attempt: str
    last_error: str | None
    digest: bool


class OutboxResponse(_Response):
    destinations: dict[str, OutboxCounts]
    entries: list[DeliveryView] = Field(description="Pending and dead deliveries, oldest first, bounded.")
    truncated: bool = Field(description="More entries exist than `limit` listed.")


class OutboxActionResponse(_Response):
    status: Literal["ok"] = "ok"
    count: int = Field(description="How many deliveries were made due again, or purged.")


MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse,
    SourcesResponse,
    AlertsResponse,
    ReloadResponse,
    PollResponse,
    RulesResponse,
    MatchRequest,
    MatchResponse,
    OutboxResponse,
    OutboxActionResponse,
)
"""Every top-level body, in the order the OpenAPI document lists them."""
