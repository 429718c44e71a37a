"""`GET /api/v1/items`: the items the store kept (matched or not, see `store_items:`), newest first by
fetch time, to spot what the rules missed: `?matched=false` lists only those that fired no rule,
`?q=` keeps those whose title, summary or link holds the text (case-insensitive), `?source=` one
source's; pages of `?limit=` (default 50, at most 500) with `next_cursor`.

The store has no query for items: the handler reads the newest `ITEMS_SCAN` and filters here, so filters
and pages reach that far back, no further.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from rarewatch.api_base import RUNTIME, error, json_body
from rarewatch.api_models import SUMMARY_MAX, ItemsResponse, SeenItemView
from rarewatch.api_query import Position, QueryError, decode_cursor, encode_position, parse_flag, parse_limit
from rarewatch.errors import StoreError
from rarewatch.models import SeenItem

ITEMS_SCAN = 10_000  # the newest kept items a filtered or paged request looks through
Q_MAX = 200  # characters of `?q=`
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # `seen_items(EPOCH)`: every kept item


@dataclass(frozen=True, slots=True)
class ItemQuery:
    limit: int
    matched: bool | None = None  # None: both
    q: str | None = None  # lower case
    source: str | None = None
    after: Position | None = None

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.matched, self.q, self.source, self.after))

    def admits(self, seen: SeenItem) -> bool:
        item = seen.item
        return (
            (self.matched is None or bool(seen.rules) == self.matched)
            and (self.source is None or item.source == self.source)
            and (self.q is None or self.q in f"{item.title}\n{item.summary}\n{item.link}".lower())
        )


def parse_item_query(query: Mapping[str, str]) -> ItemQuery:
    """The `ItemQuery` of a query string; raises `QueryError` (a 400) for a bad parameter."""
    q = query.get("q")
    if q is not None and len(q) > Q_MAX:
        raise QueryError(f"q must be at most {Q_MAX} characters")
    source = query.get("source")
    if source is not None and not source.strip():
        raise QueryError("source must not be empty")
    return ItemQuery(
        limit=parse_limit(query.get("limit")),
        matched=parse_flag(query, "matched") if "matched" in query else None,
        q=(q.strip().lower() or None) if q is not None else None,
        source=source,
        after=decode_cursor(query["cursor"]) if "cursor" in query else None,
    )


def page(seen: Iterable[SeenItem], query: ItemQuery) -> tuple[list[SeenItem], str | None]:
    """The items of the page, newest first, and the cursor past its last one (None: no more)."""
    ordered = sorted(seen, key=_order, reverse=True)
    out: list[SeenItem] = []
    for s in ordered:
        if query.after is not None and _order(s) >= (query.after.created, query.after.id):
            continue
        if not query.admits(s):
            continue
        if len(out) == query.limit:
            last = out[-1]
            return out, encode_position(last.fetched, last.item.id)
        out.append(s)
    return out, None


def _order(seen: SeenItem) -> tuple[datetime, str]:
    return (seen.fetched, seen.item.id)


def item_view(seen: SeenItem) -> SeenItemView:
    item = seen.item
    return SeenItemView(
        id=item.id,
        title=item.title,
        link=item.link,
        source=item.source,
        published=item.published.isoformat(),
        fetched=seen.fetched.isoformat(),
        summary=item.summary[:SUMMARY_MAX],
        rules_version=seen.rules_version,
        rules=list(seen.rules),
        matched=bool(seen.rules),
    )


async def items(request: web.Request) -> web.Response:
    """`GET /api/v1/items`."""
    try:
        query = parse_item_query(request.query)
    except QueryError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    wanted = ITEMS_SCAN if query.filtered else query.limit + 1
    try:
        seen = await request.app[RUNTIME].store.seen_items(EPOCH, wanted)
    except StoreError as exc:
        return error(503, f"store unavailable: {exc}")
    found, cursor = page(seen, query)
    return json_body(ItemsResponse(items=[item_view(s) for s in found], next_cursor=cursor))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/items", items)
