"""The Alertmanager destination: each alert becomes one Prometheus Alertmanager alert.

POSTs `[{labels, annotations, startsAt, endsAt, generatorURL}]` to `{url}/api/v2/alerts`, so that the
team's existing Alertmanager routing, grouping, silences and receivers (PagerDuty, email, ...) apply.

- `labels` identify the Alertmanager alert: `alertname` (the first match's rule id), `category` (that
  match's category), `severity`, `source`, `story` (the id of the story's first alert), and
  `materials` and `countries` (the evidence the rule pack recognised, comma-separated without spaces in
  the pack's order, e.g. `gallium,germanium`: route or silence on them with `=~".*gallium.*"`). `story`
  keeps distinct stories distinct alerts, and the same story sent again (a retry, a later report from
  another outlet, a second delivery) has the same label set,
  so Alertmanager updates its one alert instead of adding another. Empty values are left out
  (Alertmanager drops them anyway); the names are fixed and valid Prometheus label names.
- `annotations` carry the text: `title`, `link`, `snippet`, `summary`, `rules` and `categories` (both
  comma-separated), `publisher` (the publisher's name as the feed gives it; absent when it gives none),
  and for an item in Chinese `gloss`, its one-line English gloss (absent otherwise).
- `generatorURL` is the story's link when it is an http(s) URL.
- `startsAt` is when rarewatch raised the alert; `endsAt` is `resolve_after` later, so the alert
  resolves by itself (rarewatch has no "story is over" event). A delivery so late that this moment has
  passed gets `endsAt` = now + `resolve_after` instead: it should still fire, not arrive resolved.

Sending, headers, timeouts and the classification of responses are the webhook notifier's (2xx ok;
4xx not retryable except 429, quoting Alertmanager's message; 5xx, timeouts and connection errors
retryable; Retry-After honoured; redirects not followed): `AlertmanagerNotifier` is a `WebhookNotifier`
with an Alertmanager body. Its `webhook-id` and `webhook-timestamp` headers are ignored by Alertmanager
but let a proxy in front of it deduplicate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from rarewatch.clock import Clock, SystemClock
from rarewatch.configtypes import HttpUrl, PositiveDuration
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import HttpDestinationConfig, NotifierDeps
from rarewatch.delivery.payload import SUMMARY_MAX, rfc3339, truncate
from rarewatch.delivery.presentation import present
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.models import Alert

API_PATH = "/api/v2/alerts"
DEFAULT_RESOLVE_AFTER = timedelta(hours=24)
SNIPPET_MAX = 1000
FALLBACK_ALERTNAME = "rarewatch"  # for an alert without matches of its own


class AlertmanagerNotifier:
    """Posts alerts to one Alertmanager (or an HA pair's load balancer) through the shared session."""

    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 10,
        headers: Mapping[str, str] | None = None,
        resolve_after: timedelta = DEFAULT_RESOLVE_AFTER,
        clock: Clock | None = None,
    ) -> None:
        """`url` is Alertmanager's base URL (with its route prefix, if any), e.g. `http://am:9093`.

        Raises ValueError for a non-http(s) URL or a `resolve_after` that is not positive.
        """
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ValueError(f"alertmanager URL must be http(s), not {urlsplit(url).scheme or 'schemeless'}")
        if resolve_after <= timedelta(0):
            raise ValueError("resolve_after must be positive")
        self.name = name
        self.url = url.rstrip("/") + API_PATH
        self._resolve_after = resolve_after
        self._clock: Clock = clock or SystemClock()
        self._post = WebhookNotifier(
            name, self.url, session, headers=headers, timeout=timeout, clock=self._clock, body=self._body
        )

    async def send(self, alert: Alert) -> None:
        """POST the alert once; return on 2xx, else raise a classified DeliveryError."""
        await self._post.send(alert)

    async def close(self) -> None:
        """Nothing to release: the ClientSession belongs to the application."""
        await self._post.close()

    def _body(self, alert: Alert) -> bytes:
        alerts = [postable_alert(alert, self._resolve_after, self._clock.now())]
        # "replace": a lone surrogate from a broken feed must not make the alert undeliverable.
        return json.dumps(alerts, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def postable_alert(alert: Alert, resolve_after: timedelta, now: datetime) -> dict[str, Any]:
    """The Alertmanager API v2 `postableAlert` for `alert` (see the module docstring)."""
    result: dict[str, Any] = {
        "labels": alert_labels(alert),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.created),
        "endsAt": rfc3339(ends_at(alert.created, resolve_after, now)),
    }
    if _is_web_url(alert.item.link):
        result["generatorURL"] = alert.item.link
    return result


def alert_labels(alert: Alert) -> dict[str, str]:
    """The identifying labels: the same for every send of the same story."""
    first = alert.matches[0] if alert.matches else None  # a digest of several alerts has none of its own
    values = {
        "alertname": first.rule if first else FALLBACK_ALERTNAME,
        "category": first.category if first else "",
        "severity": alert.severity.label,
        "source": alert.item.source,
        "story": alert.story,
        # Comma-separated, in the pack's order: routes and silences can match them with regexes
        # (`materials=~".*gallium.*"`).
        "materials": ",".join(alert.materials),
        "countries": ",".join(alert.countries),
    }
    return {name: value for name, value in values.items() if value}


def alert_annotations(alert: Alert) -> dict[str, str]:
    """The descriptive text; may change between sends without making a new Alertmanager alert."""
    view = present(alert)
    annotations = {
        "title": alert.item.title,
        "link": alert.item.link,
        "snippet": truncate(view.snippet, SNIPPET_MAX),
        "summary": truncate(alert.item.summary, SUMMARY_MAX),
        "rules": ", ".join(view.rules),
        "categories": ", ".join(alert.categories),
    }
    if alert.item.publisher:
        annotations["publisher"] = alert.item.publisher
    if view.gloss:
        annotations["gloss"] = view.gloss
    return annotations


def ends_at(created: datetime, resolve_after: timedelta, now: datetime) -> datetime:
    """When the alert resolves: `resolve_after` after it was raised, or after now for a late delivery."""
    planned = created + resolve_after
    return planned if planned > now else now + resolve_after


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


class AlertmanagerDestination(HttpDestinationConfig):
    """A Prometheus Alertmanager (API v2): one Alertmanager alert per story, resolving by itself."""

    type: Literal["alertmanager"]
    url: HttpUrl  # the base URL, with any route prefix: http://alertmanager:9093
    timeout: PositiveDuration = timedelta(seconds=10)
    resolve_after: PositiveDuration = timedelta(hours=24)  # endsAt = raised + resolve_after


def build(config: AlertmanagerDestination, deps: NotifierDeps) -> Notifier:
    """The `AlertmanagerNotifier` of a configured `alertmanager` destination."""
    return AlertmanagerNotifier(
        config.name,
        config.url,
        deps.session,
        timeout=config.timeout.total_seconds(),
        headers=config.resolved_headers(),
        resolve_after=config.resolve_after,
        clock=deps.clock,
    )
