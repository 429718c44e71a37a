"""`rarewatch.sources.json_api`: dotted paths, page parsing and errors, pagination checks, construction."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from rarewatch.errors import SourceError
from rarewatch.normalize import normalize
from rarewatch.sources.json_api import (
    PRESETS,
    JsonApiSource,
    JsonMapping,
    check_path,
    lookup,
    parse_page,
    same_site,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "json"
FR_URL = "https://www.federalregister.gov/api/v1/documents.json"
FR = JsonMapping(
    items="results",
    title="title",
    link="html_url",
    summary="abstract",
    published="publication_date",
    guid="document_number",
    next_page="next_page_url",
)


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def page(doc: Any, mapping: JsonMapping = FR, base_url: str = "") -> Any:
    return parse_page(body(doc), mapping, "fr", "en", base_url)


# Dotted paths

DOC = {"a": {"b": [{"c": "deep"}, {"c": "second"}]}, "n": 3, "s": "text"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b.0.c", "deep"),
        ("a.b.1.c", "second"),
        ("a.b.-1.c", "second"),
        ("a.b.2.c", None),  # out of range
        ("a.b.x", None),  # a name into an array
        ("s.0", None),  # into a scalar
        ("missing.path", None),
        ("n", 3),
    ],
)
def test_lookup_follows_dotted_paths(path: str, expected: Any) -> None:
    assert lookup(DOC, path) == expected


def test_lookup_of_the_empty_path_is_the_document() -> None:
    assert lookup([1, 2], "") == [1, 2]


@pytest.mark.parametrize("path", ["a..b", ".a", "a."])
def test_check_path_rejects_empty_steps(path: str) -> None:
    with pytest.raises(ValueError, match="empty step"):
        check_path(path)


# Parsing a page


def test_federal_register_page_maps_every_field() -> None:
    result = parse_page((DATA / "fr_page1.json").read_bytes(), FR, "bis", "en", FR_URL)
    assert result.skipped == 0
    assert result.next_url is not None and "page=2" in result.next_url
    first, second = result.entries
    assert first.title.startswith("Export Administration Regulations: Licence Requirements")
    assert first.link is not None and first.link.endswith(
        "/2026-20418/export-administration-regulations-licence-requirements"
    )
    assert first.guid == "2026-20418"
    assert first.published == datetime(2026, 10, 9, tzinfo=UTC)  # a date alone is midnight UTC
    assert first.source == "bis" and first.lang == "en"
    assert second.guid == "2026-20377"


def test_plain_json_text_is_escaped_so_normalisation_gives_it_back() -> None:
    doc = {"results": [{"title": "Rule <A> & B", "html_url": "https://x.example/1", "abstract": "a &amp; b"}]}
    (entry,) = page(doc).entries
    assert entry.title == "Rule &lt;A&gt; &amp; B"
    item = normalize(entry, datetime(2026, 1, 1, tzinfo=UTC))
    assert item.title == "Rule <A> & B"
    assert item.summary == "a &amp; b"  # written that way in the JSON, so shown that way


def test_html_fields_keep_their_markup() -> None:
    mapping = JsonMapping(items="posts", title="title.rendered", link="link", html_fields=True)
    doc = {
        "posts": [{"title": {"rendered": "Rock &amp; <em>Rare</em> Earth"}, "link": "https://x.example/p"}]
    }
    (entry,) = page(doc, mapping).entries
    assert normalize(entry, datetime(2026, 1, 1, tzinfo=UTC)).title == "Rock & Rare Earth"


def test_results_without_a_title_are_skipped_and_counted() -> None:
    doc = {
        "results": [{"title": "kept", "html_url": "https://x.example/1"}, {"title": ""}, {"html_url": "u"}, 7]
    }
    result = page(doc)
    assert [e.title for e in result.entries] == ["kept"]
    assert result.skipped == 3


def test_a_mapping_that_matches_no_title_is_an_error() -> None:
    with pytest.raises(SourceError, match=r"field mapping matches nothing: title path 'title' .* 2 results"):
        parse_page((DATA / "wrong_fields.json").read_bytes(), FR, "fr", None)


def test_an_empty_result_list_is_a_quiet_poll() -> None:
    result = page({"results": []})
    assert result.entries == [] and result.skipped == 0


def test_invalid_json_is_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"invalid JSON: .* line 4"):
        parse_page((DATA / "invalid.json").read_bytes(), FR, "fr", None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty response"),
        (b"  \n", "empty response"),
        (b"\xff\xfe\xfa{}", "invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
        (b"<html><body>Maintenance</body></html>", "invalid JSON"),
    ],
)
def test_bodies_that_are_not_json(raw: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_page(raw, FR, "fr", None)


def test_a_missing_items_path_names_the_path_and_what_is_there() -> None:
    with pytest.raises(
        SourceError, match=r"items path 'results' not found .*top level: count, description, data"
    ):
        parse_page((DATA / "renamed_results.json").read_bytes(), FR, "fr", None)


def test_items_that_are_not_an_array() -> None:
    with pytest.raises(SourceError, match="items path 'results' holds an object, not an array"):
        page({"results": {"title": "x"}})
    with pytest.raises(SourceError, match="holds a number"):
        page({"results": 4})


def test_an_empty_items_path_takes_a_top_level_array() -> None:
    mapping = JsonMapping(items="", title="name", link="url")
    result = page([{"name": "one", "url": "https://x.example/1"}], mapping)
    assert [e.title for e in result.entries] == ["one"]
    with pytest.raises(SourceError, match="the document holds an object"):
        page({"name": "one"}, mapping)


def test_nested_and_list_fields() -> None:
    mapping = JsonMapping(
        items="results", title="title", link="html_url", summary="agencies.1.name", content="tags"
    )
    doc = {
        "results": [
            {
                "title": "t",
                "html_url": "https://x.example/1",
                "agencies": [{"name": "Commerce"}, {"name": "BIS"}],
                "tags": ["magnets", 42, {"ignored": True}, "NdFeB"],
            }
        ]
    }
    (entry,) = page(doc, mapping).entries
    assert entry.summary == "BIS"
    assert entry.content == "magnets, 42, NdFeB"


def test_relative_links_resolve_against_the_page_url() -> None:
    doc = {"results": [{"title": "t", "html_url": "/documents/1"}]}
    (entry,) = page(doc, base_url="https://api.example.org/v1/list.json?page=1").entries
    assert entry.link == "https://api.example.org/documents/1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-09", datetime(2026, 10, 9, tzinfo=UTC)),
        ("2026-10-09T08:30:00-04:00", datetime(2026, 10, 9, 12, 30, tzinfo=UTC)),
        ("2026-10-09T08:30:00Z", datetime(2026, 10, 9, 8, 30, tzinfo=UTC)),
        ("not a date", None),
        ("2026-13-45", None),
    ],
)
def test_published_dates(text: str, expected: datetime | None) -> None:
    doc = {"results": [{"title": "t", "html_url": "https://x.example/1", "publication_date": text}]}
    assert page(doc).entries[0].published == expected


def test_next_page_values() -> None:
    assert page({"results": [], "next_page_url": None}).next_url is None
    assert page({"results": []}).next_url is None
    assert page({"results": [], "next_page_url": " /p2 "}).next_url == "/p2"
    with pytest.raises(SourceError, match="next_page path 'next_page_url' holds a number"):
        page({"results": [], "next_page_url": 2})


# Pagination host checks


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("https://www.federalregister.gov/api/v1/documents.json?page=2", True),
        ("https://WWW.FederalRegister.gov/x", True),
        ("https://evil.example/api?page=2", False),
        ("https://federalregister.gov/x", False),  # another host, even a parent domain
        ("http://www.federalregister.gov/x", False),  # a downgrade
        ("https://www.federalregister.gov:8443/x", False),
        ("ftp://www.federalregister.gov/x", False),
    ],
)
def test_same_site(target: str, allowed: bool) -> None:
    assert same_site(URL(FR_URL), URL(target)) is allowed


def test_same_site_allows_an_upgrade_to_https() -> None:
    assert same_site(URL("http://api.example.org/list"), URL("https://api.example.org/list?page=2"))


# Construction


def test_params_are_added_to_the_query_and_lists_repeat_their_key() -> None:
    source = JsonApiSource(
        "bis",
        FR_URL + "?fields[]=title#top",
        **PRESETS["federal-register"],
        params={
            "conditions[agencies][]": ["industry-and-security-bureau", "commerce-department"],
            "order": "newest",
        },
    )
    query = source.first_url.query
    assert query.getall("conditions[agencies][]") == ["industry-and-security-bureau", "commerce-department"]
    assert query["order"] == "newest" and query["fields[]"] == "title"
    assert source.first_url.fragment == ""


def test_the_federal_register_preset() -> None:
    source = JsonApiSource("bis", FR_URL, **PRESETS["federal-register"])
    assert source.mapping == replace(FR, publisher="agencies.-1.name")
    assert source.headers["Accept"].startswith("application/json")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"items": "results", "fields": {"title": "title"}}, "fields.title and fields.link are required"),
        ({"items": "results", "fields": {"link": "u"}}, "fields.title and fields.link are required"),
        ({"items": "results", "fields": {"title": "t", "link": "u", "body": "b"}}, "unknown field"),
        ({"items": "results..x", "fields": {"title": "t", "link": "u"}}, "empty step"),
        ({"items": "r", "fields": {"title": "t", "link": "u"}, "max_pages": 0}, "max_pages"),
    ],
)
def test_bad_construction_is_a_value_error_naming_the_source(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        JsonApiSource("bis", FR_URL, **kwargs)
    assert "source bis" in str(info.value)


def test_non_http_url_is_refused() -> None:
    with pytest.raises(ValueError, match="source bis: refusing non-http"):
        JsonApiSource("bis", "file:///etc/passwd", **PRESETS["federal-register"])
