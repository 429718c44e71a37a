"""`JsonApiSource`: an HTTP JSON API (the Federal Register's, or any like it) mapped onto `RawEntry`s.

The configuration says where the list of results is (`items`, a dotted path such as `results`), which
field of each result is the title, link, summary... (`fields`, dotted paths such as `html_url` or
`agencies.0.name`) and where the next page's URL is (`next_page`). Pages are followed up to `max_pages`,
on the configured host only. The first page is a conditional GET; a 304 there ends the poll.

`parse_page` is a pure module-level function over a picklable `JsonMapping`, so it runs inline for the
usual small page and in an executor for a big one.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Unpack
from urllib.parse import urljoin

import aiohttp
from pydantic import Field, field_validator, model_validator
from yarl import URL

from rarewatch.configtypes import Strict, with_preset
from rarewatch.errors import SourceError
from rarewatch.httputil import redact_url
from rarewatch.models import FetchResult, RawEntry, SourceState
from rarewatch.normalize import parse_date
from rarewatch.sources import http
from rarewatch.sources.base import HttpOptions, HttpSource, Source, SourceConfigBase, SourceDeps, http_options

log = logging.getLogger(__name__)

FIELD_NAMES = ("title", "link", "summary", "content", "published", "guid", "publisher")
JSON_ACCEPT = "application/json, */*;q=0.5"
# json.loads of a typical API page (100 results, ~150 KB) takes about a millisecond: not worth a thread
# hop. Bigger bodies are decoded in the executor so that one huge page never stalls the event loop.
INLINE_PARSE_LIMIT = 256 * 1024

# Ready-made mappings. A preset fills `items`, `fields` and `next_page`; anything the user sets wins.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # https://www.federalregister.gov/api/v1/documents.json: `results[]` and `next_page_url`.
        "federal-register": {
            "items": "results",
            "fields": {
                "title": "title",
                "link": "html_url",
                "summary": "abstract",
                "published": "publication_date",
                "guid": "document_number",
                # The issuing agency: the API lists the parent department first, the bureau last.
                "publisher": "agencies.-1.name",
            },
            "next_page": "next_page_url",
        },
    }
)


@dataclass(frozen=True, slots=True)
class JsonMapping:
    """Where things are in a response: dotted paths (`a.b.0.c`); "" for `items` means the document itself."""

    items: str
    title: str
    link: str
    summary: str | None = None
    content: str | None = None
    published: str | None = None
    guid: str | None = None
    publisher: str | None = None  # the publisher's name in each result (e.g. `agencies.0.name`)
    next_page: str | None = None
    html_fields: bool = False  # string fields already hold HTML (e.g. WordPress `rendered` fields)


@dataclass(frozen=True, slots=True)
class Page:
    """One parsed page: its entries, the results skipped for want of a title, the raw next-page URL."""

    entries: list[RawEntry]
    skipped: int
    next_url: str | None


def lookup(doc: Any, path: str) -> Any:
    """The value at dotted `path` in a decoded JSON document, or None when any step is missing.

    Object keys are looked up by name; an integer step indexes an array (`agencies.0.name`, `-1` is the
    last element). "" is the document itself. Keys that contain a dot cannot be addressed.
    """
    if not path:
        return doc
    node = doc
    for step in path.split("."):
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and _is_index(step):
            index = int(step)
            node = node[index] if -len(node) <= index < len(node) else None
        else:
            return None
    return node


def _is_index(step: str) -> bool:
    return step.removeprefix("-").isdigit()


def check_path(path: str) -> str:
    """`path` if it is a well-formed dotted path (no empty steps), else ValueError."""
    if path and any(not step for step in path.split(".")):
        raise ValueError(f"bad dotted path {path!r}: empty step")
    return path


def parse_page(body: bytes, mapping: JsonMapping, source: str, lang: str | None, base_url: str = "") -> Page:
    """Decode one response body and map its results to entries; relative links resolve on `base_url`.

    Raises `SourceError` for a body that is not JSON, an `items` path that is missing or not an array,
    a `next_page` value that is not a string, and results none of which has the mapped title (a mapping
    that matches nothing is a broken source, not a quiet one). Results without a title are skipped.
    """
    doc = _decode(body)
    results = _results(doc, mapping.items)
    entries = [e for e in (_entry(r, mapping, source, lang, base_url) for r in results) if e is not None]
    if results and not entries:
        raise SourceError(
            f"field mapping matches nothing: title path {mapping.title!r} is in none of the "
            f"{len(results)} results"
        )
    return Page(entries, len(results) - len(entries), _next_url(doc, mapping.next_page))


def _decode(body: bytes) -> Any:
    if not body or body.isspace():
        raise SourceError("empty response")
    try:
        # json.loads sniffs UTF-8/16/32 from bytes, as RFC 8259 allows.
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise SourceError(f"invalid JSON: not UTF-8/16/32 text at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise SourceError("invalid JSON: nested too deeply") from None


def _results(doc: Any, path: str) -> list[Any]:
    found = lookup(doc, path)
    if isinstance(found, list):
        return found
    where = f"items path {path!r}" if path else "the document"
    if found is None:
        keys = ", ".join(list(doc)[:10]) if isinstance(doc, dict) else _kind(doc)
        raise SourceError(f"{where} not found in the response (top level: {keys})")
    raise SourceError(f"{where} holds {_kind(found)}, not an array of results")


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "null")


def _next_url(doc: Any, path: str | None) -> str | None:
    if not path:
        return None
    value = lookup(doc, path)
    if value is None or value == "":
        return None  # the last page
    if not isinstance(value, str):
        raise SourceError(f"next_page path {path!r} holds {_kind(value)}, not a URL")
    return value.strip() or None


def _entry(result: Any, m: JsonMapping, source: str, lang: str | None, base_url: str) -> RawEntry | None:
    title = _text(lookup(result, m.title))
    if not title:
        return None

    def field(path: str | None) -> str:
        return _text(lookup(result, path)) if path else ""

    def markup(text: str) -> str:
        # RawEntry text fields are HTML (normalisation strips tags and decodes entities): plain JSON
        # text is escaped so that a literal "<" or "&amp;" in it survives as written.
        return text if m.html_fields else html.escape(text, quote=False)

    link = field(m.link)
    return RawEntry(
        source=source,
        title=markup(title),
        link=urljoin(base_url, link) if link else None,
        guid=field(m.guid) or None,
        summary=markup(field(m.summary)),
        content=markup(field(m.content)),
        published=parse_date(field(m.published)),
        lang=lang,
        publisher=markup(field(m.publisher)),
    )


def _text(value: Any) -> str:
    """A JSON value as text: strings stripped, numbers written out, arrays of scalars joined."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value if not isinstance(v, list | dict)) if t)
    return ""


def same_site(configured: URL, target: URL) -> bool:
    """Whether pagination may go from the configured URL to `target`: same host, http(s), no downgrade.

    The port must match too, unless the scheme moved from http to https (80 -> 443 is then expected).
    """
    if target.scheme not in http.ALLOWED_SCHEMES or target.host != configured.host:
        return False
    if target.scheme == configured.scheme:
        return target.port == configured.port
    return configured.scheme == "http"  # an upgrade to https; https -> http is refused


class JsonApiSource(HttpSource):
    """A paginated JSON API, implementing the `Source` protocol.

    `fields` maps entry fields (`title`, `link`, `summary`, `content`, `published`, `guid`) to dotted
    paths inside each result; `title` and `link` are required. `params` are added to the URL's query
    (a list value repeats the key, as in `conditions[agencies][]`). `next_page` is the dotted path of the
    next page's URL, followed up to `max_pages` pages and only on the configured host.
    """

    accept = JSON_ACCEPT

    def __init__(
        self,
        name: str,
        url: str,
        *,
        items: str,
        fields: Mapping[str, str | None],
        next_page: str | None = None,
        max_pages: int = 3,
        params: Mapping[str, str | Sequence[str]] | None = None,
        html_fields: bool = False,
        **options: Unpack[HttpOptions],
    ) -> None:
        super().__init__(name, url, **options)
        if max_pages < 1:
            raise ValueError(f"source {name}: max_pages must be at least 1, not {max_pages}")
        self.mapping = _mapping(name, items, fields, next_page, html_fields)
        self.max_pages = max_pages
        # Query values go through yarl, which percent-encodes them; a list repeats its key.
        self.first_url = self.checked_url.with_fragment(None).extend_query(dict(params or {}))

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        """Fetch up to `max_pages` pages. A 304 on the first page gives no entries and keeps validators.

        Raises `SourceError` for network and HTTP failures on the first page (the shared `http.fetch`)
        and a first page that does not parse (see `parse_page`). A failure on a later page (network, HTTP,
        parse, a next page on another host) keeps the items of the pages read before it: the result
        carries them with the failure as its `error`, so that the poll is still the source's error and
        the first page's validators are not stored over an incomplete read.
        """
        resp = await self._get(session, state, str(self.first_url))
        if resp.not_modified:
            return http.unchanged(resp, state)
        entries, error = await self._read_pages(session, resp)
        if error is not None:
            return FetchResult(entries=tuple(entries), error=error)
        return FetchResult(entries=tuple(entries), etag=resp.etag, last_modified=resp.last_modified)

    async def _read_pages(
        self, session: aiohttp.ClientSession, resp: http.HttpResponse
    ) -> tuple[list[RawEntry], SourceError | None]:
        """The entries of every page, and the failure that stopped the reading after page 1 (if any)."""
        page = await self._parse(resp, 1)  # a failure here fails the poll: nothing was read
        entries = list(page.entries)
        seen = {str(self.first_url), resp.url}
        for number in range(2, self.max_pages + 1):
            try:
                target = self._next_target(page.next_url, resp.url)
                if target is None or target in seen:  # the last page or a loop
                    break
                seen.add(target)
                # Every hop is checked, redirects included: a next page that redirects off the configured
                # host is refused as a next page naming that host would be.
                resp = await http.fetch(
                    session, target, limits=self.limits, headers=self.headers, check_target=self._check_hop
                )
                page = await self._parse(resp, number)
            except SourceError as exc:
                text = str(exc)
                message = text if text.startswith(f"page {number} ") else f"page {number}: {text}"
                log.warning(
                    "%s: %s (keeping the %d item(s) read before it)", self.name, message, len(entries)
                )
                return entries, SourceError(message, retry_after=exc.retry_after)
            entries.extend(page.entries)
        return entries, None

    async def _parse(self, resp: http.HttpResponse, number: int) -> Page:
        try:
            if len(resp.body) <= INLINE_PARSE_LIMIT:
                page = parse_page(resp.body, self.mapping, self.name, self.lang, resp.url)
            else:
                loop = asyncio.get_running_loop()
                page = await loop.run_in_executor(
                    self._executor, parse_page, resp.body, self.mapping, self.name, self.lang, resp.url
                )
        except SourceError as exc:
            if number == 1:
                raise
            raise SourceError(f"page {number} ({redact_url(resp.url)}): {exc}") from None
        if page.skipped:
            log.warning(
                "%s: page %d: skipped %d result(s) without a title at %r",
                self.name,
                number,
                page.skipped,
                self.mapping.title,
            )
        return page

    def _next_target(self, raw: str | None, current: str) -> str | None:
        """The absolute next-page URL (relative ones resolve against the current page), checked."""
        if raw is None:
            return None
        absolute = urljoin(current, raw)
        try:
            target = URL(absolute).with_fragment(None)
        except ValueError:
            raise SourceError(f"bad next page URL {redact_url(raw)!r}") from None
        self._check_hop(target)
        return str(target)

    def _check_hop(self, target: URL) -> None:
        """Refuse (`SourceError`) a next page, or a redirect while fetching one, off the configured host."""
        configured = URL(self.url)
        if not same_site(configured, target):
            raise SourceError(
                f"refusing next page {redact_url(target)!r}: not on the configured host {configured.host} "
                "(set max_pages: 1 to read the first page only)"
            )


def _mapping(
    name: str,
    items: str,
    fields: Mapping[str, str | None],
    next_page: str | None,
    html_fields: bool,
) -> JsonMapping:
    """The checked `JsonMapping` of the constructor's arguments; ValueError naming the source."""
    unknown = sorted(set(fields) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"source {name}: unknown field(s) {', '.join(unknown)} (known: {FIELD_NAMES})")
    title, link = fields.get("title"), fields.get("link")
    if not title or not link:
        raise ValueError(f"source {name}: fields.title and fields.link are required")
    try:
        for path in (items, next_page, *fields.values()):
            check_path(path or "")
    except ValueError as exc:
        raise ValueError(f"source {name}: {exc}") from None
    return JsonMapping(
        items=items,
        title=title,
        link=link,
        summary=fields.get("summary") or None,
        content=fields.get("content") or None,
        published=fields.get("published") or None,
        guid=fields.get("guid") or None,
        publisher=fields.get("publisher") or None,
        next_page=next_page or None,
        html_fields=html_fields,
    )


class JsonFields(Strict):
    """Dotted paths inside each JSON result (`html_url`, `agencies.0.name`); `title` and `link` required."""

    title: str | None = None
    link: str | None = None
    summary: str | None = None
    content: str | None = None
    published: str | None = None
    guid: str | None = None
    publisher: str | None = None  # the publisher's name; "" (none) when unset

    @field_validator("*")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        return check_path(v) if v else v


class JsonSourceConfig(SourceConfigBase):
    """An HTTP JSON API: `items` is the dotted path to the results, `fields` maps each entry field."""

    type: Literal["json"]
    preset: str | None = None  # fills items/fields/next_page; see PRESETS
    items: str | None = None  # "" when the document itself is the list
    fields: JsonFields = Field(default_factory=JsonFields)
    next_page: str | None = None
    max_pages: int = Field(default=3, ge=1, le=100)
    params: dict[str, str | list[str]] = Field(default_factory=dict)
    html_fields: bool = False  # the mapped strings are HTML already (WordPress `rendered` fields)
    enrich: bool = False  # API documents usually carry their full text already

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return with_preset(data, PRESETS, nested="fields")

    @field_validator("items", "next_page")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        return check_path(v) if v else v

    @model_validator(mode="after")
    def _complete(self) -> JsonSourceConfig:
        missing = [] if self.items is not None else ["items"]
        missing += [f"fields.{f}" for f in ("title", "link") if not getattr(self.fields, f)]
        if missing:
            raise ValueError(f"a json source needs {', '.join(missing)} (or a preset that sets them)")
        return self


def build(config: JsonSourceConfig, deps: SourceDeps) -> Source:
    """The `JsonApiSource` of a configured `json` source."""
    return JsonApiSource(
        config.name,
        config.url,
        items=config.items or "",
        fields=config.fields.model_dump(exclude_none=True),
        next_page=config.next_page,
        max_pages=config.max_pages,
        params=config.params,
        html_fields=config.html_fields,
        **http_options(config, deps),
    )
