"""`POST /-/reload` is guarded, runs off the event loop, and slow clients cannot hold connections.

The whole `rarewatch run` web application (`build_web_app`: store, rules, poller, API) is served on
127.0.0.1 through `rarewatch.httpserver.HeaderDeadline`, as `run` serves it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rarewatch import runtime
from rarewatch.app import build_web_app
from rarewatch.errors import ConfigError
from rarewatch.settings import Settings, load_settings
from tests.integration.api_support import served
from tests.support import TEST_RULES

TOKEN = "t0ken-for-the-reload-endpoint"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(tmp_path: Path, **http: Any) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    return Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(rules)],
        sources=[],
        http={"port": 0, **http},
        config_dir=tmp_path,
    )


async def post_reload(base: str, **kwargs: Any) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.post(f"{base}/-/reload", **kwargs) as resp:
        return resp.status, await resp.json(), resp


async def test_reload_is_off_unless_a_token_or_the_lifecycle_flag_is_configured(tmp_path: Path) -> None:
    async with served(build_web_app(settings(tmp_path))) as base:
        status, body, _ = await post_reload(base, json={})
    assert status == 403
    assert "http.token" in body["error"]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, 401),  # no token
        ({"headers": {"Authorization": "Bearer wrong-token-wrong-token"}}, 401),
        ({"headers": {"Authorization": f"Basic {TOKEN}"}}, 401),
        ({"headers": AUTH}, 200),  # curl -X POST -H 'Authorization: Bearer ...'
        ({"headers": AUTH, "json": {}}, 200),
        ({"headers": AUTH, "data": "x"}, 415),  # text/plain, a simple cross-site request's type
        ({"headers": {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}, "data": "a=b"}, 415),
    ],
)
async def test_with_a_token_only_its_bearer_may_reload(
    tmp_path: Path, kwargs: dict[str, Any], status: int
) -> None:
    async with served(build_web_app(settings(tmp_path, token=TOKEN))) as base:
        got, body, resp = await post_reload(base, **kwargs)
    assert got == status
    if status == 200:
        assert body["status"] == "ok" and body["rules"] == 2
    else:
        assert body["status"] == "error" and body["error"]
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, 415),  # an empty POST is what a cross-site form or fetch without a preflight can send
        ({"data": "x"}, 415),  # text/plain
        ({"json": {}}, 200),
        ({"json": {}, "headers": {"Origin": "http://evil.example"}}, 403),
    ],
)
async def test_enable_lifecycle_takes_json_from_this_origin_only(
    tmp_path: Path, kwargs: dict[str, Any], status: int
) -> None:
    async with served(build_web_app(settings(tmp_path, enable_lifecycle=True))) as base:
        got, _, _ = await post_reload(base, **kwargs)
    assert got == status


@pytest.mark.parametrize("key", ["token", "read_token"])
def test_a_short_token_is_a_config_error_naming_the_key(tmp_path: Path, key: str) -> None:
    config = tmp_path / "rarewatch.yaml"
    config.write_text(f"http:\n  {key}: tiny-s3cr3t\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert f"http.{key}" in str(info.value) and "16 characters" in str(info.value)
    assert info.value.line == 2
    assert "tiny-s3cr3t" not in str(info.value)  # the message never quotes the secret


async def test_health_checks_are_answered_while_the_rules_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule loader is held mid-load; /healthz must still answer, so the load is not on the loop."""
    release = threading.Event()
    real: Callable[..., Any] = runtime.load_ruleset

    def held_load(*args: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():  # the reload, not start-up
            assert release.wait(10)
        return real(*args)

    monkeypatch.setattr(runtime, "load_ruleset", held_load)
    async with served(build_web_app(settings(tmp_path, token=TOKEN))) as base:
        reload = asyncio.create_task(post_reload(base, headers=AUTH))
        await asyncio.sleep(0.2)  # the reload is now waiting inside the loader
        async with (
            aiohttp.ClientSession() as session,
            asyncio.timeout(2),
            session.get(f"{base}/healthz") as resp,
        ):
            assert resp.status == 200
        assert not reload.done()
        release.set()
        status, _, _ = await reload
    assert status == 200


async def _raw(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_a_client_dribbling_its_headers_is_cut_off(tmp_path: Path) -> None:
    async with served(build_web_app(settings(tmp_path)), header_timeout=0.5) as base:
        reader, writer = await _raw(base)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        async with asyncio.timeout(5):
            for n in range(40):  # a header line every 0.1 s, never the blank line
                await asyncio.sleep(0.1)
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(f"X-Slow-{n}: 1\r\n".encode())
            closed = await reader.read() == b""
        writer.close()
    assert closed
    assert n < 20  # cut at about 0.5 s, long before the client would have finished


async def test_a_kept_alive_connection_outlives_the_header_deadline_between_requests(tmp_path: Path) -> None:
    async with served(build_web_app(settings(tmp_path, token=TOKEN)), header_timeout=0.3) as base:
        reader, writer = await _raw(base)
        request = (
            b"POST /-/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        for _ in range(2):
            writer.write(request)
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.readuntil(b'"version"'), 5)
            await reader.readuntil(b"}")
            await asyncio.sleep(0.6)  # idle past the header deadline: a finished request is not timed
        writer.close()
