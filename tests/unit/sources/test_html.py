"""`rarewatch.sources.html`: selectors, decoding, titles, dates, links and the layout-change errors."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rarewatch.errors import SourceError
from rarewatch.models import RawEntry
from rarewatch.normalize import normalize
from rarewatch.sources.html import (
    PRESETS,
    HtmlListSource,
    Selectors,
    codec_for,
    compile_selector,
    decode_html,
    find_date,
    parse_list,
    pick_title,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "html"
MOFCOM_URL = "https://www.mofcom.gov.cn/zwgk/zcfb/index.html"
MOFCOM = Selectors.compile(**PRESETS["mofcom"], link=None, summary=None)


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse(
    html: str | bytes,
    item: str = "li",
    title: str = "a",
    *,
    url: str = "https://example.gov.cn/list/index.html",
    content_type: str | None = "text/html; charset=utf-8",
    **selectors: str,
) -> list[RawEntry]:
    sel = Selectors.compile(
        item, title, selectors.get("link"), selectors.get("date"), selectors.get("summary")
    )
    raw = html.encode() if isinstance(html, str) else html
    return parse_list(raw, content_type, url, sel, "test", "zh")


# Selectors


@pytest.mark.parametrize("css", ["ul..x", "li[", "a:nth-child(", "li >", "::text"])
def test_invalid_selectors_are_value_errors_naming_them(css: str) -> None:
    with pytest.raises(ValueError, match="invalid CSS selector") as info:
        compile_selector(css, "item")
    assert repr(css) in str(info.value)


def test_an_empty_selector_is_refused() -> None:
    with pytest.raises(ValueError, match="empty CSS selector"):
        compile_selector("  ")


def test_construction_compiles_every_selector() -> None:
    with pytest.raises(ValueError, match=r"source mofcom: date: invalid CSS selector 'span\['"):
        HtmlListSource("mofcom", MOFCOM_URL, item="li", title="a", date="span[")
    with pytest.raises(ValueError, match="source mofcom: unknown encoding 'klingon'"):
        HtmlListSource("mofcom", MOFCOM_URL, item="li", title="a", encoding="klingon")
    with pytest.raises(ValueError, match="refusing non-http"):
        HtmlListSource("mofcom", "ftp://mofcom.gov.cn/", item="li", title="a")


def test_encoding_labels_widen_to_their_supersets() -> None:
    assert codec_for("GB2312") == "gb18030"
    assert codec_for("gbk") == "gb18030"
    assert codec_for("x-gbk") == "gb18030"
    assert codec_for("big5") == "cp950"
    assert codec_for("UTF8") == "utf-8"


# Decoding


def test_meta_charset_gb2312_decodes_gbk_only_characters() -> None:
    text = decode_html(fixture("gbk_list.html"), "text/html")
    assert "赣州镕鑫材料有限公司" in text  # 镕 is in GBK but not in GB2312


def test_content_type_charset_beats_meta() -> None:
    page = '<meta charset="utf-8"><p>稀土</p>'.encode("gbk")
    assert "稀土" in decode_html(page, "text/html; charset=GBK")


def test_utf8_bytes_under_a_wrong_label_are_utf8() -> None:
    page = '<meta charset="gb2312"><p>出口管制</p>'.encode()
    assert "出口管制" in decode_html(page, "text/html; charset=gb2312")


def test_the_configured_encoding_wins() -> None:
    page = '<meta charset="utf-8"><p>钕铁硼</p>'.encode("gb18030")
    assert "钕铁硼" in decode_html(page, "text/html; charset=utf-8", "gbk")


@pytest.mark.parametrize(
    ("bom", "encoding"), [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")]
)
def test_a_bom_decides(bom: bytes, encoding: str) -> None:
    page = bom + "<p>镝</p>".encode(encoding)
    assert decode_html(page, "text/html; charset=gbk") == "<p>镝</p>"


def test_bad_bytes_become_replacement_characters() -> None:
    page = b'<meta charset="utf-8"><p>ok \xff\xfe tail</p>'
    assert "ok \ufffd\ufffd tail" in decode_html(page, None)


def test_an_unknown_label_falls_back_to_the_next_hint() -> None:
    page = '<meta charset="gbk"><p>稀土</p>'.encode("gbk")
    assert "稀土" in decode_html(page, "text/html; charset=x-unheard-of")


# Titles and dates


@pytest.mark.parametrize(
    ("text", "attr", "expected"),
    [
        (
            "关于对部分稀土物项实施...",
            "关于对部分稀土物项实施出口管制的公告",
            "关于对部分稀土物项实施出口管制的公告",
        ),
        (
            "Controls on magnet…",
            "Controls on magnet production equipment",
            "Controls on magnet production equipment",
        ),
        ("Full title", "Full title", "Full title"),
        ("Full title", "在新窗口打开", "Full title"),  # a tooltip, not the title
        ("Full title", None, "Full title"),
        ("Full title", "  ", "Full title"),
        ("", "Icon link title", "Icon link title"),
        ("Licence rules", "Licence rules  for\n magnets", "Licence rules for magnets"),
    ],
)
def test_pick_title(text: str, attr: str | None, expected: str) -> None:
    assert pick_title(text, attr) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-09", datetime(2026, 10, 9, tzinfo=UTC)),
        ("2026/10/09", datetime(2026, 10, 9, tzinfo=UTC)),
        ("2026年10月9日", datetime(2026, 10, 9, tzinfo=UTC)),
        ("[2026/09/30]", datetime(2026, 9, 30, tzinfo=UTC)),
        ("发布时间：2026年9月28日", datetime(2026, 9, 28, tzinfo=UTC)),
        ("(2026-02-30)", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_find_date(text: str, expected: datetime | None) -> None:
    assert find_date(text) == expected


# Whole pages


def test_mofcom_list_with_the_preset() -> None:
    entries = parse_list(
        fixture("mofcom_list.html"), "text/html; charset=utf-8", MOFCOM_URL, MOFCOM, "m", "zh"
    )
    assert len(entries) == 4  # the nav <li>s are outside ul.txtList_01; the empty fifth item is skipped
    first, second, third, fourth = entries
    # The visible text is cut with "..."; the title attribute holds it whole.
    assert first.title == "商务部公告2026年第61号 关于对部分中重稀土相关物项实施出口管制的决定"
    assert (
        first.link == "https://www.mofcom.gov.cn/zwgk/zcfb/art/2026/art_3f1c9a0b5d7e4a2c8b6d0e1f2a3b4c5d.html"
    )
    assert first.guid == first.link
    assert first.published == datetime(2026, 10, 9, tzinfo=UTC)
    # "art/2026/..." is relative to the list page's folder.
    assert (
        second.link
        == "https://www.mofcom.gov.cn/zwgk/zcfb/art/2026/art_0a1b2c3d4e5f60718293a4b5c6d7e8f9.html"
    )
    assert third.title == "永磁材料技术出口审查工作指引"  # title="在新窗口打开" is a tooltip
    assert third.link is not None and third.link.startswith("https://www.example.gov.cn/")
    assert third.published == datetime(2026, 9, 30, tzinfo=UTC)
    assert fourth.published == datetime(2026, 9, 28, tzinfo=UTC)
    # Text is escaped into RawEntry's HTML and comes back whole after normalisation.
    assert (
        normalize(fourth, datetime(2026, 10, 10, tzinfo=UTC)).title
        == "关于暂停实施部分出口管制措施的公告 <试行>"
    )


def test_gbk_page_with_summary_and_relative_links() -> None:
    url = "http://swt.example.gov.cn/tzgg/index.html"
    entries = parse(
        fixture("gbk_list.html"),
        "div.list li",
        "a",
        url=url,
        content_type="text/html",
        date="span.date",
        summary="p.summary",
    )
    assert [e.title for e in entries] == [
        "关于做好稀土永磁产品出口许可申报工作的通知",
        "赣州镕鑫材料有限公司列入出口管控名单的公示",
        "国庆假期值班安排",
    ]
    assert entries[0].summary == "请各企业于十日内提交最终用户和最终用途说明。"
    assert entries[1].link == "http://swt.example.gov.cn/tzgg/202610/t20261008_5519.html"  # "../" resolved
    assert entries[1].published == datetime(2026, 10, 8, tzinfo=UTC)
    # A javascript: link is no link, and no guid: the id then comes from the title.
    assert entries[2].link is None and entries[2].guid is None


def test_a_redesigned_page_is_a_source_error() -> None:
    with pytest.raises(
        SourceError, match=r"selector 'ul.txtList_01 li' matched nothing: the page layout may have changed"
    ):
        parse_list(fixture("layout_changed.html"), "text/html", MOFCOM_URL, MOFCOM, "m", None)


def test_items_without_any_title_are_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"title selector 'h4' matched no text in any of the 5 items"):
        parse(fixture("mofcom_list.html"), "ul.txtList_01 li", "h4")


@pytest.mark.parametrize("raw", [b"", b" \n\t"])
def test_an_empty_page_is_a_source_error(raw: bytes) -> None:
    with pytest.raises(SourceError, match="empty response"):
        parse(raw)


def test_a_link_selector_and_base_href() -> None:
    html = (
        '<html><head><base href="https://cdn.example.org/news/"></head><body><ul>'
        '<li><span class="t">Magnet licences</span> <a href="#">share</a>'
        '<a class="more" href="a/1.html">more</a></li>'
        "</ul></body></html>"
    )
    (entry,) = parse(html, "li", "span.t", link="a.more")
    assert entry.title == "Magnet licences"
    assert entry.link == "https://cdn.example.org/news/a/1.html"


def test_default_link_is_the_first_anchor_when_the_title_has_no_href() -> None:
    html = '<ul><li><h3>Rare earth quota notice</h3><a href="#top">top</a><a href="/n/9">read</a></li></ul>'
    (entry,) = parse(html, "li", "h3")
    assert entry.link == "https://example.gov.cn/n/9"  # the first anchor that links somewhere


def test_a_fragment_only_href_is_no_link() -> None:
    (entry,) = parse('<ul><li><a href="#">Notice</a></li></ul>')
    assert entry.link is None and entry.guid is None


def test_xhtml_with_an_xml_declaration_parses() -> None:
    html = (
        '<?xml version="1.0" encoding="gb2312"?>\n'
        '<html><body><ul><li><a href="/a">稀土</a></li></ul></body></html>'
    )
    (entry,) = parse(html.encode("gbk"), content_type="text/html")
    assert entry.title == "稀土"


def test_construction_stores_compiled_selectors() -> None:
    source = HtmlListSource("mofcom", MOFCOM_URL, **PRESETS["mofcom"], encoding="GB2312")
    assert source.selectors.item.css == "ul.txtList_01 li"
    assert source.encoding == "gb18030"
    assert source.headers["Accept"].startswith("text/html")
