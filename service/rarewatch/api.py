"""The HTTP API of `rarewatch run`: metrics, views of sources and alerts, and the lifecycle endpoints.

The routes of every `/api/v1` module are added here (`add_routes`); what they share (keys, tokens, JSON
bodies and errors) lives in `rarewatch.api_base`, their bodies in `rarewatch.api_models`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from rarewatch import (
    api_backtest,
    api_feedback,
    api_items,
    api_openapi,
    api_outbox,
    api_rules,
    api_silences,
)
from rarewatch.api_base import (
    LIFECYCLE,
    POLLER,
    RUNTIME,
    Lifecycle,
    error,
    guard_reads,
    json_body,
    json_errors,
    refusal,
)
from rarewatch.api_models import AlertView, PollResponse, ReloadResponse, SourcesResponse, SourceView
from rarewatch.api_query import (
    ALERTS_MAX,
    SCAN_MAX,
    QueryError,
    encode_cursor,
    parse_query,
    select,
)
from rarewatch.delivery.payload import alert_payload
from rarewatch.errors import ConfigError, RuleError, StoreError
from rarewatch.models import Alert
from rarewatch.store import Store

__all__ = ["ALERTS_MAX", "LIFECYCLE", "POLLER", "RUNTIME", "Lifecycle", "add_routes"]

ALERTS_MAX_BYTES = 8 * 1024 * 1024  # bytes of JSON in one /api/v1/alerts response

log = logging.getLogger(__name__)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; the outbox depth is read from the store now (its gauges keep their last
    values, and `rarewatch_store_up` is 0, when the store does not answer)."""
    runtime = request.app[RUNTIME]
    try:
        stats = await runtime.store.outbox_stats()
    except StoreError as exc:
        log.warning("metrics: outbox depth unavailable: %s", exc)
        stats = None
    runtime.metrics.record_outbox(stats, runtime.notifiers, runtime.clock.now())
    runtime.metrics.record_replicas(runtime.leases.live_replicas())
    body = runtime.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def sources(request: web.Request) -> web.Response:
    """Each source's health: last success, last error, consecutive failures, backoff."""
    runtime = request.app[RUNTIME]
    out = []
    for polled in runtime.sources:
        try:
            state = await runtime.store.get_source_state(polled.source.name)
        except StoreError as exc:
            return error(503, f"store unavailable: {exc}")
        entry = {"name": polled.source.name, "interval_seconds": polled.interval.total_seconds()}
        entry.update(state.to_dict() if state else {"never_polled": True})
        entry.pop("extra", None)
        out.append(SourceView.model_validate(entry))
    # Unset fields left out: a source never polled is {name, interval_seconds, never_polled}, as before.
    return json_body(SourcesResponse(sources=out), exclude_unset=True)


async def alerts(request: web.Request) -> web.Response:
    """The newest alerts, as webhook payloads, each with `unrouted` (no route took it: recorded, not sent
    unless resent; `?unrouted=true` lists only those) and `silenced_by` (the silence that muted it, or
    null), filtered by the query (`rarewatch.api_query`): at most `ALERTS_MAX` (`?limit=`, default 50)
    and at most `ALERTS_MAX_BYTES` of JSON. `truncated` is true
    when the byte bound left some of them out; `next_cursor` pages on past the last one listed."""
    runtime = request.app[RUNTIME]
    try:
        query = parse_query(request.query, runtime.clock.now())
    except QueryError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    # The store has no query for the filters: look through its newest alerts (enough of them to fill
    # this page, and to tell whether another follows).
    wanted = SCAN_MAX if query.filtered else query.limit + 1
    try:
        recent, flagged = await _recent(runtime.store, query.unrouted, wanted)
    except StoreError as exc:
        return error(503, f"store unavailable: {exc}")
    page = _Page(query.limit, ALERTS_MAX_BYTES - _ENVELOPE)
    page.fill(select(recent, query), flagged)
    cursor = b"null" if page.next_cursor is None else f'"{page.next_cursor}"'.encode()
    tail = b'],"truncated":' + (b"true" if page.truncated else b"false") + b',"next_cursor":' + cursor + b"}"
    body = b'{"alerts":[' + b",".join(page.parts) + tail
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def _recent(store: Store, only_unrouted: bool, count: int) -> tuple[list[Alert], set[str]]:
    """The newest `count` alerts (unrouted ones only, or all), and which of them are unrouted."""
    if only_unrouted:
        recent = await store.unrouted(count)
        return recent, {a.id for a in recent}
    recent = await store.recent_alerts(count)
    return recent, await store.unrouted_ids([a.id for a in recent])


_ENVELOPE = 256  # bytes around the alerts: {"alerts":[ ... ],"truncated":false,"next_cursor":"..."}


class _Page:
    """One page of alerts as JSON (each an `AlertView`), bounded in count and in bytes; built lazily,
    so nothing past the bounds is serialised."""

    def __init__(self, limit: int, max_bytes: int) -> None:
        self.limit, self.max_bytes = limit, max_bytes
        self.parts: list[bytes] = []
        self.truncated = False
        self.next_cursor: str | None = None

    def fill(self, alerts: Iterable[Alert], unrouted: set[str]) -> None:
        size, last = 0, None
        for alert in alerts:
            if len(self.parts) == self.limit:
                self.next_cursor = encode_cursor(last) if last else None
                return
            fields = {"unrouted": alert.id in unrouted, "silenced_by": alert.silenced_by or None}
            view = AlertView.model_validate({**alert_payload(alert), **fields})
            part = view.model_dump_json().encode()
            size += len(part) + (1 if self.parts else 0)
            if size > self.max_bytes:
                self.truncated = True
                self.next_cursor = encode_cursor(last) if last else None
                return
            self.parts.append(part)
            last = alert


async def reload(request: web.Request) -> web.Response:
    """`POST /-/reload` (as Alertmanager and Prometheus): load the rule files again.

    200 with the new pack's version, or 400 with the error (file, line, rule id) while the rules in use
    stay in use; 401, 403 or 415 (see `api_base.refusal`) for a request that may not reload. The rules
    are read and compiled in a worker thread, so health checks and polls go on meanwhile.
    """
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    try:
        ruleset = await runtime.reload_rules()
    except (RuleError, ConfigError) as exc:
        log.error("rules not reloaded, the previous ones stay in use: %s", exc)
        return error(400, str(exc))
    return json_body(ReloadResponse(rules=len(ruleset.rules), version=ruleset.version))


async def poll_source(request: web.Request) -> web.Response:
    """`POST /api/v1/sources/{name}/poll`: poll one source now, ignoring (and, on success, ending) its
    backoff. Guarded like `/-/reload` (it changes state); 404 for an unknown source, 503 when the
    scheduler is not running or the store is away."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    poller = request.app.get(POLLER)
    if poller is None:
        return error(503, "the scheduler is not running")
    name = request.match_info["name"]
    try:
        run = await poller.poll_now(name)
    except KeyError:
        known = ", ".join(p.source.name for p in poller.sources)
        return error(404, f"no source named {name!r} (known: {known})")
    except StoreError as exc:
        return error(503, f"store unavailable, poll not run: {exc}")
    return json_body(
        PollResponse(
            source=run.source,
            result=run.status,
            items=run.entries,
            matched=run.matched,
            alerts=len(run.alerts),
            error=run.error,
        )
    )


def add_routes(app: web.Application) -> None:
    """The API's routes, and its middlewares: JSON errors (outermost), then the read guard."""
    app.middlewares.extend([json_errors, guard_reads])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/sources", sources)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_post("/-/reload", reload)
    app.router.add_post("/api/v1/sources/{name}/poll", poll_source)
    api_rules.add_routes(app)
    api_outbox.add_routes(app)
    api_feedback.add_routes(app)
    api_silences.add_routes(app)
    api_items.add_routes(app)
    api_backtest.add_routes(app)
    api_openapi.add_routes(app)
