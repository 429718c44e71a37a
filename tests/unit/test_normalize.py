"""Normalisation: canonical links, stable ids, HTML to text, NFKC, dates in UTC."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rarewatch.models import RawEntry
from rarewatch.normalize import (
    CONTENT_MAX,
    SUMMARY_MAX,
    TITLE_MAX,
    canonical_link,
    html_to_text,
    item_id,
    normalize,
    parse_date,
    plain_text,
    to_utc,
)

FIRST_SEEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# canonical_link


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://News.Example.ORG/Story", "https://news.example.org/Story"),  # path case is kept
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("http://example.org:443/a", "http://example.org:443/a"),  # 443 is not http's default
        ("https://example.org/a#section-2", "https://example.org/a"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org/a/./b/../c", "https://example.org/a/c"),
        ("https://example.org/a/b/..", "https://example.org/a/"),
        ("https://example.org/../../x", "https://example.org/x"),
        ("https://example.org/%7euser", "https://example.org/%7Euser"),
        ("  https://example.org/a  ", "https://example.org/a"),
        ("http://[::1]:80/feed", "http://[::1]/feed"),
    ],
)
def test_canonical_link_shape(url: str, expected: str) -> None:
    assert canonical_link(url) == expected


def test_canonical_link_drops_tracking_parameters_and_keeps_the_rest_in_order() -> None:
    url = (
        "https://example.org/story?utm_source=rss&id=42&fbclid=abc&UTM_Medium=x&page=2"
        "&gclid=1&mc_cid=2&mc_eid=3&igshid=4&ref_src=twsrc&spm=a2.b3&lang=zh&b=1&a=2"
    )
    assert canonical_link(url) == "https://example.org/story?id=42&page=2&lang=zh&b=1&a=2"


def test_canonical_link_drops_the_question_mark_when_only_tracking_remained() -> None:
    assert canonical_link("https://example.org/a?utm_source=x&utm_campaign=y") == "https://example.org/a"


def test_canonical_link_keeps_parameter_encoding_as_given() -> None:
    url = "https://example.org/search?q=rare%20earth&x=%E7%A8%80"
    assert canonical_link(url) == url


@pytest.mark.parametrize("garbage", ["", "not a url", "http://[broken/", "http://example.org:port/"])
def test_canonical_link_never_raises(garbage: str) -> None:
    assert canonical_link(garbage) == garbage.strip()


# html_to_text / plain_text


def test_html_to_text_drops_tags_scripts_styles_and_comments() -> None:
    html = (
        "<style>p{color:red}</style><p>Export <b>licence</b> rules</p><!-- hidden -->"
        "<script>var x = '<p>nope</p>';</script><div>apply&nbsp;from &amp; today</div>"
    )
    assert html_to_text(html) == "Export licence rules\napply from & today"


def test_html_to_text_block_elements_and_cells_separate_words() -> None:
    assert html_to_text("one<br>two<li>three</li><table><tr><td>a</td><td>b</td></tr></table>") == (
        "one\ntwo\nthree\na b"
    )


def test_html_to_text_fast_path_only_collapses_whitespace() -> None:
    assert html_to_text("  plain   text\twith\n\n\nlines ") == "plain text with\nlines"


def test_html_to_text_keeps_lone_angle_brackets_in_text() -> None:
    assert html_to_text("5 < 6 and 7 > 3") == "5 < 6 and 7 > 3"
    assert html_to_text("items &lt;5 mm") == "items <5 mm"


@pytest.mark.parametrize(
    "garbage",
    [
        "<",
        "<<<<>>>>",
        "<a href='x",
        "<script>never closed",
        "<!-- never closed",
        "&#xZZZZ; &#99999999999; &bogus;",
        "<" * 10_000 + "a" * 10_000,
        "<a" * 20_000,
        "\udcff lone surrogate",
    ],
)
def test_html_to_text_never_raises_on_garbage(garbage: str) -> None:
    assert isinstance(html_to_text(garbage), str)
    assert isinstance(plain_text(garbage), str)


def test_html_to_text_is_linear_on_pathological_input() -> None:
    start = time.perf_counter()
    html_to_text("<a" * 200_000)
    html_to_text("<script>" * 50_000)
    assert time.perf_counter() - start < 2.0


def test_plain_text_folds_full_width_forms_with_nfkc() -> None:
    assert plain_text("ＥＸＰＯＲＴ　ＣＯＮＴＲＯＬ，２０２５年第６１号") == "EXPORT CONTROL,2025年第61号"


def test_plain_text_collapses_all_whitespace_and_removes_invisible_characters() -> None:
    assert plain_text("<p>rare\u00adearth</p>\n<p>zero\u200bwidth  \u3000 gap</p>") == (
        "rareearth zerowidth gap"
    )


def test_plain_text_on_chinese_html() -> None:
    html = "<p>商务部&nbsp;海关总署公告</p><p>对<b>镓、锗</b>相关物项实施出口管制（２０２３年）</p>"
    assert plain_text(html) == "商务部 海关总署公告 对镓、锗相关物项实施出口管制(2023年)"


def test_plain_text_takes_out_pinyin_injected_after_chinese_characters() -> None:
    # Mirror sites write a syllable after characters, full-width parentheses too: terms must meet again.
    assert plain_text("格拉斯伯格礦生產(chǎn)中斷(duàn)，恢復（fù）運營") == "格拉斯伯格礦生產中斷,恢復運營"
    assert plain_text("<p>稀(xī)土(tǔ)出口</p>") == "稀土出口"


def test_plain_text_keeps_parentheses_that_are_no_pinyin() -> None:
    kept = "稀土(Reuters)出口(ppm)镧(La)管制(lu) 2025(ā) price (chǎn)"
    assert plain_text(kept) == kept


# item_id


def test_item_id_is_a_short_hex_key_and_stable() -> None:
    first = item_id("feed-a", "guid-1", "https://example.org/a", "Title", "Summary")
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first == item_id("feed-a", "guid-1", "https://example.org/a", "Title", "Summary")


def test_item_id_from_guid_is_scoped_by_source() -> None:
    assert item_id("feed-a", "123", None, "t", "s") != item_id("feed-b", "123", None, "t", "s")


def test_item_id_from_guid_ignores_link_and_text_changes() -> None:
    assert item_id("a", "g", "https://x.org/1", "Old", "") == item_id("a", "g", "https://x.org/2", "New", "x")


def test_item_id_from_link_is_canonical_and_shared_across_sources() -> None:
    a = item_id("feed-a", None, "https://Example.org/story?utm_source=a#top", "Title A", "")
    b = item_id("feed-b", "  ", "https://example.org:443/story", "Title B", "")
    assert a == b


def test_item_id_from_text_when_no_guid_or_link() -> None:
    a = item_id("s", None, None, "<b>Rare earth</b> news", "Summary")
    assert a == item_id("s", None, "", "Rare  earth news", "<p>Summary</p>")
    assert a != item_id("s", None, None, "Rare earth news", "Other summary")


def test_item_ids_are_distinct_across_kinds() -> None:
    ids = {
        item_id("s", "https://x.org/a", None, "t", "s"),
        item_id("s", None, "https://x.org/a", "t", "s"),
        item_id("s", None, None, "t", "s"),
        item_id("s", None, None, "t", "s2"),
    }
    assert len(ids) == 4


# normalize


def _entry(**fields: object) -> RawEntry:
    base: dict[str, object] = {"source": "src", "title": "A title"}
    base.update(fields)
    return RawEntry(**base)  # type: ignore[arg-type]


def test_normalize_produces_plain_text_canonical_link_and_matching_id() -> None:
    entry = _entry(
        title="<b>Rare&nbsp;earth</b> export controls",
        link="HTTPS://News.Example.org/a?utm_source=rss&id=1#c",
        guid="g-1",
        summary="<p>Licences for <i>dysprosium</i>.</p>",
        content="<div>Full <b>text</b></div>",
        published=datetime(2025, 10, 9, 16, 30, tzinfo=timezone(timedelta(hours=8))),
        lang="en",
    )
    item = normalize(entry, FIRST_SEEN)
    assert item.title == "Rare earth export controls"
    assert item.link == "https://news.example.org/a?id=1"
    assert item.summary == "Licences for dysprosium."
    assert item.content == "Full text"
    assert item.published == datetime(2025, 10, 9, 8, 30, tzinfo=UTC)
    assert item.published.tzinfo is UTC
    assert item.lang == "en"
    assert item.source == "src"
    assert item.id == item_id("src", "g-1", entry.link, entry.title, entry.summary)


def test_normalize_naive_published_is_utc_and_missing_is_first_seen() -> None:
    naive = normalize(_entry(published=datetime(2025, 10, 9, 8, 30)), FIRST_SEEN)
    assert naive.published == datetime(2025, 10, 9, 8, 30, tzinfo=UTC)
    assert normalize(_entry(), FIRST_SEEN).published == FIRST_SEEN


def test_normalize_missing_or_unsafe_link_becomes_empty() -> None:
    assert normalize(_entry(link=None), FIRST_SEEN).link == ""
    assert normalize(_entry(link="   "), FIRST_SEEN).link == ""
    assert normalize(_entry(link="javascript:alert(1)"), FIRST_SEEN).link == ""


def test_normalize_chinese_entry() -> None:
    entry = _entry(
        title="关于对部分稀土相关物项实施出口管制的公告（２０２５年第６１号）",
        summary="<p>根据《出口管制法》，对钐、钆、铽、镝等物项实施出口管制。</p>",
        link="https://zh.example.cn/art/2025/art_0001.html?spm=a1.b2",
        lang="zh-cn",
    )
    item = normalize(entry, FIRST_SEEN)
    assert item.title == "关于对部分稀土相关物项实施出口管制的公告(2025年第61号)"
    assert item.summary == "根据《出口管制法》,对钐、钆、铽、镝等物项实施出口管制。"
    assert item.link == "https://zh.example.cn/art/2025/art_0001.html"
    assert item.lang == "zh-cn"


# dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thu, 09 Oct 2025 08:30:00 GMT", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("Thu, 9 Oct 2025 16:30:00 +0800", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("Thu, 09 Oct 2025 08:30:00 EST", datetime(2025, 10, 9, 13, 30, tzinfo=UTC)),
        ("09 Oct 2025 08:30 -0000", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("2025-10-09T08:30:00Z", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("2025-10-09T16:30:00.250+08:00", datetime(2025, 10, 9, 8, 30, 0, 250_000, tzinfo=UTC)),
        ("2025-10-09 08:30:00", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),  # no zone: UTC
        ("2025-10-09", datetime(2025, 10, 9, tzinfo=UTC)),
        ("20251009T083000Z", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("2025年10月9日 08:30", datetime(2025, 10, 9, 8, 30, tzinfo=UTC)),
        ("2025/10/09", datetime(2025, 10, 9, tzinfo=UTC)),
    ],
)
def test_parse_date_gives_aware_utc(text: str, expected: datetime) -> None:
    got = parse_date(text)
    assert got == expected
    assert got is not None and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", [None, "", "soon", "2025-13-45", "2025-02-30", "Thu, 32 Oct 2025 08:30:00 GMT"]
)
def test_parse_date_unreadable_is_none(text: str | None) -> None:
    assert parse_date(text) is None


def test_to_utc() -> None:
    assert to_utc(datetime(2025, 1, 1, 12)) == datetime(2025, 1, 1, 12, tzinfo=UTC)
    eastern = datetime(2025, 1, 1, 7, tzinfo=timezone(timedelta(hours=-5)))
    assert to_utc(eastern) == datetime(2025, 1, 1, 12, tzinfo=UTC)


def test_lone_surrogates_become_replacement_characters_in_every_field() -> None:
    from rarewatch.normalize import normalize, valid_unicode

    entry = RawEntry(
        "api",
        "Rare earth \ud800 export licence",
        link="https://x.example/\udfff",
        guid="g-\ud800",
        summary="<p>gallium \udc00</p>",
        content="德\ud800国",
    )
    item = normalize(entry, datetime(2026, 1, 1, tzinfo=UTC))
    for text in (item.title, item.summary, item.content, item.link, item.id):
        text.encode("utf-8")  # never raises
    assert item.title == "Rare earth \ufffd export licence"
    assert item.summary == "gallium \ufffd" and item.content == "德\ufffd国"
    assert valid_unicode("plain") == "plain" and valid_unicode("a\ud83d\ude00b") == "a\ufffd\ufffdb"
    assert valid_unicode("😀 稀土") == "😀 稀土", "real characters, astral ones too, are kept"


def test_a_surrogate_entity_in_html_text_becomes_a_replacement_character() -> None:
    from rarewatch.normalize import plain_text

    assert plain_text("rare &#55296; earth &#xDFFF;") == "rare \ufffd earth \ufffd"


def test_titles_summaries_and_contents_are_capped() -> None:
    huge = "gallium export licence " * 50_000  # about 1.1 MB
    entry = RawEntry(source="s", title=huge, summary=huge, content=huge)
    item = normalize(entry, datetime(2026, 1, 1, tzinfo=UTC))
    assert len(item.title) <= TITLE_MAX and item.title.endswith("…")
    assert len(item.summary) <= SUMMARY_MAX and item.summary.endswith("…")
    assert len(item.content) <= CONTENT_MAX and item.content.endswith("…")
    assert item.title.startswith("gallium export licence")
    # `item_id` caps the same way, so an id computed from the raw texts is the item's id.
    assert item_id("s", None, None, huge, huge) == item.id


def test_short_texts_are_not_touched_by_the_caps() -> None:
    entry = RawEntry(source="s", title="Short title", summary="Short summary")
    item = normalize(entry, datetime(2026, 1, 1, tzinfo=UTC))
    assert (item.title, item.summary) == ("Short title", "Short summary")
