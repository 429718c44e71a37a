"""The publisher's name, read from what the feed says (not the source's configured name), for every kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rarewatch.models import RawEntry
from rarewatch.normalize import PUBLISHER_MAX, normalize
from rarewatch.sources.feedparse import parse_feed, parse_with_feedparser
from rarewatch.sources.html import Selectors, parse_list
from rarewatch.sources.json_api import JsonMapping, parse_page

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DC = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'


def publishers(doc: str, *, fallback: bool = False) -> list[str]:
    """The normalised publisher of each entry, through the lxml path or feedparser's."""
    body = doc.encode()
    entries = (
        parse_with_feedparser(body, None, "cfg-name", None)
        if fallback
        else parse_feed(body, None, "cfg-name", None)
    )
    return [normalize(e, NOW).publisher for e in entries]


RSS = f"""<rss version="2.0" {DC}><channel><title>Mining &amp; Metals Daily</title>{{channel}}
<item><title>a</title><link>https://example.org/a</link>
  <source url="https://wire.example/rss">Wire &amp; Co</source></item>
<item><title>b</title><link>https://example.org/b</link>
  <dc:publisher>Ministry of Commerce</dc:publisher></item>
<item><title>c</title><link>https://example.org/c</link></item>
</channel></rss>"""


@pytest.mark.parametrize("fallback", [False, True], ids=["lxml", "feedparser"])
def test_rss_item_source_then_dc_publisher_then_the_channel_title(fallback: bool) -> None:
    assert publishers(RSS.format(channel=""), fallback=fallback) == [
        "Wire & Co",
        "Ministry of Commerce",
        "Mining & Metals Daily",
    ]


@pytest.mark.parametrize("fallback", [False, True], ids=["lxml", "feedparser"])
def test_rss_channel_dc_publisher_beats_the_channel_title(fallback: bool) -> None:
    doc = RSS.format(channel="<dc:publisher>Metals Media Ltd</dc:publisher>")
    assert publishers(doc, fallback=fallback)[2] == "Metals Media Ltd"


def test_rss1_rdf_channel_title() -> None:
    rdf = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    doc = f"""<rdf:RDF {rdf} xmlns="http://purl.org/rss/1.0/" {DC}>
<channel rdf:about="https://example.org/"><title>Gazette of Minerals</title></channel>
<item rdf:about="https://example.org/1"><title>one</title><link>https://example.org/1</link></item>
</rdf:RDF>"""
    assert publishers(doc) == ["Gazette of Minerals"]


ATOM = """<feed xmlns="http://www.w3.org/2005/Atom">{title}<author><name>Trade Desk</name></author><id>x</id>
<entry><title>a</title><id>a</id><link href="https://example.org/a"/><updated>2026-10-01T00:00:00Z</updated>
<source><title>Original Outlet</title></source></entry>
<entry><title>b</title><id>b</id><link href="https://example.org/b"/><updated>2026-10-01T00:00:00Z</updated></entry>
</feed>"""


@pytest.mark.parametrize("fallback", [False, True], ids=["lxml", "feedparser"])
def test_atom_entry_source_then_the_feed_title(fallback: bool) -> None:
    doc = ATOM.format(title="<title type='html'>Export &lt;b&gt;Control&lt;/b&gt; Watch</title>")
    assert publishers(doc, fallback=fallback) == ["Original Outlet", "Export Control Watch"]


@pytest.mark.parametrize("fallback", [False, True], ids=["lxml", "feedparser"])
def test_atom_feed_author_when_the_feed_has_no_title(fallback: bool) -> None:
    assert publishers(ATOM.format(title=""), fallback=fallback)[1] == "Trade Desk"


def test_a_feed_that_names_no_publisher_gives_the_empty_string_not_the_source_name() -> None:
    doc = '<rss version="2.0"><channel><item><title>t</title><link>https://e.org/t</link></item></channel></rss>'
    assert publishers(doc) == [""]


def test_the_publisher_is_one_line_and_capped() -> None:
    long_name = "Very   Long\n Publisher " * 40
    entry = RawEntry(source="s", title="t", link="https://e.org/t", publisher=long_name)
    name = normalize(entry, NOW).publisher
    assert "\n" not in name and "  " not in name
    assert len(name) == PUBLISHER_MAX and name.endswith("…")


def test_json_fields_publisher_maps_a_dotted_path() -> None:
    mapping = JsonMapping(items="results", title="title", link="url", publisher="agencies.0.name")
    doc = {
        "results": [
            {"title": "t", "url": "https://e.org/1", "agencies": [{"name": "Industry & Security Bureau"}]}
        ]
    }
    page = parse_page(json.dumps(doc).encode(), mapping, "cfg-name", "en")
    assert [normalize(e, NOW).publisher for e in page.entries] == ["Industry & Security Bureau"]


def test_json_without_fields_publisher_has_none() -> None:
    mapping = JsonMapping(items="results", title="title", link="url")
    doc = {"results": [{"title": "t", "url": "https://e.org/1", "publisher": "ignored"}]}
    page = parse_page(json.dumps(doc).encode(), mapping, "cfg-name", "en")
    assert page.entries[0].publisher == ""


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            '<meta property="og:site_name" content="Ministry of Commerce &amp; Trade">',
            "Ministry of Commerce & Trade",
        ),
        ('<meta property="og:title" content="A page">', ""),
        ("", ""),
    ],
)
def test_html_og_site_name(head: str, expected: str) -> None:
    page = f"<html><head>{head}</head><body><ul><li><a href='/a'>Notice one</a></li></ul></body></html>"
    sel = Selectors.compile("li", "a", None, None, None)
    entries = parse_list(page.encode(), "text/html; charset=utf-8", "https://e.gov/list", sel, "cfg", None)
    assert [normalize(e, NOW).publisher for e in entries] == [expected]
