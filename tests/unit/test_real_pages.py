"""The real pages read for the out-of-repo checks: addresses only, none of the development set's."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def _rows() -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / "real-pages.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, url = line.split("\t")
            rows.append((name, url))
    return rows


def test_each_row_is_a_set_and_an_address_read_once() -> None:
    rows = _rows()
    assert rows
    assert all(url.startswith(("http://", "https://")) and " " not in url for _, url in rows)
    urls = [url for _, url in rows]
    assert len(urls) == len(set(urls)), "a page is read for one set only"


def test_no_real_check_page_is_a_page_of_the_development_set() -> None:
    development = set()
    for line in (DATA / "labelled.jsonl").read_text(encoding="utf-8").splitlines():
        url = json.loads(line).get("source_url")
        if url:
            development.add(url.strip())
    shared = {url for _, url in _rows()} & development
    assert not shared, f"pages of the development set in a real check or tuning set: {sorted(shared)[:5]}"
