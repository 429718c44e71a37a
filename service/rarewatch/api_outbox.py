"""The delivery outbox over HTTP, as `rarewatch outbox list|retry|purge` on the command line:
`GET /api/v1/outbox` (per-destination counts, and the pending and dead deliveries, bounded),
`POST /api/v1/outbox/{destination}/retry` (that destination's dead and pending deliveries due now) and
`POST /api/v1/outbox/purge` (delete dead deliveries). The POSTs change state: guarded as `/-/reload`."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from rarewatch.api_base import LIFECYCLE, RUNTIME, error, json_body, refusal
from rarewatch.api_models import DeliveryView, OutboxActionResponse, OutboxCounts, OutboxResponse
from rarewatch.errors import StoreError
from rarewatch.models import Delivery, DeliveryStatus

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


async def retry(request: web.Request) -> web.Response:
    """Make one destination's dead and pending deliveries due now (attempts and last error kept)."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    destination = request.match_info["destination"]
    try:
        if destination not in runtime.notifiers and destination not in await runtime.store.outbox_stats():
            known = ", ".join(sorted(runtime.notifiers)) or "none"
            return error(404, f"no destination named {destination!r} (configured: {known})")
        count = await runtime.store.retry(runtime.clock.now(), destination)
    except StoreError as exc:
        return error(503, f"store unavailable, nothing retried: {exc}")
    return json_body(OutboxActionResponse(count=count))


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
    app.router.add_post("/api/v1/outbox/{destination}/retry", retry)
