"""The long-running service (`rarewatch run`): the HTTP API plus the poller, as one aiohttp application.

The runtime and the poller are started and stopped through aiohttp's `cleanup_ctx`, so a SIGTERM/SIGINT
stops scheduling, lets in-flight deliveries finish (or stay pending in the outbox), and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web
from watchfiles import Change, awatch

from rarewatch import __version__, dashboard, health, slack_interactions
from rarewatch.api import LIFECYCLE, POLLER, RUNTIME, Lifecycle, add_routes
from rarewatch.clock import Clock
from rarewatch.errors import ConfigError, RuleError
from rarewatch.httputil import redact_url
from rarewatch.runtime import Runtime, open_runtime
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
                on_flush=runtime.metrics.record_flush,
                leases=runtime.leases,
            )
            await runtime.leases.start()
            poller.start()
            app[POLLER] = poller
            log.info(
                "rarewatch %s: %d sources, %d rules (pack %s), store %s",
                __version__,
                len(runtime.sources),
                len(runtime.ruleset.rules),
                runtime.ruleset.version,
                redact_url(settings.store_url()),
            )
            yield
            await poller.stop()
            await runtime.leases.stop()  # SIGTERM: the other replicas take over this one's work at once

    async def reload_ctx(app: web.Application) -> AsyncIterator[None]:
        # SIGHUP reloads the rules, as with Alertmanager; so does a change to the files with watch_rules.
        loop = asyncio.get_running_loop()
        runtime = app[RUNTIME]
        reloads: set[asyncio.Task[None]] = set()  # held, so a running reload is not garbage-collected

        def on_sighup() -> None:
            task = asyncio.create_task(_reload_and_log(runtime))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        watcher = asyncio.create_task(_watch_rules(runtime)) if settings.watch_rules else None
        yield
        loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    token, read_token = settings.http.token, settings.http.read_token
    app[LIFECYCLE] = Lifecycle(
        token=token.get_secret_value() if token is not None else None,
        enabled=settings.http.enable_lifecycle,
        read_token=read_token.get_secret_value() if read_token is not None else None,
    )
    app.cleanup_ctx.append(runtime_ctx)
    app.cleanup_ctx.append(reload_ctx)
    add_routes(app)
    health.add_routes(app)
    secret = settings.slack.signing_secret
    slack_interactions.add_routes(app, secret.get_secret_value() if secret is not None else None)
    _warn_unanswered_buttons(settings)
    dashboard.add_routes(app)
    return app


def _warn_unanswered_buttons(settings: Settings) -> None:
    """Feedback buttons whose clicks this process cannot take: say so once, at start."""
    if settings.slack.signing_secret is not None:
        return
    names = [d.name for d in settings.destinations if getattr(d, "feedback_buttons", False)]
    if names:
        log.warning(
            "slack destination(s) %s show feedback buttons, but slack.signing_secret is not set: clicks are "
            "not recorded here (set it, or feedback_buttons: false)",
            ", ".join(names),
        )


async def _reload_and_log(runtime: Runtime) -> None:
    """Reload the rules; an invalid rule file is logged with file and line, the old rules stay."""
    try:
        await runtime.reload_rules()
    except (RuleError, ConfigError) as exc:
        log.error("rules not reloaded, the previous ones stay in use: %s", exc)


async def _watch_rules(runtime: Runtime) -> None:
    """Reload the rules whenever a rule file changes (watchfiles batches a burst of edits into one)."""
    async for _changes in awatch(*runtime.rule_paths, watch_filter=_is_rule_file):
        await _reload_and_log(runtime)


def _is_rule_file(change: Change, path: str) -> bool:
    return path.endswith((".yaml", ".yml"))
