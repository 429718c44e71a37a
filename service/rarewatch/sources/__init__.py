"""Sources: one module per kind behind the `Source` protocol; the only place that knows HTTP fetching.

`http` is the fetch shared by every kind, `encoding` the one home of charset sniffing, and `base.HttpSource`
what the kinds share; `feed` (`FeedSource`: RSS and Atom, parsed by `feedparse`), `json_api`
(`JsonApiSource`) and `html` (`HtmlListSource`) are the kinds. Each kind's module also owns its config
model and `build(config, deps)`; `registry` maps the `type` key to the kind.
"""

from __future__ import annotations

from rarewatch.sources.base import HttpSource, Source
from rarewatch.sources.feed import FeedSource
from rarewatch.sources.html import HtmlListSource
from rarewatch.sources.json_api import JsonApiSource

__all__ = ["FeedSource", "HtmlListSource", "HttpSource", "JsonApiSource", "Source"]
