"""The delivery outbox over HTTP, as `rarewatch outbox list|retry|purge` on the command line:
`GET /api/v1/outbox` (per-destination counts, and the pending and dead deliveries, bounded),
`POST /api/v1/outbox/retry` (dead and pending deliveries due now, of one destination with
`?destination=`), `POST /api/v1/outbox/{alert_id}/retry` (one alert's) and `POST /api/v1/outbox/purge`
(delete dead deliveries). The POSTs change state: guarded as `/-/reload`."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from rarewatch.api_base import LIFECYCLE, RUNTIME, error, json_body, refusal
from rarewatch.api_models import DeliveryView, OutboxActionResponse, OutboxCounts, OutboxResponse
from rarewatch.errors import StoreError
from rarewatch.models import Delivery, DeliveryStatus
from rarewatch.runtime import Runtime

OUTBOX_DEFAULT, OUTBOX_MAX = 100, 1000  # entries in one GET /api/v1/outbox
_LISTED = (DeliveryStatus.PENDING, DeliveryStatus.DEAD)


async def outbox(request: web.Request) -> web.Response:
    """Counts per destination, and the oldest pending and dead deliveries (`?status=`, `?destination=`,
    `?limit=` up to `OUTBOX_MAX`)."""
    statuses = _statuses(request.query.get("status"))
    destination = request.query.get("destination")
    limit = _limit(request.query.get("limit"))
    store = request.app[RUNTIME].store
    try:
        stats = await store.outbox_stats()
        rows = [d for s in statuses for d in await store.deliveries(s, destination, limit + 1)]
    except StoreError as exc:
        return error(503, f"store unavailable: {exc}")
    rows.sort(key=lambda d: d.created)
    counts = {
        name: OutboxCounts(pending=s.pending, dead=s.dead, oldest_pending=_iso(s.oldest_pending))
        for name, s in sorted(stats.items())
        if destination is None or name == destination
    }
    entries = [_view(d) for d in rows[:limit]]
    return json_body(OutboxResponse(destinations=counts, entries=entries, truncated=len(rows) > limit))


async def retry_all(request: web.Request) -> web.Response:
    """Make the dead and pending deliveries (of `?destination=` only, when given) due now, attempts and
    last error kept: `rarewatch outbox retry [--destination]`."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    destination = request.query.get("destination")
    try:
        if destination is not None and not await _known(runtime, destination):
            known = ", ".join(sorted(runtime.notifiers)) or "none"
            return error(404, f"no destination named {destination!r} (configured: {known})")
        count = await runtime.store.retry(runtime.clock.now(), destination)
    except StoreError as exc:
        return error(503, f"store unavailable, nothing retried: {exc}")
    return json_body(OutboxActionResponse(count=count))


async def retry_alert(request: web.Request) -> web.Response:
    """Make one alert's dead and pending deliveries (to `?destination=` only, when given) due now; 404
    when it has none."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    alert_id, destination = request.match_info["alert_id"], request.query.get("destination")
    try:
        count = await runtime.store.retry(runtime.clock.now(), destination, alert_id)
    except StoreError as exc:
        return error(503, f"store unavailable, nothing retried: {exc}")
    if count == 0:
        to = f" to {destination!r}" if destination is not None else ""
        return error(404, f"alert {alert_id!r} has no dead or pending delivery{to}")
    return json_body(OutboxActionResponse(count=count))


async def _known(runtime: Runtime, destination: str) -> bool:
    """Configured, or still holding deliveries (a destination removed from the configuration)."""
    return destination in runtime.notifiers or destination in await runtime.store.outbox_stats()


async def purge(request: web.Request) -> web.Response:
    """Delete the dead deliveries (of `?destination=` only, when given)."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    destination = request.query.get("destination")
    try:
        count = await request.app[RUNTIME].store.purge(DeliveryStatus.DEAD, destination)
    except StoreError as exc:
        return error(503, f"store unavailable, nothing purged: {exc}")
    return json_body(OutboxActionResponse(count=count))


def _statuses(value: str | None) -> tuple[DeliveryStatus, ...]:
    if value is None:
        return _LISTED
    if value not in _LISTED:
        raise web.HTTPBadRequest(text=f"status must be pending or dead (got {value!r})")
    return (DeliveryStatus(value),)


def _limit(value: str | None) -> int:
    if value is None:
        return OUTBOX_DEFAULT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= OUTBOX_MAX:
        raise web.HTTPBadRequest(text=f"limit must be a whole number from 1 to {OUTBOX_MAX} (got {value!r})")
    return int(value)


def _view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        alert_id=d.alert_id,
        destination=d.destination,
        status=d.status.value,
        attempts=d.attempts,
        created=d.created.isoformat(),
        next_attempt=d.next_attempt.isoformat(),
        last_error=d.last_error,
        digest=d.digest,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/outbox", outbox)
    app.router.add_post("/api/v1/outbox/purge", purge)
    app.router.add_post("/api/v1/outbox/retry", retry_all)
    app.router.add_post("/api/v1/outbox/{alert_id}/retry", retry_alert)
