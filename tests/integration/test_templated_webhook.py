"""A webhook with a payload template: the rendered body is what is sent, and what is signed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from standardwebhooks.webhooks import Webhook

from rarewatch.clock import FakeClock
from rarewatch.delivery.template import PayloadTemplate
from rarewatch.delivery.webhook import WebhookNotifier
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TEMPLATES = Path(__file__).resolve().parents[2] / "deploy" / "templates"
TITLE = 'Quotes " and \\ and\nnewline {{ x }} </script> 稀土出口管制'


def make_alert(title: str = TITLE) -> Alert:
    # The real now: standardwebhooks rejects timestamps far from it.
    now = datetime.now(UTC).replace(microsecond=0)
    item = Item("story-1", "mofcom", title, "https://example.org/1", "summary", "", now)
    return Alert(
        "story-1", item, (Match("licensing", "export-licensing", Severity.CRITICAL, ("稀土",)),), now
    )


class Receiver:
    """Records every POST to /rest/api/3/issue and answers 201 like Jira."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.json_response({"id": "10000", "key": "RARE-1"}, status=201)


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> tuple[Receiver, str]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/rest/api/3/issue", rx.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return rx, str(server.make_url("/rest/api/3/issue"))


async def test_the_rendered_template_is_posted_and_signed(
    receiver: tuple[Receiver, str], session: aiohttp.ClientSession
) -> None:
    rx, url = receiver
    template = PayloadTemplate.from_file(TEMPLATES / "jira.json.j2", params={"project": "RARE"})
    alert = make_alert()
    clock = FakeClock(alert.created)
    hook = WebhookNotifier(
        "jira",
        url,
        session,
        secrets=[SECRET],
        headers={"Authorization": "Basic dTpw"},
        clock=clock,
        body=template.render,
    )
    await hook.send(alert)

    [(headers, body)] = rx.requests
    assert body == template.render(alert)
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    fields = json.loads(body)["fields"]
    assert fields["summary"] == '[CRITICAL] Quotes " and \\ and newline {{ x }} </script> 稀土出口管制'
    assert fields["priority"] == {"name": "Highest"}
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Basic dTpw"
    assert headers["webhook-id"] == "story-1"


async def test_a_plain_text_body_with_its_own_content_type(
    receiver: tuple[Receiver, str], session: aiohttp.ClientSession
) -> None:
    rx, url = receiver
    template = PayloadTemplate(
        "{{ alert.severity | upper }}: {{ alert.title | oneline }}", name="line.txt.j2"
    )
    hook = WebhookNotifier(
        "line", url, session, body=template.render, content_type="text/plain; charset=utf-8"
    )
    await hook.send(make_alert("Magnets"))
    [(headers, body)] = rx.requests
    assert body == b"CRITICAL: Magnets"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


async def test_a_template_that_cannot_render_sends_nothing(
    receiver: tuple[Receiver, str], session: aiohttp.ClientSession
) -> None:
    rx, url = receiver
    # Valid for the sample alert (severity info), invalid JSON once a critical one gives a bare word.
    source = '{"s": {% if severity_rank == 4 %}{{ alert.severity }}{% else %}"ok"{% endif %}}'
    template = PayloadTemplate(source, name="naive.json.j2")
    hook = WebhookNotifier("naive", url, session, body=template.render)
    with pytest.raises(DeliveryError) as info:
        await hook.send(make_alert())
    assert not info.value.retryable
    assert "produced invalid JSON" in str(info.value)
    assert rx.requests == []
