"""No secret leaves the process: source URLs carrying `user:PASSWORD@` and `?apikey=KEY` that fail.

`once` and `run` are real subprocesses at `log_level: debug`; their stdout and stderr, `/api/v1/sources`
and `/metrics` are searched for the password and the key. The sources fail three ways (an HTTP 500, a
404 and a refused connection), so every error path that names a URL is exercised.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.e2e.test_cli import rarewatch
from tests.support import TEST_RULES, feed_server

PASSWORD = "PASSWORD-s3cr3t-9f2c"
KEY = "KEY-a7c4e1d0"


def secret_url(base: str, path: str) -> str:
    """`base` (http://127.0.0.1:PORT) + path, with credentials and an API key in it."""
    return base.replace("http://", f"http://user:{PASSWORD}@") + f"{path}?apikey={KEY}&page=1"


def write_config(tmp_path: Path, base: str, port: int) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "test.yaml").write_text(TEST_RULES, encoding="utf-8")
    (tmp_path / "out").mkdir(exist_ok=True)  # a jsonl destination's folder must exist
    closed = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        f"""\
store: sqlite:///state.db
rules: [rules/]
log_level: debug
sources:
  - {{name: failing, type: feed, url: "{secret_url(base, "/broken.xml")}", interval: 1m}}
  - {{name: missing, type: feed, url: "{secret_url(base, "/missing.xml")}", interval: 1m}}
  - {{name: refused, type: feed, url: "{secret_url(closed, "/feed.xml")}", interval: 1m}}
destinations:
  - {{name: archive, type: jsonl, path: out/alerts.jsonl}}
routes:
  - {{to: [archive]}}
http: {{host: 127.0.0.1, port: {port}}}
""",
        encoding="utf-8",
    )
    return config


def assert_no_secret(where: str, text: str) -> None:
    assert PASSWORD not in text, f"the password leaked into {where}"
    assert KEY not in text, f"the API key leaked into {where}"


async def test_once_shows_failing_source_urls_without_their_secrets(tmp_path: Path) -> None:
    async with feed_server() as feeds:
        feeds.statuses["/broken.xml"] = 500
        config = write_config(tmp_path, feeds.url(""), free_port())
        _, out, err = await rarewatch("once", "--config", str(config))
    assert feeds.hits["/broken.xml"] >= 1  # the source was really fetched, and failed
    assert "apikey=REDACTED" in out + err  # the URL is shown, redacted
    assert_no_secret("once's output", out + err)


async def test_run_keeps_secrets_out_of_logs_the_api_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    async with feed_server() as feeds:
        feeds.statuses["/broken.xml"] = 500
        config = write_config(tmp_path, feeds.url(""), port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                sources = await _failed_sources(session, port)
                async with session.get(f"http://127.0.0.1:{port}/api/v1/sources") as resp:
                    api = await resp.text()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    metrics = await resp.text()
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "500" in sources["failing"] and "404" in sources["missing"]
    assert "connect" in sources["refused"]
    assert "apikey=REDACTED" in sources["failing"]
    assert_no_secret("/api/v1/sources", api)
    assert_no_secret("/metrics", metrics)
    assert_no_secret("the logs", out.decode() + err.decode())


async def _failed_sources(session: aiohttp.ClientSession, port: int) -> dict[str, str]:
    """Each source's last error, once all three have failed at least once."""
    for _ in range(300):
        await asyncio.sleep(0.1)
        try:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/sources") as resp:
                listed = (await resp.json())["sources"]
        except aiohttp.ClientConnectionError:
            continue
        errors = {s["name"]: s.get("last_error") or "" for s in listed}
        if all(errors.values()):
            return errors
    raise AssertionError("the sources did not all fail in time")
