"""The `Source` protocol: one module per kind of source (`feed`, later `json`, `html`)."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from rarewatch.models import FetchResult, SourceState


class Source(Protocol):
    """Fetches one configured source and parses what it got into `RawEntry`s.

    Raises `SourceError` (with `retry_after` when the server said so) for anything that went wrong:
    network errors, HTTP errors, oversized or undecodable bodies, unparseable documents.
    """

    name: str

    async def fetch(self, session: aiohttp.ClientSession, state: SourceState) -> FetchResult: ...
