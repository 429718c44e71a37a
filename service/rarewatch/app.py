"""The long-running service (`rarewatch run`): the HTTP API plus the poller, as one aiohttp application.

The runtime and the poller are started and stopped through aiohttp's `cleanup_ctx`, so a SIGTERM/SIGINT
stops scheduling, lets in-flight deliveries finish (or stay pending in the outbox), and closes the store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from rarewatch import __version__
from rarewatch.api import POLLER, RUNTIME, add_routes
from rarewatch.clock import Clock
from rarewatch.runtime import open_runtime
from rarewatch.scheduler import Poller
from rarewatch.settings import Settings

log = logging.getLogger(__name__)


def build_web_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The long-running service: the HTTP API plus the poller, started and stopped with the app."""
    app = web.Application()

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_runtime(settings, clock=clock) as runtime:
            app[RUNTIME] = runtime
            poller = Poller(
                runtime.pipeline,
                runtime.sources,
                runtime.outbox,
                runtime.clock,
                on_run=runtime.metrics.record,
            )
            app[POLLER] = poller
            poller.start()
            log.info(
                "rarewatch %s: %d sources, %d rules (pack %s), store %s",
                __version__,
                len(runtime.sources),
                len(runtime.ruleset.rules),
                runtime.ruleset.version,
                settings.store_url().split("@")[-1],
            )
            yield
            await poller.stop()

    app.cleanup_ctx.append(runtime_ctx)
    add_routes(app)
    return app
