"""The webhook payload: a versioned, flat JSON object per alert. A public contract: change it additively.

Webhooks POST it; the jsonl destination writes one per line. Fields (all always present):

- `version` (integer): the payload format version, currently `1`; bumped only for incompatible changes.
- `type` (string): always `"alert"`.
- `id` (string): the alert's stable id, the same for every destination and every retry (and sent as
  the `webhook-id` header), so receivers can deduplicate on it.
- `test` (boolean): `true` only for the alerts `rarewatch test-destination` sends (their `id` starts
  with `test-` and their `title` with `[rarewatch test]`).
- `title` (string): the story's headline, plain text.
- `link` (string): the canonical link to the story.
- `source` (string): the name of the configured source that published it.
- `publisher` (string): the publisher's name as the feed gives it (RSS `<source>`, `dc:publisher` or
  the channel title; Atom the entry's `<source>`, the feed title or author; a JSON source's
  `fields.publisher`; an HTML list page's `og:site_name`), one line of plain text; `""` when unknown.
- `published` (string): when the source published it, RFC 3339 UTC, e.g. `2026-01-31T08:00:00Z`.
- `created` (string): when rarewatch raised the alert, RFC 3339 UTC.
- `severity` (string): the highest severity of the matches: `info`, `low`, `medium`, `high`, `critical`.
- `categories` (array of string): the matches' categories, deduplicated, in match order.
- `summary` (string): the story's summary, plain text, at most 500 characters (cut at a word boundary
  when possible, ending in `…`).
- `matches` (array of object): one per rule that fired, sorted by `rule`, each with `rule` (the rule
  id), `category`, `severity`, `terms` (array of string: the terms that matched), `snippet` (the
  text around the first hit) and `matched_in` (as below, for this rule).
- `matched_in` (string): which text raised the alert: `"title"`, `"summary"`, `"content"` (the feed's
  own full text) or `"article"` (the linked article, read because the item named a watched material,
  agency or list but fired no rule on its own); the least text any match needed. `""` when unknown
  (alerts recorded before this field existed, digests).
- `story` (string): the id of the first alert of this story; equals `id` for `type: "alert"`.
- `materials`, `countries` (array of string): the elements, minerals, magnets and countries the rule
  pack recognised in the item (canonical lower-case English names), which routes can match on.
- `rules_version` (string): the version (content hash) of the rule pack that raised the alert.
- `gloss` (string): for an item in Chinese (`lang` zh, or Chinese in the title), a one-line English
  gloss built offline from the rule pack's vocabularies: categories, countries, materials and the
  matched Chinese terms with their English glosses (see `presentation`). `""` for every other item
  (and for a digest; its `alerts` carry their own).

`type` is `"update"` for a later report of a known story (the same canonical link, or a near-duplicate
title from another outlet): `story` names the first alert, `id` is the update's own. `type` is
`"digest"` for a message folding several alerts (a route's `digest:`, or a destination's
`max_alerts_per_hour` storm guard): then `alerts` holds their payloads and `count` their number, and
`id` is the digest's own id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rarewatch.delivery.presentation import gloss_line
from rarewatch.models import Alert, AlertKind, Item, Match, Severity
from rarewatch.normalize import truncate as truncate  # its home is normalize; re-exported for notifiers

PAYLOAD_VERSION = 1
SUMMARY_MAX = 500
TEST_ID_PREFIX = "test-"
TEST_TITLE_PREFIX = "[rarewatch test]"


def digest_alert(children: Sequence[Alert], now: datetime, destination: str) -> Alert:
    """One alert folding several: the title counts them, the summary lists their titles."""
    ordered = sorted(children, key=lambda a: (-a.severity, a.created))
    count = len(ordered)
    titles = "; ".join(a.item.title for a in ordered[:10])
    more = f" (and {count - 10} more)" if count > 10 else ""
    item = Item(
        id=f"digest-{destination}-{int(now.timestamp())}",
        source="rarewatch",
        title=f"{count} rare-earth alert{'s' if count != 1 else ''} ({', '.join(_categories(ordered))})",
        link="",
        summary=titles + more,
        content="",
        published=now,
    )
    return Alert(
        id=item.id, item=item, matches=(), created=now, kind=AlertKind.DIGEST, children=tuple(ordered)
    )


def _categories(alerts: Sequence[Alert]) -> list[str]:
    return list(dict.fromkeys(c for a in alerts for c in a.categories))


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON-ready payload of `alert` (see the module docstring for the fields)."""
    item = alert.item
    payload = {
        "version": PAYLOAD_VERSION,
        "type": alert.kind.value,
        "id": alert.id,
        "test": alert.id.startswith(TEST_ID_PREFIX),
        "title": item.title,
        "link": item.link,
        "source": item.source,
        "publisher": item.publisher,
        "published": rfc3339(item.published),
        "created": rfc3339(alert.created),
        "severity": alert.severity.label,
        "categories": list(alert.categories),
        "summary": truncate(item.summary, SUMMARY_MAX),
        "matches": [_match_payload(m) for m in sorted(alert.matches, key=lambda m: m.rule)],
        "story": alert.story,
        "materials": list(alert.materials),
        "countries": list(alert.countries),
        "rules_version": alert.rules_version,
        "gloss": gloss_line(alert),
        "matched_in": alert.matched_in,
    }
    if alert.kind is AlertKind.DIGEST:
        payload["alerts"] = [alert_payload(child) for child in alert.children]
        payload["count"] = len(alert.children)
    return payload


def _match_payload(match: Match) -> dict[str, Any]:
    # Built here rather than with Match.to_dict(): that one is the storage format and may change freely.
    return {
        "rule": match.rule,
        "category": match.category,
        "severity": match.severity.label,
        "terms": list(match.terms),
        "snippet": match.snippet,
        "matched_in": match.matched_in,
    }


def rfc3339(when: datetime) -> str:
    """`when` as RFC 3339 UTC with a `Z`, whole seconds. A naive datetime is taken to be UTC."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_alert(now: datetime) -> Alert:
    """A clearly marked test alert for `rarewatch test-destination`.

    Its id is `test-<unix milliseconds>` so that receivers which deduplicate on `webhook-id` do not drop
    a second test; its title starts with `[rarewatch test]` and the payload says `"test": true`.
    """
    item = Item(
        id=f"{TEST_ID_PREFIX}item",
        source="rarewatch",
        title=f"{TEST_TITLE_PREFIX} Test alert from rarewatch, no action needed",
        link="https://example.invalid/rarewatch-test",
        summary="This is a test alert sent by `rarewatch test-destination` to check a destination.",
        content="",
        published=now,
        publisher="rarewatch",
    )
    match = Match(
        rule="rarewatch-test",
        category="test",
        severity=Severity.INFO,
        terms=("test",),
        snippet="This is a test alert sent by rarewatch.",
    )
    return Alert(
        id=f"{TEST_ID_PREFIX}{int(now.timestamp() * 1000)}", item=item, matches=(match,), created=now
    )


# pytest would otherwise try to collect `test_alert` as a test wherever it is imported.
test_alert.__test__ = False  # type: ignore[attr-defined]
