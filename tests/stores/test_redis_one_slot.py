# redis-py's sync cluster client has no annotations on these methods.
# mypy: disable-error-code="no-untyped-call"
"""In a Redis Cluster, a message's check touches one slot on one node.

The point of keeping master-token revocations in the identity's own hash
(:mod:`missile.stores.redis_state`): a check that also read a shared revocation set
would reach a second node on most messages. These tests count, on a real 3-master
cluster, which nodes execute data commands while checks run (``INFO commandstats``
after ``CONFIG RESETSTAT``), and assert that every key of the check script hashes to
one slot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.errors import MslError
from missile.stores.redis_state import RedisTokenState
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
#: Commands of cluster bookkeeping and of this test itself, not of a check.
ADMIN_COMMANDS = {"info", "config", "cluster", "command", "ping", "client", "hello", "readonly", "asking", "select"}
#: Checks per identity: enough that a stray command per check would stand out.
CHECKS = 5
#: Identities checked: several, so that more than one node owns one of them.
IDENTITIES = 6


def _data_commands(node: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = node.info("commandstats")
    calls = {name.removeprefix("cmdstat_").lower(): int(value["calls"]) for name, value in stats.items()}
    return {name: count for name, count in calls.items() if name.split("|")[0] not in ADMIN_COMMANDS}


def _node_clients(url: str) -> dict[str, redis.Redis]:
    cluster = RedisCluster.from_url(url, socket_timeout=5)
    try:
        return {
            node.name: redis.Redis(host=node.host, port=node.port, socket_timeout=5) for node in cluster.get_primaries()
        }
    finally:
        cluster.close()


def test_a_check_touches_one_node(redis_cluster_url: str, redis_prefix: str) -> None:
    nodes = _node_clients(redis_cluster_url)
    state = RedisTokenState(redis_cluster_url, cluster=True, prefix=redis_prefix)
    factory = TokenFactory(state, state_timeout=10.0)
    ctx = MslContext(msl_crypto=MSL, clock=FixedClock(1_700_000_000_000))

    async def issue(identity: str) -> MasterToken:
        token = factory.create_master_token(ctx, identity, bytes(16), bytes(32))
        await factory.record_issued(None, token)
        return token

    async def go() -> set[str]:
        owners: set[str] = set()
        tokens = [await issue(f"device-{i}") for i in range(IDENTITIES)]
        await factory.revoke_user("someone")  # the shared sets exist, and must stay unread
        await factory.revoke_master_token(12345)
        for token in tokens:
            key = f"{redis_prefix}{{{(token.identity or '').encode().hex()}}}"
            owner = state.client.get_node_from_key(key).name
            owners.add(owner)
            for node in nodes.values():
                node.config_resetstat()
            for nrid in range(1, CHECKS + 1):
                assert await factory.check_master_token(ctx, token, nrid) == (None, None)
            assert await factory.check_master_token(ctx, token, 1) == (None, MslError.MESSAGE_REPLAYED)
            touched = {name: _data_commands(node) for name, node in nodes.items()}
            assert touched[owner].get("evalsha") == CHECKS + 1, touched
            assert {name for name, commands in touched.items() if commands} == {owner}, touched
        return owners

    try:
        owners = asyncio.run(_closing(factory, go()))
    finally:
        for node in nodes.values():
            node.close()
    assert len(owners) > 1  # the identities spread, and each check stayed on its own node


async def _closing(factory: TokenFactory, work: Any) -> Any:
    try:
        return await work
    finally:
        await factory.aclose()


def test_every_key_of_a_check_shares_one_slot() -> None:
    """The check is one script whose KEYS are the identity's hash only; the state names
    every key with the identity's hash tag (no cluster needed: the slot is computed)."""
    state = RedisTokenState("redis://127.0.0.1:1", prefix="p:")
    command = state._check("dévice {1}", 7, 3)
    name, _sha, numkeys, *rest = command
    assert name == "EVALSHA"
    keys = rest[:numkeys]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert keys == [f"p:{{{'dévice {1}'.encode().hex()}}}"]
    asyncio.run(state.aclose())
