"""Store URLs: which are accepted, checked at configuration load, and how they are shown.

`check_store_url` runs when the configuration is validated, so a mistyped `store:` is a configuration
error with file and line (or the environment variable's name), before anything is opened. Its messages
never repeat the URL whole: a Redis URL may carry a password, so they show the scheme and host only
(`httputil.redact_url(url, keep_path=False)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from rarewatch.httputil import redact_url

SQLITE_PREFIX = "sqlite:///"
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", *SENTINEL_SCHEMES)
SENTINEL_PORT = 26379
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HINT = (
    "use sqlite:///relative/path.db, sqlite:////absolute/path.db, redis://host:port/db"
    ", redis+cluster://host:port or redis+sentinel://host:port/service"
)


def check_store_url(url: str) -> str:
    """Return `url` if it names a store rarewatch can open; raise ValueError (credential-free) if not."""
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        raise ValueError(f"store must be a URL with a scheme ({_HINT})")
    scheme = scheme_match.group(1)  # lower case only, as open_store dispatches on it
    if scheme == "sqlite":
        _check_sqlite(url)
    elif scheme in REDIS_SCHEMES:
        _check_redis(url, scheme)
    else:
        raise ValueError(
            f"unsupported store URL scheme {scheme!r} in {redact_url(url, keep_path=False)} ({_HINT})"
        )
    return url


def _check_sqlite(url: str) -> None:
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        # sqlite://state.db would make "state.db" a host name: say how many slashes are wanted.
        raise ValueError(
            "a SQLite store URL is sqlite:/// (three slashes) and a file path: "
            f"{redact_url(url, keep_path=False)} is not one ({_HINT})"
        )


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a `redis+sentinel://[user:password@]host[:port][,host[:port]…]/service[/db]` URL names: the
    sentinels to ask (port 26379 by default), the monitored service, and the database and credentials of
    its master (the sentinels themselves are asked without credentials)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a sentinel URL; ValueError (scheme and hosts only, never credentials) if malformed."""
    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    where = f"{scheme}://{hosts}"
    sentinels = tuple(_sentinel_address(part, where) for part in hosts.split(","))
    segments = path.split("?", 1)[0].strip("/").split("/") if path.strip("/") else []
    if not segments or len(segments) > 2:
        raise ValueError(f"a sentinel URL names the monitored service, as in {scheme}://host:26379/mymaster")
    if len(segments) == 2 and not segments[1].isdigit():
        raise ValueError(f"the Redis database in {where} must be a number, as in {scheme}://host/mymaster/0")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    return SentinelTarget(
        sentinels=sentinels,
        service=unquote(segments[0]),
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=scheme == "rediss+sentinel",
    )


def _sentinel_address(part: str, where: str) -> tuple[str, int]:
    host, _, port = part.rpartition(":") if ":" in part else (part, "", str(SENTINEL_PORT))
    if not host:
        raise ValueError(f"a sentinel URL needs each sentinel's host: {where}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port in {where} must be a number from 1 to 65535 ({_HINT})")
    return host, int(port)


def _check_redis(url: str, scheme: str) -> None:
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
        return
    parts = _split(url)
    where = redact_url(url, keep_path=False)
    if parts is None:
        raise ValueError(f"the port in {where} must be a number from 1 to 65535 ({_HINT})")
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"a unix:// store URL needs the socket's path: {where}")
        return
    if not parts.hostname:
        raise ValueError(f"a Redis store URL needs a host: {where} ({_HINT})")
    db = parts.path.strip("/")
    if scheme.endswith("+cluster"):
        if db not in ("", "0"):  # a cluster has database 0 only
            raise ValueError(f"a Redis Cluster has database 0 only: {where} names another")
        return
    if db and not db.isdigit():
        raise ValueError(f"the Redis database in {where} must be a number, as in redis://host:6379/0")


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    return parts
