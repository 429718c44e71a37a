"""`HtmlListSource`: a web page that lists announcements (title, link, date), read with CSS selectors.

For sites with no feed, such as MOFCOM's policy releases. `item` selects each entry of the list; `title`,
`link`, `date` and `summary` select inside an entry. A page whose `item` or `title` selector suddenly
matches nothing has most likely been redesigned: that is a `SourceError` (visible as source health), never
an empty poll that looks like a quiet day.

Decoding (`rarewatch.sources.encoding.decode_html`): a configured `encoding` wins; else a BOM, the
Content-Type charset, then `<meta charset>`. Bytes that are valid UTF-8 beyond ASCII are UTF-8 whatever the
label says (CMS templates often declare gb2312 over UTF-8 text); GBK and GB2312 labels decode as GB18030.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from types import MappingProxyType
from typing import Any, Literal, Unpack
from urllib.parse import urljoin

import aiohttp
import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector, SelectorError
from lxml.html import HtmlElement
from pydantic import field_validator, model_validator

from rarewatch.configtypes import with_preset
from rarewatch.errors import SourceError
from rarewatch.models import FetchResult, RawEntry, SourceState
from rarewatch.normalize import parse_date
from rarewatch.sources import http
from rarewatch.sources.base import HttpOptions, HttpSource, Source, SourceConfigBase, SourceDeps, http_options
from rarewatch.sources.encoding import codec_for, decode_html

log = logging.getLogger(__name__)

HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.8"

# Ready-made selectors. A preset fills `item`, `title`, `link` and `date`; anything the user sets wins.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # MOFCOM policy releases, https://www.mofcom.gov.cn/zwgk/zcfb/index.html. UNVERIFIED against the
        # live page (it cannot be fetched from here): written for the shape described in
        # /work/shared/domain.md and tests/data/html/mofcom_list.html, i.e. <ul class="txtList_01"> of
        # <li><a href="/zwgk/zcfb/art/..." title="full title">truncated...</a><span>2026-10-09</span></li>.
        # If the live page differs, the source fails loudly ("matched nothing"): override `item`/`title`.
        "mofcom": {"item": "ul.txtList_01 li", "title": "a", "date": "span"},
    }
)

# A date inside surrounding text: "[2026-10-09]", "发布时间：2026年10月9日".
_DATE_IN_TEXT = re.compile(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?")
_ELLIPSES = ("...", "…", "．．．", "。。。")


def compile_selector(css: str, what: str | None = None) -> CSSSelector:
    """A compiled CSS selector (HTML rules: case-insensitive tag names); ValueError if it is invalid.

    `what` (e.g. "item") prefixes the error message.
    """
    where = f"{what}: " if what else ""
    if not css.strip():
        raise ValueError(f"{where}empty CSS selector")
    try:
        return CSSSelector(css, translator="html")
    except SelectorError as exc:
        raise ValueError(f"{where}invalid CSS selector {css!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Selectors:
    """The compiled selectors of one list page. `link`, `date`, `summary` may be None.

    lxml's XPath evaluators (CSSSelector is one) lock themselves, so executor threads may share these.
    """

    item: CSSSelector
    title: CSSSelector
    link: CSSSelector | None = None
    date: CSSSelector | None = None
    summary: CSSSelector | None = None

    @classmethod
    def compile(
        cls, item: str, title: str, link: str | None, date: str | None, summary: str | None
    ) -> Selectors:
        def opt(css: str | None, what: str) -> CSSSelector | None:
            return compile_selector(css, what) if css is not None else None

        return cls(
            item=compile_selector(item, "item"),
            title=compile_selector(title, "title"),
            link=opt(link, "link"),
            date=opt(date, "date"),
            summary=opt(summary, "summary"),
        )


def parse_list(
    body: bytes,
    content_type: str | None,
    page_url: str,
    selectors: Selectors,
    source: str,
    lang: str | None,
    encoding: str | None = None,
) -> list[RawEntry]:
    """The entries of a list page. `page_url` (the final URL) resolves relative links.

    Raises `SourceError` for an empty or unparseable page, an `item` selector that matches nothing, and
    items none of which has a title. Items without a title are skipped (and logged).
    """
    if not body or body.isspace():
        raise SourceError("empty response")
    root = _parse(decode_html(body, content_type, encoding))
    items = selectors.item(root)
    if not items:
        raise SourceError(
            f"selector {selectors.item.css!r} matched nothing: the page layout may have changed"
        )
    base = _base_url(root, page_url)
    publisher = site_name(root)
    entries = [
        e for e in (_entry(i, selectors, base, source, lang, publisher) for i in items) if e is not None
    ]
    if not entries:
        raise SourceError(
            f"title selector {selectors.title.css!r} matched no text in any of the {len(items)} items "
            f"of {selectors.item.css!r}: the page layout may have changed"
        )
    if len(entries) < len(items):
        log.warning("%s: skipped %d item(s) without a title", source, len(items) - len(entries))
    if selectors.date is not None and all(e.published is None for e in entries):
        log.warning("%s: date selector %r gave no readable date", source, selectors.date.css)
    return entries


def _parse(text: str) -> HtmlElement:
    # Re-encoded as UTF-8 and parsed as such: the text is already decoded, so the page's own <meta
    # charset> (or an XML declaration) must not make libxml2 decode it a second time.
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, no_network=True)
    try:
        return lxml.html.document_fromstring(text.encode("utf-8", "surrogatepass"), parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError) as exc:
        raise SourceError(f"unparseable HTML: {exc}") from None


def _base_url(root: HtmlElement, page_url: str) -> str:
    """Links resolve against <base href> when the page has one, else the page's own URL."""
    base = root.find(".//base[@href]")
    return urljoin(page_url, (base.get("href") or "").strip()) if base is not None else page_url


def site_name(root: HtmlElement) -> str:
    """The page's `<meta property="og:site_name">` (as HTML, like every `RawEntry` text), or ""."""
    for meta in root.iterfind(".//meta[@property]"):
        if (meta.get("property") or "").strip().lower() == "og:site_name":
            return escape((meta.get("content") or "").strip(), quote=False)
    return ""


def _entry(
    item: HtmlElement, sel: Selectors, base: str, source: str, lang: str | None, publisher: str = ""
) -> RawEntry | None:
    title_el = _first(sel.title, item)
    if title_el is None:
        return None
    title = pick_title(_text(title_el), title_el.get("title"))
    if not title:
        return None
    link = _link(item, sel.link, title_el, base)
    summary_el = _first(sel.summary, item)
    date_el = _first(sel.date, item)
    return RawEntry(
        source=source,
        title=escape(title, quote=False),  # RawEntry text is HTML: keep a literal "<" literal
        link=link,
        guid=link,  # the link is the only identity a list page gives its entries
        summary=escape(_text(summary_el), quote=False) if summary_el is not None else "",
        published=find_date(_text(date_el)) if date_el is not None else None,
        lang=lang,
        publisher=publisher,
    )


def _first(selector: CSSSelector | None, item: HtmlElement) -> HtmlElement | None:
    if selector is None:
        return None
    found = selector(item)
    return found[0] if found else None


def _text(element: HtmlElement | None) -> str:
    return " ".join(element.text_content().split()) if element is not None else ""


def pick_title(text: str, title_attr: str | None) -> str:
    """The full title: the `title` attribute when it extends the visible text (which sites such as MOFCOM
    truncate with "..."), else the visible text (a `title` like "open in new window" is not a title)."""
    attr = " ".join((title_attr or "").split())
    if not attr:
        return text
    stem = text
    for ellipsis in _ELLIPSES:
        stem = stem.removesuffix(ellipsis)
    return attr if attr.startswith(stem.rstrip()) else text


def _link(item: HtmlElement, selector: CSSSelector | None, title_el: HtmlElement, base: str) -> str | None:
    """The first usable link among the `link` selector's matches, else the title's href, else the
    item's anchors."""
    if selector is not None:
        candidates = selector(item)
    elif title_el.get("href"):
        candidates = [title_el]
    else:
        candidates = list(item.iterdescendants("a"))
    return next((link for e in candidates if (link := _resolve(e.get("href"), base))), None)


def _resolve(href: str | None, base: str) -> str | None:
    # "javascript:" and "#..." links identify nothing (and would give every such item one guid): they are
    # no link, and an item with none gets its id from its title text.
    href = (href or "").strip()
    if not href or href.startswith("#"):
        return None
    link = urljoin(base, href)
    return link if link.startswith(("http://", "https://")) else None


def find_date(text: str) -> datetime | None:
    """A UTC datetime from a date text, also when surrounded by words or brackets; None if none."""
    when = parse_date(text)
    if when is None and (m := _DATE_IN_TEXT.search(text)):
        when = parse_date(m.group(0))
    return when


class HtmlListSource(HttpSource):
    """A list page read with CSS selectors, implementing the `Source` protocol.

    Selectors are compiled here: an invalid one is a ValueError at construction. Each `fetch` makes one
    conditional GET through `rarewatch.sources.http.fetch` and parses the page in `executor` (None: the
    loop's default thread pool; a thread pool, since compiled selectors do not pickle). Each entry's guid
    is its resolved link.
    """

    accept = HTML_ACCEPT

    def __init__(
        self,
        name: str,
        url: str,
        *,
        item: str,
        title: str,
        link: str | None = None,
        date: str | None = None,
        summary: str | None = None,
        encoding: str | None = None,
        **options: Unpack[HttpOptions],
    ) -> None:
        super().__init__(name, url, **options)
        try:
            self.selectors = Selectors.compile(item, title, link, date, summary)
            self.encoding = codec_for(encoding) if encoding else None
        except ValueError as exc:
            raise ValueError(f"source {name}: {exc}") from None

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult:
        """Fetch and parse the page. A 304 gives no entries and keeps the stored validators.

        Raises `SourceError` for network and HTTP failures (the shared `http.fetch`), an empty page, and
        selectors that no longer match (see `parse_list`).
        """
        resp = await self._get(session, state)
        if resp.not_modified:
            return http.unchanged(resp, state)
        loop = asyncio.get_running_loop()
        # Parsing and selecting take milliseconds for a large page: keep them off the event loop.
        entries = await loop.run_in_executor(
            self._executor,
            parse_list,
            resp.body,
            resp.content_type,
            resp.url,
            self.selectors,
            self.name,
            self.lang,
            self.encoding,
        )
        return FetchResult(entries=tuple(entries), etag=resp.etag, last_modified=resp.last_modified)


class HtmlSourceConfig(SourceConfigBase):
    """A list page read with CSS selectors: `item` per entry, then `title`, `link`... inside it."""

    type: Literal["html"]
    preset: str | None = None  # fills item/title/link/date; see PRESETS
    item: str | None = None
    title: str | None = None
    link: str | None = None  # default: the title element's href, else the item's first a[href]
    date: str | None = None
    summary: str | None = None
    encoding: str | None = None  # override the page's declared charset
    enrich: bool = False  # list pages link to documents (often PDFs) rather than articles

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return with_preset(data, PRESETS)

    @field_validator("item", "title", "link", "date", "summary")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is not None:
            compile_selector(v)  # an invalid selector fails here, at its line
        return v

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: str | None) -> str | None:
        if v is not None:
            codec_for(v)
        return v

    @model_validator(mode="after")
    def _complete(self) -> HtmlSourceConfig:
        missing = [key for key in ("item", "title") if not getattr(self, key)]
        if missing:
            raise ValueError(f"an html source needs {' and '.join(missing)} (or a preset that sets them)")
        return self


def build(config: HtmlSourceConfig, deps: SourceDeps) -> Source:
    """The `HtmlListSource` of a configured `html` source."""
    return HtmlListSource(
        config.name,
        config.url,
        item=config.item or "",
        title=config.title or "",
        link=config.link,
        date=config.date,
        summary=config.summary,
        encoding=config.encoding,
        **http_options(config, deps),
    )
