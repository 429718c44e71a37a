"""The Alertmanager notifier against a real Prometheus Alertmanager (see tests/alertmanager.py).

Tests share one Alertmanager and keep apart by giving their stories unique ids.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from rarewatch.clock import FakeClock
from rarewatch.delivery import alertmanager as am
from rarewatch.delivery.alertmanager import AlertmanagerNotifier
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity
from tests.alertmanager import AlertmanagerServer, free_port
from tests.alertmanager import alertmanager as alertmanager  # the fixture

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def make_alert(story: str, created: datetime, title: str = 'China "adds" 稀土 magnets') -> Alert:
    item = Item(story, "mofcom", title, f"https://example.org/{story}", "A summary.", "", created)
    matches = (
        Match("licensing", "export-licensing", Severity.HIGH, ("稀土",), "…export licence for 稀土…"),
        Match("shortage", "supply-disruption", Severity.MEDIUM, ("shortage",), ""),
    )
    return Alert(story, item, matches, created)


def story_id() -> str:
    return f"story-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


async def alerts_of(session: aiohttp.ClientSession, server: AlertmanagerServer, story: str) -> list[Any]:
    """The alerts Alertmanager holds for one story."""
    params = {"filter": f'story="{story}"'}
    async with session.get(f"{server.url}/api/v2/alerts", params=params) as resp:
        assert resp.status == 200
        result: list[Any] = await resp.json()
        return result


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_two_stories_become_two_alerts_with_labels_and_annotations(
    alertmanager: AlertmanagerServer, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    notifier = AlertmanagerNotifier("am", alertmanager.url, session, clock=clock)
    created = clock.now() - timedelta(minutes=1)
    first, second = make_alert(story_id(), created), make_alert(story_id(), created, title="Other story")
    await notifier.send(first)
    await notifier.send(second)

    [one] = await alerts_of(session, alertmanager, first.id)
    [two] = await alerts_of(session, alertmanager, second.id)
    assert one["labels"] == {
        "alertname": "licensing",
        "category": "export-licensing",
        "severity": "high",
        "source": "mofcom",
        "story": first.id,
    }
    assert two["labels"]["story"] == second.id
    assert all(LABEL_NAME.match(name) for name in one["labels"])
    assert one["annotations"] == {
        "title": 'China "adds" 稀土 magnets',
        "link": f"https://example.org/{first.id}",
        "snippet": "…export licence for 稀土…",
        "summary": "A summary.",
        "rules": "licensing, shortage",
        "categories": "export-licensing, supply-disruption",
        "gloss": "Export licensing / Supply disruption — matched: 稀土",  # the title is in Chinese
    }
    assert one["generatorURL"] == f"https://example.org/{first.id}"
    assert one["status"]["state"] == "active"
    assert parse_time(one["startsAt"]) == created
    assert parse_time(one["endsAt"]) == created + timedelta(hours=24)


async def test_materials_and_countries_are_labels_and_the_publisher_an_annotation(
    alertmanager: AlertmanagerServer, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    notifier = AlertmanagerNotifier("am", alertmanager.url, session, clock=clock)
    plain = make_alert(story_id(), clock.now(), title="Gallium curbs")
    item = replace(plain.item, publisher="Ministry of Commerce")
    alert = replace(plain, item=item, materials=("gallium", "germanium"), countries=("china",))
    await notifier.send(alert)

    [held] = await alerts_of(session, alertmanager, alert.id)
    assert held["labels"]["materials"] == "gallium,germanium"
    assert held["labels"]["countries"] == "china"
    assert held["annotations"]["publisher"] == "Ministry of Commerce"
    # What an operator would route or silence on: a regex matcher over the label.
    params = {"filter": [f'story="{alert.id}"', 'materials=~".*germanium.*"']}
    async with session.get(f"{alertmanager.url}/api/v2/alerts", params=params) as resp:
        assert [a["labels"]["story"] for a in await resp.json()] == [alert.id]


async def test_the_same_story_sent_twice_is_still_one_alert(
    alertmanager: AlertmanagerServer, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    notifier = AlertmanagerNotifier("am", alertmanager.url + "/", session, clock=clock)
    alert = make_alert(story_id(), clock.now())
    await notifier.send(alert)
    clock.advance(60)
    await notifier.send(alert)  # a retry, or a second route to the same destination
    found = await alerts_of(session, alertmanager, alert.id)
    assert len(found) == 1


async def test_resolve_after_sets_ends_at_and_a_late_delivery_still_fires(
    alertmanager: AlertmanagerServer, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    notifier = AlertmanagerNotifier(
        "am", alertmanager.url, session, clock=clock, resolve_after=timedelta(hours=2)
    )
    # Raised three hours ago (the destination was down): created + 2h is already past.
    late = make_alert(story_id(), clock.now() - timedelta(hours=3))
    await notifier.send(late)
    [found] = await alerts_of(session, alertmanager, late.id)
    assert found["status"]["state"] == "active"
    assert parse_time(found["endsAt"]) == clock.now() + timedelta(hours=2)


async def test_a_400_is_not_retryable_and_quotes_alertmanager(
    alertmanager: AlertmanagerServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def invalid_labels(alert: Alert) -> dict[str, str]:
        return {"alertname": "x", "bad-name": "a hyphen is not allowed in a label name"}

    monkeypatch.setattr(am, "alert_labels", invalid_labels)
    notifier = AlertmanagerNotifier("am", alertmanager.url, session, clock=clock)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert(story_id(), clock.now()))
    assert not info.value.retryable
    message = str(info.value)
    assert message.startswith("HTTP 400 Bad Request: ")
    assert 'invalid label set: invalid name \\"bad-name\\"' in message


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    notifier = AlertmanagerNotifier("am", f"http://127.0.0.1:{free_port()}", session, clock=clock)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert(story_id(), clock.now()))
    assert info.value.retryable
    assert "connection refused" in str(info.value)


async def test_throttling_is_retryable_with_retry_after(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The webhook notifier's classification applies (here: a proxy in front of Alertmanager)."""
    seen: list[tuple[str, Any]] = []

    async def busy(request: web.Request) -> web.Response:
        seen.append((request.path, await request.json()))
        return web.Response(status=503, text="busy", headers={"Retry-After": "30"})

    app = web.Application()
    app.router.add_post("/prefix/api/v2/alerts", busy)
    server = await aiohttp_server(app, host="127.0.0.1")
    notifier = AlertmanagerNotifier("am", str(server.make_url("/prefix")), session, clock=clock)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert("s1", clock.now()))
    assert info.value.retryable and info.value.retry_after == 30
    [(path, body)] = seen
    assert path == "/prefix/api/v2/alerts"
    assert isinstance(body, list) and body[0]["labels"]["story"] == "s1"


def test_a_non_web_link_gives_no_generator_url() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    alert = make_alert("s", now)
    item = Item("s", "mofcom", "t", "urn:isbn:1", "", "", now)
    body = am.postable_alert(Alert("s", item, alert.matches, now), timedelta(hours=1), now)
    assert "generatorURL" not in body
    assert body["startsAt"] == "2026-01-01T00:00:00Z"
    assert body["endsAt"] == "2026-01-01T01:00:00Z"


@pytest.mark.parametrize(
    ("url", "resolve_after", "error"),
    [
        ("ftp://am:9093", timedelta(hours=1), "must be http"),
        ("am:9093", timedelta(hours=1), "must be http"),
        ("http://am:9093", timedelta(0), "resolve_after must be positive"),
    ],
)
async def test_bad_settings_are_value_errors(
    session: aiohttp.ClientSession, url: str, resolve_after: timedelta, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        AlertmanagerNotifier("am", url, session, resolve_after=resolve_after)
