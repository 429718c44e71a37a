"""Which client a Redis store URL makes, and how the store names it in messages (no connection is made)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from rarewatch.store.redis import RedisStore
from rarewatch.store.redis_client import connect, is_cluster_url


def test_each_scheme_makes_its_client_and_the_store_names_it_without_credentials() -> None:
    cluster = RedisStore("redis+cluster://app:hunter2@127.0.0.1:7000")
    sentinel = RedisStore("redis+sentinel://app:hunter2@127.0.0.1:26379,127.0.0.1:26380/mymaster/2")
    single = RedisStore("redis://:hunter2@127.0.0.1:6379/1")
    assert cluster.where == "cluster 127.0.0.1:7000 (prefix '{rarewatch}:')"
    assert sentinel.where == "sentinel service mymaster/2 (prefix 'rarewatch:')"
    assert single.where == "127.0.0.1:6379/1 (prefix 'rarewatch:')"
    assert all("hunter2" not in s.where for s in (cluster, sentinel, single))


def test_clients_decode_responses_and_cluster_mode_comes_from_the_scheme() -> None:
    cluster = connect("rediss+cluster://127.0.0.1:7000", connect_timeout=1, timeout=1)
    assert isinstance(cluster, RedisCluster) and cluster.get_connection_kwargs()["decode_responses"]
    master = connect("redis+sentinel://127.0.0.1:26379/mymaster", connect_timeout=1, timeout=1)
    assert isinstance(master, Redis) and isinstance(master.connection_pool, SentinelConnectionPool)
    assert master.connection_pool.connection_kwargs["decode_responses"]
    assert is_cluster_url("redis+cluster://h:1") and not is_cluster_url("redis://h:1/0")
