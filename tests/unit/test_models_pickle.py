"""Items cross between processes (item workers) by pickle: every field must survive the trip."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

from rarewatch.models import Item


def test_an_item_survives_pickling_with_every_field_set() -> None:
    values = {
        "id": "i1",
        "source": "src",
        "title": "Gallium export curbs",
        "link": "https://news.example/a",
        "summary": "Summary.",
        "content": "Content.",
        "published": datetime(2026, 12, 6, 5, 0, tzinfo=UTC),
        "lang": "en",
        "publisher": "Wire",
    }
    assert [f.name for f in dataclasses.fields(Item)] == list(values), "a new field: pickle it too"
    item = Item(**values)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(item, protocol=protocol))
        assert again == item and type(again) is Item
        assert {f.name: getattr(again, f.name) for f in dataclasses.fields(Item)} == values
