"""The request and response bodies of the JSON API under `/api/v1`, as pydantic models.

One home for the API's shapes: the handlers serialise through these models, and the OpenAPI document
(`rarewatch.api_openapi`) is generated from the same models, so the two cannot drift apart. Response
models are frozen; fields that a response may leave out (a source never polled has no state) have
defaults and are written with `exclude_unset`, so the JSON keeps the shape these endpoints always had.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SUMMARY_MAX = 500  # characters of an item's summary in `GET /api/v1/items`


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


class FeedbackRequest(BaseModel):
    """A reader's vote on an alert, as the Slack buttons cast it: one vote per `who` and alert, the
    last one wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vote: Literal["relevant", "not_relevant"]
    who: str = Field(
        min_length=1,
        max_length=200,
        description="The voter (one vote each per alert), e.g. an email address.",
    )


class FeedbackResponse(_Response):
    status: Literal["ok"] = "ok"
    alert_id: str
    vote: Literal["relevant", "not_relevant"]
    who: str
    at: str = Field(description="When the vote was recorded (RFC 3339).")


class SilenceMatcher(BaseModel):
    """One matcher of a silence: a field (`rule`, `source`, `category`, `material`, `story`) and a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["rule", "source", "category", "material", "story"]
    value: str = Field(min_length=1, max_length=2000)


class SilenceView(_Response):
    id: str
    matchers: list[SilenceMatcher]
    starts: str
    ends: str
    reason: str
    author: str
    created: str
    state: Literal["active", "pending", "expired"] = Field(description="At the time of the answer.")


class SilencesResponse(_Response):
    silences: list[SilenceView] = Field(description="Oldest first (by creation).")


class SilenceRequest(BaseModel):
    """A new silence, as `rarewatch silence add`: every matcher must fit an alert for it to be muted; each
    is checked against what exists (rule ids, sources, categories, materials; a story is a link or the
    id of a recorded alert), with a did-you-mean for a typo."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    matchers: list[SilenceMatcher] = Field(min_length=1, max_length=16)
    duration: str = Field(
        min_length=1, max_length=40, description="How long from now, as `--for`: 2h, 3d, 1w."
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why (shown with the silence).")
    author: str = Field(min_length=1, max_length=200, description="Who (shown with the silence).")


class SeenItemView(_Response):
    """A kept item (matched or not), as the store recorded it when it was fetched."""

    id: str
    title: str
    link: str
    source: str
    published: str
    fetched: str
    summary: str = Field(description=f"At most {SUMMARY_MAX} characters of the item's summary.")
    rules_version: str = Field(description="The rule pack that judged it when it was fetched.")
    rules: list[str] = Field(description="The rules that fired then (empty: it matched nothing).")
    matched: bool


class ItemsResponse(_Response):
    items: list[SeenItemView] = Field(description="Newest first (by fetch time).")
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null when there is none."
    )


class BacktestRequest(BaseModel):
    """A rule file to replay the kept items through. Its text replaces the pack's file of the same name
    (`file`: the other files, and their vocabularies, stay), or is added to the pack when no file has that
    name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: str = Field(min_length=1, description="The YAML text of one rule file.")
    file: str = Field(
        "backtest.yaml",
        min_length=1,
        max_length=200,
        pattern=r"^[^/\\\x00]+\.ya?ml$",
        description="Its file name: a file of the pack in use to replace, or a new one.",
    )
    since: str = Field("30d", min_length=1, max_length=40, description="Items fetched within: 30d, 12h.")


class BacktestRule(_Response):
    rule: str
    category: str = Field(description="Empty for a removed rule whose alert was not recorded.")
    severity: str
    terms: list[str]


class BacktestChange(_Response):
    """One item the new rules judge differently."""

    change: Literal["add", "remove", "change"]
    id: str
    title: str
    link: str
    source: str
    published: str
    fetched: str
    judged_by: str = Field(description="The rule pack that judged it when it was fetched.")
    rules_before: list[str]
    added: list[BacktestRule] = Field(description="Rules that would newly fire, with their terms.")
    removed: list[BacktestRule] = Field(description="Rules that would no longer fire (recorded terms).")
    alerted: bool = Field(description="An alert was recorded for this item.")
    alert_kind: str | None
    silenced_by: str | None


class BacktestResponse(_Response):
    since: str = Field(description="Items fetched at or after this time were replayed.")
    file: str = Field(description="The file name the posted rules took in the pack.")
    replaced: bool = Field(description="Whether it replaced a file of the pack in use (else: added).")
    rules_version: str = Field(description="The version of the pack replayed.")
    items: int = Field(description="Items replayed.")
    judged_by: dict[str, int] = Field(description="How many items each earlier pack had judged.")
    add: list[BacktestChange]
    remove: list[BacktestChange]
    change: list[BacktestChange]
    unchanged: int


class RuleErrorResponse(ErrorResponse):
    """A rule file that is not valid: `error` says `file:line [rule id]: what`, the fields say it too."""

    file: str | None = None
    line: int | None = None
    rule: str | None = None


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
    FeedbackRequest,
    FeedbackResponse,
    SilencesResponse,
    SilenceView,
    SilenceRequest,
    ItemsResponse,
    BacktestRequest,
    BacktestResponse,
    RuleErrorResponse,
)
"""Every top-level body, in the order the OpenAPI document lists them."""
