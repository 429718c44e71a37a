"""Frozen, typed domain models passed between pipeline stages.

`RawEntry` (what a source parsed) -> `Item` (normalised) -> `Match` (a rule fired) -> `Alert` (one story,
all its matches) -> `Delivery` (one alert to one destination, tracked by the outbox).
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson


class Severity(enum.IntEnum):
    """Rule severities, ordered so that `max()` gives the most severe."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            names = "|".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as a source parsed it, before normalisation. Text fields may still hold HTML."""

    source: str
    title: str
    link: str | None = None
    guid: str | None = None
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    lang: str | None = None
    # Who published it, as the item or the feed names it (not the source's configured name); HTML like
    # the other text fields, "" when the feed does not say.
    publisher: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    """A normalised item: plain NFKC text, canonical link, stable id, UTC time.

    `source` is the configured source's name; `publisher` the publisher's name as the feed gives it
    ("" when it gives none), plain one-line text.
    """

    id: str
    source: str
    title: str
    link: str
    summary: str
    content: str
    published: datetime
    lang: str | None = None
    publisher: str = ""

    def field_text(self, name: str) -> str:
        """The text of a matchable field (`title`, `summary`, `content`)."""
        value = getattr(self, name)
        return value if isinstance(value, str) else ""

    def __reduce__(self) -> tuple[type[Item], tuple[Any, ...]]:
        # Pickled by its constructor's arguments: an item worker sends back every item of every feed,
        # and a frozen slotted dataclass's default state (set field by field through `object.__setattr__`)
        # costs the service's busy process about half as much again to unpickle.
        return (
            Item,
            (
                self.id,
                self.source,
                self.title,
                self.link,
                self.summary,
                self.content,
                self.published,
                self.lang,
                self.publisher,
            ),
        )


# Which text completed a match, in the order texts are read: the headline, the feed's summary, the
# feed's own full text, then the linked article fetched by enrichment.
MATCHED_IN: tuple[str, ...] = ("title", "summary", "content", "article")


@dataclass(frozen=True, slots=True)
class Match:
    """One rule that fired on an item, with the evidence.

    `matched_in` names the text that completed the match (one of `MATCHED_IN`; "" when unknown, e.g. an
    alert recorded before it existed): the rule fires on that text and the ones before it, not on less.
    """

    rule: str
    category: str
    severity: Severity
    terms: tuple[str, ...] = ()
    snippet: str = ""
    matched_in: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "category": self.category,
            "severity": self.severity.label,
            "terms": list(self.terms),
            "snippet": self.snippet,
            "matched_in": self.matched_in,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Match:
        return cls(
            rule=data["rule"],
            category=data["category"],
            severity=Severity.parse(data["severity"]),
            terms=tuple(data.get("terms", ())),
            snippet=data.get("snippet", ""),
            matched_in=data.get("matched_in", ""),
        )


class AlertKind(enum.StrEnum):
    """What an alert is: a new story, another report of a known story, or a digest of several alerts."""

    ALERT = "alert"
    UPDATE = "update"
    DIGEST = "digest"


@dataclass(frozen=True, slots=True)
class Alert:
    """One story that matched one or more rules. `id` is stable: the same for every destination and retry.

    An `update` is a later report of a story already alerted: `story` is the first alert's id. For a new
    story `story` equals `id`. A `digest` (built by the outbox, never stored) folds `children` into one
    message. `materials` and `countries` are the evidence the rule pack recognised in the item;
    `glosses` pairs each Chinese term that fired with its English gloss from the pack's vocabularies.
    """

    id: str
    item: Item
    matches: tuple[Match, ...]
    created: datetime
    kind: AlertKind = AlertKind.ALERT
    story: str = ""
    materials: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    rules_version: str = ""
    glosses: tuple[tuple[str, str], ...] = ()
    children: tuple[Alert, ...] = ()
    # The id of the silence that muted this alert: recorded and listed, never delivered ("": not silenced).
    silenced_by: str = ""

    def __post_init__(self) -> None:
        if not self.story:
            object.__setattr__(self, "story", self.id)

    @property
    def severity(self) -> Severity:
        matches = self.matches or tuple(m for child in self.children for m in child.matches)
        return max((m.severity for m in matches), default=Severity.INFO)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.category for m in self.matches))

    @property
    def matched_in(self) -> str:
        """The least text that raised the alert: the earliest `matched_in` of its matches (in the order
        of `MATCHED_IN`), or "" when no match says."""
        known = [m.matched_in for m in self.matches if m.matched_in in MATCHED_IN]
        return min(known, key=MATCHED_IN.index, default="")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, used by the stores to persist alerts."""
        data: dict[str, Any] = {
            "id": self.id,
            "created": self.created.isoformat(),
            "item": item_to_dict(self.item),
            "matches": [m.to_dict() for m in self.matches],
            "kind": self.kind.value,
            "story": self.story,
            "materials": list(self.materials),
            "countries": list(self.countries),
            "rules_version": self.rules_version,
            "glosses": dict(self.glosses),
        }
        if self.silenced_by:  # only when set: alerts recorded before silences existed read the same
            data["silenced_by"] = self.silenced_by
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            id=data["id"],
            item=item_from_dict(data["item"]),
            matches=tuple(Match.from_dict(m) for m in data["matches"]),
            created=datetime.fromisoformat(data["created"]),
            kind=AlertKind(data.get("kind", "alert")),
            story=data.get("story", ""),
            materials=tuple(data.get("materials", ())),
            countries=tuple(data.get("countries", ())),
            rules_version=data.get("rules_version", ""),
            glosses=tuple((str(t), str(g)) for t, g in (data.get("glosses") or {}).items()),
            silenced_by=str(data.get("silenced_by") or ""),
        )


def item_to_dict(item: Item) -> dict[str, Any]:
    """A JSON-ready form of `item` (alerts and seen items persist items this way)."""
    return {
        "id": item.id,
        "source": item.source,
        "title": item.title,
        "link": item.link,
        "summary": item.summary,
        "content": item.content,
        "published": item.published.isoformat(),
        "lang": item.lang,
        "publisher": item.publisher,
    }


def item_from_dict(raw: Mapping[str, Any]) -> Item:
    """The item `item_to_dict` wrote."""
    return Item(
        id=raw["id"],
        source=raw["source"],
        title=raw["title"],
        link=raw["link"],
        summary=raw["summary"],
        content=raw["content"],
        published=datetime.fromisoformat(raw["published"]),
        lang=raw.get("lang"),
        publisher=raw.get("publisher") or "",
    )


@dataclass(frozen=True, slots=True)
class SeenItem:
    """A normalised item as one fetch saw it, matched or not, kept for a while so rule changes can be
    replayed on what the service actually saw (`rarewatch backtest`).

    `rules_version` is the rule pack that judged it then and `rules` the ids of the rules that fired
    (empty: it matched nothing).
    """

    item: Item
    fetched: datetime
    rules_version: str = ""
    rules: tuple[str, ...] = ()

    def to_dict(self, fetched: str | None = None) -> dict[str, Any]:
        """The JSON-ready form; `fetched`: `self.fetched.isoformat()` when the caller has it already (a
        fetch's items share one time)."""
        return {
            "item": item_to_dict(self.item),
            "fetched": self.fetched.isoformat() if fetched is None else fetched,
            "rules_version": self.rules_version,
            "rules": list(self.rules),
        }

    @property
    def item_id(self) -> str:
        """The seen item's id (as `SeenListing.item_id`: what the stores key a record by)."""
        return self.item.id

    def to_json(self, fetched: str | None = None) -> str:
        """`to_dict`'s form as JSON text (what the stores keep)."""
        return json_text(self.to_dict(fetched))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeenItem:
        return cls(
            item=item_from_dict(data["item"]),
            fetched=datetime.fromisoformat(data["fetched"]),
            rules_version=str(data.get("rules_version", "")),
            rules=tuple(str(r) for r in data.get("rules", ())),
        )


class SeenListing(NamedTuple):
    """A seen item no rule fired on, its item already JSON text: what an item worker sends of an item
    that wants nothing more of the service than its place in the seen-item log, so the service never
    builds it as an `Item`. `to_json` gives the text `SeenItem.to_json` gives for the same item (with
    `rules` empty), and the stores read it back as a `SeenItem`. A named tuple, not a frozen dataclass:
    a cold cycle makes one for nearly every item it fetches, and a tuple is made several times faster."""

    item_id: str
    item_json: str  # `item_json(item)`
    fetched: datetime
    rules_version: str = ""

    def to_json(self, fetched: str | None = None) -> str:
        """The seen item's JSON text, `SeenItem.to_dict`'s form, made around the item's text."""
        when = self.fetched.isoformat() if fetched is None else fetched
        return '{"item":' + self.item_json + _listing_tail(when, self.rules_version)


@functools.lru_cache(maxsize=64)
def _listing_tail(fetched: str, rules_version: str) -> str:
    """What follows the item in a `SeenListing`'s text (a fetch's listings share it)."""
    return "," + json_text({"fetched": fetched, "rules_version": rules_version, "rules": []})[1:]


SeenRecord = SeenItem | SeenListing
"""What the stores' `record_items` keeps: a seen item, or one whose item is JSON text already."""


def item_json(item: Item) -> str:
    """`item_to_dict(item)` as JSON text."""
    return json_text(item_to_dict(item))


def json_text(data: Mapping[str, Any]) -> str:
    """JSON text through orjson (a cold cycle writes tens of thousands of seen items), or the standard
    library for what orjson refuses (a lone surrogate in text from a JSON source)."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(data)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outbox record of one alert for one destination."""

    alert_id: str
    destination: str
    status: DeliveryStatus
    attempts: int
    created: datetime
    next_attempt: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    receipt: str | None = None  # what the destination answered, e.g. a Slack message ts (for threads)
    digest: bool = False  # held for a digest (a route's `digest:` or the storm guard), not sent alone


class Problem(enum.StrEnum):
    """A source-health problem (`rarewatch.policies.source_health`)."""

    FAILING = "failing"
    SILENT = "silent"


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What is remembered between polls: the listing's fingerprint, when it last changed, and the problem
    an alert was raised for (None: none is open)."""

    fingerprint: str | None = None
    changes: tuple[datetime, ...] = ()  # oldest first, the last few (the policy keeps KEEP_CHANGES)
    raised: Problem | None = None
    raised_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "changes": [c.isoformat() for c in self.changes],
            "raised": self.raised.value if self.raised else None,
            "raised_at": self.raised_at.isoformat() if self.raised_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceHealth:
        raised, raised_at = data.get("raised"), data.get("raised_at")
        return cls(
            fingerprint=data.get("fingerprint"),
            changes=tuple(datetime.fromisoformat(c) for c in data.get("changes") or ()),
            raised=Problem(raised) if raised else None,
            raised_at=datetime.fromisoformat(raised_at) if raised_at else None,
        )


@dataclass(frozen=True, slots=True)
class SourceState:
    """What rarewatch remembers about one source between polls."""

    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    not_before: datetime | None = None  # backoff or Retry-After: do not fetch before this time
    initialized: bool = False  # the first poll (initial lookback) has happened
    extra: dict[str, Any] = field(default_factory=dict)  # per-kind cursors (e.g. a JSON API's last date)
    health: SourceHealth = field(default_factory=lambda: SourceHealth())  # the source-health policy's memory

    def to_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "etag": self.etag,
            "last_modified": self.last_modified,
            "last_attempt": iso(self.last_attempt),
            "last_success": iso(self.last_success),
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "not_before": iso(self.not_before),
            "initialized": self.initialized,
            "extra": self.extra,
            "health": self.health.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceState:
        def dt(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if value else None

        return cls(
            etag=data.get("etag"),
            last_modified=data.get("last_modified"),
            last_attempt=dt("last_attempt"),
            last_success=dt("last_success"),
            last_error=data.get("last_error"),
            consecutive_failures=int(data.get("consecutive_failures", 0)),
            not_before=dt("not_before"),
            initialized=bool(data.get("initialized", False)),
            extra=dict(data.get("extra") or {}),
            health=SourceHealth.from_dict(data.get("health") or {}),
        )


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch of a source produced. `not_modified` means a 304: no entries, keep the validators."""

    entries: tuple[RawEntry, ...]
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    # A fetch that failed part-way (a JSON API's later page): the entries read before the failure are
    # kept and processed, and the poll is still that source's error (recorded, backed off).
    error: Exception | None = None


SILENCE_FIELDS: tuple[str, ...] = ("rule", "source", "category", "material", "story")
"""What a silence can match on: a rule id, a source name, a category, a material, or one story (its link,
or its alert id)."""


@dataclass(frozen=True, slots=True)
class Silence:
    """A mute, as Alertmanager's: from `starts` until `ends`, every new alert that fits all `matchers`
    (field, value) is recorded with `silenced_by` set to this silence's id, and not delivered.

    Expiring a silence sets `ends` to the time it was expired; it stays listed (with its reason and author)
    until the store forgets it.
    """

    id: str
    matchers: tuple[tuple[str, str], ...]
    starts: datetime
    ends: datetime
    reason: str
    author: str
    created: datetime

    def active(self, now: datetime) -> bool:
        """Whether it mutes alerts at `now`."""
        return self.starts <= now < self.ends

    def describe(self) -> str:
        """Its matchers as `field=value, ...`."""
        return ", ".join(f"{name}={value}" for name, value in self.matchers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [{"name": name, "value": value} for name, value in self.matchers],
            "starts": self.starts.isoformat(),
            "ends": self.ends.isoformat(),
            "reason": self.reason,
            "author": self.author,
            "created": self.created.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        return cls(
            id=str(data["id"]),
            matchers=tuple((str(m["name"]), str(m["value"])) for m in data["matchers"]),
            starts=datetime.fromisoformat(data["starts"]),
            ends=datetime.fromisoformat(data["ends"]),
            reason=str(data.get("reason", "")),
            author=str(data.get("author", "")),
            created=datetime.fromisoformat(data["created"]),
        )


class VoteKind(enum.StrEnum):
    """A reader's verdict on an alert (the Slack buttons, `POST /api/v1/alerts/{id}/feedback`)."""

    RELEVANT = "relevant"
    NOT_RELEVANT = "not_relevant"


@dataclass(frozen=True, slots=True)
class Vote:
    """One reader's feedback on one alert: `who` is the voter's stable identity (`slack:<user id>` for a
    Slack button, the caller's `who` through the API), `name` how to show them, `via` where the vote came
    from (`slack` or `api`). A store keeps one vote per (alert, who): a later one replaces it."""

    alert_id: str
    who: str
    vote: VoteKind
    at: datetime
    name: str = ""
    via: str = "api"

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "who": self.who,
            "vote": self.vote.value,
            "at": self.at.isoformat(),
            "name": self.name,
            "via": self.via,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vote:
        return cls(
            alert_id=str(data["alert_id"]),
            who=str(data["who"]),
            vote=VoteKind(data["vote"]),
            at=datetime.fromisoformat(data["at"]),
            name=str(data.get("name", "")),
            via=str(data.get("via", "api")),
        )
