"""What every handler of the HTTP API shares: the application keys, who may call what (bearer tokens,
compared in constant time), JSON bodies written through the `api_models`, and JSON errors.

Two tokens: `http.token` guards what changes state (`POST /-/reload`, polls, outbox retry and purge) and
also grants reads; `http.read_token`, when set, guards every read under `/api/v1`. `/metrics`, `/healthz`
and `/readyz` stay open either way: Prometheus and orchestrators probe them without credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from rarewatch.api_models import ErrorResponse
from rarewatch.runtime import Runtime
from rarewatch.scheduler import Poller

RUNTIME = web.AppKey("runtime", Runtime)
POLLER = web.AppKey("poller", Poller)
API_PREFIX = "/api/v1/"
REALM = 'Bearer realm="rarewatch"'


@dataclass(frozen=True)
class Lifecycle:
    """Who may call what. State changes (`POST /-/reload` and the other guarded POSTs): the holder of
    `token` (a bearer token), or, with `enabled` and no token, any client that sends JSON; neither: 403.
    Reads under `/api/v1`: anyone, unless `read_token` is set; then its holder or the holder of `token`."""

    token: str | None = None
    enabled: bool = False
    read_token: str | None = None


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


def json_body(model: BaseModel, status: int = 200, *, exclude_unset: bool = False) -> web.Response:
    """`model` as a JSON response: UTF-8 as it is (pydantic writes no `\\u` escapes)."""
    body = model.model_dump_json(exclude_unset=exclude_unset)
    return web.Response(body=body.encode(), status=status, content_type="application/json", charset="utf-8")


def error(status: int, message: str) -> web.Response:
    """The JSON error every 4xx and 5xx of the API answers with."""
    return json_body(ErrorResponse(error=message), status)


def refusal(request: web.Request, lifecycle: Lifecycle) -> web.Response | None:
    """Why this request may not change state (a JSON error response), or None when it may.

    A browser sends a cross-site "simple" request (a form, or fetch without a preflight) with no
    Content-Type or a text/plain, form or multipart one, and never with an Authorization header: asking
    for the token, or for `application/json` when there is none, shuts every such request out.
    """
    if lifecycle.token is None and not lifecycle.enabled:
        return error(403, f"{what(request)} is disabled: set http.token or http.enable_lifecycle: true")
    if lifecycle.token is not None and not bearer_matches(request, lifecycle.token):
        return unauthorized(f"{what(request)} needs the http.token as 'Authorization: Bearer <token>'")
    # With the token, an empty request is enough (curl -X POST); any body, or no token, must be JSON.
    if (request.body_exists or lifecycle.token is None) and request.content_type != "application/json":
        return error(415, f"{what(request)} takes an empty body with the token, or JSON")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return error(403, f"{what(request)} refuses cross-site requests")
    return None


def read_refusal(request: web.Request, lifecycle: Lifecycle) -> web.Response | None:
    """Why this request may not read the API (401), or None when it may: no `read_token` is configured,
    or the request carries it or the write token."""
    if lifecycle.read_token is None:
        return None
    # Both compared every time: which token matched is not told by how long the answer took.
    as_reader = bearer_matches(request, lifecycle.read_token)
    as_writer = lifecycle.token is not None and bearer_matches(request, lifecycle.token)
    if as_reader or as_writer:
        return None
    return unauthorized(f"{what(request)} needs the http.read_token as 'Authorization: Bearer <token>'")


def unauthorized(message: str) -> web.Response:
    response = error(401, message)
    response.headers["WWW-Authenticate"] = REALM
    return response


def what(request: web.Request) -> str:
    return f"{request.method} {request.path}"


def bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: how long the comparison takes says nothing about how much of the token matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


READ_POSTS = frozenset({f"{API_PREFIX}match", f"{API_PREFIX}backtest"})  # compute, store nothing


def is_read(request: web.Request) -> bool:
    """A read of the API: any GET or HEAD under `/api/v1/`, and the POSTs that only compute
    (`POST /api/v1/match`, `POST /api/v1/backtest`)."""
    if not request.path.startswith(API_PREFIX):
        return False
    return request.method in ("GET", "HEAD") or request.path in READ_POSTS


@web.middleware
async def guard_reads(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads under `/api/v1/` need a token when `http.read_token` is set (see `read_refusal`)."""
    if is_read(request):
        refused = read_refusal(request, request.app.get(LIFECYCLE, Lifecycle()))
        if refused is not None:
            return refused
    return await handler(request)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An HTTP error raised under `/api/v1/` (unknown path, wrong method, a handler's 400, a body too
    large) answered as `{"status": "error", "error": ...}`, its headers (Allow, WWW-Authenticate) kept.
    Only `HTTPException` is caught: anything else is a bug, and aiohttp's plain 500 (logged) says so."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(API_PREFIX):
            raise
        response = error(exc.status, _message(exc))
        for name in ("Allow", "WWW-Authenticate", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response


def _message(exc: web.HTTPException) -> str:
    text = exc.text or ""
    default = f"{exc.status}: {exc.reason}"
    return exc.reason if text in ("", default) else text
