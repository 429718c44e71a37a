"""`rarewatch once --jobs N` and `pipeline.workers` as a user runs them: the same alerts as one process,
and no worker left behind after SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.e2e.badinputs import Case, config, prepare
from tests.e2e.slowfeed import sigterm_during_a_poll
from tests.integration.test_item_workers import BODIES, _gone

REPO = Path(__file__).resolve().parents[2]
CONF = ("--config", "rarewatch.yaml")
FEEDS = ["f0", "f1", "f2", "f3", "f4", "f5", "broken", "blank", "missing"]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}


async def once(folder: Path, *args: str) -> tuple[int, str, list[dict[str, Any]]]:
    """`rarewatch once` in `folder` on an empty store: exit code, standard error, the alerts written."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rarewatch", "once", *CONF, *args, cwd=folder, env=env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    lines = (folder / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    alerts = [{k: v for k, v in json.loads(line).items() if k != "created"} for line in lines]
    return proc.returncode or 0, err.decode(), alerts


async def test_once_with_workers_writes_the_alerts_of_one_process(tmp_path: Path) -> None:
    async def feed(request: web.Request) -> web.Response:
        body = BODIES.get(request.path)
        return web.Response(status=404) if body is None else web.Response(body=body)

    app = web.Application()
    app.router.add_get("/{name}", feed)
    async with TestServer(app, host="127.0.0.1") as server:
        sources = "".join(
            f"  - {{name: {n}, type: feed, enrich: false, url: '{server.make_url(f'/{n}.xml')}'}}\n"
            for n in FEEDS
        )
        body = (
            f"sources:\n{sources}destinations:\n  - {{name: out, type: jsonl, path: alerts.jsonl}}\n"
            "routes:\n  - {to: [out]}\n"
        )
        results = []
        runs = (("here", ()), ("jobs", ("--jobs", "2")), ("config", ()), ("zero", ("--jobs", "0")))
        for name, args in runs:
            folder = tmp_path / name
            folder.mkdir()
            prepare(Case(name, (), "", ""), folder)
            # "zero": `--jobs 0` runs in this process whatever the configuration says
            workers = "pipeline: {workers: 2}\n" if name in ("config", "zero") else ""
            text = config(workers + "initial_lookback: 36500d\n" + body, rules=f"[{REPO / 'rules'}]")
            (folder / "rarewatch.yaml").write_text(text, encoding="utf-8")
            results.append(await once(folder, *args))
    (code, err, alerts), *others = results
    assert code == 0 and "Traceback" not in err, err
    assert alerts, "the feeds raise alerts"
    assert "3 failed" in err, err  # broken, blank, missing
    for other_code, other_err, other_alerts in others:
        assert other_code == 0 and "Traceback" not in other_err, other_err
        assert "3 failed" in other_err, other_err
        # One poll at a time is not promised, so which copy of a shared story is the alert and which the
        # update is the machine's timing: the same items, each alerted once.
        assert sorted(a["id"] for a in other_alerts) == sorted(a["id"] for a in alerts)


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    return [int(p) for p in text.split()]


async def test_sigterm_with_workers_stops_cleanly_and_leaves_no_worker(tmp_path: Path) -> None:
    workers: list[int] = []
    returncode, text = await sigterm_during_a_poll(
        tmp_path, "pipeline: {workers: 2}\n", lambda pid: workers.extend(_children(pid))
    )
    assert len(workers) == 2, workers
    assert returncode == 0, text
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert _gone(workers), "a worker outlived the service"
