"""How a Redis store URL becomes a client: one server (`redis://`, `rediss://`, `unix://`) or Redis Cluster
(`redis+cluster://`, `rediss+cluster://`).

Cluster mode is chosen by the URL, not detected: a client that asked each server `CLUSTER INFO` at start
would change the key names (they carry a hash tag on a cluster, see `keys.cluster_prefix`) according to a
server-side setting, so the same configuration could address two different sets of keys. An explicit scheme
keeps the key names a property of the configuration file.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

RedisClient: TypeAlias = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def connect(url: str, *, connect_timeout: float, timeout: float) -> RedisClient:
    """A client for `url` decoding responses, with the given timeouts in seconds (a dead server fails fast
    instead of hanging) and one quick retry, which reconnects a pooled connection that died with a restarted
    server. A cluster client starts from the one node the URL names and discovers the others."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    }
    scheme, rest = url.split("://", 1)
    if scheme.lower() in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}", **options)
    return Redis.from_url(url, **options)


def decodes_responses(client: RedisClient) -> bool:
    """Whether `client` was created with `decode_responses=True` (the store reads text, not bytes)."""
    if isinstance(client, RedisCluster):
        return bool(client.get_connection_kwargs().get("decode_responses"))
    return bool(client.connection_pool.connection_kwargs.get("decode_responses"))


def describe(client: RedisClient) -> str:
    """The server, for messages: host:port/db, the socket path, or `cluster host:port` (the first node)."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()
        return f"cluster {node.host}:{node.port}" if node is not None else "cluster"
    kw = client.connection_pool.connection_kwargs
    place = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{place}/{kw.get('db', 0)}"
