"""The HTTP API of `rarewatch run`: metrics, and read-only views of sources and alerts."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from rarewatch.delivery.payload import alert_payload
from rarewatch.errors import ConfigError, RuleError, StoreError
from rarewatch.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)

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
    body = runtime.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def sources(request: web.Request) -> web.Response:
    """Each source's health: last success, last error, consecutive failures, backoff."""
    runtime = request.app[RUNTIME]
    out = []
    for polled in runtime.sources:
        state = await runtime.store.get_source_state(polled.source.name)
        entry = {"name": polled.source.name, "interval_seconds": polled.interval.total_seconds()}
        entry.update(state.to_dict() if state else {"never_polled": True})
        entry.pop("extra", None)
        out.append(entry)
    return web.json_response({"sources": out})


async def alerts(request: web.Request) -> web.Response:
    """The newest alerts, as webhook payloads, each with `unrouted` (no route took it: recorded, not sent
    unless resent). `?unrouted=true` lists only those."""
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number") from None
    only_unrouted = request.query.get("unrouted", "false").lower()
    if only_unrouted not in ("true", "false"):
        raise web.HTTPBadRequest(text="unrouted must be true or false")
    store = request.app[RUNTIME].store
    if only_unrouted == "true":
        found = await store.unrouted(limit)
        flagged = {a.id for a in found}
    else:
        found = await store.recent_alerts(limit)
        flagged = await store.unrouted_ids([a.id for a in found])
    return web.json_response({"alerts": [{**alert_payload(a), "unrouted": a.id in flagged} for a in found]})


async def reload(request: web.Request) -> web.Response:
    """`POST /-/reload` (as Alertmanager and Prometheus): load the rule files again.

    200 with the new pack's version, or 400 with the error (file, line, rule id) while the rules in use
    stay in use.
    """
    runtime = request.app[RUNTIME]
    try:
        ruleset = runtime.reload_rules()
    except (RuleError, ConfigError) as exc:
        log.error("rules not reloaded, the previous ones stay in use: %s", exc)
        return web.json_response({"status": "error", "error": str(exc)}, status=400)
    return web.json_response({"status": "ok", "rules": len(ruleset.rules), "version": ruleset.version})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/sources", sources)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_post("/-/reload", reload)
