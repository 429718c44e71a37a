"""The HTTP API of `rarewatch run`: metrics, and read-only views of sources and alerts."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from rarewatch.delivery.payload import alert_payload
from rarewatch.errors import ConfigError, RuleError, StoreError
from rarewatch.runtime import Runtime
from rarewatch.scheduler import Poller

RUNTIME = web.AppKey("runtime", Runtime)
ALERTS_MAX = 500  # alerts in one /api/v1/alerts response
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
        state = await runtime.store.get_source_state(polled.source.name)
        entry = {"name": polled.source.name, "interval_seconds": polled.interval.total_seconds()}
        entry.update(state.to_dict() if state else {"never_polled": True})
        entry.pop("extra", None)
        out.append(entry)
    return web.json_response({"sources": out})


async def alerts(request: web.Request) -> web.Response:
    """The newest alerts, as webhook payloads, each with `unrouted` (no route took it: recorded, not sent
    unless resent; `?unrouted=true` lists only those): at most `ALERTS_MAX` (`?limit=`, default 50) and at
    most `ALERTS_MAX_BYTES` of JSON. `truncated` is true when the byte bound left some of them out."""
    try:
        limit = max(1, min(ALERTS_MAX, int(request.query.get("limit", "50"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number") from None
    only_unrouted = request.query.get("unrouted", "false").lower()
    if only_unrouted not in ("true", "false"):
        raise web.HTTPBadRequest(text="unrouted must be true or false")
    store = request.app[RUNTIME].store
    if only_unrouted == "true":
        recent = await store.unrouted(limit)
        flagged = {a.id for a in recent}
    else:
        recent = await store.recent_alerts(limit)
        flagged = await store.unrouted_ids([a.id for a in recent])
    envelope = 64  # {"alerts":[ ... ],"truncated":false}
    payloads = ({**alert_payload(a), "unrouted": a.id in flagged} for a in recent)
    body, truncated = bounded_json_list(payloads, ALERTS_MAX_BYTES - envelope)
    tail = b'],"truncated":' + (b"true}" if truncated else b"false}")
    return web.Response(body=b'{"alerts":[' + body + tail, content_type="application/json")


def bounded_json_list(values: Iterable[Any], max_bytes: int) -> tuple[bytes, bool]:
    """The JSON array items of `values`, comma-separated, as many as fit in `max_bytes` (in order), and
    whether some were left out. `values` is consumed lazily: nothing past the bound is built."""
    parts: list[bytes] = []
    size = 0
    for value in values:
        part = json.dumps(value, separators=(",", ":")).encode()
        size += len(part) + (1 if parts else 0)
        if size > max_bytes:
            return b",".join(parts), True
        parts.append(part)
    return b",".join(parts), False


@dataclass(frozen=True)
class Lifecycle:
    """Who may call `POST /-/reload`: the holder of `token` (a bearer token), or, with `enabled` and no
    token, any client that sends JSON. Neither: the endpoint answers 403."""

    token: str | None = None
    enabled: bool = False


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def _refusal(request: web.Request, lifecycle: Lifecycle) -> web.Response | None:
    """Why this request may not reload the rules (a JSON error response), or None when it may.

    A browser sends a cross-site "simple" request (a form, or fetch without a preflight) with no
    Content-Type or a text/plain, form or multipart one, and never with an Authorization header: asking
    for the token, or for `application/json` when there is none, shuts every such request out.
    """
    if lifecycle.token is None and not lifecycle.enabled:
        return _error(403, f"{_what(request)} is disabled: set http.token or http.enable_lifecycle: true")
    if lifecycle.token is not None and not _bearer_matches(request, lifecycle.token):
        response = _error(401, f"{_what(request)} needs the http.token as 'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="rarewatch"'
        return response
    # With the token, an empty request is enough (curl -X POST); any body, or no token, must be JSON.
    if (request.body_exists or lifecycle.token is None) and request.content_type != "application/json":
        return _error(415, f"{_what(request)} takes an empty body with the token, or JSON")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return _error(403, f"{_what(request)} refuses cross-site requests")
    return None


def _what(request: web.Request) -> str:
    return f"{request.method} {request.path}"


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: how long the comparison takes says nothing about how much of the token matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status)


async def reload(request: web.Request) -> web.Response:
    """`POST /-/reload` (as Alertmanager and Prometheus): load the rule files again.

    200 with the new pack's version, or 400 with the error (file, line, rule id) while the rules in use
    stay in use; 401, 403 or 415 (see `_refusal`) for a request that may not reload. The rules are read
    and compiled in a worker thread, so health checks and polls go on meanwhile.
    """
    refused = _refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    try:
        ruleset = await runtime.reload_rules()
    except (RuleError, ConfigError) as exc:
        log.error("rules not reloaded, the previous ones stay in use: %s", exc)
        return web.json_response({"status": "error", "error": str(exc)}, status=400)
    return web.json_response({"status": "ok", "rules": len(ruleset.rules), "version": ruleset.version})


POLLER = web.AppKey("poller", Poller)


async def poll_source(request: web.Request) -> web.Response:
    """`POST /api/v1/sources/{name}/poll`: poll one source now, ignoring (and, on success, ending) its
    backoff. Guarded like `/-/reload` (it changes state); 404 for an unknown source, 503 when the
    scheduler is not running or the store is away."""
    refused = _refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    poller = request.app.get(POLLER)
    if poller is None:
        return _error(503, "the scheduler is not running")
    name = request.match_info["name"]
    try:
        run = await poller.poll_now(name)
    except KeyError:
        known = ", ".join(p.source.name for p in poller.sources)
        return _error(404, f"no source named {name!r} (known: {known})")
    except StoreError as exc:
        return _error(503, f"store unavailable, poll not run: {exc}")
    return web.json_response(
        {
            "status": "ok",
            "source": run.source,
            "result": run.status,
            "items": run.entries,
            "matched": run.matched,
            "alerts": len(run.alerts),
            "error": run.error,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/sources", sources)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_post("/-/reload", reload)
    app.router.add_post("/api/v1/sources/{name}/poll", poll_source)
