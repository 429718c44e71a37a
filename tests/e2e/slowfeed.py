"""`rarewatch run` stopped by SIGTERM while a poll waits on a feed that never answers (shared by the
shutdown tests of the bad-input and item-worker suites)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import free_port
from tests.e2e.badinputs import Case, config, prepare


async def sigterm_during_a_poll(
    folder: Path, extra_config: str = "", on_waiting: Callable[[int], None] | None = None
) -> tuple[int | None, str]:
    """Start `rarewatch run` in `folder` with one feed source on 127.0.0.1 whose server never answers,
    call `on_waiting(pid)` once the poll is waiting on it, send SIGTERM, and return the exit code and
    everything the process printed. `extra_config` is YAML added before the sources."""
    requested = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        requested.set()
        await asyncio.sleep(60)
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/feed.xml", slow)
    async with TestServer(app, host="127.0.0.1") as server:
        prepare(Case("sigterm", (), "", ""), folder)
        feed = str(server.make_url("/feed.xml"))
        (folder / "rarewatch.yaml").write_text(
            config(
                f"{extra_config}http: {{port: {free_port()}}}\n"
                f"sources:\n  - {{name: slow, type: feed, url: '{feed}'}}\n"
            ),
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", "rarewatch.yaml", cwd=folder, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await asyncio.wait_for(requested.wait(), 30)
            if on_waiting is not None:
                on_waiting(proc.pid)
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
    return proc.returncode, out.decode() + err.decode()
