"""The one home of encoding sniffing (`rarewatch.sources.encoding`), table by table."""

from __future__ import annotations

import codecs

import pytest

from rarewatch.sources.encoding import (
    Undecodable,
    bom_codec,
    codec_for,
    content_type_charset,
    decode_html,
    html_declared_charset,
    xml_as_utf8,
    xml_declared_encoding,
)

DY = "镝稀土"  # dysprosium, rare earth
GBK_ONLY = "镕"  # in GBK (so GB18030) but not in GB2312
BIG5_TEXT = "稀土出口管制"


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("GB2312", "gb18030"),
        ("gbk", "gb18030"),
        ("x-gbk", "gb18030"),
        ("windows-936", "gb18030"),
        ("GB18030", "gb18030"),
        ("big5", "cp950"),
        ("x-x-big5", "cp950"),
        ("iso-8859-1", "cp1252"),
        ("latin1", "cp1252"),
        ("us-ascii", "utf-8"),
        ("UTF8", "utf-8"),
        (" utf-8 ", "utf-8"),
        ("shift_jis", "shift_jis"),
    ],
)
def test_labels_widen_to_the_superset_pages_use(label: str, codec: str) -> None:
    assert codec_for(label) == codec


def test_an_unknown_label_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        codec_for("klingon")


@pytest.mark.parametrize(
    ("body", "codec"),
    [
        (codecs.BOM_UTF8 + b"<p>", "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "<p>".encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + "<p>".encode("utf-16-be"), "utf-16"),
        (codecs.BOM_UTF32_LE + "<p>".encode("utf-32-le"), "utf-32"),  # not mistaken for UTF-16 LE
        (codecs.BOM_UTF32_BE + "<p>".encode("utf-32-be"), "utf-32"),
        (b"<p>", None),
    ],
)
def test_byte_order_marks(body: bytes, codec: str | None) -> None:
    assert bom_codec(body) == codec


@pytest.mark.parametrize(
    ("header", "charset"),
    [
        ("text/html; charset=GBK", "GBK"),
        ('application/rss+xml; charset="big5"', "big5"),
        ("text/xml;CHARSET=utf-8", "utf-8"),
        ("text/html", None),
        (None, None),
    ],
)
def test_content_type_charset(header: str | None, charset: str | None) -> None:
    assert content_type_charset(header) == charset


@pytest.mark.parametrize(
    ("body", "label"),
    [
        (b'<?xml version="1.0" encoding="gb2312"?><rss/>', "gb2312"),
        (b"<?xml version='1.0' encoding='Big5'?><rss/>", "Big5"),
        (b'<?xml version="1.0"?><rss/>', None),
        (b'<rss><?xml encoding="gbk"?></rss>', None),  # only a declaration at the start counts
    ],
)
def test_xml_declaration(body: bytes, label: str | None) -> None:
    assert xml_declared_encoding(body) == label


@pytest.mark.parametrize(
    ("body", "label"),
    [
        (b'<meta charset="gb2312">', "gb2312"),
        (b"<META CHARSET=big5>", "big5"),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=GBK">', "GBK"),
        (b'<?xml version="1.0" encoding="gb18030"?><html>', "gb18030"),  # XHTML
        (b" " * 5000 + b'<meta charset="gbk">', None),  # beyond the sniffed head
        (b"<p>no hint</p>", None),
    ],
)
def test_html_declared_charset(body: bytes, label: str | None) -> None:
    assert html_declared_charset(body) == label


@pytest.mark.parametrize(
    ("body", "content_type", "override", "text"),
    [
        pytest.param(DY.encode(), "text/html; charset=gbk", None, DY, id="valid UTF-8 beats a label"),
        pytest.param(DY.encode("gbk"), "text/html; charset=GBK", None, DY, id="header charset"),
        pytest.param(
            f'<meta charset="gb2312">{GBK_ONLY}'.encode("gbk"),
            None,
            None,
            f'<meta charset="gb2312">{GBK_ONLY}',
            id="gb2312 read as gb18030",
        ),
        pytest.param(
            f'<meta charset="utf-8">{DY}'.encode("gbk"),
            "text/html; charset=gbk",
            None,
            f'<meta charset="utf-8">{DY}',
            id="header outranks meta",
        ),
        pytest.param(
            f'<meta charset="big5">{BIG5_TEXT}'.encode("big5"),
            None,
            None,
            f'<meta charset="big5">{BIG5_TEXT}',
            id="big5 meta",
        ),
        pytest.param(codecs.BOM_UTF8 + DY.encode(), "text/html; charset=gbk", None, DY, id="utf-8 BOM"),
        pytest.param(codecs.BOM_UTF16_LE + DY.encode("utf-16-le"), None, None, DY, id="utf-16 BOM"),
        pytest.param(DY.encode("gb18030"), "text/html; charset=utf-8", "gbk", DY, id="override wins"),
        pytest.param(
            f'<meta charset="gbk">{DY}'.encode("gbk"),
            "text/html; charset=x-unheard-of",
            None,
            f'<meta charset="gbk">{DY}',
            id="an unknown label: the next hint",
        ),
        pytest.param(b"ok \xff\xfe", None, None, "ok \ufffd\ufffd", id="fallback: replacement chars"),
        pytest.param(b"plain", None, None, "plain", id="ascii"),
    ],
)
def test_decode_html(body: bytes, content_type: str | None, override: str | None, text: str) -> None:
    assert decode_html(body, content_type, override) == text


def _feed(encoding: str, text: str, declare: str | None = None) -> bytes:
    decl = f'<?xml version="1.0" encoding="{declare}"?>' if declare else ""
    return f"{decl}<rss><title>{text}</title></rss>".encode(encoding)


@pytest.mark.parametrize(
    ("body", "content_type", "reencoded"),
    [
        pytest.param(_feed("utf-8", DY), None, False, id="utf-8 untouched"),
        pytest.param(_feed("gbk", DY, "gb2312"), None, True, id="declaration gb2312 as gb18030"),
        pytest.param(_feed("gbk", GBK_ONLY, "gb2312"), None, True, id="gbk-only character"),
        pytest.param(_feed("big5", BIG5_TEXT, "big5"), None, True, id="big5 declaration"),
        pytest.param(_feed("gbk", DY), "text/xml; charset=gbk", True, id="header charset"),
        pytest.param(_feed("gbk", DY, "gbk"), "text/xml; charset=utf-8", True, id="declaration beats header"),
        pytest.param(_feed("utf-8", DY, "gb2312"), None, True, id="valid UTF-8 beats a label"),
        pytest.param(codecs.BOM_UTF16_LE + _feed("utf-16-le", DY), None, True, id="utf-16 BOM"),
        pytest.param(codecs.BOM_UTF8 + _feed("utf-8", DY), None, False, id="utf-8 BOM to the parser"),
    ],
)
def test_xml_as_utf8(body: bytes, content_type: str | None, reencoded: bool) -> None:
    data, was_reencoded = xml_as_utf8(body, content_type)
    assert was_reencoded is reencoded
    text = data.decode("utf-8-sig")
    assert ("<title>" + DY) in text or GBK_ONLY in text or BIG5_TEXT in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_feed("latin-1", "é", "x-no-such-codec"), "unknown encoding 'x-no-such-codec'"),
        (b'<?xml version="1.0" encoding="big5"?><rss>\xff\xff</rss>', "not valid big5 at byte"),
    ],
)
def test_xml_that_does_not_decode_is_undecodable(body: bytes, message: str) -> None:
    with pytest.raises(Undecodable, match=message):
        xml_as_utf8(body, None)
