"""Pure functions that turn a parsed `RawEntry` into a normalised `Item`.

Canonical links, stable ids, plain text out of HTML and publication times in UTC. No I/O, no clock:
the caller passes `first_seen`, so the same entry always normalises to the same item.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit, urlunsplit

# The item models (eleven dataclasses) and the e-mail date parser are imported where they are used:
# `rarewatch match` needs this module's text functions only, and they were a tenth of its start-up.
if TYPE_CHECKING:
    from rarewatch.models import Item, Match, RawEntry


# The most characters kept of an item's texts (after HTML is stripped). A headline is a line; the
# summary and content keep far more than any notifier shows (500), so rules still see a long article's
# body, while one item stays bounded in the store and in every API response.
TITLE_MAX = 500
SUMMARY_MAX = 20_000
CONTENT_MAX = 20_000

# Query parameters that only say how a reader arrived (campaigns, click ids, share widgets). Dropping them
# lets the same story shared through different channels canonicalise to one link. Compared lower-case.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",  # Microsoft Ads
        "yclid",  # Yandex
        "twclid",  # X/Twitter
        "ttclid",  # TikTok
        "li_fat_id",  # LinkedIn
        "igshid",  # Instagram
        "igsh",
        "mc_cid",  # Mailchimp
        "mc_eid",
        "_hsenc",  # HubSpot
        "_hsmi",
        "mkt_tok",  # Marketo
        "vero_id",
        "vero_conv",
        "oly_anon_id",
        "oly_enc_id",
        "rb_clickid",
        "s_cid",
        "wt.mc_id",  # Webtrends
        "ref_src",  # Twitter embeds
        "ref_url",
        "spm",  # Alibaba / Taobao
        "scm",
        "share_token",
        "__twitter_impression",
    }
)
# Whole families: utm_source, utm_medium, ... and piwik/matomo campaign parameters.
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")

# HTML to text. Tags may not contain "<" so that every match attempt stops at the next "<": garbage such as
# "<a<a<a..." stays linear instead of rescanning to the end of the string for each "<".
_RAW_TEXT = re.compile(
    r"<(script|style|noscript|template)\b[^>]*>.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL
)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|$)", re.DOTALL)
# A tag (its name captured), a declaration or processing instruction, or a tag cut off at the very end.
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9:-]*)[^<>]*>|<[!?][^<>]*>|</?[A-Za-z][^<>]*$")
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"tr", "table", "thead", "tbody", "tfoot", "caption", "blockquote", "pre", "address", "form"}
    | {"section", "article", "header", "footer", "aside", "nav", "main", "figure", "figcaption"}
    | {"details", "summary", "fieldset", "title", "body", "html", "head"}
)
_CELL_TAGS = frozenset({"td", "th"})
# Invisible characters that split words without showing: soft hyphen, zero-width space/joiners, word
# joiner, BOM. Removed so that "rare\u00adearth" matches "rare earth" rules.
_INVISIBLE_CHARS = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")
# A lone UTF-16 surrogate (a JSON "\\ud800", an XML/HTML "&#55296;") is not a character: no UTF-8 encoder
# takes it, so one in a title would crash every later write (files, HTTP bodies). Replaced by U+FFFD.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# Pinyin that some mirror sites and content farms write after Chinese characters, "生產(chǎn)中斷(duàn)": it
# splits every Chinese term it falls inside, so it is taken out. A lower-case syllable of at most six
# letters with a tone mark, in parentheses, right after a Han character (full-width parentheses are
# ASCII once NFKC has run). "(Reuters)", "(ppm)", "(Nd)" and "(lu)" are no such syllable and stay.
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ"
_PINYIN = re.compile(
    f"(?<=[\u3400-\u4dbf\u4e00-\u9fff])\\((?=[a-zü]{{0,5}}[{_TONED}])[a-zü{_TONED}]{{1,6}}\\)"
)


def without_invisible(s: str) -> str:
    """`s` without the invisible characters `plain_text` removes (soft hyphen, zero-width ones, BOM).
    For a large text (`rarewatch match`'s blocks of lines): a `str.replace` for each of the few
    characters present costs several times less than a regex substitution over the whole text."""
    for char in _INVISIBLE_CHARS:
        if char in s:
            s = s.replace(char, "")
    return s


def without_pinyin(s: str) -> str:
    """`s` (NFKC) without the pinyin syllables injected after Chinese characters (see `_PINYIN`)."""
    return _PINYIN.sub("", s) if "(" in s else s


def has_pinyin(s: str) -> bool:
    """Whether NFKC text `s` holds a pinyin syllable that `plain_text` would take out."""
    return "(" in s and _PINYIN.search(s) is not None


def has_lone_surrogate(s: str) -> bool:
    """Whether `s` holds a lone surrogate (which `valid_unicode` replaces, and no UTF-8 output takes)."""
    return not s.isascii() and _SURROGATE.search(s) is not None


def valid_unicode(s: str) -> str:
    """`s` with every lone surrogate replaced by U+FFFD, so that it always encodes as UTF-8."""
    if s.isascii():
        return s
    return _SURROGATE.sub(REPLACEMENT, s)


# "2025/10/09", "2025.10.09 10:00", "2025年10月9日 10:00:00": local dates without a zone (taken as UTC).
_NUMERIC_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[T\s]*(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)


_ALREADY_CANONICAL = re.compile(r"https?://[a-z0-9.-]+(?:/[^?#%\s]*)?").fullmatch
# Also nothing to take apart: origin, path, then an optional query (no escapes) and fragment.
_SIMPLE_LINK = re.compile(r"(https?://[a-z0-9.-]+)(/[^?#%\s]*)?(?:\?([^#%\s]*))?(?:#\S*)?").fullmatch


def canonical_link(url: str) -> str:
    """The canonical form of a link, so that one story has one link.

    Lower-cases the scheme and host, drops the default port, the fragment and tracking query parameters
    (`TRACKING_PARAMS`, `TRACKING_PREFIXES`), keeps the other parameters in their order and encoding,
    resolves `.`/`..` path segments and upper-cases percent escapes. Never raises: a string that is not a
    parseable URL comes back stripped.
    """
    url = url.strip()
    if "/." not in url:
        if _ALREADY_CANONICAL(url):
            # The common case (lower-case host, no port, query, fragment or escapes): nothing to change.
            return url if url.count("/") > 2 else url + "/"
        simple = _SIMPLE_LINK(url)
        if simple is not None:
            # The next most common: the same, plus a query (tracking to drop) or a fragment. What
            # urlsplit would do to it is only that; `tests/unit/test_canonical_link_fast.py` checks.
            origin, path = simple.group(1), simple.group(2) or "/"
            query = _strip_tracking(simple.group(3) or "")
            return f"{origin}{path}?{query}" if query else origin + path
    return _canonical_link_full(url)


def _canonical_link_full(url: str) -> str:
    """`canonical_link` of a stripped URL, by taking it apart (every URL the fast paths leave)."""
    try:
        parts = urlsplit(url)
        netloc = _canonical_netloc(parts)
    except ValueError:  # e.g. an unbalanced "[" in the host, or a port that is not a number
        return url
    scheme = parts.scheme.lower()
    path = _remove_dot_segments(parts.path)
    if netloc and not path:
        path = "/"
    path = _PERCENT_ESCAPE.sub(lambda m: m.group(0).upper(), path)
    query = _strip_tracking(parts.query)
    return urlunsplit((scheme, netloc, path, query, ""))


def _canonical_netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if not host:
        return parts.netloc
    if ":" in host:  # IPv6 literal: urlsplit removed the brackets
        host = f"[{host}]"
    port = parts.port  # raises ValueError when not a number
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{host}" if userinfo else host
    if port is not None and _DEFAULT_PORTS.get(parts.scheme.lower()) != port:
        netloc += f":{port}"
    return netloc


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, on "/"-separated segments."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1 or (output and output[0] != ""):
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def _strip_tracking(query: str) -> str:
    if not query:
        return ""
    kept = [p for p in query.split("&") if p and not _is_tracking(p.partition("=")[0])]
    return "&".join(kept)


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def html_to_text(s: str) -> str:
    """Plain text out of an HTML fragment.

    Drops scripts, styles and comments, turns block elements into line breaks and table cells into
    spaces, removes the other tags, decodes entities and collapses whitespace (runs of spaces become one
    space, blank lines go). Never raises, whatever the input.
    """
    lines = _strip_html(s).split("\n")
    return "\n".join(filter(None, (" ".join(line.split()) for line in lines)))


def _strip_html(s: str) -> str:
    """Tags out, entities decoded; whitespace left as it falls (block elements become newlines)."""
    if "<" in s:
        s = _RAW_TEXT.sub(" ", s)
        if "<!" in s:  # comments and CDATA are rare in feed HTML: skip two regex passes when absent
            s = _COMMENT.sub(" ", s)
            s = _CDATA.sub(lambda m: html.escape(m.group(1), quote=False), s)
        s = _TAG.sub(_replace_tag, s)
    return html.unescape(s) if "&" in s else s


def _replace_tag(m: re.Match[str]) -> str:
    name = (m.group(1) or "").lower()
    return "\n" if name in _BLOCK_TAGS else " " if name in _CELL_TAGS else ""


def plain_text(s: str) -> str:
    """Text for matching and display: HTML stripped as by `html_to_text`, Unicode NFKC, invisible
    characters and injected pinyin removed, all whitespace collapsed to single spaces. NFKC folds
    full-width forms (ＥＸＰＯＲＴ，１２３) to ASCII."""
    s = _strip_html(s)
    if not s.isascii():  # ASCII is already NFKC: skip the normalisation, the common case in English
        s = without_pinyin(unicodedata.normalize("NFKC", _INVISIBLE.sub("", _SURROGATE.sub(REPLACEMENT, s))))
    return " ".join(s.split())


def plain_texts_joined(texts: Sequence[str]) -> str | None:
    """`plain_text` of each of `texts`, joined by NUL, in one pass over them all, or None where that
    would not be exact: markup or an entity (tags could join words across the NUL), a NUL of their
    own. Exact otherwise: the removals and replacements go character by character, NUL is a stable
    boundary for NFKC (it neither composes nor reorders with its neighbours, so normalising the whole
    is normalising each part), and the whitespace collapse only leaves a space beside a NUL where a text
    began or ended with whitespace, which is taken out again. For many short texts, one call each of
    the normalisations rather than one per text."""
    raw = "\0".join(texts)
    if "<" in raw or "&" in raw or raw.count("\0") != len(texts) - 1:
        return None
    if not raw.isascii():
        raw = without_pinyin(
            unicodedata.normalize("NFKC", _INVISIBLE.sub("", _SURROGATE.sub(REPLACEMENT, raw)))
        )
    return " ".join(raw.split()).replace(" \0", "\0").replace("\0 ", "\0")


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, ending in `…`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    # Prefer a word boundary, but not at the price of dropping most of the text (e.g. CJK without spaces).
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _title(raw: str) -> str:
    return truncate(plain_text(raw), TITLE_MAX)


def _summary(raw: str) -> str:
    return truncate(plain_text(raw), SUMMARY_MAX)


def item_id(source: str, guid: str | None, link: str | None, title: str, summary: str) -> str:
    """A stable id for an entry, safe as a storage key (32 hex characters).

    From the guid when there is one, scoped by the source name (guids are only unique within a feed);
    else from the canonical http(s) link (the same story from two feeds gets one id); else from a hash of
    the plain title and summary. `normalize` gives its items exactly this id.
    """
    return _item_id(source, guid, _safe_link(link), _title(title), _summary(summary))


def _item_id(source: str, guid: str | None, canonical: str, title: str, summary: str) -> str:
    guid = guid.strip() if guid else ""
    if guid:
        key = f"guid\0{source}\0{guid}"
    elif canonical:
        key = f"link\0{canonical}"
    else:
        key = f"text\0{title}\0{summary}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def to_utc(when: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if when.tzinfo is None or when.utcoffset() is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


# Entries normalised, then matched together, at a time (the pipeline yields to the event loop between
# chunks; a worker process sends back each fetch's chunks together).
CHUNK = 500


def normalized_and_matched(
    entries: Sequence[RawEntry], now: datetime, match_many: Callable[[list[Item]], list[list[Match]]]
) -> Iterator[list[tuple[Item, list[Match]]]]:
    """`entries` normalised and matched, `CHUNK` at a time: each chunk's items are normalised, then
    matched in one `match_many` call (`Ruleset.match_many` asks the gate of them all at once)."""
    for start in range(0, len(entries), CHUNK):
        items = [normalize(entry, now) for entry in entries[start : start + CHUNK]]
        yield list(zip(items, match_many(items), strict=True))


def normalize(entry: RawEntry, first_seen: datetime) -> Item:
    """Normalise one parsed entry.

    Text fields become plain NFKC text; the link becomes canonical (and "" when missing or not http(s),
    so a `javascript:` link never reaches an alert); `published` is UTC, falling back to `first_seen`.
    Every text is valid Unicode: lone surrogates become U+FFFD (see `valid_unicode`). Texts are capped
    (`TITLE_MAX`, `SUMMARY_MAX`, `CONTENT_MAX` characters, cut with "…"), so a hostile feed cannot fill
    the store or the API with megabyte headlines.
    """
    from rarewatch.models import Item

    title = _title(entry.title)
    summary = _summary(entry.summary)
    link = _safe_link(valid_unicode(entry.link) if entry.link else entry.link)
    return Item(
        id=_item_id(entry.source, entry.guid, link, title, summary),
        source=entry.source,
        title=title,
        link=link,
        summary=summary,
        content=truncate(plain_text(entry.content), CONTENT_MAX) if entry.content else "",
        published=to_utc(entry.published or first_seen),
        lang=valid_unicode(entry.lang) if entry.lang else entry.lang,
        publisher=publisher_name(entry.publisher),
    )


PUBLISHER_MAX = 200  # characters: a name, not a paragraph


def publisher_name(text: str) -> str:
    """A publisher's name (HTML, as every `RawEntry` text) as one line of plain text, at most
    `PUBLISHER_MAX` characters ("" for none)."""
    if not text:
        return ""
    name = plain_text(text)
    return name if len(name) <= PUBLISHER_MAX else name[: PUBLISHER_MAX - 1].rstrip() + "…"


def _safe_link(link: str | None) -> str:
    if not link or not link.strip():
        return ""
    canonical = canonical_link(link)
    return canonical if canonical.startswith(("http://", "https://")) else ""


def parse_date(text: str | None) -> datetime | None:
    """An aware UTC datetime from a feed's date text, or None when it cannot be read.

    Takes RFC 822/1123 (RSS `pubDate`, "Thu, 09 Oct 2025 08:30:00 GMT"), RFC 3339/ISO 8601 (Atom,
    `dc:date`, JSON APIs: "2025-10-09T08:30:00Z", "2025-10-09 16:30:00+08:00", "2025-10-09"), then
    whatever else feedparser's date soup understands. A date without a zone is taken to be UTC.
    """
    if not text:
        return None
    text = text.strip()
    if text[:4].isdigit():
        # Year first: ISO 8601, or the "2025/10/09 10:00" and "2025年10月9日" forms of Chinese sites. Not
        # handed to feedparser, which "repairs" impossible dates such as 2025-13-45 into real ones.
        when = _iso_date(text) or _numeric_date(text)
    else:
        when = _rfc822_date(text) or from_struct_time(_feedparser_date(text))
    return to_utc(when) if when is not None else None


def from_struct_time(value: time.struct_time | None) -> datetime | None:
    """A UTC datetime from a struct_time in UTC (what feedparser's `*_parsed` fields hold)."""
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _iso_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _numeric_date(text: str) -> datetime | None:
    m = _NUMERIC_DATE.match(text)
    if not m:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups(default="0"))
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def _rfc822_date(text: str) -> datetime | None:
    fast = _rfc822_common(text)
    if fast is not None:
        return fast
    import email.utils

    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# The form nearly every RSS feed writes ("Thu, 09 Oct 2025 08:30:00 GMT", "9 Oct 2025 08:30:00 +0800"):
# read here in a few microseconds, where `email.utils` takes several times as long (its parser splits,
# swaps and tries many other forms). Anything else, and a date this cannot build, goes to `email.utils`.
_RFC822_COMMON = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Za-z]{3}) ([1-9]\d{3}) (\d\d):(\d\d):(\d\d) (GMT|UTC|UT|Z|[+-]\d{4})"
).fullmatch
_MONTHS = {
    name: n
    for n, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}


def _rfc822_common(text: str) -> datetime | None:
    """`email.utils.parsedate_to_datetime(text)` for the common form above, or None (not that form, or
    not a date this builds: the caller then asks `email.utils`, which decides). As there, "-0000" (a
    zone unknown) gives a naive datetime and the other zones an aware one. The year has four digits and
    no leading zero: `email.utils` reads a year below 100 as 19xx or 20xx."""
    m = _RFC822_COMMON(text)
    if m is None:
        return None
    day, month_name, year, hour, minute, second, zone = m.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        return None
    try:
        return datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=_zone(zone))
    except (ValueError, OverflowError):
        return None


_ZONES: dict[str, timezone | None] = {"GMT": UTC, "UTC": UTC, "UT": UTC, "Z": UTC, "-0000": None}


def _zone(zone: str) -> timezone | None:
    """The tzinfo of a zone `_RFC822_COMMON` took (made once per zone: at most 20,000 of them)."""
    if zone not in _ZONES:
        offset = (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60) * (-1 if zone[0] == "-" else 1)
        _ZONES[zone] = timezone(timedelta(seconds=offset))  # ValueError beyond a day
    return _ZONES[zone]


def _feedparser_date(text: str) -> time.struct_time | None:
    # feedparser's private date parser: a last resort for the odd formats real feeds publish.
    from feedparser.datetimes import _parse_date

    try:
        value = _parse_date(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return value if isinstance(value, time.struct_time) else None
