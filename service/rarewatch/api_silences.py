"""Silences over HTTP, as `rarewatch silence list|add|expire` on the command line: `GET /api/v1/silences`
(active and pending; `?all=true` the ended ones too), `POST /api/v1/silences` (a `SilenceRequest`,
checked as the CLI checks it, with a did-you-mean) and `POST /api/v1/silences/{id}/expire`.

The POSTs change state: guarded as `/-/reload` (`api_base.refusal`). Matchers are checked against the
rule pack in use and the sources this process polls.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import ValidationError

from rarewatch.api_base import LIFECYCLE, RUNTIME, error, json_body, refusal
from rarewatch.api_models import SilenceMatcher, SilenceRequest, SilencesResponse, SilenceView
from rarewatch.api_rules import problems
from rarewatch.durations import parse_positive_duration
from rarewatch.errors import ConfigError, StoreError
from rarewatch.models import Silence
from rarewatch.silence_check import check_matchers, checked_story_values, did_you_mean, known_names

SILENCE_MAX_BYTES = 64 * 1024  # a request body of POST /api/v1/silences
_PREFIX = "matchers."  # how an error names a matcher field (the CLI says `--rule`)


def view(silence: Silence, now: datetime) -> SilenceView:
    """A silence as the API shows it, with its state at `now`."""
    state = "active" if silence.active(now) else "pending" if silence.starts > now else "expired"
    return SilenceView(
        id=silence.id,
        matchers=[SilenceMatcher(name=n, value=v) for n, v in silence.matchers],
        starts=silence.starts.isoformat(),
        ends=silence.ends.isoformat(),
        reason=silence.reason,
        author=silence.author,
        created=silence.created.isoformat(),
        state=state,
    )


async def list_silences(request: web.Request) -> web.Response:
    """The active and pending silences, oldest first; with `?all=true` the ended ones too."""
    show_all = _flag(request.query.get("all", "false"), "all")
    runtime = request.app[RUNTIME]
    now = runtime.clock.now()
    try:
        found = await runtime.store.silences()
    except StoreError as exc:
        return error(503, f"store unavailable: {exc}")
    shown = [view(s, now) for s in found if show_all or s.ends > now]
    return json_body(SilencesResponse(silences=shown))


async def add_silence(request: web.Request) -> web.Response:
    """Store a new silence from now; 201 with it, 400 (with a did-you-mean) for a matcher naming nothing
    or a duration that is not one."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    body = await request.read()
    if len(body) > SILENCE_MAX_BYTES:
        return error(413, f"the body is larger than {SILENCE_MAX_BYTES // 1024} KiB")
    try:
        wanted = SilenceRequest.model_validate_json(body)
    except ValidationError as exc:
        return error(400, f"not a silence: {problems(exc)}")
    try:
        duration = parse_positive_duration(wanted.duration)
    except (ValueError, OverflowError) as exc:
        return error(400, f"duration: {exc}")
    if not wanted.reason.strip() or not wanted.author.strip():
        return error(400, "reason and author must say why and who (they are shown with the silence)")
    runtime = request.app[RUNTIME]
    known = known_names(runtime.ruleset, (p.source.name for p in runtime.sources))
    try:
        checked = check_matchers([(m.name, m.value) for m in wanted.matchers], known, prefix=_PREFIX)
        checked = await checked_story_values(runtime.store, checked, prefix=_PREFIX)
    except ConfigError as exc:
        return error(400, str(exc))
    except StoreError as exc:
        return error(503, f"store unavailable, no silence added: {exc}")
    now = runtime.clock.now()
    try:
        ends = now + duration
    except OverflowError:
        return error(400, f"duration: {wanted.duration!r} ends past the year 9999")
    silence = Silence(str(uuid.uuid4()), checked, now, ends, wanted.reason, wanted.author, now)
    try:
        await runtime.store.add_silence(silence, now)
    except StoreError as exc:
        return error(503, f"store unavailable, no silence added: {exc}")
    return json_body(view(silence, now), 201)


async def expire_silence(request: web.Request) -> web.Response:
    """End a silence now (one that already ended keeps its end); 404 with a did-you-mean for no such id.
    What it muted stays recorded and is not sent."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME]
    silence_id = request.match_info["id"]
    now = runtime.clock.now()
    try:
        silence = await runtime.store.expire_silence(silence_id, now)
        known = [] if silence is not None else [s.id for s in await runtime.store.silences()]
    except StoreError as exc:
        return error(503, f"store unavailable, nothing expired: {exc}")
    if silence is None:
        return error(404, f"no silence {silence_id!r}{did_you_mean(silence_id, known)}")
    return json_body(view(silence, now))


def _flag(value: str, name: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise web.HTTPBadRequest(text=f"{name} must be true or false")
    return value.lower() == "true"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", add_silence)
    app.router.add_post("/api/v1/silences/{id}/expire", expire_silence)
