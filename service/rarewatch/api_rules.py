"""`GET /api/v1/rules` (the rules in use, with file:line and the pack version) and `POST /api/v1/match`
(an item's matches, and with `?explain=true` why the rules it came close to did not fire: the same code
as `rarewatch match --explain`). Both only read: `http.read_token` applies, nothing is stored."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from rarewatch.api_base import RUNTIME, json_body
from rarewatch.api_models import MatchRequest, MatchResponse, MatchView, RulesResponse, RuleView, WhyNotView
from rarewatch.normalize import plain_text
from rarewatch.ruleset import Ruleset

MATCH_MAX_BYTES = 256 * 1024  # a request body of POST /api/v1/match; more is refused with 413
_TEXT_FIELDS = ("title", "summary", "content")


async def rules(request: web.Request) -> web.Response:
    """Every rule in use, in pack order, with where it is defined."""
    ruleset = request.app[RUNTIME].ruleset
    views = []
    for rule in ruleset.rules:
        origin = ruleset.origins.get(rule.id)
        views.append(
            RuleView(
                id=rule.id,
                title=rule.title,
                category=rule.category,
                severity=rule.severity.label,
                file=origin.file if origin else "",
                line=origin.line if origin else 0,
            )
        )
    return json_body(RulesResponse(version=ruleset.version, rules=views))


async def match(request: web.Request) -> web.Response:
    """Match one item against the rules in use: a JSON `MatchRequest`, or plain text (its first line is
    the title, the rest the summary). 400 for a body that is not an item, 413 past `MATCH_MAX_BYTES`,
    415 for another content type."""
    explain = _explain(request)
    item = _item(request.content_type, await _body(request), request.charset)
    ruleset = request.app[RUNTIME].ruleset
    return json_body(_matches(ruleset, item, explain), exclude_unset=True)


def _matches(ruleset: Ruleset, item: MatchRequest, explain: bool) -> MatchResponse:
    fields = {name: plain_text(getattr(item, name)) for name in _TEXT_FIELDS}
    found = ruleset.match_fields(fields, source=item.source, lang=item.lang)
    views = [
        MatchView(
            rule=m.rule,
            category=m.category,
            severity=m.severity.label,
            terms=list(m.terms),
            snippet=m.snippet,
        )
        for m in found
    ]
    if not explain:
        return MatchResponse(rules_version=ruleset.version, matches=views)
    why = [WhyNotView.model_validate(r) for r in ruleset.why_not(fields, source=item.source)]
    return MatchResponse(rules_version=ruleset.version, matches=views, why_not=why)


def _explain(request: web.Request) -> bool:
    value = request.query.get("explain", "false").lower()
    if value not in ("true", "false"):
        raise web.HTTPBadRequest(text="explain must be true or false")
    return value == "true"


async def _body(request: web.Request) -> bytes:
    """The request body, refused (413) as soon as it is known to pass the bound: by its Content-Length,
    or while reading (a chunked body has none)."""
    if request.content_length is not None and request.content_length > MATCH_MAX_BYTES:
        raise _too_large()
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > MATCH_MAX_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=MATCH_MAX_BYTES,
        actual_size=MATCH_MAX_BYTES + 1,
        text=f"the body is larger than {MATCH_MAX_BYTES // 1024} KiB",
    )


def _item(content_type: str, body: bytes, charset: str | None) -> MatchRequest:
    if content_type == "application/json":
        try:
            return MatchRequest.model_validate_json(body)
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=f"not an item: {problems(exc)}") from None
    if content_type == "text/plain":
        try:
            text = body.decode(charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise web.HTTPBadRequest(text=f"the text is not valid {charset or 'utf-8'}") from None
        title, _, summary = text.strip().partition("\n")
        return MatchRequest(title=title, summary=summary)
    raise web.HTTPUnsupportedMediaType(text="send application/json (an item) or text/plain")


def problems(exc: ValidationError) -> str:
    """pydantic's errors, one line: where and what, without its documentation links."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/rules", rules)
    app.router.add_post("/api/v1/match", match)
