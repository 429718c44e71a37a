"""The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/v1/openapi.json`.

Its schemas are generated from `rarewatch.api_models`, the models the handlers serialise through, so
the document describes what the API sends; the paths are written here, beside the parameters each
handler reads. OpenAPI 3.1 takes JSON Schema 2020-12 as it is, which is what pydantic writes.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from rarewatch import __version__
from rarewatch.api_backtest import BACKTEST_MAX_BYTES, YAML_TYPES
from rarewatch.api_feedback import FEEDBACK_MAX_BYTES
from rarewatch.api_items import Q_MAX
from rarewatch.api_models import MODELS, BacktestRequest, FeedbackRequest, MatchRequest, SilenceRequest
from rarewatch.api_outbox import OUTBOX_MAX
from rarewatch.api_query import ALERTS_MAX
from rarewatch.api_rules import MATCH_MAX_BYTES
from rarewatch.categories import ALERT_CATEGORIES
from rarewatch.models import Severity

_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "A parameter or body that is not valid",
    401: "A token is needed (`WWW-Authenticate` says which scheme)",
    403: "Disabled (no http.token nor http.enable_lifecycle), or a cross-site request",
    404: "No such source, destination, alert or silence, or nothing to retry",
    413: (
        f"The body is larger than the operation takes (match: {MATCH_MAX_BYTES // 1024} KiB, "
        f"feedback: {FEEDBACK_MAX_BYTES // 1024} KiB, backtest: {BACKTEST_MAX_BYTES // 1024} KiB)"
    ),
    415: "A body of another content type",
    503: "The store does not answer, or the scheduler is not running",
}
_REQUESTS = (MatchRequest, SilenceRequest, BacktestRequest, FeedbackRequest)
_READ = (400, 401, 503)
_WRITE = (401, 403, 415, 503)


@functools.cache
def document() -> dict[str, Any]:
    """The whole document (built once: the models do not change while the process runs)."""
    modes = [(m, "validation" if m in _REQUESTS else "serialization") for m in MODELS]
    _, defs = models_json_schema(modes, ref_template=_REF)  # type: ignore[arg-type]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rarewatch",
            "version": __version__,
            "description": "Alerts on rare-earth export controls: sources, alerts, rules, matching, outbox.",
        },
        "paths": _paths(),
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        # Reads need http.read_token only when it is set; state changes need http.token.
        "security": [{"bearer": []}, {}],
    }


def _paths() -> dict[str, Any]:
    return {
        "/api/v1/sources": {"get": _op("sources", "Each source's health", "SourcesResponse", _READ)},
        "/api/v1/alerts": {"get": _op("alerts", "Recent alerts", "AlertsResponse", _READ, _alert_params())},
        "/api/v1/rules": {"get": _op("rules", "The rules in use", "RulesResponse", (401,))},
        "/api/v1/match": {"post": _match_op()},
        "/api/v1/outbox": {"get": _op("outbox", "The outbox", "OutboxResponse", _READ, _outbox_params())},
        "/api/v1/outbox/purge": {
            "post": _op(
                "purgeOutbox",
                "Delete dead deliveries",
                "OutboxActionResponse",
                _WRITE,
                [_query("destination", {"type": "string"}, "Only this destination's")],
            )
        },
        "/api/v1/outbox/retry": {
            "post": _op(
                "retryOutbox",
                "Make dead and pending deliveries due now",
                "OutboxActionResponse",
                (*_WRITE, 404),
                [_query("destination", {"type": "string"}, "Only this destination's")],
            )
        },
        "/api/v1/outbox/{alert_id}/retry": {
            "post": _op(
                "retryAlert",
                "Make one alert's dead and pending deliveries due now",
                "OutboxActionResponse",
                (*_WRITE, 404),
                [_path("alert_id"), _query("destination", {"type": "string"}, "Only to this destination")],
            )
        },
        "/api/v1/alerts/{alert_id}/feedback": {"post": _feedback_op()},
        "/api/v1/silences": {
            "get": _op(
                "silences",
                "Active and pending silences",
                "SilencesResponse",
                _READ,
                [_query("all", {"type": "boolean", "default": False}, "The ended ones too")],
            ),
            "post": _body_op(
                _op("createSilence", "Add a silence", "SilenceView", (400, 401, 403, 413, 415, 503), ok=201),
                "SilenceRequest",
            ),
        },
        "/api/v1/silences/{id}/expire": {
            "post": _op("expireSilence", "End a silence now", "SilenceView", (*_WRITE, 404), [_path("id")])
        },
        "/api/v1/items": {
            "get": _op("items", "Kept items, matched or not", "ItemsResponse", _READ, _item_params())
        },
        "/api/v1/backtest": {"post": _backtest_op()},
        "/api/v1/sources/{name}/poll": {
            "post": _op(
                "pollSource",
                "Poll a source now, past its backoff",
                "PollResponse",
                (*_WRITE, 404),
                [_path("name")],
            )
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_error_responses((401,)),
                },
            }
        },
    }


def _op(
    op_id: str,
    summary: str,
    model: str,
    errors: tuple[int, ...],
    params: list[dict[str, Any]] | None = None,
    *,
    ok: int = 200,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {
            str(ok): {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": _ref(model)}}},
            },
            **_error_responses(errors),
        },
    }
    if params:
        op["parameters"] = params
    return op


def _match_op() -> dict[str, Any]:
    op = _op(
        "match",
        "Match one item against the rules in use (nothing is stored)",
        "MatchResponse",
        (400, 401, 413, 415),
        [_query("explain", {"type": "boolean", "default": False}, "Add why each close rule did not fire")],
    )
    op["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": _ref("MatchRequest")}},
            "text/plain": {"schema": {"type": "string"}},  # first line the title, the rest the summary
        },
    }
    return op


def _feedback_op() -> dict[str, Any]:
    op = _op(
        "alertFeedback",
        "Record a reader's vote on an alert (one per voter, the last wins), as the Slack buttons do",
        "FeedbackResponse",
        (*_WRITE, 400, 404, 413),
        [_path("alert_id")],
    )
    return _body_op(op, "FeedbackRequest")


def _body_op(op: dict[str, Any], model: str) -> dict[str, Any]:
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": _ref(model)}}}}
    return op


def _backtest_op() -> dict[str, Any]:
    op = _op(
        "backtest",
        "Replay the kept items through the rules in use with one file changed (nothing is stored)",
        "BacktestResponse",
        (401, 413, 415, 503),
        [
            _query("file", {"type": "string"}, "With a YAML body: the file name (default backtest.yaml)"),
            _query("since", {"type": "string"}, "With a YAML body: items fetched within (default 30d)"),
        ],
    )
    bad = {"application/json": {"schema": {"$ref": _ref("RuleErrorResponse")}}}
    op["responses"]["400"] = {
        "description": "A bad request, or a rule file that is not valid",
        "content": bad,
    }
    yaml = {"schema": {"type": "string"}}
    op["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": _ref("BacktestRequest")}},
            **{t: yaml for t in YAML_TYPES[:1]},
        },
    }
    return op


def _item_params() -> list[dict[str, Any]]:
    return [
        _query("limit", {"type": "integer", "minimum": 1, "default": 50}, f"At most {ALERTS_MAX} are listed"),
        _query("matched", {"type": "boolean"}, "Only items that fired a rule (true) or fired none (false)"),
        _query("q", {"type": "string", "maxLength": Q_MAX}, "Text in the title, summary or link (any case)"),
        _query("source", {"type": "string", "minLength": 1}, "Items from this source"),
        _query("cursor", {"type": "string"}, "The `next_cursor` of the previous page"),
    ]


def _alert_params() -> list[dict[str, Any]]:
    severities = [s.label for s in Severity]
    moment = {"type": "string"}
    return [
        _query("limit", {"type": "integer", "minimum": 1, "default": 50}, f"At most {ALERTS_MAX} are listed"),
        _query("unrouted", {"type": "boolean", "default": False}, "Only alerts no route took"),
        _query("category", {"type": "string", "enum": list(ALERT_CATEGORIES)}, "Alerts of this category"),
        _query("severity", {"type": "string", "enum": severities}, "Alerts of at least this severity"),
        _query("source", {"type": "string", "minLength": 1}, "Alerts from this source"),
        _query("material", {"type": "string", "minLength": 1}, "Alerts naming this material"),
        _query("country", {"type": "string", "minLength": 1}, "Alerts naming this country"),
        _query("since", moment, "Raised at or after: ISO 8601, or a duration back from now (24h)"),
        _query("until", moment, "Raised before: ISO 8601, or a duration back from now"),
        _query("cursor", {"type": "string"}, "The `next_cursor` of the previous page"),
    ]


def _outbox_params() -> list[dict[str, Any]]:
    return [
        _query("status", {"type": "string", "enum": ["pending", "dead"]}, "Only these (default: both)"),
        _query("destination", {"type": "string"}, "Only this destination"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": OUTBOX_MAX, "default": 100}, "Entries"),
    ]


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _error_responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _ref("ErrorResponse")}}}
    return {str(s): {"description": _ERRORS[s], "content": error} for s in sorted(statuses)}


def _ref(model: str) -> str:
    return _REF.format(model=model)


async def openapi(request: web.Request) -> web.Response:
    """`GET /api/v1/openapi.json`."""
    return web.json_response(document(), dumps=functools.partial(json.dumps, ensure_ascii=False))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
