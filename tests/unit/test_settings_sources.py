"""Configuration of `json` and `html` sources: presets, required keys, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rarewatch.errors import ConfigError
from rarewatch.settings import HtmlSource, JsonSource, load_settings

FR = "https://www.federalregister.gov/api/v1/documents.json"
MOFCOM = "https://www.mofcom.gov.cn/zwgk/zcfb/index.html"
# One source over several lines, so that a key added below it sits on line 6.
FR_HEAD = f"sources:\n  - name: a\n    type: json\n    preset: federal-register\n    url: '{FR}'\n"
MOFCOM_HEAD = f"sources:\n  - name: m\n    type: html\n    preset: mofcom\n    url: '{MOFCOM}'\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rarewatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.file == str(path)
    return info.value


# json


def test_federal_register_preset_fills_the_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        "  - name: bis\n"
        "    type: json\n"
        "    preset: federal-register\n"
        f"    url: {FR}\n"
        "    params:\n"
        "      conditions[agencies][]: [industry-and-security-bureau, commerce-department]\n"
        "      order: newest\n"
        "      per_page: '100'\n",
    )
    (source,) = load_settings(path).sources
    assert isinstance(source, JsonSource)
    assert source.items == "results" and source.next_page == "next_page_url" and source.max_pages == 3
    assert source.fields.title == "title" and source.fields.link == "html_url"
    assert source.fields.guid == "document_number" and source.fields.published == "publication_date"
    assert source.params["conditions[agencies][]"] == ["industry-and-security-bureau", "commerce-department"]


def test_user_values_beat_the_preset_field_by_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        f"  - {{name: bis, type: json, preset: federal-register, url: '{FR}', max_pages: 1,\n"
        "     fields: {link: pdf_url, content: agencies.0.name}, next_page: null}\n",
    )
    (source,) = load_settings(path).sources
    assert isinstance(source, JsonSource)
    assert source.fields.link == "pdf_url" and source.fields.content == "agencies.0.name"
    assert source.fields.title == "title"  # still from the preset
    assert source.next_page is None and source.max_pages == 1


def test_a_full_mapping_without_preset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        "  - name: api\n    type: json\n    url: https://api.example.org/v1/notices\n"
        "    items: data.notices\n    fields: {title: headline, link: links.self}\n",
    )
    (source,) = load_settings(path).sources
    assert isinstance(source, JsonSource) and source.items == "data.notices"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    fields: {title: t, link: u}\n", "a json source needs items"),
        ("    items: results\n    fields: {link: u}\n", "a json source needs fields.title"),
        ("    items: results\n    fields: {title: t}\n", "a json source needs fields.link"),
        ("    items: results\n", "a json source needs fields.title, fields.link"),
    ],
)
def test_json_without_its_mapping_is_an_error(tmp_path: Path, body: str, message: str) -> None:
    error = config_error(
        tmp_path, f"store: sqlite:///x.db\nsources:\n  - name: api\n    type: json\n    url: {FR}\n{body}"
    )
    assert message in error.message and "or a preset" in error.message
    assert error.line == 3  # the source's entry


def test_a_bad_dotted_path_names_its_line(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        "sources:\n  - name: api\n    type: json\n    preset: federal-register\n"
        f"    url: {FR}\n    fields:\n      summary: abstract..text\n",
    )
    assert "bad dotted path 'abstract..text'" in error.message
    assert error.line == 7


def test_an_unknown_preset_is_an_error(tmp_path: Path) -> None:
    error = config_error(
        tmp_path, f"sources:\n  - {{name: a, type: json, preset: congress-gov, url: '{FR}'}}\n"
    )
    assert "unknown preset 'congress-gov' (known: federal-register)" in error.message
    assert error.line == 2


def test_max_pages_must_be_positive(tmp_path: Path) -> None:
    error = config_error(tmp_path, FR_HEAD + "    max_pages: 0\n")
    assert "max_pages" in error.message and error.line == 6


# html


def test_mofcom_preset(tmp_path: Path) -> None:
    path = write(
        tmp_path, f"sources:\n  - {{name: mofcom, type: html, preset: mofcom, url: '{MOFCOM}', lang: zh}}\n"
    )
    (source,) = load_settings(path).sources
    assert isinstance(source, HtmlSource)
    assert (source.item, source.title, source.date) == ("ul.txtList_01 li", "a", "span")
    assert source.link is None and source.encoding is None


def test_selectors_without_preset_and_an_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n"
        "  - name: province\n    type: html\n    url: http://swt.example.gov.cn/tzgg/index.html\n"
        "    item: div.list li\n    title: a\n    date: span.date\n"
        "    summary: p.summary\n    encoding: gbk\n"
        f"  - {{name: mofcom, type: html, preset: mofcom, url: '{MOFCOM}', item: 'div.news li'}}\n",
    )
    province, mofcom = load_settings(path).sources
    assert isinstance(province, HtmlSource) and province.encoding == "gbk"
    assert isinstance(mofcom, HtmlSource) and mofcom.item == "div.news li" and mofcom.title == "a"


def test_an_invalid_selector_names_file_and_line(tmp_path: Path) -> None:
    error = config_error(
        tmp_path,
        "store: sqlite:///x.db\n"
        "sources:\n"
        "  - name: province\n"
        "    type: html\n"
        "    url: http://swt.example.gov.cn/tzgg/index.html\n"
        "    item: 'div.list li['\n"
        "    title: a\n",
    )
    assert "sources.0.html.item" in error.message
    assert "invalid CSS selector 'div.list li['" in error.message
    assert error.line == 6
    assert str(error).startswith(f"{error.file}:6: ")


def test_an_invalid_selector_overriding_a_preset(tmp_path: Path) -> None:
    error = config_error(tmp_path, MOFCOM_HEAD + "    date: 'span >'\n")
    assert "invalid CSS selector 'span >'" in error.message and error.line == 6


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    title: a\n", "an html source needs item"),
        ("    item: li\n", "an html source needs title"),
        ("", "an html source needs item and title"),
    ],
)
def test_html_without_its_selectors_is_an_error(tmp_path: Path, body: str, message: str) -> None:
    error = config_error(tmp_path, f"sources:\n  - name: p\n    type: html\n    url: '{MOFCOM}'\n{body}")
    assert message in error.message and error.line == 2


def test_an_unknown_encoding_names_its_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, MOFCOM_HEAD + "    encoding: gbk-ish\n")
    assert "unknown encoding 'gbk-ish'" in error.message and error.line == 6


def test_an_unknown_key_in_an_html_source(tmp_path: Path) -> None:
    error = config_error(tmp_path, MOFCOM_HEAD + "    items: li\n")
    assert "items" in error.message and error.line == 6
