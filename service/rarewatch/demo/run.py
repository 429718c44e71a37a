"""`rarewatch demo`: one cycle of the real pipeline, offline, with the bundled rules and an embedded store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TextIO

from rarewatch.demo.server import demo_feed_names, serve_demo_feeds
from rarewatch.paths import bundled_rules_dir
from rarewatch.pipeline import run_cycle
from rarewatch.runtime import open_runtime
from rarewatch.settings import Settings


def demo_settings(base_url: str, workdir: Path) -> Settings:
    """A configuration for the demo: local feeds, a throwaway SQLite file, console output."""
    sources = [
        {"name": Path(name).stem, "type": "feed", "url": f"{base_url}/feeds/{name}", "interval": "15m"}
        for name in demo_feed_names()
    ]
    sources.append({"name": "broken-source", "type": "feed", "url": f"{base_url}/broken.xml"})
    return Settings(
        store=f"sqlite:///{workdir / 'demo.db'}",
        rules=[str(bundled_rules_dir())],
        sources=sources,
        destinations=[{"name": "console", "type": "console"}],
        routes=[{"to": ["console"]}],
        # The sample stories are dated; a long lookback lets them all through on this first poll.
        initial_lookback="3650d",
        # The sample article is served on 127.0.0.1, which enrichment refuses unless told otherwise.
        enrichment={"allow_private_hosts": True},
        config_dir=workdir,
    )


async def run_demo(out: TextIO) -> int:
    """Serve the sample feeds, run one cycle against them, print the alerts and a summary."""
    with tempfile.TemporaryDirectory(prefix="rarewatch-demo-") as tmp:
        async with serve_demo_feeds() as base_url:
            settings = demo_settings(base_url, Path(tmp))
            print(f"rarewatch demo: serving sample feeds at {base_url}", file=out)
            async with open_runtime(settings, stdout=out) as runtime:
                print(
                    f"rules: {len(runtime.ruleset.rules)} (pack {runtime.ruleset.version}); "
                    f"store: {settings.store_url()}\n",
                    file=out,
                )
                runs = await run_cycle(runtime.pipeline, runtime.sources, force=True)
                report = await runtime.outbox.flush()
    print("", file=out)
    for run in runs:
        detail = run.error if run.error else f"{run.entries} items, {len(run.alerts)} alerts"
        print(f"  {run.source:<20} {run.status:<12} {detail}", file=out)
    total = sum(len(r.alerts) for r in runs)
    print(f"\n{total} alerts delivered to the console ({report.delivered} deliveries).", file=out)
    return 0
