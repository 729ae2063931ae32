# redis-py's sync cluster client has no annotations on these methods.
# mypy: disable-error-code="no-untyped-call"
"""In a Redis Cluster, checks go straight to the node that owns the identity's slot, and
a slot map gone stale (a slot migrated, a node answering MOVED or ASK) still gives the
right verdicts.

:class:`~missile.stores.redis_state.RedisTokenState` sends a cluster's commands on
connections of its own to the node its client's slot map names, bypassing the cluster
client's routing; only a command known not to have run (a MOVED, ASK, TRYAGAIN or
CLUSTERDOWN answer, an unreachable node) goes again through the cluster client. These
tests count the calls that reach the cluster client's routing, poison its slot map, and
migrate a slot between two masters of a real 3-master cluster step by step (CLUSTER
SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) with checks at every step.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
from redis.cluster import RedisCluster

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.errors import MslError, MslException
from missile.stores import redis_state
from missile.stores.redis_state import RedisTokenState
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken
from redis_helpers import node_process, on_two_masters

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
CTX = MslContext(msl_crypto=MSL, clock=FixedClock(1_700_000_000_000))
#: Checks in a row that must all take the direct path once the slot map is right.
CHECKS = 5
#: Keys moved per MIGRATE call (the slot holds only this test session's few keys).
MIGRATE_BATCH = 100


@pytest.fixture
def nodes(redis_cluster_url: str) -> Iterator[dict[str, redis.Redis]]:
    """A plain client per master, by node name (host:port)."""
    cluster = RedisCluster.from_url(redis_cluster_url, socket_timeout=5)
    try:
        clients = {
            node.name: redis.Redis(host=node.host, port=node.port, socket_timeout=5) for node in cluster.get_primaries()
        }
    finally:
        cluster.close()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


class _Rig:
    """A state on a cluster client whose routed calls are counted, and a token factory."""

    def __init__(self, url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = redis.asyncio.cluster.RedisCluster.from_url(url, socket_timeout=5)
        self.state = RedisTokenState(client=self.client, prefix=prefix)
        self.factory = TokenFactory(self.state, state_timeout=10.0)
        self.routed: list[Any] = []
        original = self.client.execute_command

        async def counting(*args: Any, **kwargs: Any) -> Any:
            self.routed.append(args[0])
            return await original(*args, **kwargs)

        monkeypatch.setattr(self.client, "execute_command", counting)

    def key(self, token: MasterToken) -> str:
        return f"{self.state.prefix}{{{(token.identity or '').encode().hex()}}}"

    def owner(self, token: MasterToken) -> str:
        """The name of the node the client's slot map gives the token's identity."""
        node = self.client.get_node_from_key(self.key(token))
        assert node is not None
        return node.name

    async def issue(self, identity: str) -> MasterToken:
        token = self.factory.create_master_token(CTX, identity, bytes(16), bytes(32))
        await self.factory.record_issued(None, token)
        return token

    async def check(self, token: MasterToken, nrid: int) -> MslError | None:
        """The verdict on a message with ``nrid`` (the token itself must be fine)."""
        problem, verdict = await self.factory.check_master_token(CTX, token, nrid)
        assert problem is None
        return verdict

    async def accepted_once(self, token: MasterToken, nrid: int) -> None:
        assert await self.check(token, nrid) is None
        assert await self.check(token, nrid) == MslError.MESSAGE_REPLAYED

    async def close(self) -> None:
        await self.factory.aclose()
        await self.client.aclose()


def _run(rig: _Rig, work: Callable[[], Awaitable[None]]) -> None:
    async def go() -> None:
        try:
            await work()
        finally:
            await rig.close()

    asyncio.run(go())


def _evalsha_calls(node: redis.Redis) -> int:
    stats: dict[str, Any] = node.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_checks_skip_the_cluster_routing(
    redis_cluster_url: str, redis_prefix: str, nodes: dict[str, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _Rig(redis_cluster_url, redis_prefix, monkeypatch)

    async def work() -> None:
        token = await rig.issue("direct-device")
        owner = rig.owner(token)
        await rig.accepted_once(token, 1)  # scripts loaded, connections open
        before = _evalsha_calls(nodes[owner])
        rig.routed.clear()
        for nrid in range(2, CHECKS + 2):
            assert await rig.check(token, nrid) is None
        assert await rig.check(token, 2) == MslError.MESSAGE_REPLAYED
        assert rig.routed == []
        assert _evalsha_calls(nodes[owner]) - before == CHECKS + 1

    _run(rig, work)


def test_a_wrong_node_in_the_slot_map_falls_back(
    redis_cluster_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that does not own the slot answers MOVED without running the script: the
    check goes again through the cluster client, which corrects its slot map."""
    rig = _Rig(redis_cluster_url, redis_prefix, monkeypatch)

    async def work() -> None:
        token = await rig.issue("moved-device")
        key = rig.key(token)
        slot = rig.client.keyslot(key)
        owner = rig.owner(token)
        other = next(node for node in rig.client.get_primaries() if node.name != owner)
        for nrid in range(1, 4):
            rig.client.nodes_manager.slots_cache[slot] = [other]
            rig.routed.clear()
            assert await rig.check(token, nrid) is None
            assert rig.routed == ["EVALSHA"]  # the MOVED command, once more through the client
            assert rig.owner(token) == owner
            rig.client.nodes_manager.slots_cache[slot] = [other]
            assert await rig.check(token, nrid) == MslError.MESSAGE_REPLAYED
        rig.routed.clear()
        await rig.accepted_once(token, 4)
        assert rig.routed == []

    _run(rig, work)


def test_an_unreachable_node_in_the_slot_map_falls_back(
    redis_cluster_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that cannot be connected to was sent nothing: the cluster client routes
    the check anew."""
    rig = _Rig(redis_cluster_url, redis_prefix, monkeypatch)

    async def work() -> None:
        token = await rig.issue("unreachable-device")
        slot = rig.client.keyslot(rig.key(token))
        owner = rig.owner(token)
        dead = redis.asyncio.cluster.ClusterNode("127.0.0.1", 1, socket_timeout=5, socket_connect_timeout=5)
        rig.client.nodes_manager.slots_cache[slot] = [dead]
        assert await rig.check(token, 1) is None
        assert rig.owner(token) == owner
        await rig.accepted_once(token, 2)

    _run(rig, work)


def test_a_slot_missing_from_the_slot_map_goes_through_the_cluster_client(
    redis_cluster_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot the client's map has no node for when a check is routed (older redis-py
    raises KeyError for it, newer ones a cluster error) is routed by the cluster client."""
    rig = _Rig(redis_cluster_url, redis_prefix, monkeypatch)
    manager = type(rig.client.nodes_manager)
    original = manager.get_node_from_slot
    missing: list[int] = []  # the slots to report missing, once each

    def get_node_from_slot(self: Any, slot: int, *args: Any, **kwargs: Any) -> Any:
        if slot in missing:
            missing.remove(slot)
            raise KeyError(slot)  # what redis-py 6.0 and older raise for an unmapped slot
        return original(self, slot, *args, **kwargs)

    monkeypatch.setattr(manager, "get_node_from_slot", get_node_from_slot)

    async def work() -> None:
        token = await rig.issue("unmapped-device")
        slot = rig.client.keyslot(rig.key(token))
        for nrid in (1, 2):
            missing.append(slot)
            rig.routed.clear()
            assert await rig.check(token, nrid) is None
            assert rig.routed == ["EVALSHA"] and not missing
        rig.routed.clear()
        await rig.accepted_once(token, 3)
        assert rig.routed == []

    _run(rig, work)


#: Where a RESP command starts in what a client wrote: an array header, then a bulk string.
_COMMAND_START = re.compile(rb"(?:^|\r\n)\*\d+\r\n\$")
#: The answer to HELLO 3 (the client's default protocol): a map with the protocol.
_HELLO_REPLY = b"%1\r\n$5\r\nproto\r\n:3\r\n"


async def _reply_losing_server() -> asyncio.Server:
    """A loopback server that answers the connection handshake with OK and closes the
    connection, answering nothing, when a check script (EVALSHA) arrives: a lost reply."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if b"EVALSHA" in data:
                    break
                for command in _COMMAND_START.split(data)[1:]:
                    writer.write(_HELLO_REPLY if command.startswith(b"5\r\nHELLO") else b"+OK\r\n")
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_a_lost_reply_fails_the_check_and_is_not_resent(
    redis_cluster_url: str, redis_prefix: str, nodes: dict[str, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that takes the check and drops the connection may have run it: the check
    fails (state unavailable) and is sent nowhere else, so no ID is recorded twice."""
    rig = _Rig(redis_cluster_url, redis_prefix, monkeypatch)

    async def work() -> None:
        token = await rig.issue("lost-reply-device")
        key = rig.key(token)
        slot, owner = rig.client.keyslot(key), rig.client.nodes_manager.slots_cache[rig.client.keyslot(key)]
        await rig.accepted_once(token, 1)
        server = await _reply_losing_server()
        port = server.sockets[0].getsockname()[1]
        try:
            before = _evalsha_calls(nodes[rig.owner(token)])
            rig.client.nodes_manager.slots_cache[slot] = [
                redis.asyncio.cluster.ClusterNode("127.0.0.1", port, socket_timeout=5, socket_connect_timeout=5)
            ]
            rig.routed.clear()
            with pytest.raises(MslException) as caught:
                await rig.state.check_master_token(token.identity or "", token.serial_number, 2)
            assert caught.value.error == MslError.INTERNAL_EXCEPTION
            assert rig.routed == []
            rig.client.nodes_manager.slots_cache[slot] = owner
            assert _evalsha_calls(nodes[rig.owner(token)]) == before
        finally:
            server.close()
            await server.wait_closed()
        await rig.accepted_once(token, 2)  # it never ran: the ID is still new

    _run(rig, work)


def _node_id(node: redis.Redis) -> str:
    return str(node.execute_command("CLUSTER", "MYID").decode())


def _move_keys(source: redis.Redis, target_name: str, slot: int) -> None:
    host, port = target_name.rsplit(":", 1)
    while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH):
        source.execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", *keys)


def _assign(nodes: dict[str, redis.Redis], slot: int, target_name: str) -> None:
    target_id = _node_id(nodes[target_name])
    for node in nodes.values():
        node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


def test_checks_through_a_slot_migration(
    redis_cluster_url: str,
    redis_prefix: str,
    nodes: dict[str, redis.Redis],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every step of a live migration of the identity's slot: migrating with the key
    still at the source, the key moved (the source answers ASK), the slot reassigned
    (the source answers MOVED); at each one a new ID is accepted once and a replay is
    refused, and afterwards checks go straight to the new owner."""
    rig = _Rig(redis_cluster_url, redis_prefix, monkeypatch)
    state: dict[str, Any] = {}

    async def before() -> None:
        token = await rig.issue("migrating-device")
        state["token"] = token
        state["slot"] = rig.client.keyslot(rig.key(token))
        state["source"] = rig.owner(token)
        await rig.accepted_once(token, 1)

    async def work() -> None:
        await before()
        token, slot, source = state["token"], state["slot"], state["source"]
        target = next(name for name in nodes if name != source)
        state["target"] = target
        nodes[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(nodes[source]))
        nodes[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(nodes[target]))
        state["migrating"] = True
        await rig.accepted_once(token, 2)  # the key is still at the source: it runs there
        _move_keys(nodes[source], target, slot)
        rig.routed.clear()
        await rig.accepted_once(token, 3)  # ASK: through the cluster client, with ASKING
        assert "EVALSHA" in rig.routed
        _assign(nodes, slot, target)
        state["migrating"] = False
        await rig.accepted_once(token, 4)  # MOVED: the cluster client learns the new owner
        assert rig.owner(token) == target
        rig.routed.clear()
        before_calls = _evalsha_calls(nodes[target])
        await rig.accepted_once(token, 5)
        assert rig.routed == []
        assert _evalsha_calls(nodes[target]) - before_calls == 2
        # Everything recorded before the migration moved with the key.
        for nrid in range(1, 6):
            assert await rig.check(token, nrid) == MslError.MESSAGE_REPLAYED

    try:
        _run(rig, work)
    finally:
        _restore(nodes, state)


def _restore(nodes: dict[str, redis.Redis], state: dict[str, Any]) -> None:
    """The slot back at its first owner, whatever step the test stopped at."""
    if "target" not in state:
        return
    slot, source, target = state["slot"], state["source"], state["target"]
    if not state.get("migrating"):
        nodes[source].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(nodes[target]))
        nodes[target].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(nodes[source]))
    _move_keys(nodes[target], source, slot)
    _assign(nodes, slot, source)


def test_a_stopped_master_is_left_behind_and_its_replies_arrive_in_order(
    private_redis_cluster: tuple[list[subprocess.Popen[bytes]], str], redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch waits for a silent master for NODE_STALL_S at most, then returns the other
    master's replies and a future for the silent one's; the next batch does not wait for
    it at all. After SIGCONT the futures settle with the silent master's replies, its
    commands having run in the order they were sent."""
    procs, url = private_redis_cluster
    stall = 2.0  # long, so that a batch that waited for the silent master is plain to see
    monkeypatch.setattr(redis_state, "NODE_STALL_S", stall)
    stopped, other, port = on_two_masters(url, lambda i: f"{redis_prefix}{{k{i}}}")
    stopped_key, other_key = f"{redis_prefix}{{k{stopped}}}", f"{redis_prefix}{{k{other}}}"
    master = node_process(procs, port)

    async def work() -> None:
        state = RedisTokenState(url, cluster=True, prefix=redis_prefix)
        pipelines = state._pipelines
        try:
            await state.load_scripts()  # the slot map, and a connection to each master
            await pipelines.run_batch([(("INCR", stopped_key),), (("INCR", other_key),)])
            os.kill(master.pid, signal.SIGSTOP)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                late, served = await pipelines.run_batch([(("INCR", stopped_key),), (("INCR", other_key),)])
                assert stall <= loop.time() - started < stall + 1.0
                assert served == [2] and isinstance(late, asyncio.Future) and not late.done()
                started = loop.time()  # the master is now silent for longer than the stall bound
                later, served = await pipelines.run_batch([(("INCR", stopped_key),), (("INCR", other_key),)])
                assert loop.time() - started < stall / 2
                assert served == [3] and isinstance(later, asyncio.Future) and not later.done()
            finally:
                os.kill(master.pid, signal.SIGCONT)
            assert await asyncio.wait_for(late, 10) == [2]
            assert await asyncio.wait_for(later, 10) == [3]
        finally:
            await state.aclose()

    asyncio.run(work())


def test_reconnecting_to_a_stopped_master_holds_back_only_its_keys(
    private_redis_cluster: tuple[list[subprocess.Popen[bytes]], str], redis_prefix: str
) -> None:
    """Once the stopped master's connection has failed (its reply timeout), connecting to
    it again means a set-up command (here CLIENT SETNAME; AUTH with a password) that it
    does not answer either: batches wait NODE_STALL_S at most for that, and the other
    master's commands keep being answered at once."""
    procs, url = private_redis_cluster
    reply_timeout = 1.0
    stopped, other, port = on_two_masters(url, lambda i: f"{redis_prefix}{{k{i}}}")
    stopped_key, other_key = f"{redis_prefix}{{k{stopped}}}", f"{redis_prefix}{{k{other}}}"
    master = node_process(procs, port)

    async def work() -> None:
        state = RedisTokenState(f"{url}?client_name=missile-test", cluster=True, prefix=redis_prefix,
                                socket_timeout=reply_timeout)  # fmt: skip
        pipelines = state._pipelines
        try:
            await state.load_scripts()
            await pipelines.run_batch([(("INCR", stopped_key),), (("INCR", other_key),)])
            os.kill(master.pid, signal.SIGSTOP)
            try:
                loop = asyncio.get_running_loop()
                slowest, end = 0.0, loop.time() + 4 * reply_timeout  # several reply timeouts and reconnections
                while loop.time() < end:
                    started = loop.time()
                    late, served = await pipelines.run_batch([(("INCR", stopped_key),), (("INCR", other_key),)])
                    slowest = max(slowest, loop.time() - started)
                    assert isinstance(served, list)
                    assert isinstance(late, asyncio.Future)  # what a Batcher's caller would await
                    late.add_done_callback(lambda f: f.cancelled() or f.exception())
                    await asyncio.sleep(0.05)
                assert slowest < reply_timeout / 2
            finally:
                os.kill(master.pid, signal.SIGCONT)
        finally:
            await state.aclose()

    asyncio.run(work())


def test_a_late_operation_settles_with_its_replies_its_first_failure_or_a_closed_connection() -> None:
    """An operation left behind on a silent node settles with every reply once all its
    nodes have answered, with the first failure among them, and with a connection
    error, never a cancellation, when a node's batch is cancelled (its connection closed)."""

    async def work() -> None:
        loop = asyncio.get_running_loop()
        answered, failed, closed = loop.create_future(), loop.create_future(), loop.create_future()
        both = redis_state._late_outcome([redis_state._Late(answered, 1), b"known"])
        one_fails = redis_state._late_outcome([redis_state._Late(failed, 0), b"known"])
        cut_off = redis_state._late_outcome([redis_state._Late(closed, 0)])
        assert not both.done()
        answered.set_result([b"other", b"late"])
        failed.set_exception(redis.exceptions.TimeoutError("Redis did not answer in time"))
        closed.cancel()
        async with asyncio.timeout(5):  # an outcome never settled fails here, not by hanging
            assert await both == [b"late", b"known"]
            with pytest.raises(redis.exceptions.TimeoutError):
                await one_fails
            with pytest.raises(redis.exceptions.ConnectionError, match="closed"):
                await cut_off

    asyncio.run(work())


def test_a_master_stopped_before_the_first_batch_holds_back_only_its_keys(
    private_redis_cluster: tuple[list[subprocess.Popen[bytes]], str], redis_prefix: str
) -> None:
    """The first batch of a new state loads the slot map from the URL's node, then goes
    straight to the masters like every later batch: a master that is already silent
    holds back its own keys only, not the first batch as a whole."""
    procs, url = private_redis_cluster
    url_port = int(url.rsplit(":", 1)[1])
    cluster = RedisCluster.from_url(url, socket_timeout=5)
    try:
        port_of = {i: cluster.get_node_from_key(f"{redis_prefix}{{k{i}}}").port for i in range(100)}
    finally:
        cluster.close()
    healthy = next(i for i, port in port_of.items() if port == url_port)
    stopped = next(i for i, port in port_of.items() if port != url_port)
    healthy_key, stopped_key = f"{redis_prefix}{{k{healthy}}}", f"{redis_prefix}{{k{stopped}}}"
    master = node_process(procs, port_of[stopped])

    async def work() -> None:
        state = RedisTokenState(url, cluster=True, prefix=redis_prefix)
        try:
            os.kill(master.pid, signal.SIGSTOP)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                late, served = await state._pipelines.run_batch([(("INCR", stopped_key),), (("INCR", healthy_key),)])
                assert loop.time() - started < 1.0
                assert served == [1] and isinstance(late, asyncio.Future) and not late.done()
            finally:
                os.kill(master.pid, signal.SIGCONT)
            assert await asyncio.wait_for(late, 10) == [1]
        finally:
            await state.aclose()

    asyncio.run(work())
