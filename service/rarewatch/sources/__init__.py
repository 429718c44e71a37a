"""Sources: one module per kind behind the `Source` protocol; the only place that knows HTTP fetching.

`http` is the fetch shared by every kind, `feedparse` turns feed bytes into `RawEntry`s, and `feed`
holds `FeedSource`.
"""

from __future__ import annotations

from rarewatch.sources.base import Source
from rarewatch.sources.feed import FeedSource

__all__ = ["FeedSource", "Source"]
