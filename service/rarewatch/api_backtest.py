"""`POST /api/v1/backtest`: replay the kept items through the rule pack in use with one file changed, as
`rarewatch backtest` does with a pack on disk, and answer which alerts it would add, remove or change,
with the terms.

The body is a `BacktestRequest` (JSON), or the YAML text itself (`application/yaml`, with `?file=` and
`?since=`). The posted file replaces the pack's file of the same name (so one file of the pack can be
edited while the vocabularies of the others stay), or is added to the pack. A rule file that is not
valid is a 400 naming the file and line. It only reads (nothing is stored): `http.read_token` applies, as
for `POST /api/v1/match`; neither content type is one a cross-site form can send without a preflight.
Replays run one at a time, in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from rarewatch.api_base import RUNTIME, error, json_body
from rarewatch.api_models import BacktestRequest, BacktestResponse, RuleErrorResponse
from rarewatch.api_rules import problems
from rarewatch.backtest import Report, alert_candidates, replay
from rarewatch.durations import parse_positive_duration
from rarewatch.errors import RuleError, StoreError
from rarewatch.models import Alert, SeenItem
from rarewatch.ruleset import Ruleset
from rarewatch.ruleset.loader import load_texts, read_rule_files
from rarewatch.store import Store

BACKTEST_MAX_BYTES = 1024 * 1024  # a request body: a rule file is tens of KiB
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
_RUNNING = web.AppKey("backtest_lock", asyncio.Lock)


async def backtest(request: web.Request) -> web.Response:
    """`POST /api/v1/backtest`."""
    wanted = _request(request.content_type, await _body(request), request.query)
    try:
        since = parse_positive_duration(wanted.since)
    except (ValueError, OverflowError) as exc:
        raise web.HTTPBadRequest(text=f"since: {exc}") from None
    runtime = request.app[RUNTIME]
    start = runtime.clock.now() - since
    async with request.app[_RUNNING]:
        try:
            ruleset, replaced = await asyncio.to_thread(_pack, runtime.rule_paths, wanted.file, wanted.rules)
        except RuleError as exc:
            body = RuleErrorResponse(error=str(exc), file=exc.file, line=exc.line, rule=exc.rule_id)
            return json_body(body, 400)
        try:
            seen = await runtime.store.seen_items(start)
            history = await _history(runtime.store, seen)
        except StoreError as exc:
            return error(503, f"store unavailable: {exc}")
        report = await asyncio.to_thread(replay, seen, ruleset, history)
    return json_body(_response(report, start, wanted.file, replaced))


def _pack(rule_paths: Sequence[Path], name: str, text: str) -> tuple[Ruleset, bool]:
    """The pack in use with `text` as its file `name` (replacing the file so named, or added)."""
    files = read_rule_files(rule_paths)
    kept = [(f, t) for f, t in files if Path(f).name != name]
    replaced = len(kept) < len(files)
    return load_texts([*kept, (name, text)]), replaced


async def _history(store: Store, seen: Sequence[SeenItem]) -> dict[str, Alert]:
    """The recorded alerts of the items that alerted when fetched (an alert's id is its item's id)."""
    history: dict[str, Alert] = {}
    for alert_id in alert_candidates(seen):
        if (alert := await store.get_alert(alert_id)) is not None:
            history[alert_id] = alert
    return history


def _response(report: Report, start: datetime, file: str, replaced: bool) -> BacktestResponse:
    data = report.to_dict()
    return BacktestResponse.model_validate(
        {**data, "since": start.isoformat(), "file": file, "replaced": replaced}
    )


def _request(content_type: str, body: bytes, query: Mapping[str, str]) -> BacktestRequest:
    if content_type == "application/json":
        try:
            return BacktestRequest.model_validate_json(body)
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=f"not a backtest request: {problems(exc)}") from None
    if content_type in YAML_TYPES:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="the rule file is not UTF-8 text") from None
        params = {k: query[k] for k in ("file", "since") if k in query}
        try:
            return BacktestRequest.model_validate({"rules": text, **params})
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=f"not a backtest request: {problems(exc)}") from None
    raise web.HTTPUnsupportedMediaType(text="send application/json (a BacktestRequest) or application/yaml")


async def _body(request: web.Request) -> bytes:
    """The body, refused (413) as soon as it is known to pass `BACKTEST_MAX_BYTES`."""
    if request.content_length is not None and request.content_length > BACKTEST_MAX_BYTES:
        raise _too_large()
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > BACKTEST_MAX_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=BACKTEST_MAX_BYTES,
        actual_size=BACKTEST_MAX_BYTES + 1,
        text=f"the body is larger than {BACKTEST_MAX_BYTES // 1024} KiB",
    )


def add_routes(app: web.Application) -> None:
    app[_RUNNING] = asyncio.Lock()
    app.router.add_post("/api/v1/backtest", backtest)
