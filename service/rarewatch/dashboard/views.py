"""The dashboard's pages, each a GET rendered on the server from the store and the rules in use:

- `/` overview: the sources and their health, alerts per category per day (an SVG chart), recent alerts
  with filters (`?category=`, `?severity=`, `?source=`, as `GET /api/v1/alerts`);
- `/items`: kept items, by default those that matched nothing (`?matched=`, `?q=` search), to spot misses;
- `/silences`: the silences, a form to add one and a button to expire one (the page calls the API);
- `/playground`: paste text (or `?item=` a kept item), see which rules fire, the terms highlighted, and why
  the close rules did not (the page calls `POST /api/v1/match?explain=true`);
- `/backtest`: paste or upload a rule file and replay the kept items (`POST /api/v1/backtest`).

Authorisation is the API's: with `http.read_token` set a page needs it (or `http.token`) as
`Authorization: Bearer`. A browser without it gets the sign-in page (200, no data), whose form keeps the
token in `sessionStorage`; the page script then sends it with every `fetch`, pages included. Everything
shown is escaped (Jinja2 autoescape; the script writes text, never HTML), a link is a link only when it is
http(s), and a Content-Security-Policy allows only this origin's script and style.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from rarewatch import __version__
from rarewatch.api_base import LIFECYCLE, RUNTIME, Lifecycle, read_refusal
from rarewatch.api_items import EPOCH, ITEMS_SCAN, item_view, page, parse_item_query
from rarewatch.api_query import SCAN_MAX, QueryError, parse_query, select
from rarewatch.api_silences import view as silence_view
from rarewatch.categories import ALERT_CATEGORIES
from rarewatch.dashboard.chart import bar_chart, colour, daily_counts
from rarewatch.errors import StoreError
from rarewatch.models import SILENCE_FIELDS, Alert, Severity, SourceState
from rarewatch.runtime import Runtime

ALERTS_SHOWN = 100
CHART_DAYS = 14
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("rarewatch.dashboard", "templates"),
    autoescape=True,  # every {{ value }} is escaped: titles and summaries come from the sources
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _http_link(url: str) -> str | None:
    """`url` when it is http(s), else None: `javascript:` and `data:` links are shown as text only."""
    return url if url.lower().startswith(("http://", "https://")) else None


_ENV.filters["http_link"] = _http_link
_ENV.filters["colour"] = colour


def render(request: web.Request, template: str, **context: Any) -> web.Response:
    """A page: the template rendered with the shared context, and the headers every page carries."""
    html = _ENV.get_template(template).render(
        version=__version__,
        path=request.path,
        read_token=request.app.get(LIFECYCLE, Lifecycle()).read_token is not None,
        **context,
    )
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    _headers(response)
    return response


def _headers(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"


def _signed_out(request: web.Request) -> web.Response | None:
    """The sign-in page when the request may not read (see `api_base.read_refusal`), else None."""
    if read_refusal(request, request.app.get(LIFECYCLE, Lifecycle())) is None:
        return None
    return render(request, "login.html", title="Sign in")


async def overview(request: web.Request) -> web.Response:
    """`/`: sources and their health, the chart, recent alerts with filters."""
    if (login := _signed_out(request)) is not None:
        return login
    runtime = request.app[RUNTIME]
    now = runtime.clock.now()
    filters = _alert_filters(request.query)
    try:
        query = parse_query(filters, now)
        problem = None
    except QueryError as exc:
        query, problem = parse_query({}, now), str(exc)
    try:
        sources = await _sources(runtime)
        recent = await runtime.store.recent_alerts(SCAN_MAX)
    except StoreError as exc:
        return render(request, "error.html", title="Store unavailable", message=str(exc))
    shown = [_alert_row(a) for _, a in zip(range(ALERTS_SHOWN), select(recent, query), strict=False)]
    chart = Markup(bar_chart(daily_counts(recent, now, CHART_DAYS)))  # escaped in bar_chart
    return render(
        request,
        "overview.html",
        title="Overview",
        sources=sources,
        alerts=shown,
        chart=chart,
        filters=filters,
        problem=problem,
        categories=ALERT_CATEGORIES,
        severities=[s.label for s in Severity],
        source_names=sorted({s["name"] for s in sources} | {a.item.source for a in recent}),
    )


def _alert_filters(query: Mapping[str, str]) -> dict[str, str]:
    """The alert filters of the page's query, empty ones (a form's "any") left out."""
    return {k: v for k in ("category", "severity", "source") if (v := query.get(k, "").strip())}


async def _sources(runtime: Runtime) -> list[dict[str, Any]]:
    out = []
    for polled in runtime.sources:
        state = await runtime.store.get_source_state(polled.source.name)
        health = state.health.raised if state is not None and state.health is not None else None
        out.append(
            {
                "name": polled.source.name,
                "interval": polled.interval.total_seconds(),
                "state": state,
                "status": _status(state, health),
            }
        )
    return out


def _status(state: SourceState | None, health: str | None) -> str:
    """One word for the sources table: never polled, the open health problem, failing or ok."""
    if state is None:
        return "never polled"
    if health:
        return health
    return "failing" if state.consecutive_failures else "ok"


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "created": alert.created.isoformat(timespec="minutes"),
        "title": alert.item.title,
        "link": alert.item.link,
        "source": alert.item.source,
        "severity": alert.severity.label,
        "categories": alert.categories,
        "rules": [m.rule for m in alert.matches],
        "terms": sorted({t for m in alert.matches for t in m.terms}),
        "silenced_by": alert.silenced_by,
    }


async def items(request: web.Request) -> web.Response:
    """`/items`: the kept items that matched nothing (`?matched=all|true`), searchable with `?q=`."""
    if (login := _signed_out(request)) is not None:
        return login
    matched = request.query.get("matched", "false")
    params = {k: v for k, v in request.query.items() if k in ("q", "cursor") and v.strip()}
    if matched in ("true", "false"):
        params["matched"] = matched
    try:
        query = parse_item_query(params)
        problem = None
    except QueryError as exc:
        query, problem = parse_item_query({"matched": "false"}), str(exc)
    try:
        seen = await request.app[RUNTIME].store.seen_items(EPOCH, ITEMS_SCAN)
    except StoreError as exc:
        return render(request, "error.html", title="Store unavailable", message=str(exc))
    found, cursor = page(seen, query)
    return render(
        request,
        "items.html",
        title="Items",
        items=[item_view(s) for s in found],
        q=params.get("q", ""),
        matched=matched if matched in ("true", "all") else "false",
        next_cursor=cursor,
        problem=problem,
    )


async def silences(request: web.Request) -> web.Response:
    """`/silences`: every kept silence (the ended ones last), the form to add one."""
    if (login := _signed_out(request)) is not None:
        return login
    runtime = request.app[RUNTIME]
    now = runtime.clock.now()
    try:
        found = await runtime.store.silences()
    except StoreError as exc:
        return render(request, "error.html", title="Store unavailable", message=str(exc))
    views = sorted((silence_view(s, now) for s in found), key=lambda v: v.state == "expired")
    # `?story=ID` (the overview's "silence" link on an alert) and the other fields fill the form.
    prefill = {k: v for k, v in request.query.items() if k in SILENCE_FIELDS}
    return render(
        request,
        "silences.html",
        title="Silences",
        silences=views,
        prefill=prefill,
        rules=sorted(r.id for r in runtime.ruleset.rules),
        sources=[p.source.name for p in runtime.sources],
        categories=ALERT_CATEGORIES,
    )


async def playground(request: web.Request) -> web.Response:
    """`/playground`: the text box (filled from a kept item with `?item=`)."""
    if (login := _signed_out(request)) is not None:
        return login
    text, item_id = "", request.query.get("item")
    if item_id:
        try:
            seen = await request.app[RUNTIME].store.seen_items(EPOCH, ITEMS_SCAN)
        except StoreError as exc:
            return render(request, "error.html", title="Store unavailable", message=str(exc))
        for s in seen:
            if s.item.id == item_id:
                text = f"{s.item.title}\n{s.item.summary}"
                break
    return render(request, "playground.html", title="Rule playground", text=text, item_id=item_id or "")


async def backtest_page(request: web.Request) -> web.Response:
    """`/backtest`: a rule file to paste or upload, and the replay's result."""
    if (login := _signed_out(request)) is not None:
        return login
    files = sorted({origin.file for origin in request.app[RUNTIME].ruleset.origins.values()})
    return render(request, "backtest.html", title="Backtest", files=files)


async def static(request: web.Request) -> web.StreamResponse:
    """The page script and style (no data in them: served without a token)."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = importlib.resources.files("rarewatch.dashboard").joinpath("static", name).read_bytes()
    response = web.Response(body=body, content_type=STATIC[name], charset="utf-8")
    _headers(response)
    response.headers["Cache-Control"] = "no-cache"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", overview)
    app.router.add_get("/items", items)
    app.router.add_get("/silences", silences)
    app.router.add_get("/playground", playground)
    app.router.add_get("/backtest", backtest_page)
    app.router.add_get("/static/{name}", static)
