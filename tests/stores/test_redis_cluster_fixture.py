# redis-py's cluster client has no annotations on these methods.
# mypy: disable-error-code="no-untyped-call"
"""The ``redis_cluster_url`` fixture gives a real, working 3-master Redis Cluster.

The cluster-backed token state is tested against this fixture, so the fixture itself
must be shown to be a cluster: keys spread over all three masters, multi-key scripts
work on hash-tagged keys and are refused across slots (as in production).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

# KEYS[1], KEYS[2]: two counters; increments both and returns the sum.
_SUM_SCRIPT = """
local a = redis.call('INCRBY', KEYS[1], ARGV[1])
local b = redis.call('INCRBY', KEYS[2], ARGV[2])
return a + b
"""


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


def test_cluster_has_three_masters_covering_every_slot(cluster: RedisCluster) -> None:
    info: dict[str, Any] = cluster.cluster_info(target_nodes=RedisCluster.ALL_NODES)  # per node
    assert len(info) == 3
    for node_info in info.values():
        assert node_info["cluster_state"] == "ok"
        assert int(node_info["cluster_slots_assigned"]) == 16384
        assert int(node_info["cluster_size"]) == 3
    assert len(cluster.get_primaries()) == 3


def test_set_get_on_keys_in_every_master(cluster: RedisCluster) -> None:
    run = uuid.uuid4().hex
    keys = [f"fixture-{run}-{i}" for i in range(64)]
    owners = {cluster.get_node_from_key(key).name for key in keys}
    assert len(owners) == 3, owners  # 64 random keys land on all three masters
    assert len({cluster.keyslot(key) for key in keys}) > 1
    for i, key in enumerate(keys):
        assert cluster.set(key, f"value-{i}")
    assert [cluster.get(key) for key in keys] == [f"value-{i}".encode() for i in range(len(keys))]
    assert cluster.delete(*keys) == len(keys)


def test_lua_script_on_hash_tagged_keys(cluster: RedisCluster) -> None:
    tag = f"{{x-{uuid.uuid4().hex}}}"
    a, b = f"{tag}:a", f"{tag}:b"
    assert cluster.keyslot(a) == cluster.keyslot(b)
    script = cluster.register_script(_SUM_SCRIPT)
    assert script(keys=[a, b], args=[2, 3]) == 5
    assert script(keys=[a, b], args=[10, 20]) == 35
    assert (cluster.get(a), cluster.get(b)) == (b"12", b"23")
    cluster.delete(a, b)


def test_lua_script_across_slots_is_refused(cluster: RedisCluster) -> None:
    run = uuid.uuid4().hex
    a, b = f"{run}:a", f"{run}:b"
    assert cluster.keyslot(a) != cluster.keyslot(b)
    script = cluster.register_script(_SUM_SCRIPT)
    with pytest.raises(RedisClusterException, match="same key slot"):
        script(keys=[a, b], args=[1, 1])  # redis-py refuses before sending
    # The node itself refuses too (a client that does not check would not get around it).
    node = cluster.get_node_from_key(a)
    direct = redis.Redis(host=node.host, port=node.port, socket_timeout=5)
    try:
        with pytest.raises(redis.ResponseError, match="same slot"):  # CROSSSLOT
            direct.eval(_SUM_SCRIPT, 2, a, b, 1, 1)
    finally:
        direct.close()
    assert cluster.exists(a, b) == 0
