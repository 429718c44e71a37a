"""A `rarewatch run` killed with SIGKILL mid-delivery loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import free_port
from tests.e2e.test_cli import rarewatch, story, write_config
from tests.support import feed_server, rss


async def test_sigkill_between_persisting_and_sending_loses_nothing(tmp_path: Path) -> None:
    accepted: list[str] = []
    seen: list[str] = []
    in_flight = asyncio.Event()
    hang = True

    async def receive(request: web.Request) -> web.Response:
        webhook_id = request.headers["webhook-id"]
        seen.append(webhook_id)
        if hang:
            in_flight.set()
            await asyncio.sleep(60)  # the process is killed while this request is open
        accepted.append(webhook_id)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    try:
        async with feed_server() as feeds:
            feeds.feeds["/wire.xml"] = rss(
                [
                    story(1, "Rare earth export licence regime widened"),
                    story(2, "Magnet shortage halts production at motor plant"),
                    story(3, "Rare earth shortage hits turbine makers"),
                ]
            )
            config = write_config(
                tmp_path, feeds.url("/wire.xml"), str(receiver.make_url("/hook")), port=free_port()
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rarewatch", "run", "--config", str(config),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
            )  # fmt: skip
            await asyncio.wait_for(in_flight.wait(), 30)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert accepted == [], "nothing was acknowledged before the kill"

            hang = False
            code, _, err = await rarewatch("once", "--config", str(config))
            assert code == 0, err
    finally:
        await receiver.close()

    assert len(set(accepted)) == 3, "every story is delivered after the restart"
    assert len(accepted) == 3, "and none twice"
    assert set(seen) == set(accepted)
