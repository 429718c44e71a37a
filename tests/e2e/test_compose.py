"""deploy/docker-compose.yml starts as shipped, checked without a Docker engine.

The test reads the compose file, lays out the rarewatch container's filesystem in a temporary folder
exactly as its volumes map it (the same files, under the same container paths), builds the container's
environment from its `env_file`s and `environment`, and runs `rarewatch once --config <its config>` there:
a config path, a rules mount, a `${VAR}` the env files do not set, or a store URL the compose file does
not agree with fails here. Only what cannot exist outside Docker is swapped: the `redis` host becomes a
real redis-server of the test's, the internet sources a local feed, the example webhook a local receiver.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML
from standardwebhooks.webhooks import Webhook

from tests.e2e.test_cli import story
from tests.support import feed_server, rss, webhook_receiver

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"


def compose() -> dict[str, Any]:
    data = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as docker compose reads an env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def container_env(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment: its env files in order (a later one wins), then `environment`."""
    env: dict[str, str] = {}
    for entry in service.get("env_file", []):
        entry = entry if isinstance(entry, dict) else {"path": entry, "required": True}
        path = DEPLOY / entry["path"]
        if entry.get("required", True):
            assert path.is_file(), f"{COMPOSE}: env_file {entry['path']} is required and missing"
        if path.is_file():
            env.update(env_file(path))
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    return env


def lay_out_volumes(service: dict[str, Any], root: Path) -> None:
    """Each bind mount `host:container[:mode]` as a symlink at root/<container path> to the host path
    (relative to the compose file's folder, as compose resolves it). Named volumes are skipped."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            continue  # a named volume
        host = (DEPLOY / source).resolve()
        assert host.exists(), f"{COMPOSE}: volume source {source} does not exist ({host})"
        where = root / target.lstrip("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        where.symlink_to(host)


def test_redis_persists_and_rarewatch_waits_for_it_to_be_healthy() -> None:
    services = compose()["services"]
    redis, app = services["redis"], services["rarewatch"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"]), "the AOF lives on a volume"
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert (DEPLOY / app["build"] / "Dockerfile").is_file()


@pytest.mark.redis
async def test_rarewatch_once_runs_against_the_compose_layout(tmp_path: Path, redis_url: str) -> None:
    service = compose()["services"]["rarewatch"]
    root = tmp_path / "container"
    lay_out_volumes(service, root)
    command = service["command"]
    config = root / command[command.index("--config") + 1].lstrip("/")
    assert config.is_file(), f"{COMPOSE}: the command's --config is not where the volumes put a file"

    env = container_env(service)
    store = urlsplit(env["RAREWATCH_STORE"])
    assert store.hostname == "redis" and "redis" in compose()["services"], "the store is the redis service"
    config_store = YAML(typ="safe").load(config.read_text(encoding="utf-8"))["store"]
    assert config_store == env["RAREWATCH_STORE"], "the config and the compose file name the same store"
    secret = env["TICKETS_WEBHOOK_SECRET"]

    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([story(1, "Rare earth export licence regime widened")])
        env.update(
            RAREWATCH_STORE=redis_url,  # `redis:6379` exists only inside compose
            RAREWATCH_SOURCES=json.dumps([{"name": "wire", "type": "feed", "url": feeds.url("/wire.xml")}]),
            TICKETS_WEBHOOK_URL=hook.url,  # as an operator's deploy/.env would
        )
        workdir = root / "var" / "lib" / "rarewatch"  # the image's WORKDIR
        workdir.mkdir(parents=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rarewatch", "once", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**base, **env}, cwd=workdir,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "1 sources (0 failed), 1 new alerts" in err.decode()
    assert "Rare earth export licence regime widened" in out.decode(), "the console destination logged it"
    [(headers, body, _)] = hook.requests
    Webhook(secret).verify(body, headers)  # signed with the .env.example secret
    assert headers["authorization"] == f"Bearer {env['TICKETS_TOKEN']}"


def test_every_variable_the_config_reads_is_set_by_the_compose_env_files() -> None:
    lines = (DEPLOY / "rarewatch.yaml").read_text(encoding="utf-8").splitlines()
    values = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    wanted = set(re.findall(r"\$\{(\w+)\}", values))
    assert wanted, "the secrets come from the environment"
    assert wanted <= set(container_env(compose()["services"]["rarewatch"]))
