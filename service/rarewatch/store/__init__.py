"""State: dedup claims, source state, alert history and the delivery outbox."""

import sys

from rarewatch.store.base import ItemRetention, Store
from rarewatch.store.leases import Leases, NoLeases
from rarewatch.store.urls import check_store_url

__all__ = ["ItemRetention", "Leases", "NoLeases", "Store", "leases_for", "open_store"]


def open_store(url: str, *, items: ItemRetention | None = None) -> Store:
    """Build the store an URL names: `sqlite:///path` (the default), `redis://host:port/db`,
    `redis+cluster://host:port` or `redis+sentinel://host:port/service`, keeping seen items as `items`
    says (default: `ItemRetention()`).

    Raises ValueError, showing the scheme and host only, for a URL of another kind (`check_store_url`)."""
    check_store_url(url)
    if url.startswith("sqlite:"):
        from rarewatch.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url, items=items)
    from rarewatch.store.redis import RedisStore

    return RedisStore.from_url(url, items=items)


def leases_for(store: Store) -> Leases:
    """The lease capability of `store`: real leases on Redis (several replicas may share it), none needed on
    SQLite (one process)."""
    if "rarewatch.store.redis" not in sys.modules:
        return NoLeases()  # no RedisStore can exist: spare a SQLite run the import of redis (~0.1 s)
    from rarewatch.store.redis import RedisStore

    return store.leases() if isinstance(store, RedisStore) else NoLeases()
