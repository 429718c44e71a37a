"""Liveness and readiness, as Alertmanager and Prometheus serve them.

- `GET /healthz` (alias `/-/healthy`): 200 while the process is alive and serving. It checks nothing
  else on purpose: a liveness probe that failed on a store outage would have the orchestrator restart a
  process that is only waiting for Redis.
- `GET /readyz` (alias `/-/ready`): 200 when the store answers, rules are loaded and the scheduler and
  delivery workers run; otherwise 503. Either way the JSON body has each check's status, the last rule
  reload error (file:line) and the sources that are failing: what an operator wants to see first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rarewatch import __version__
from rarewatch.api import POLLER, RUNTIME
from rarewatch.errors import StoreError
from rarewatch.runtime import Runtime
from rarewatch.scheduler import Poller

STORE_TIMEOUT = 2.0  # seconds: a store slower than this is not ready (a probe must answer promptly)

OK, FAIL = "ok", "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: whether it passed, and what an operator should see."""

    name: str
    ok: bool
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"status": OK if self.ok else FAIL, **self.detail}


async def healthz(request: web.Request) -> web.Response:
    """Alive: always 200 while the process serves requests (with the versions, read from memory)."""
    rules = request.app[RUNTIME].ruleset.version
    return web.json_response({"status": "ok", "version": __version__, "rules": rules})


async def readyz(request: web.Request) -> web.Response:
    """Ready: 200 when every check passes, else 503; the body lists every check either way."""
    runtime = request.app[RUNTIME]
    checks = [await check_store(runtime), check_rules(runtime), check_scheduler(request.app.get(POLLER))]
    ready = all(c.ok for c in checks)
    body = {
        "status": "ready" if ready else "not ready",
        "version": __version__,
        "checks": {c.name: c.to_dict() for c in checks},
        "sources_failing": await failing_sources(runtime) if checks[0].ok else None,
    }
    return web.json_response(body, status=200 if ready else 503)


async def check_store(runtime: Runtime) -> Check:
    """The store answers one cheap read (its identity marker) within `STORE_TIMEOUT`."""
    try:
        await asyncio.wait_for(runtime.store.get_marker(), STORE_TIMEOUT)
    except StoreError as exc:
        return Check("store", False, {"error": str(exc)})
    except TimeoutError:
        return Check("store", False, {"error": f"no answer within {STORE_TIMEOUT:g}s"})
    return Check("store", True, {})


def check_rules(runtime: Runtime) -> Check:
    """Rules are loaded. A failed reload does not make the service unready (the previous rules stay in
    use) but is shown, with its file and line, until a reload succeeds."""
    status, ruleset = runtime.rule_status, runtime.ruleset
    detail: dict[str, Any] = {
        "rules": len(ruleset.rules),
        "version": ruleset.version,
        "loaded_at": status.loaded_at.isoformat() if status.loaded_at else None,
        "last_reload_error": status.last_error,
        "last_reload_error_at": status.last_error_at.isoformat() if status.last_error_at else None,
    }
    return Check("rules", bool(ruleset.rules), detail)


def check_scheduler(poller: Poller | None) -> Check:
    """The source scheduler and the delivery workers are running."""
    scheduling = poller is not None and bool(poller.scheduler.running)
    delivering = poller is not None and poller.workers.running
    return Check(
        "scheduler", scheduling and delivering, {"scheduling": scheduling, "delivery_workers": delivering}
    )


async def failing_sources(runtime: Runtime) -> list[dict[str, Any]]:
    """The sources whose last poll failed: how many times in a row, and the last error."""
    failing = []
    for polled in runtime.sources:
        name = polled.source.name
        try:
            state = await runtime.store.get_source_state(name)
        except StoreError:
            break  # gone since the store check: the store check says so
        if state is not None and state.consecutive_failures:
            failing.append(
                {
                    "name": name,
                    "consecutive_failures": state.consecutive_failures,
                    "last_error": state.last_error,
                    "last_success": state.last_success.isoformat() if state.last_success else None,
                }
            )
    return failing


def add_routes(app: web.Application) -> None:
    for path in ("/healthz", "/-/healthy"):
        app.router.add_get(path, healthz)
    for path in ("/readyz", "/-/ready"):
        app.router.add_get(path, readyz)
