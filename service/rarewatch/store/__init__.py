"""State: dedup claims, source state, alert history and the delivery outbox."""

from rarewatch.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str) -> Store:
    """Build the store an URL names: `sqlite:///path` (the default) or `redis://host:port/db`."""
    if url.startswith("sqlite:"):
        from rarewatch.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from rarewatch.store.redis import RedisStore

        return RedisStore.from_url(url)
    raise ValueError(f"unsupported store URL {url!r} (use sqlite:///path or redis://host:port/db)")
