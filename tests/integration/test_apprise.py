"""The Apprise notifier with the real Apprise library, posting to local aiohttp receivers.

Apprise's `json://` and `form://` services POST the title and body to an HTTP endpoint, which lets a
test see exactly what Apprise sends. The receiver runs in the test's event loop, so these tests also
show that `send` does not block the loop while Apprise works.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from rarewatch.delivery.apprise_notifier import AppriseNotifier, format_body
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity
from tests.alertmanager import free_port

NOW = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)


def make_alert(
    title: str = "China adds 稀土 magnets to licence list",
    link: str = "https://example.org/news/1",
    severity: Severity = Severity.HIGH,
) -> Alert:
    item = Item("story-1", "mofcom", title, link, "summary", "", NOW)
    matches = (
        Match("licensing", "export-licensing", severity, ("稀土", "export licence"), "…the export licence…"),
        Match("shortage", "supply-disruption", Severity.LOW, ("shortage",), ""),
    )
    return Alert("story-1", item, matches, NOW)


@dataclass
class Receiver:
    """Answers every POST with `status` (after `delay` seconds) and records its body."""

    status: int = 200
    delay: float = 0.0
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append((request.path, await request.read()))
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok" if self.status < 300 else "no")

    def json_bodies(self) -> list[Any]:
        return [json.loads(body) for _, body in self.bodies]


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> Receiver:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rx.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    rx.base = f"127.0.0.1:{server.port}"
    return rx


async def test_a_json_service_receives_the_title_and_body(receiver: Receiver) -> None:
    notifier = AppriseNotifier("apprise", [f"json://{receiver.base}/notify"])
    await notifier.send(make_alert())
    [payload] = receiver.json_bodies()
    assert receiver.bodies[0][0] == "/notify"
    assert payload["title"] == "[HIGH] China adds 稀土 magnets to licence list"
    assert payload["type"] == "warning"
    message = payload["message"]
    assert message.splitlines() == [
        "**China adds 稀土 magnets to licence list**",
        "<https://example.org/news/1>",
        "Severity: high · Categories: export\\-licensing, supply\\-disruption",
        "Source: mofcom",
        "Terms: 稀土, export licence, shortage",
        # The title holds Chinese: an English gloss (the alert carries no glosses, so 稀土 stands alone).
        "English gloss: Export licensing / Supply disruption — matched: 稀土",
        "",
        "> …the export licence…",
    ]


async def test_every_url_is_notified(receiver: Receiver) -> None:
    urls = [f"json://{receiver.base}/a", f"form://{receiver.base}/b"]
    await AppriseNotifier("apprise", urls, body_format="text").send(make_alert())
    paths = sorted(path for path, _ in receiver.bodies)
    assert paths == ["/a", "/b"]
    form = next(body for path, body in receiver.bodies if path == "/b")
    assert b"title=%5BHIGH%5D+China+adds" in form


async def test_a_title_template(receiver: Receiver) -> None:
    template = "rarewatch {{ alert.severity }}: {{ alert.title | truncate(12) }} ({{ rules | join(', ') }})"
    notifier = AppriseNotifier("apprise", [f"json://{receiver.base}/"], title_template=template)
    await notifier.send(make_alert())
    [payload] = receiver.json_bodies()
    assert payload["title"] == "rarewatch high: China adds… (licensing, shortage)"


async def test_a_closed_port_is_a_retryable_error() -> None:
    notifier = AppriseNotifier("apprise", [f"json://127.0.0.1:{free_port()}/notify"])
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable
    assert str(info.value) == "apprise: one or more services failed (JSON: failure)"


async def test_an_http_error_is_retryable_too_as_apprise_hides_the_status(receiver: Receiver) -> None:
    receiver.status = 400
    notifier = AppriseNotifier("apprise", [f"json://{receiver.base}/notify"])
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable and info.value.retry_after is None


async def test_one_failing_service_of_two_fails_the_send(receiver: Receiver) -> None:
    urls = [f"json://{receiver.base}/ok", f"json://127.0.0.1:{free_port()}/down"]
    with pytest.raises(DeliveryError) as info:
        await AppriseNotifier("apprise", urls).send(make_alert())
    assert info.value.retryable
    assert [path for path, _ in receiver.bodies] == ["/ok"]  # delivered there: a retry repeats it


async def test_a_slow_service_is_cut_off_by_the_timeout(receiver: Receiver) -> None:
    receiver.delay = 2.0
    notifier = AppriseNotifier("apprise", [f"json://{receiver.base}/slow"], timeout=0.3)
    with pytest.raises(DeliveryError) as info:
        await notifier.send(make_alert())
    assert info.value.retryable
    assert "timeout" in str(info.value)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("nosuchservice://user:s3cret@host/path", "scheme nosuchservice://"),
        ("json://user:s3cret@", "scheme json://"),
        ("s3cret-token-without-scheme", "no scheme"),
        ("tgram://s3cret", "scheme tgram://"),  # a Telegram URL without a valid bot token
    ],
)
def test_a_url_apprise_cannot_use_fails_at_construction_without_its_secrets(
    url: str, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValueError, match="is not one Apprise can use") as info:
        AppriseNotifier("apprise", ["json://127.0.0.1/ok", url])
    message = str(info.value)
    assert f"apprise URL #2 ({named})" in message
    assert "s3cret" not in message
    assert "s3cret" not in caplog.text  # nor in Apprise's own log lines


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"urls": []}, "at least one URL"),
        ({"urls": ["json://127.0.0.1/"], "body_format": "rtf"}, "body_format must be"),
        ({"urls": ["json://127.0.0.1/"], "title_template": "{{ alert.titel }}"}, "no attribute 'titel'"),
    ],
)
def test_bad_settings_are_value_errors(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AppriseNotifier("apprise", **kwargs)


# ---------------------------------------------------------------------------------------------------
# The body: feed text is escaped for the chosen format

HOSTILE = "[click](https://evil.example) <img src=x onerror=alert(1)> *bold* # not\nheading"


def test_markdown_escapes_feed_text() -> None:
    body = format_body(make_alert(title=HOSTILE), "markdown")
    first = body.splitlines()[0]
    assert first == (
        "**\\[click\\]\\(https://evil\\.example\\) &lt;img src=x onerror=alert\\(1\\)\\> "
        "\\*bold\\* \\# not heading**"
    )


def test_markdown_link_cannot_be_broken_by_the_url() -> None:
    body = format_body(make_alert(link="https://example.org/a b>(c)<d"), "markdown")
    assert body.splitlines()[1] == "<https://example.org/a%20b%3E%28c%29%3Cd>"


def test_a_non_web_link_is_shown_as_escaped_text() -> None:
    body = format_body(make_alert(link="javascript:alert(1)"), "markdown")
    assert body.splitlines()[1] == "javascript:alert\\(1\\)"


def test_html_escapes_feed_text() -> None:
    body = format_body(make_alert(title=HOSTILE, link='https://example.org/"x"'), "html")
    lines = body.split("<br>\n")
    assert lines[0] == (
        "<b>[click](https://evil.example) &lt;img src=x onerror=alert(1)&gt; *bold* # not heading</b>"
    )
    assert lines[1] == '<a href="https://example.org/%22x%22">https://example.org/%22x%22</a>'


def test_text_is_only_made_one_line() -> None:
    body = format_body(make_alert(title="a\x1b[31m\nb"), "text")
    assert body.splitlines()[0] == "a [31m b"


def test_the_body_names_the_publisher_materials_and_countries_escaped() -> None:
    alert = make_alert()
    named = replace(
        alert,
        item=replace(alert.item, publisher="*Metals* <Daily>"),
        materials=("gallium", "germanium"),
        countries=("china",),
    )
    lines = format_body(named, "markdown").splitlines()
    assert "Source: mofcom · Publisher: \\*Metals\\* &lt;Daily\\>" in lines
    assert "Materials: gallium, germanium · Countries: china" in lines
    plain = format_body(alert, "text")
    assert "Publisher" not in plain and "Materials" not in plain and "Countries" not in plain
