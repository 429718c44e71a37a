"""A `SeenListing` (an item worker's item as JSON text) is kept as the text of the `SeenItem` it stands
for: the stores read one back as the other."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rarewatch.models import Item, SeenItem, SeenListing, item_json

T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def item(title: str, **kw: object) -> Item:
    values: dict[str, object] = {
        "id": "i-" + str(abs(hash(title))),
        "source": "wire",
        "title": title,
        "link": "https://news.example/a",
        "summary": "Summary.",
        "content": "",
        "published": T0 - timedelta(hours=1),
        "lang": None,
        "publisher": "",
    }
    values.update(kw)
    return Item(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "it",
    [
        item("Local team wins the regional final"),
        item('稀土出口管制 "引号" and a \\ backslash', lang="zh", publisher="新华社", content="正文。"),
        item("tabs\tand\nnewlines", published=T0.astimezone(timezone(timedelta(hours=8)))),
    ],
)
def test_a_listing_is_the_text_of_its_seen_item(it: Item) -> None:
    listing = SeenListing(it.id, item_json(it), T0, "v7")
    assert listing.to_json() == SeenItem(it, T0, "v7", ()).to_json()
    assert listing.to_json("2026-12-06T05:00:00+00:00") == SeenItem(it, T0, "v7").to_json(T0.isoformat())
    assert SeenItem.from_dict(json.loads(listing.to_json())) == SeenItem(it, T0, "v7", ())


def test_a_listing_of_text_orjson_refuses_is_still_its_seen_item() -> None:
    it = item("half a pair \ud800 of surrogates")
    listing = SeenListing(it.id, item_json(it), T0, "v1")
    assert json.loads(listing.to_json()) == json.loads(SeenItem(it, T0, "v1").to_json())
    assert SeenItem.from_dict(json.loads(listing.to_json())).item == it


def test_each_listing_keeps_its_own_fetch_time_and_pack() -> None:
    """The text after the item is shared by a fetch's listings: never by another fetch's."""
    it = item("Same item, two fetches")
    texts = [
        SeenListing(it.id, item_json(it), when, version).to_json()
        for when, version in [(T0, "v1"), (T0 + timedelta(minutes=5), "v1"), (T0, "v2")]
    ]
    read = [SeenItem.from_dict(json.loads(t)) for t in texts]
    assert [(s.fetched, s.rules_version) for s in read] == [
        (T0, "v1"),
        (T0 + timedelta(minutes=5), "v1"),
        (T0, "v2"),
    ]
