"""Feed bytes -> `RawEntry`s: an lxml fast path, with feedparser as the fallback for ill-formed feeds.

The fast path reads well-formed RSS 0.9x/2.0 (`channel/item`), RSS 1.0/0.90 (RDF) and Atom 1.0 with
lxml, some twenty times faster than feedparser (bench/bench_parse.py). Anything it cannot read cleanly
(not well-formed, a wrong declared encoding, an unfamiliar dialect) goes to feedparser, which sniffs
encodings and recovers what it can. Both are fed bytes only: nothing here opens a URL or a file.

Safety: the lxml parser never loads DTDs, never touches the network and does not substitute entities,
and libxml2 refuses entity amplification; feedparser strips entity declarations and disables external
entities (tests check each layer alone). On top of that, a document that declares entities at all is
refused (`SourceError`): no real feed needs them, and a clear refusal beats silently missing text.

`parse_feed` is a module-level function so that it pickles and can run in a ProcessPoolExecutor.
"""

from __future__ import annotations

import html
import io
import logging
import re
import threading
from typing import Any
from urllib.parse import urljoin

from lxml import etree
from lxml.etree import _Element

from rarewatch.errors import SourceError
from rarewatch.models import RawEntry
from rarewatch.normalize import from_struct_time, parse_date
from rarewatch.sources.encoding import Undecodable, xml_as_utf8

log = logging.getLogger(__name__)

# Entities can only be declared inside a DOCTYPE, so "<!ENTITY" is only looked for after "<!DOCTYPE" (a
# feed quoting "<!ENTITY" in an article has no DOCTYPE). UTF-16/32 forms are only searched when the first
# bytes hold a NUL, which no ASCII-compatible document has.
_MARKERS = ((b"<!DOCTYPE", b"<!ENTITY"),)
_WIDE_MARKERS = tuple(
    ("<!DOCTYPE".encode(enc), "<!ENTITY".encode(enc))
    for enc in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_SNIFF_BYTES = 4096  # how far into the body to look for an HTML start
_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]",
    re.IGNORECASE | re.DOTALL,
)
_UTF8 = "utf-8"


# A character reference to a UTF-16 surrogate (&#55296;, &#xD800;) names no character: lxml rejects the
# document and feedparser crashes encoding it. Each becomes a reference to U+FFFD before parsing, so a feed
# with one still parses (and its text is valid Unicode). Decimal 55296-57343, hex D800-DFFF.
_SURROGATE_REF = re.compile(
    rb"&#(?:[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2}"
    rb"|0*(?:5529[6-9]|55[3-9][0-9]{2}|56[0-9]{3}|57[0-2][0-9]{2}|573[0-3][0-9]|5734[0-3]));"
)


def replace_surrogate_refs(body: bytes) -> bytes:
    """`body` with every character reference to a surrogate replaced by `&#xFFFD;`."""
    return _SURROGATE_REF.sub(b"&#xFFFD;", body) if b"&#" in body else body


class _Parsers(threading.local):
    """lxml parsers are not shared between threads; each executor thread gets its own pair."""

    def __init__(self) -> None:
        options: dict[str, Any] = {
            "resolve_entities": False,
            "no_network": True,
            "huge_tree": False,
            "load_dtd": False,
        }
        self.native = etree.XMLParser(**options)  # the document's own declaration or BOM decides
        self.utf8 = etree.XMLParser(encoding=_UTF8, **options)  # for bytes we re-encoded ourselves


_parsers = _Parsers()


def parse_feed(body: bytes, content_type: str | None, source: str, lang: str | None) -> list[RawEntry]:
    """Parse a feed document into entries for `source`.

    `content_type` is the raw Content-Type header (its charset is a hint, after a BOM and the XML
    declaration). `lang` is the configured language; when None, the feed's own language is used.
    Raises `SourceError` for an empty body, an HTML page, a document declaring XML entities, or XML so
    broken that no entry can be recovered. A well-formed feed with no items gives [].
    """
    if not body or body.isspace():
        raise SourceError("empty response")
    body = body.lstrip()  # whitespace before "<?xml" is a common CMS slip that strict parsers reject
    if _declares_entities(body):
        raise SourceError("refusing a feed that declares XML entities")
    if _HTML_START.match(body[:_SNIFF_BYTES]):
        raise SourceError("not a feed: got an HTML page")
    body = replace_surrogate_refs(body)
    try:
        entries = _parse_fast(body, content_type, source, lang)
    except etree.XMLSyntaxError as exc:
        problem = f"malformed XML: {exc}"
    except Undecodable as exc:
        problem = str(exc)
    else:
        if entries is not None:
            return entries
        problem = "not a feed: no RSS or Atom root element"
    return parse_with_feedparser(body, content_type, source, lang, problem=problem)


def _declares_entities(body: bytes) -> bool:
    """A byte scan, for a clear error; the parsers below are safe without it (see the module docs)."""
    markers = _WIDE_MARKERS + _MARKERS if b"\0" in body[:4] else _MARKERS
    for doctype, entity in markers:
        start = body.find(doctype)
        if start >= 0 and body.find(entity, start) >= 0:
            return True
    return False


def _parse_fast(
    body: bytes, content_type: str | None, source: str, lang: str | None
) -> list[RawEntry] | None:
    """The lxml path: entries, or None for a well-formed document that is not RSS/Atom as we know it."""
    data, reencoded = xml_as_utf8(body, content_type)
    parser = _parsers.utf8 if reencoded else _parsers.native
    root = etree.fromstring(data, parser)
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):  # e.g. in an encoding we did not scan
        raise SourceError("refusing a feed that declares XML entities")
    return _entries(root, source, lang)


def parse_with_feedparser(
    body: bytes, content_type: str | None, source: str, lang: str | None, *, problem: str = ""
) -> list[RawEntry]:
    """The fallback: feedparser's forgiving parser and sanitiser, mapped to `RawEntry`s.

    A recoverable document (feedparser "bozo" with entries) gives its entries, with a warning logged.
    `problem` says why the fast path gave up, for the error when nothing is recovered.
    """
    import feedparser  # here: most feeds never need it, and a run whose feeds all parse never loads it

    headers = {"content-type": content_type or "application/xml"}
    # A BytesIO, never the bytes: feedparser.parse treats a bytes argument as a file path to try opening.
    result = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not result.get("version"):  # no RSS/Atom root: any <item> feedparser found is not a feed item
        raise SourceError(problem or "not a feed: no RSS or Atom root element")
    entries = [_from_feedparser(e, result.feed, source, lang) for e in result.entries]
    if result.bozo:
        if not entries:
            raise SourceError(problem or f"malformed XML: {result.get('bozo_exception')}")
        log.warning("%s: ill-formed feed, recovered %d entries (%s)", source, len(entries), problem)
    return entries


def _from_feedparser(entry: Any, feed: Any, source: str, lang: str | None) -> RawEntry:
    contents = entry.get("content") or []
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    title_detail = entry.get("title_detail")
    return RawEntry(
        source=source,
        title=_detail_html(title_detail) if title_detail else "",
        link=entry.get("link") or None,
        guid=entry.get("id") or None,
        summary=_detail_html(entry.get("summary_detail")),
        content=next((_detail_html(c) for c in contents if c.get("value")), ""),
        published=from_struct_time(when),
        lang=lang or _detail_lang(title_detail) or feed.get("language") or None,
        publisher=_feedparser_publisher(entry, feed),
    )


def _feedparser_publisher(entry: Any, feed: Any) -> str:
    """The item's own `<source>` or publisher, else the feed's publisher, title or author (as HTML)."""
    origin = entry.get("source") or {}
    for name in (origin.get("title"), entry.get("publisher"), feed.get("publisher")):
        if isinstance(name, str) and name.strip():
            return html.escape(name.strip(), quote=False)
    title = feed.get("title_detail")
    if title and str(title.get("value") or "").strip():
        return _detail_html(title)
    author = feed.get("author")
    return html.escape(author.strip(), quote=False) if isinstance(author, str) else ""


def _detail_html(detail: Any) -> str:
    """A feedparser text construct as HTML (plain text is escaped, so `RawEntry` fields are all HTML)."""
    if not detail:
        return ""
    value = str(detail.get("value") or "")
    return html.escape(value, quote=False) if detail.get("type") == "text/plain" else value


def _detail_lang(detail: Any) -> str | None:
    return (detail.get("language") or None) if detail else None


# The lxml walk. Element names in Clark notation; RSS 0.9x/2.0 elements have no namespace.
_ATOM = "{http://www.w3.org/2005/Atom}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_RSS10 = "{http://purl.org/rss/1.0/}"
_RSS090 = "{http://my.netscape.com/rdf/simple/0.9/}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
_XHTML = "{http://www.w3.org/1999/xhtml}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_RSS_FIELDS = {
    **{f"{ns}{name}": name for ns in ("", _RSS10, _RSS090) for name in ("title", "link", "description")},
    "guid": "guid",
    "pubDate": "date",
    _DC + "date": "date",
    _DC + "description": "description",
    _DC + "language": "lang",
    _CONTENT_ENCODED: "content",
    "source": "publisher",  # RSS 2.0 <source url="…">Outlet</source>: the outlet an aggregator took it from
    _DC + "publisher": "publisher",
}

_ATOM_FIELDS = {
    _ATOM + name: name for name in ("link", "title", "summary", "content", "id", "published", "updated")
}


def _entries(root: _Element, source: str, lang: str | None) -> list[RawEntry] | None:
    tag = root.tag
    if tag == "rss":
        channel = root.find("channel")
        language = channel.findtext("language") if channel is not None else None
        feed_lang = lang or _lang(language, root.get(_XML_LANG))
        items = list(channel.iterchildren("item")) if channel is not None else []
        items = items or list(root.iterchildren("item"))  # some feeds put items beside the channel
        publisher = _channel_publisher(channel, "")
        return [_rss_item(i, source, feed_lang, lang is None, publisher) for i in items]
    if tag == _RDF + "RDF":
        channel = root.find(_RSS10 + "channel")
        channel_lang = channel.findtext(_DC + "language") if channel is not None else None
        feed_lang = lang or _lang(channel_lang, root.get(_XML_LANG))
        rdf_items = root.iterchildren(_RSS10 + "item", _RSS090 + "item")
        publisher = _channel_publisher(channel, _RSS10)
        return [_rss_item(i, source, feed_lang, lang is None, publisher) for i in rdf_items]
    if tag == _ATOM + "feed":
        feed_lang = lang or _lang(root.get(_XML_LANG))
        publisher = _atom_publisher(root)
        entries = root.iterchildren(_ATOM + "entry")
        return [_atom_entry(e, source, feed_lang, lang is None, publisher) for e in entries]
    if tag in ("html", _XHTML + "html"):
        raise SourceError("not a feed: got an HTML page")
    return None  # Atom 0.3, RSS with a default namespace, ...: feedparser knows more dialects


def _channel_publisher(channel: _Element | None, ns: str) -> str:
    """An RSS channel's publisher (as HTML): its `dc:publisher`, else its title."""
    if channel is None:
        return ""
    name = channel.findtext(_DC + "publisher") or channel.findtext(ns + "title") or ""
    return html.escape(name.strip(), quote=False)


def _atom_publisher(feed: _Element) -> str:
    """An Atom feed's publisher (as HTML): its title, else its author's name."""
    title = feed.find(_ATOM + "title")
    if title is not None and (text := _atom_text(title).strip()):
        return text
    name = feed.findtext(f"{_ATOM}author/{_ATOM}name") or ""
    return html.escape(name.strip(), quote=False)


def _rss_item(
    item: _Element, source: str, feed_lang: str | None, own_lang: bool, feed_publisher: str = ""
) -> RawEntry:
    """One RSS item. `own_lang`: the item's dc:language may beat the feed's (no language configured).
    The item's own `<source>` or `dc:publisher` beats the channel's `feed_publisher`."""
    found: dict[str, str] = {}
    guid_element: _Element | None = None
    for child in item:
        tag = child.tag
        field = _RSS_FIELDS.get(tag) if isinstance(tag, str) else None
        if field is None or field in found:
            continue
        if field == "guid":
            guid_element = child
        if field in ("title", "description", "content"):
            found[field] = _inner_html(child)
        else:  # "<link href=...>" is an Atom habit that leaks into RSS
            found[field] = _text(child) or (child.get("href") or "").strip()
    link = found.get("link") or item.get(_RDF + "about") or None
    guid = found.get("guid") or item.get(_RDF + "about") or None
    if not link and guid and guid_element is not None and _is_permalink(guid_element, guid):
        link = guid
    return RawEntry(
        source=source,
        title=found.get("title", ""),
        link=link,
        guid=guid,
        summary=found.get("description", ""),
        content=found.get("content", ""),
        published=parse_date(found.get("date")),
        lang=(_lang(found.get("lang")) if own_lang else None) or feed_lang,
        publisher=html.escape(found["publisher"], quote=False) if found.get("publisher") else feed_publisher,
    )


def _is_permalink(guid_element: _Element, guid: str) -> bool:
    flag = (guid_element.get("isPermaLink") or "true").strip().lower()
    return flag != "false" and guid.startswith(("http://", "https://"))


def _atom_entry(
    entry: _Element, source: str, feed_lang: str | None, own_lang: bool, feed_publisher: str = ""
) -> RawEntry:
    """One Atom entry. `own_lang`: the entry's xml:lang may beat the feed's (no language configured).
    The title of the entry's own `<source>` (an entry copied from another feed) beats `feed_publisher`."""
    found: dict[str, str] = {}
    link: str | None = None
    for child in entry:
        tag = child.tag
        if tag == _ATOM + "source":
            origin = child.find(_ATOM + "title")
            if origin is not None:
                found.setdefault("publisher", _atom_text(origin).strip())
            continue
        name = _ATOM_FIELDS.get(tag) if isinstance(tag, str) else None
        if name is None:
            continue
        if name == "link":
            if link is None and child.get("rel", "alternate") == "alternate" and child.get("href"):
                link = _absolute(child, child.get("href", "").strip())
        elif name in ("title", "summary", "content"):
            found.setdefault(name, _atom_text(child))
        elif name in ("id", "published", "updated"):
            found.setdefault(name, _text(child))
    lang = _lang(entry.get(_XML_LANG)) if own_lang else None
    return RawEntry(
        source=source,
        title=found.get("title", ""),
        link=link,
        guid=found.get("id") or None,
        summary=found.get("summary", ""),
        content=found.get("content", ""),
        published=parse_date(found.get("published") or found.get("updated")),
        lang=lang or feed_lang,
        publisher=found.get("publisher") or feed_publisher,
    )


def _atom_text(element: _Element) -> str:
    """An Atom text construct as HTML: type "html" already is; "text" is escaped; "xhtml" serialised."""
    kind = element.get("type", "text")
    if kind == "xhtml":
        div = next(element.iterchildren(_XHTML + "div"), None)
        return _inner_html(div if div is not None else element)
    if kind in ("html", "text/html"):
        return _inner_html(element)
    if kind == "text" or kind.startswith("text/"):
        return html.escape(_text(element, strip=False), quote=False)
    return ""  # base64 or other media types: nothing to match on


def _inner_html(element: _Element) -> str:
    """The element's content as markup: its text (escaped HTML inside XML is HTML once parsed), and any
    child elements or unresolved entity references serialised as they stood."""
    text = element.text or ""
    if not len(element):
        return text
    parts = [text]
    parts.extend(etree.tostring(child, encoding="unicode", with_tail=True) for child in element)
    return "".join(parts)


def _text(element: _Element, *, strip: bool = True) -> str:
    text = (element.text or "") if not len(element) else "".join(element.itertext())
    return text.strip() if strip else text


def _absolute(element: _Element, href: str) -> str:
    if "://" in href or not href:
        return href
    base = element.base  # xml:base, inherited from the ancestors
    return urljoin(base, href) if base else href


def _lang(*candidates: str | None) -> str | None:
    return next((c.strip() for c in candidates if c and c.strip()), None)
