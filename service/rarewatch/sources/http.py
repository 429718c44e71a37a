"""The HTTP fetch shared by every source kind (feeds now; JSON APIs and HTML pages later).

One GET with: conditional-request validators, redirects followed by hand (http(s) only, at most
`MAX_REDIRECTS`, loops named, each hop checked, and only User-Agent and Accept sent once a hop leaves the
original origin), an overall deadline, a body capped on its *decompressed* size while it
streams (so a gzip bomb stops early), and every failure mapped to a `SourceError` with a clear message
(and `retry_after` on 429/503).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from rarewatch import __version__
from rarewatch.errors import SourceError
from rarewatch.httputil import parse_retry_after, redact_url, scrub
from rarewatch.models import FetchResult, SourceState

USER_AGENT = f"rarewatch/{__version__} (+https://github.com/rarewatch)"
MAX_REDIRECTS = 5
ALLOWED_SCHEMES = frozenset({"http", "https"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# The only request header, besides our own User-Agent, still sent after a redirect leaves the original
# origin: it names the wanted format and carries nothing a configured header could hide in it.
_CROSS_ORIGIN_HEADERS = ("Accept",)
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """How long and how much one fetch may take. `timeout` bounds the whole fetch, redirects included."""

    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A successful (2xx) or not-modified (304) response, body read in full (empty for a 304)."""

    url: str  # the final URL, after redirects
    status: int
    body: bytes
    content_type: str | None  # the raw Content-Type header, charset included
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@functools.lru_cache(maxsize=4096)
def check_url(url: str) -> URL:
    """Parse `url`, refusing anything but an absolute http(s) URL (`SourceError`).

    Remembered: a source fetches the same URL on every poll (a `URL` is immutable, and a refused one
    raises, so nothing is remembered of it)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise SourceError(f"invalid URL {redact_url(url)!r}: {scrub(str(exc), url)}") from None
    if parsed.scheme not in ALLOWED_SCHEMES or not parsed.host:
        raise SourceError(f"refusing non-http(s) URL {redact_url(url)!r}")
    return parsed


def request_headers(
    headers: Mapping[str, str], *, etag: str | None = None, last_modified: str | None = None
) -> CIMultiDict[str]:
    """The headers to send: our User-Agent unless `headers` sets one, `headers`, then the validators."""
    out: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
    out.update(headers)
    if etag:
        out["If-None-Match"] = etag
    if last_modified:
        out["If-Modified-Since"] = last_modified
    return out


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    limits: Limits | None = None,
    headers: Mapping[str, str] | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    check_target: Callable[[URL], None] | None = None,
) -> HttpResponse:
    """GET `url` and return the 2xx or 304 response; raise `SourceError` for everything else.

    `headers` are extra request headers (they may override the User-Agent); `etag`/`last_modified` are
    the stored validators, sent as If-None-Match/If-Modified-Since. `limits` defaults to `Limits()`.
    `check_target` is called with the URL and every redirect target before it is requested, and raises
    `SourceError` to refuse one (article links come from feeds: see `sources.article`).
    """
    limits = limits or Limits()
    sent = request_headers(headers or {}, etag=etag, last_modified=last_modified)
    try:
        async with asyncio.timeout(limits.timeout):
            return await _follow(session, check_url(url), sent, limits, check_target)
    # Each message names the URL as `redact_url` shows it (no credentials, no query values), made only
    # when a fetch fails.
    except aiohttp.ConnectionTimeoutError:
        raise SourceError(
            f"timed out after {limits.connect_timeout:g}s connecting to {redact_url(url)}"
        ) from None
    except TimeoutError:
        raise SourceError(f"timed out after {limits.timeout:g}s fetching {redact_url(url)}") from None
    except aiohttp.ClientConnectorError as exc:
        reason = scrub(str(exc.os_error or exc), url)
        raise SourceError(f"cannot connect to {exc.host}:{exc.port}: {reason}") from None
    except aiohttp.ClientPayloadError as exc:
        raise SourceError(f"broken response body from {redact_url(url)}: {scrub(str(exc), url)}") from None
    except aiohttp.ClientResponseError as exc:
        raise SourceError(f"bad HTTP response from {redact_url(url)}: {exc.status} {exc.message}") from None
    except aiohttp.ClientError as exc:
        raise SourceError(
            f"HTTP request to {redact_url(url)} failed: {type(exc).__name__}: {scrub(str(exc), url)}"
        ) from None


async def _follow(
    session: aiohttp.ClientSession,
    url: URL,
    headers: CIMultiDict[str],
    limits: Limits,
    check_target: Callable[[URL], None] | None = None,
) -> HttpResponse:
    seen = [url]
    for _ in range(MAX_REDIRECTS + 1):
        if check_target is not None:
            check_target(url)
        # Per request, whatever the shared session's defaults: redirects are followed by hand (to check
        # each hop's scheme and name loops), bodies are decompressed (the cap counts decompressed bytes),
        # and statuses are ours to map (a 429's Retry-After must survive).
        async with session.get(
            url,
            headers=headers,
            allow_redirects=False,
            timeout=_client_timeout(limits.connect_timeout),
            auto_decompress=True,
            raise_for_status=False,
        ) as resp:
            if resp.status not in _REDIRECTS:
                return await _finish(resp, url, limits.max_bytes)
            target = _redirect_target(resp, url)
        if target in seen:
            hops = " -> ".join(redact_url(u) for u in [*seen, target])
            raise SourceError(f"redirect loop: {hops}")
        if target.origin() != url.origin():
            # Another host, port or scheme: none of the configured headers (an `X-Api-Key` as much as
            # `Authorization`, a custom User-Agent, the validators) goes there; they stay with their origin.
            headers = _cross_origin(headers)
        seen.append(target)
        url = target
    raise SourceError(f"too many redirects (more than {MAX_REDIRECTS}) from {redact_url(seen[0])}")


async def conditional_get(
    session: aiohttp.ClientSession,
    url: str,
    state: SourceState,
    *,
    limits: Limits | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """`fetch` with the validators (ETag, Last-Modified) stored in the source's state."""
    return await fetch(
        session, url, limits=limits, headers=headers, etag=state.etag, last_modified=state.last_modified
    )


def unchanged(resp: HttpResponse, state: SourceState) -> FetchResult:
    """The result of a 304: no entries, and the validators to keep (new ones if the server sent them)."""
    return FetchResult(
        entries=(),
        not_modified=True,
        etag=resp.etag or state.etag,
        last_modified=resp.last_modified or state.last_modified,
    )


def _redirect_target(resp: aiohttp.ClientResponse, url: URL) -> URL:
    location = resp.headers.get("Location")
    if not location:
        raise SourceError(f"HTTP {resp.status} redirect without a Location header from {redact_url(url)}")
    try:
        target = url.join(URL(location))
    except ValueError as exc:
        where = f"{redact_url(location)!r} from {redact_url(url)}"
        raise SourceError(f"bad redirect Location {where}: {scrub(str(exc), location)}") from None
    if target.scheme not in ALLOWED_SCHEMES or not target.host:
        raise SourceError(
            f"refusing redirect to non-http(s) URL {redact_url(location)!r} from {redact_url(url)}"
        )
    return target.with_fragment(None)


@functools.lru_cache(maxsize=64)
def _client_timeout(connect_timeout: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for one request: only the connect bound. The whole fetch's bound is the
    `asyncio.timeout` around it (redirects and the body included), so aiohttp keeps no timer of its own
    for the same deadline (one object per distinct value, shared by every request)."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)


def _cross_origin(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """What a request to another origin carries: our User-Agent and the wanted format, nothing else."""
    out: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
    for name in _CROSS_ORIGIN_HEADERS:
        if name in headers:
            out[name] = headers[name]
    return out


async def _finish(resp: aiohttp.ClientResponse, url: URL, max_bytes: int) -> HttpResponse:
    if resp.status == 304:
        return _response(resp, url, b"")
    if not 200 <= resp.status < 300:
        raise status_error(resp.status, resp.reason, resp.headers, str(url))
    return _response(resp, url, await read_capped(resp, max_bytes))


def _response(resp: aiohttp.ClientResponse, url: URL, body: bytes) -> HttpResponse:
    return HttpResponse(
        url=str(url),
        status=resp.status,
        body=body,
        content_type=resp.headers.get("Content-Type"),
        etag=resp.headers.get("ETag"),
        last_modified=resp.headers.get("Last-Modified"),
    )


async def read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Read the body, counting decompressed bytes as they stream in; `SourceError` once past `max_bytes`.

    Reading stops at the first chunk over the cap, so neither a huge body nor a compression bomb is
    ever held in memory (aiohttp decompresses in bounded steps as we consume).
    """
    too_big = SourceError(f"response larger than {max_bytes} bytes")
    encoded = "Content-Encoding" in resp.headers
    if not encoded and resp.content_length is not None and resp.content_length > max_bytes:
        raise too_big  # the server told us up front
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            resp.close()  # drop the connection rather than drain the rest of the body
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def status_error(status: int, reason: str | None, headers: Mapping[str, str], url: str) -> SourceError:
    """The `SourceError` for an unexpected HTTP status, with `retry_after` from a 429/503 Retry-After.
    `url` is shown redacted (`redact_url`)."""
    what = f"HTTP {status} {reason or ''}".rstrip()
    url = redact_url(url)
    if status in (404, 410):
        return SourceError(f"{what}: the feed is not at {url}")
    if status in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        hint = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
        return SourceError(f"{what} from {url}{hint}", retry_after=retry_after)
    kind = "server error" if status >= 500 else "client error" if status >= 400 else "unexpected status"
    return SourceError(f"{what} ({kind}) from {url}")
