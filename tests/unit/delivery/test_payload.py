"""The webhook payload: a versioned, flat, documented JSON object."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from rarewatch.delivery import payload
from rarewatch.delivery.payload import alert_payload, rfc3339, test_alert, truncate
from rarewatch.models import Alert, Item, Match, Severity

PUBLISHED = datetime(2026, 1, 31, 16, 0, tzinfo=timezone(timedelta(hours=8)))  # Beijing time
CREATED = datetime(2026, 1, 31, 8, 5, 30, 123456, tzinfo=UTC)


def make_alert(summary: str = "Short summary.") -> Alert:
    item = Item(
        id="item-1",
        source="mofcom",
        title="China adds rare-earth magnets to export licence list",
        link="https://example.org/news/1",
        summary=summary,
        content="full text",
        published=PUBLISHED,
        publisher="Ministry of Commerce",
    )
    matches = (
        Match(
            "shortage",
            "supply-disruption",
            Severity.MEDIUM,
            ("shortage",),
            "a shortage of magnets",
            "article",
        ),
        Match(
            "licensing",
            "export-licensing",
            Severity.HIGH,
            ("export licence", "稀土"),
            "export licence",
            "summary",
        ),
    )
    return Alert(id="a1b2c3", item=item, matches=matches, created=CREATED)


def test_the_payload_has_exactly_the_documented_fields() -> None:
    data = alert_payload(make_alert())
    assert data == {
        "version": 1,
        "type": "alert",
        "id": "a1b2c3",
        "test": False,
        "title": "China adds rare-earth magnets to export licence list",
        "link": "https://example.org/news/1",
        "source": "mofcom",
        "publisher": "Ministry of Commerce",
        "published": "2026-01-31T08:00:00Z",
        "created": "2026-01-31T08:05:30Z",
        "severity": "high",
        "categories": ["supply-disruption", "export-licensing"],
        "summary": "Short summary.",
        "matches": [
            {
                "rule": "licensing",
                "category": "export-licensing",
                "severity": "high",
                "terms": ["export licence", "稀土"],
                "snippet": "export licence",
                "matched_in": "summary",
            },
            {
                "rule": "shortage",
                "category": "supply-disruption",
                "severity": "medium",
                "terms": ["shortage"],
                "snippet": "a shortage of magnets",
                "matched_in": "article",
            },
        ],
        "story": "a1b2c3",
        "materials": [],
        "countries": [],
        "rules_version": "",
        "gloss": "",
        "matched_in": "summary",
    }
    json.dumps(data)  # JSON-ready as is


def test_every_field_is_documented_in_the_module_docstring() -> None:
    doc = payload.__doc__ or ""
    for key in alert_payload(make_alert()):
        assert f"`{key}`" in doc, key
    for key in alert_payload(make_alert())["matches"][0]:
        assert f"`{key}`" in doc, key


def test_the_publisher_survives_the_stored_form_and_older_records_have_none() -> None:
    alert = make_alert()
    stored = alert.to_dict()
    assert Alert.from_dict(stored).item.publisher == "Ministry of Commerce"
    del stored["item"]["publisher"]  # an alert recorded before the field existed
    assert Alert.from_dict(stored).item.publisher == ""
    assert alert_payload(Alert.from_dict(stored))["publisher"] == ""


def test_rfc3339_is_utc_with_z_and_treats_naive_times_as_utc() -> None:
    assert rfc3339(PUBLISHED) == "2026-01-31T08:00:00Z"
    assert rfc3339(datetime(2026, 3, 1, 12, 0, 0)) == "2026-03-01T12:00:00Z"


def test_a_long_summary_is_cut_at_a_word_to_500_characters() -> None:
    data = alert_payload(make_alert(summary="word " * 300))
    summary = data["summary"]
    assert len(summary) <= 500
    assert summary.endswith("word…")


def test_truncate_keeps_text_without_spaces_nearly_whole() -> None:
    cjk = "稀土" * 400
    cut = truncate(cjk, 500)
    assert len(cut) == 500
    assert cut.endswith("…")
    assert truncate("short", 500) == "short"


def test_the_test_alert_is_clearly_marked() -> None:
    now = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    alert = test_alert(now)
    assert alert.id.startswith("test-")
    assert alert.item.title.startswith("[rarewatch test] ")
    data = alert_payload(alert)
    assert data["test"] is True
    assert data["created"] == "2026-02-01T12:00:00Z"
    assert test_alert(now + timedelta(milliseconds=1)).id != alert.id
