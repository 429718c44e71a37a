"""`POST /api/v1/alerts/{alert_id}/feedback`: a reader's vote on an alert from a webhook receiver (or any
client), the same vote a click on the Slack buttons records (`rarewatch.slack_interactions`).

The body is a `FeedbackRequest` (`{"vote": "relevant" | "not_relevant", "who": "..."}`); `who` is stored
as given, so one voter keeps one vote per alert and the last one wins. It changes state: guarded as
`/-/reload` (`http.token`). 400 for a body that is no `FeedbackRequest`, 404 for an alert the store does
not hold, 413 past `FEEDBACK_MAX_BYTES`, 503 when the store does not answer.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from rarewatch.api_base import LIFECYCLE, RUNTIME, error, json_body, refusal
from rarewatch.api_models import FeedbackRequest, FeedbackResponse
from rarewatch.errors import StoreError
from rarewatch.feedback import find_alert
from rarewatch.models import Vote, VoteKind

FEEDBACK_MAX_BYTES = 16 * 1024


async def feedback(request: web.Request) -> web.Response:
    """Record one vote on one alert (see the module docstring)."""
    refused = refusal(request, request.app[LIFECYCLE])
    if refused is not None:
        return refused
    body = await _body(request)
    try:
        given = FeedbackRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise web.HTTPBadRequest(text=f"not a vote: {problems}") from None
    runtime = request.app[RUNTIME]
    alert_id = request.match_info["alert_id"]
    vote = Vote(alert_id, given.who, VoteKind(given.vote), runtime.clock.now(), name=given.who, via="api")
    try:
        if await find_alert(runtime.store, alert_id) is None:
            return error(404, f"no alert {alert_id!r} (unknown, or forgotten)")
        await runtime.store.record_vote(vote)
    except StoreError as exc:
        return error(503, f"store unavailable, vote not recorded: {exc}")
    return json_body(
        FeedbackResponse(alert_id=alert_id, vote=given.vote, who=given.who, at=vote.at.isoformat())
    )


async def _body(request: web.Request) -> bytes:
    """The body, refused (413) once it is known to pass `FEEDBACK_MAX_BYTES`."""
    if request.content_length is not None and request.content_length > FEEDBACK_MAX_BYTES:
        raise _too_large()
    body = await request.content.read(FEEDBACK_MAX_BYTES + 1)
    if len(body) > FEEDBACK_MAX_BYTES:
        raise _too_large()
    return body


def _too_large() -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=FEEDBACK_MAX_BYTES,
        actual_size=FEEDBACK_MAX_BYTES + 1,
        text=f"the body is larger than {FEEDBACK_MAX_BYTES // 1024} KiB",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/alerts/{alert_id}/feedback", feedback)
