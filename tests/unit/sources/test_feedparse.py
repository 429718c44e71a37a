"""Feed parsing: formats, encodings, the lxml/feedparser split, and hostile documents."""

from __future__ import annotations

import io
import pickle
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from rarewatch.errors import SourceError
from rarewatch.models import RawEntry
from rarewatch.sources import feedparse
from rarewatch.sources.feedparse import parse_feed, parse_with_feedparser

FEEDS = Path(__file__).resolve().parents[2] / "data" / "feeds"
MINIMAL_RSS = b'<rss version="2.0"><channel><item><title>t</title></item></channel></rss>'


def load(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the feedparser fallback is used: the document must take the lxml path."""

    def refuse(*args: object, **kwargs: object) -> list[RawEntry]:
        raise AssertionError(f"fell back to feedparser: {kwargs.get('problem')}")

    monkeypatch.setattr(feedparse, "parse_with_feedparser", refuse)


@pytest.fixture
def fallback_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record why the feedparser fallback was used (and let it run)."""
    calls: list[str] = []
    real = feedparse.parse_with_feedparser

    def spy(
        body: bytes, content_type: str | None, source: str, lang: str | None, *, problem: str = ""
    ) -> list[RawEntry]:
        calls.append(problem)
        return real(body, content_type, source, lang, problem=problem)

    monkeypatch.setattr(feedparse, "parse_with_feedparser", spy)
    return calls


# Formats (lxml path)


@pytest.mark.usefixtures("fast_only")
def test_rss2() -> None:
    entries = parse_feed(load("rss2.xml"), "application/rss+xml", "desk", None)
    assert [e.title for e in entries] == [
        "Beijing tightens licensing for heavy rare earth exports",
        "Magnet makers report held-up shipments",
        "Permalink guid only",
    ]
    first, second, third = entries
    assert first.source == "desk"
    assert first.guid == "cmd-0001"
    assert first.link == "https://news.example.org/2025/10/heavy-rare-earths?utm_source=rss&utm_medium=feed"
    assert "<b>dysprosium</b>" in first.summary  # still HTML: normalize strips it
    assert "Second&nbsp;paragraph" in first.content  # content:encoded
    assert first.published == datetime(2025, 10, 9, 8, 30, tzinfo=UTC)
    assert first.lang == "en-gb"  # from <language>
    assert second.published == datetime(2025, 10, 10, 4, 0, tzinfo=UTC)  # dc:date, +02:00
    assert third.link == "https://news.example.org/2025/10/guid-only"  # a permalink guid
    assert third.published is None  # "not a date at all"


@pytest.mark.usefixtures("fast_only")
def test_rss2_guid_not_a_permalink_is_not_a_link() -> None:
    body = (
        b'<rss version="2.0"><channel><item><title>t</title>'
        b'<guid isPermaLink="false">https://example.org/x</guid></item></channel></rss>'
    )
    (entry,) = parse_feed(body, None, "s", None)
    assert entry.guid == "https://example.org/x"
    assert entry.link is None


@pytest.mark.usefixtures("fast_only")
def test_rss1_rdf() -> None:
    entries = parse_feed(load("rss1.rdf"), "application/rdf+xml", "oj", None)
    assert [e.title for e in entries] == [
        "Regulation amending the dual-use control list",
        "Notice on anti-dumping duties",
    ]
    assert entries[0].link == "https://journal.example.net/notice/17"
    assert entries[0].guid == "https://journal.example.net/notice/17"  # rdf:about
    assert entries[0].published == datetime(2025, 9, 30, 12, tzinfo=UTC)
    assert entries[1].published == datetime(2025, 10, 1, tzinfo=UTC)
    assert entries[0].lang == "en"


@pytest.mark.usefixtures("fast_only")
def test_atom() -> None:
    first, second = parse_feed(load("atom.xml"), "application/atom+xml", "ministry", None)
    # type="text" is escaped into HTML, so "<5 mm" survives normalisation as text
    assert first.title == "Controls on items &lt;5 mm: consultation opens"
    assert first.link == "https://ministry.example.gov/press/2025/controls-consultation"  # xml:base
    assert first.guid == "tag:ministry.example.gov,2025:press-1"
    assert first.published == datetime(2025, 10, 9, 0, 0, tzinfo=UTC)  # <published> wins over <updated>
    assert first.summary.startswith("<p>Comments are invited on <em>export licensing</em>")  # type="html"
    assert "Paragraph <b>two</b> &amp; more." in first.content  # type="xhtml", serialised
    assert first.lang == "en"
    assert second.link == "https://ministry.example.gov/fr/press/2"  # a link without rel
    assert second.published == datetime(2025, 10, 8, 17, 45, tzinfo=UTC)  # only <updated>
    assert second.content == "<p>Texte en français.</p>"
    assert second.lang == "fr"  # the entry's own xml:lang


@pytest.mark.usefixtures("fast_only")
def test_configured_lang_overrides_the_feed() -> None:
    entries = parse_feed(load("atom.xml"), None, "ministry", "de")
    assert {e.lang for e in entries} == {"de"}
    assert {e.lang for e in parse_feed(load("rss2.xml"), None, "desk", "zh")} == {"zh"}


@pytest.mark.usefixtures("fast_only")
def test_feed_without_items_is_empty_not_an_error() -> None:
    assert parse_feed(load("empty_channel.xml"), None, "s", None) == []


# Encodings


@pytest.mark.usefixtures("fast_only")
def test_gb2312_label_decodes_gbk_characters() -> None:
    entries = parse_feed(load("zh_gb2312.xml"), "text/xml", "mofcom", None)
    assert entries[0].title == "关于对部分稀土相关物项实施出口管制的公告"
    assert entries[1].title == "朱镕基同名测试：钕铁硼永磁体出口许可"  # 镕 is GBK, not GB2312
    assert "２０２５年第６１号" in entries[0].summary  # full-width kept here; normalize folds it
    assert entries[0].published == datetime(2025, 10, 9, 8, 0, tzinfo=UTC)
    assert entries[1].published == datetime(2025, 10, 10, 9, 30, tzinfo=UTC)
    assert entries[0].lang == "zh-cn"


@pytest.mark.usefixtures("fast_only")
def test_big5() -> None:
    (entry,) = parse_feed(load("zh_big5.xml"), None, "tw", None)
    assert entry.title == "稀土永磁材料出口管制措施說明"
    assert "鏑、鋱" in entry.summary


@pytest.mark.usefixtures("fast_only")
def test_utf8_with_bom() -> None:
    (entry,) = parse_feed(load("zh_utf8_bom.xml"), "application/xml; charset=utf-8", "kx", None)
    assert entry.title == "稀土供应紧张，部分磁材厂减产"
    assert entry.link == "https://kx.example.cn/a/1?spm=a1.b2&id=7"


@pytest.mark.usefixtures("fast_only")
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(encoding: str) -> None:
    text = load("zh_utf8_bom.xml").decode("utf-8-sig").replace('encoding="utf-8"', f'encoding="{encoding}"')
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    (entry,) = parse_feed(data, None, "kx", None)
    assert entry.title == "稀土供应紧张，部分磁材厂减产"


@pytest.mark.usefixtures("fast_only")
def test_charset_from_content_type_when_no_declaration() -> None:
    body = '<rss version="2.0"><channel><item><title>稀土出口管制</title></item></channel></rss>'
    (entry,) = parse_feed(body.encode("gbk"), "application/rss+xml; charset=GB2312", "s", None)
    assert entry.title == "稀土出口管制"


@pytest.mark.usefixtures("fast_only")
def test_declared_gb2312_but_really_utf8() -> None:
    (entry,) = parse_feed(load("zh_declared_gb2312_is_utf8.xml"), None, "s", None)
    assert entry.title == "镓、锗相关物项出口管制"


def test_declared_utf8_but_really_windows_1252_falls_back_and_sniffs(fallback_calls: list[str]) -> None:
    (entry,) = parse_feed(load("wrong_declared_encoding.xml"), "text/xml", "w", None)
    assert entry.title == "\u201cCaf\u00e9\u201d owners fret over magnet supply"
    assert entry.summary == "R\u00e9sum\u00e9 of the week \u2013 tungsten."
    assert entry.published == datetime(2025, 10, 11, 10, tzinfo=UTC)
    assert len(fallback_calls) == 1
    assert "malformed XML" in fallback_calls[0]


def test_unknown_declared_encoding_falls_back(fallback_calls: list[str]) -> None:
    body = b'<?xml version="1.0" encoding="x-no-such-codec"?>' + MINIMAL_RSS
    (entry,) = parse_feed(body, None, "s", None)
    assert entry.title == "t"
    assert fallback_calls == ["unknown encoding 'x-no-such-codec'"]


# Ill-formed and wrong documents


def test_recoverable_ill_formed_feed_yields_entries(
    fallback_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    entries = parse_feed(load("recoverable.xml"), None, "loose", None)
    assert [e.title for e in entries] == ["Prices &amp; supply: terbium climbs", "Second item"]
    assert entries[0].published == datetime(2025, 10, 12, 7, 15, tzinfo=UTC)
    assert fallback_calls and fallback_calls[0].startswith("malformed XML")
    assert "recovered 2 entries" in caplog.text


def test_whitespace_before_the_xml_declaration_is_tolerated(fast_only: None) -> None:
    body = b'\n\n  <?xml version="1.0"?>' + MINIMAL_RSS
    assert [e.title for e in parse_feed(body, None, "s", None)] == ["t"]


def test_malformed_xml_is_a_source_error_naming_the_problem() -> None:
    with pytest.raises(SourceError, match=r"^malformed XML: .*tag mismatch"):
        parse_feed(load("malformed.xml"), "application/rss+xml", "s", None)


@pytest.mark.parametrize("body", [b"", b"   \n\t  "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(SourceError, match=r"^empty response$"):
        parse_feed(body, None, "s", None)


def test_html_page() -> None:
    with pytest.raises(SourceError, match=r"^not a feed: got an HTML page$"):
        parse_feed(load("html_page.html"), "text/html; charset=utf-8", "s", None)


def test_well_formed_xhtml_page() -> None:
    body = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body><p>hi</p></body></html>'
    with pytest.raises(SourceError, match=r"^not a feed: got an HTML page$"):
        parse_feed(body, None, "s", None)


def test_other_xml_document_is_not_a_feed() -> None:
    with pytest.raises(SourceError, match=r"^not a feed"):
        parse_feed(b"<?xml version='1.0'?><config><item>x</item></config>", None, "s", None)


def test_plain_text_is_not_a_feed() -> None:
    with pytest.raises(SourceError, match=r"malformed XML"):
        parse_feed(b"Service temporarily unavailable, try later.", "text/plain", "s", None)


# Hostile documents


def _bounded(func: object, *args: object) -> tuple[float, int]:
    """Run func(*args) and return (seconds, peak traced bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        func(*args)  # type: ignore[operator]
    except (SourceError, etree.XMLSyntaxError):
        pass
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return elapsed, peak


def test_billion_laughs_is_refused_quickly() -> None:
    body = load("billion_laughs.xml")
    with pytest.raises(SourceError, match=r"^refusing a feed that declares XML entities$"):
        parse_feed(body, None, "s", None)
    elapsed, peak = _bounded(parse_feed, body, None, "s", None)
    assert elapsed < 1.0
    assert peak < 1_000_000


def test_xxe_is_refused_and_never_reads_the_file() -> None:
    with pytest.raises(SourceError, match=r"^refusing a feed that declares XML entities$") as info:
        parse_feed(load("xxe.xml"), None, "s", None)
    assert "root:" not in str(info.value)


def test_entities_in_utf16_are_refused_too() -> None:
    body = load("xxe.xml").decode().replace('<?xml version="1.0"?>', "").encode("utf-16")
    with pytest.raises(SourceError, match=r"declares XML entities"):
        parse_feed(body, None, "s", None)


# Each layer is safe on its own, without the refusal above.


def test_lxml_layer_alone_does_not_expand_billion_laughs() -> None:
    elapsed, peak = _bounded(feedparse._parse_fast, load("billion_laughs.xml"), None, "s", None)
    assert elapsed < 1.0
    assert peak < 5_000_000


def test_lxml_layer_alone_does_not_resolve_external_entities() -> None:
    passwd = Path("/etc/passwd").read_text(errors="replace")
    root = etree.fromstring(load("xxe.xml"), feedparse._parsers.native)
    text = etree.tostring(root, encoding="unicode")
    assert "root:" not in text
    assert passwd[:20] not in text
    # and the fast path checks the parsed DTD itself, whatever the byte scan saw
    with pytest.raises(SourceError, match=r"^refusing a feed that declares XML entities$"):
        feedparse._parse_fast(load("xxe.xml"), None, "s", None)


@pytest.mark.usefixtures("fast_only")
def test_a_feed_quoting_entity_syntax_in_an_article_is_fine() -> None:
    body = (
        b'<rss version="2.0"><channel><item><title>XML security 101</title>'
        b"<description><![CDATA[<pre>&lt;!ENTITY x SYSTEM ...&gt;</pre> <code><!ENTITY></code>]]>"
        b"</description>"
        b"</item></channel></rss>"
    )
    (entry,) = parse_feed(body, None, "s", None)
    assert "<!ENTITY>" in entry.summary


def test_feedparser_layer_alone_does_not_expand_billion_laughs() -> None:
    body = load("billion_laughs.xml")
    tracemalloc.start()
    start = time.perf_counter()
    result = feedparser.parse(io.BytesIO(body))
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 10_000_000
    assert all("hahaha" not in (e.get("title", "") + e.get("summary", "")) for e in result.entries)


def test_feedparser_layer_alone_does_not_read_external_entities() -> None:
    entries = parse_with_feedparser(load("xxe.xml"), None, "s", None)
    for entry in entries:
        assert "root:" not in entry.title + entry.summary


def test_feedparser_fallback_never_treats_bytes_as_a_path(tmp_path: Path) -> None:
    # feedparser.parse(bytes) would try open(bytes) first; we hand it a BytesIO
    secret = tmp_path / "secret.xml"
    secret.write_bytes(b'<rss version="2.0"><channel><item><title>LEAKED</title></item></channel></rss>')
    with pytest.raises(SourceError):
        parse_with_feedparser(str(secret).encode(), None, "s", None)


# Process pools


def test_parse_feed_and_entries_pickle_for_a_process_pool() -> None:
    assert pickle.loads(pickle.dumps(parse_feed)) is parse_feed
    entries = parse_feed(load("rss2.xml"), None, "desk", None)
    assert pickle.loads(pickle.dumps(entries)) == entries
    error = pickle.loads(pickle.dumps(SourceError("empty response")))
    assert str(error) == "empty response"


def test_parse_feed_runs_in_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        entries = pool.submit(parse_feed, load("zh_gb2312.xml"), None, "mofcom", None).result(timeout=60)
        assert entries == parse_feed(load("zh_gb2312.xml"), None, "mofcom", None)
        with pytest.raises(SourceError, match=r"empty response"):
            pool.submit(parse_feed, b"", None, "s", None).result(timeout=60)


def test_unfamiliar_dialect_goes_to_feedparser(fallback_calls: list[str]) -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><feed version="0.3" xmlns="http://purl.org/atom/ns#">'
        b'<entry><title>Old Atom 0.3 entry</title><link rel="alternate" href="https://old.example.org/1"/>'
        b"<issued>2005-01-01T00:00:00Z</issued></entry></feed>"
    )
    (entry,) = parse_feed(body, None, "s", None)
    assert entry.title == "Old Atom 0.3 entry"
    assert entry.link == "https://old.example.org/1"
    assert fallback_calls == ["not a feed: no RSS or Atom root element"]


@pytest.mark.usefixtures("fast_only")
def test_big5_label_accepts_cp950_extensions() -> None:
    body = '<?xml version="1.0" encoding="big5"?>' + MINIMAL_RSS.decode().replace(">t<", ">稀土價格 €120<")
    (entry,) = parse_feed(body.encode("cp950"), None, "tw", None)
    assert entry.title == "稀土價格 €120"


@pytest.mark.usefixtures("fast_only")
def test_item_language_and_atom_style_link_in_rss() -> None:
    body = (
        b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><language>en</language>'
        b'<item><title>a</title><link href="https://example.org/a"/><dc:language>zh</dc:language></item>'
        b"<item><title>b</title></item></channel></rss>"
    )
    first, second = parse_feed(body, None, "s", None)
    assert first.link == "https://example.org/a"
    assert (first.lang, second.lang) == ("zh", "en")
    assert {e.lang for e in parse_feed(body, None, "s", "fr")} == {"fr"}  # configured wins


@pytest.mark.parametrize(
    "ref", [b"&#55296;", b"&#xD800;", b"&#xdbff;", b"&#56320;", b"&#57343;", b"&#x0DFFF;"]
)
def test_surrogate_references_become_replacement_character_references(ref: bytes) -> None:
    assert feedparse.replace_surrogate_refs(b"a " + ref + b" b") == b"a &#xFFFD; b"


@pytest.mark.parametrize(
    "ref", [b"&#55295;", b"&#57344;", b"&#xD7FF;", b"&#xE000;", b"&#8217;", b"&#x1F600;"]
)
def test_other_character_references_are_left_alone(ref: bytes) -> None:
    assert feedparse.replace_surrogate_refs(b"a " + ref + b" b") == b"a " + ref + b" b"


@pytest.mark.parametrize("closed", [True, False], ids=["well-formed", "broken"])
def test_a_feed_with_a_surrogate_reference_parses(closed: bool) -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Rare &#55296; earth</title><link>https://x.example/1</link></item>"
        + (b"</channel></rss>" if closed else b"")
    )
    entries = parse_feed(body, "application/rss+xml", "wire", None)
    assert [e.title for e in entries] == ["Rare \ufffd earth"]
