"""Store URLs: which are accepted, checked at configuration load, and how they are shown.

`check_store_url` runs when the configuration is validated, so a mistyped `store:` is a configuration
error with file and line (or the environment variable's name), before anything is opened. Its messages
never repeat the URL whole: a Redis URL may carry a password, so they show the scheme and host only
(`httputil.redact_url(url, keep_path=False)`).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from rarewatch.httputil import redact_url

SQLITE_PREFIX = "sqlite:///"
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HINT = (
    "use sqlite:///relative/path.db, sqlite:////absolute/path.db, redis://host:port/db"
    " or redis+cluster://host:port"
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


def _check_redis(url: str, scheme: str) -> None:
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
