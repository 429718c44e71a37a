"""Encoding sniffing, in one place: feeds, HTML list pages and linked articles all decode bytes here.

The hints, and who trusts which: a byte-order mark; the charset of the HTTP Content-Type header; the
document's own declaration (an XML declaration, or an HTML `<meta charset>`). Bytes that are valid UTF-8
beyond ASCII are UTF-8 whatever a label says (CMS templates often declare gb2312 over UTF-8 text; the reverse
accident essentially never decodes). Labels are widened to the superset real pages use, as browsers do:
GBK and GB2312 read as GB18030, Big5 as CP950, Latin-1 as Windows-1252, ASCII as UTF-8.

- `decode_html`: HTML (list pages and articles) to text, never raising: a configured override wins; else
  a BOM, UTF-8 if valid, the Content-Type charset, then the page's own `<meta charset>`; bad bytes become
  U+FFFD.
- `xml_as_utf8`: an XML document (a feed) as UTF-8 bytes for lxml: a BOM, the XML declaration, the
  Content-Type charset, UTF-8. Strict: bytes that do not decode raise `UnicodeDecodeError` (the feed parser
  then hands the document to feedparser).
"""

from __future__ import annotations

import codecs
import re

UTF8 = "utf-8"

# Labels that real documents use for a superset of what they name: GB2312 pages hold GBK characters, Big5
# pages hold Microsoft CP950 characters (a strict superset of Python's big5), Latin-1 pages hold
# Windows-1252 quotes (as browsers assume). Keys are Python codec names (`codecs.lookup(label).name`).
SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "cp950", "iso8859-1": "cp1252", "ascii": UTF8}
ALIASES = {"x-gbk": "gb18030", "windows-936": "gb18030", "x-x-big5": "cp950"}  # labels unknown to Python
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is a prefix of this one
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
META_SNIFF = 4096  # browsers look for <meta charset> in the first 1024 bytes; be a little lenient
_XML_DECL_SNIFF = 256

_CT_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_XML_DECL_ENCODING = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")


def codec_for(label: str) -> str:
    """The Python codec for an encoding label, widened to the superset pages really use; ValueError."""
    try:
        name = codecs.lookup(ALIASES.get(label.strip().lower(), label.strip())).name
    except LookupError:
        raise ValueError(f"unknown encoding {label!r}") from None
    return SUPERSETS.get(name, name)


def bom_codec(body: bytes) -> str | None:
    """The codec a byte-order mark at the start of `body` names (`utf-8-sig`, `utf-16`, `utf-32`), or None."""
    for bom, codec in BOMS:
        if body.startswith(bom):
            return codec
    return None


def content_type_charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a raw Content-Type header, or None."""
    m = _CT_CHARSET.search(content_type) if content_type else None
    return m.group(1) if m else None


def xml_declared_encoding(body: bytes) -> str | None:
    """The `encoding` of an XML declaration at the very start of `body`, or None."""
    m = _XML_DECL_ENCODING.match(body[:_XML_DECL_SNIFF])
    return m.group(1).decode("ascii") if m else None


def html_declared_charset(body: bytes) -> str | None:
    """`<meta charset>` or `<meta http-equiv content="...; charset=">`, else an XHTML XML declaration."""
    head = body[:META_SNIFF]
    m = _META_CHARSET.search(head) or _XML_ENCODING.match(head.lstrip())
    return m.group(1).decode("ascii") if m else None


def is_utf8_beyond_ascii(body: bytes) -> bool:
    """Whether `body` has non-ASCII bytes, all valid UTF-8 (then it is UTF-8, whatever a label says)."""
    if body.isascii():
        return False
    try:
        body.decode(UTF8)
    except UnicodeDecodeError:
        return False
    return True


def _known_codec(label: str) -> str | None:
    try:
        return codec_for(label)
    except ValueError:
        return None  # a label Python does not know: try the next hint


def decode_html(body: bytes, content_type: str | None, override: str | None = None) -> str:
    """The page as text: `override`, else BOM, UTF-8 if valid, Content-Type charset, the page's own.

    Never raises on bad bytes: an undecodable byte becomes U+FFFD rather than losing the whole page.
    """
    if override:
        return body.decode(codec_for(override), "replace")
    bom = bom_codec(body)
    if bom:
        return body.decode(bom, "replace")
    if not body.isascii():  # valid UTF-8 beyond ASCII is UTF-8, whatever a label says (decoded once)
        try:
            return body.decode(UTF8)
        except UnicodeDecodeError:
            pass
    # The HTTP header outranks the page.
    labels = (content_type_charset(content_type), html_declared_charset(body))
    candidates = [c for c in (_known_codec(label) for label in labels if label) if c]
    for codec in candidates:
        try:
            return body.decode(codec)
        except UnicodeDecodeError:
            continue
    return body.decode(candidates[0] if candidates else UTF8, "replace")


class Undecodable(ValueError):
    """The bytes do not decode as the encoding their hints name (or a hint names no known encoding)."""


def _reencode(body: bytes, codec: str, label: str) -> bytes:
    try:
        return body.decode(codec).encode(UTF8)
    except UnicodeDecodeError as exc:
        raise Undecodable(f"not valid {label} at byte {exc.start}") from None


def xml_as_utf8(body: bytes, content_type: str | None) -> tuple[bytes, bool]:
    """An XML document as UTF-8 bytes, and whether it was re-encoded (so its declaration must be ignored).

    Order of authority: a BOM, the XML declaration, the Content-Type charset, UTF-8. UTF-8 bytes (with or
    without a UTF-8 BOM) are returned untouched: the XML parser validates them. Raises `Undecodable` for an
    unknown label or bytes that are not valid in the encoding chosen.
    """
    bom = bom_codec(body)
    if bom and bom != "utf-8-sig":
        return _reencode(body, bom, bom), True
    label = xml_declared_encoding(body) or content_type_charset(content_type)
    try:
        codec = codec_for(label) if label else UTF8
    except ValueError as exc:
        raise Undecodable(str(exc)) from None
    if codec == UTF8:
        return body, False
    if is_utf8_beyond_ascii(body):
        return body, True
    return _reencode(body, codec, label or codec), True
