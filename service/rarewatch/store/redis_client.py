"""How a Redis store URL becomes a client: one server (`redis://`, `rediss://`, `unix://`), Redis Cluster
(`redis+cluster://`, `rediss+cluster://`), or the master a set of sentinels names
(`redis+sentinel://host:26379[,host:26379…]/service[/db]`, `rediss+sentinel://`; see `urls.SentinelTarget`).

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
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff

from rarewatch.store.urls import SENTINEL_SCHEMES, parse_sentinel_url

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
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_master(url, options)
    return Redis.from_url(url, **options)


def _sentinel_master(url: str, options: dict[str, Any]) -> Redis:
    """A client of the master the sentinels name: it asks them again after a failover (a connection error),
    so the store follows the new master with no restart."""
    target = parse_sentinel_url(url)
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    master: Redis = sentinel.master_for(
        target.service,
        db=target.db,
        ssl=target.tls,
        username=target.username,
        password=target.password,
        **options,
    )
    return master


async def close(client: RedisClient) -> None:
    """Close `client`'s connections, and those of the sentinels it asks for its master, if any."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


def decodes_responses(client: RedisClient) -> bool:
    """Whether `client` was created with `decode_responses=True` (the store reads text, not bytes)."""
    if isinstance(client, RedisCluster):
        return bool(client.get_connection_kwargs().get("decode_responses"))
    return bool(client.connection_pool.connection_kwargs.get("decode_responses"))


def describe(client: RedisClient) -> str:
    """The server, for messages: host:port/db, the socket path, `cluster host:port` (the first node) or
    `sentinel service <name>/db`."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # None until the client first asked the cluster for its nodes
        if node is not None:
            return f"cluster {node.host}:{node.port}"
        return "cluster " + ",".join(client.nodes_manager.startup_nodes)
    kw = client.connection_pool.connection_kwargs
    if isinstance(client.connection_pool, SentinelConnectionPool):
        return f"sentinel service {client.connection_pool.service_name}/{kw.get('db', 0)}"
    place = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{place}/{kw.get('db', 0)}"
