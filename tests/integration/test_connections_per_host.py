"""`pipeline.connections_per_host`: however many polls run at once, one server (host and port) sees at
most that many requests from the service at a time; another server is not held up by it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from rarewatch.pipeline import ONCE_CONCURRENCY, run_cycle
from rarewatch.runtime import open_runtime
from rarewatch.settings import Settings
from tests.support import TEST_RULES, rss, serve

FEED = rss([{"title": "Town fair opens", "link": "https://news.example.org/fair", "guid": "fair"}])


@dataclass
class SlowServer:
    """Answers every path with `FEED` after `delay` seconds, counting the requests in flight."""

    delay: float
    in_flight: int = 0
    most: int = 0
    paths: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.paths.append(request.path)
        return web.Response(body=FEED, content_type="application/rss+xml")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        return app


def settings(tmp_path: Path, urls: list[str], per_host: int | None) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    pipeline = {} if per_host is None else {"connections_per_host": per_host}
    return Settings(
        store=f"sqlite:///{tmp_path / 'state.db'}",
        rules=[str(rules)],
        sources=[{"name": f"s{n}", "type": "feed", "url": url} for n, url in enumerate(urls)],  # type: ignore[misc]
        destinations=[{"name": "archive", "type": "jsonl", "path": "alerts.jsonl"}],  # type: ignore[list-item]
        routes=[{"to": ["archive"]}],  # type: ignore[list-item]
        pipeline=pipeline,  # type: ignore[arg-type]
        config_dir=tmp_path,
    )


async def test_one_server_sees_at_most_connections_per_host_requests_at_once(tmp_path: Path) -> None:
    busy, other = SlowServer(delay=0.2), SlowServer(delay=0.0)
    async with serve(busy.app()) as busy_server, serve(other.app()) as other_server:
        urls = [str(busy_server.make_url(f"/f{n}.xml")) for n in range(12)]
        urls += [str(other_server.make_url(f"/g{n}.xml")) for n in range(3)]
        async with open_runtime(settings(tmp_path, urls, per_host=3)) as runtime:
            runs = await run_cycle(
                runtime.pipeline, runtime.sources, force=True, concurrency=ONCE_CONCURRENCY
            )
    assert [r.status for r in runs] == ["ok"] * 15
    assert busy.most == 3  # 12 polls at once, 3 requests at a time
    assert len(busy.paths) == 12 and len(other.paths) == 3


async def test_connections_per_host_defaults_to_eight(tmp_path: Path) -> None:
    busy = SlowServer(delay=0.2)
    async with serve(busy.app()) as server:
        urls = [str(server.make_url(f"/f{n}.xml")) for n in range(20)]
        async with open_runtime(settings(tmp_path, urls, per_host=None)) as runtime:
            runs = await run_cycle(
                runtime.pipeline, runtime.sources, force=True, concurrency=ONCE_CONCURRENCY
            )
    assert [r.status for r in runs] == ["ok"] * 20
    assert busy.most == 8
