"""A hung Redis (SIGSTOP) against a real ``missile serve``: the server keeps accepting
and answering, requests that need the state fail with TRANSIENT_FAILURE within the
state bound, nothing is accepted unchecked, and service resumes after SIGCONT. In a
Redis Cluster, a hung or killed master holds back only the identities whose state it
holds, and a killed one's identities are served again once it is back."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, Popen

import httpx
import redis

from missile.cli.keys import generate, write_private
from missile.errors import ResponseCode
from missile.profiles import KeyFileContext
from redis_helpers import node_process, on_two_masters, stop_redis
from serve_helpers import client_context, error_code, establish, non_replayable_message, start_serve, stop, write_keys

#: The server's per-call state bound (the default).
STATE_TIMEOUT = 1.0


async def _timed_post(http: httpx.AsyncClient, url: str, body: bytes) -> tuple[float, bytes]:
    start = time.monotonic()
    response = await http.post(url, content=body)
    assert response.status_code == 200
    return time.monotonic() - start, response.content


async def _timed_get(http: httpx.AsyncClient, url: str) -> float:
    await asyncio.sleep(0.2)  # while the MSL requests wait on Redis
    start = time.monotonic()
    response = await http.get(url)
    assert response.status_code == 405  # answered: MSL is POST only
    return time.monotonic() - start


def test_hung_redis_fails_requests_transiently_and_never_freezes_the_server(
    tmp_path: Path, private_redis: tuple[Popen[bytes], str]
) -> None:
    redis_proc, redis_url = private_redis
    keys = write_keys(tmp_path)
    server, url = start_serve(keys / "server.json", "--redis", redis_url)
    try:
        built = client_context(keys)
        asyncio.run(establish(built, url))
        messages = [non_replayable_message(built, b"during the freeze %d" % i) for i in range(4)]
        os.kill(redis_proc.pid, signal.SIGSTOP)
        try:

            async def frozen() -> tuple[list[tuple[float, bytes]], float]:
                async with httpx.AsyncClient(timeout=30) as http:
                    posts = [_timed_post(http, url, m) for m in messages]
                    *answers, get_seconds = await asyncio.gather(*posts, _timed_get(http, url))
                return answers, get_seconds

            answers, get_seconds = asyncio.run(frozen())
        finally:
            os.kill(redis_proc.pid, signal.SIGCONT)
        assert get_seconds < 0.5
        for seconds, body in answers:
            assert error_code(built, body) is ResponseCode.TRANSIENT_FAILURE
            assert seconds < STATE_TIMEOUT + 1.0
        # Service resumes. A check sent before the freeze may still run when Redis wakes
        # (burning that message's ID: a refused message is never needed again), but no
        # message is ever accepted twice, and new messages are served.
        with httpx.Client(timeout=30) as http:
            for message in messages:
                first = error_code(built, http.post(url, content=message).content)
                assert first in (None, ResponseCode.REPLAYED)
                assert error_code(built, http.post(url, content=message).content) is ResponseCode.REPLAYED
            fresh = non_replayable_message(built, b"after the freeze")
            assert error_code(built, http.post(url, content=fresh).content) is None
    finally:
        stop(server)


def _write_two_clients(directory: Path, identities: tuple[str, str]) -> tuple[Path, list[KeyFileContext]]:
    """A server key file trusting two PSK clients, each client's key file in a
    directory of its own; the server's key file and the clients."""
    server, first = generate("server1", identities[0])
    _, own = generate("server1", identities[1])
    second = copy.deepcopy(first)  # the server's public keys
    second["identity"] = second["entity_auth"]["identity"] = identities[1]
    second["psk"] = own["psk"]
    server["psk"] += own["psk"]
    directory.mkdir(parents=True)
    write_private(directory / "server.json", server)
    clients = []
    for name, client in (("hung", first), ("other", second)):
        (directory / name).mkdir()
        write_private(directory / name / "client.json", client)
        clients.append(client_context(directory / name))
    return directory / "server.json", clients


@dataclass
class _TwoMasters:
    """``missile serve`` on a Redis Cluster, with two clients whose state two different
    masters hold: ``faulty``'s on the master of process ``node`` (listening on ``port``),
    ``other``'s elsewhere; and non-replayable messages of each, not sent yet."""

    node: Popen[bytes]
    port: int
    server: Popen[bytes]
    url: str
    faulty: KeyFileContext
    other: KeyFileContext
    faulty_messages: list[bytes]
    other_messages: list[bytes]


def _serve_two_masters(tmp_path: Path, procs: list[Popen[bytes]], cluster_url: str) -> _TwoMasters:
    """Start the server, establish both clients' sessions and build two messages of the
    faulty master's client and four of the other (stop ``server`` after)."""
    # A client's state lives under missile:{hex of its identity} (missile.stores.redis_state).
    one, another, port = on_two_masters(cluster_url, lambda i: f"missile:{{{f'client{i}'.encode().hex()}}}")
    server_keys, (faulty, other) = _write_two_clients(tmp_path / "keys", (f"client{one}", f"client{another}"))
    server, url = start_serve(server_keys, "--redis-cluster", cluster_url)
    try:
        for built in (faulty, other):
            asyncio.run(establish(built, url))
    except BaseException:
        stop(server)
        raise
    faulty_messages = [non_replayable_message(faulty, b"while the master is down %d" % i) for i in range(2)]
    other_messages = [non_replayable_message(other, b"elsewhere %d" % i) for i in range(4)]
    return _TwoMasters(node_process(procs, port), port, server, url, faulty, other, faulty_messages, other_messages)


def test_hung_cluster_master_holds_back_only_the_identities_it_holds(
    tmp_path: Path, private_redis_cluster: tuple[list[Popen[bytes]], str]
) -> None:
    procs, cluster_url = private_redis_cluster
    rig = _serve_two_masters(tmp_path, procs, cluster_url)
    node, server, url, hung, other = rig.node, rig.server, rig.url, rig.faulty, rig.other
    hung_messages, other_messages = rig.faulty_messages, rig.other_messages
    try:
        os.kill(node.pid, signal.SIGSTOP)
        try:

            async def frozen() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]]]:
                async with httpx.AsyncClient(timeout=30) as http:

                    async def one_by_one() -> list[tuple[float, bytes]]:
                        await asyncio.sleep(0.1)  # while the hung master's checks wait
                        return [await _timed_post(http, url, m) for m in other_messages]

                    held_posts = [_timed_post(http, url, m) for m in hung_messages]
                    *held, served = await asyncio.gather(*held_posts, one_by_one())
                return held, served

            held, served = asyncio.run(frozen())
        finally:
            os.kill(node.pid, signal.SIGCONT)
        for seconds, body in held:
            assert error_code(hung, body) is ResponseCode.TRANSIENT_FAILURE
            assert seconds < STATE_TIMEOUT + 1.0
        for seconds, body in served:  # accepted, each in far less than the state bound
            assert error_code(other, body) is None
            assert seconds < STATE_TIMEOUT / 2
        # Service resumes for the hung master's identities; nothing is accepted twice.
        with httpx.Client(timeout=30) as http:
            for message in hung_messages:
                assert error_code(hung, http.post(url, content=message).content) in (None, ResponseCode.REPLAYED)
                assert error_code(hung, http.post(url, content=message).content) is ResponseCode.REPLAYED
            for message in other_messages:
                assert error_code(other, http.post(url, content=message).content) is ResponseCode.REPLAYED
            fresh = non_replayable_message(hung, b"after the freeze")
            assert error_code(hung, http.post(url, content=fresh).content) is None
    finally:
        stop(server)


def _wait_cluster_ok(port: int, deadline_s: float = 30.0) -> None:
    """Until the node on ``port`` answers and reports ``cluster_state:ok``."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            try:
                if b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"):
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, f"the node on {port} did not rejoin its cluster"
            time.sleep(0.2)
    finally:
        client.close()


def test_killed_cluster_master_fails_only_its_identities_and_recovers_after_restart(
    tmp_path: Path, private_redis_cluster: tuple[list[Popen[bytes]], str]
) -> None:
    """A master killed (SIGKILL: its connections reset, its port refusing) rather than
    hung: the identities it holds get TRANSIENT_FAILURE within the bound, the other
    masters' identities are served as before, and once the node is restarted (it
    rejoins before the cluster counts it as failed) its identities are served again,
    without a restart of the server. Nothing is accepted twice."""
    procs, cluster_url = private_redis_cluster
    rig = _serve_two_masters(tmp_path, procs, cluster_url)
    node, server, url, lost, other = rig.node, rig.server, rig.url, rig.faulty, rig.other
    lost_messages, other_messages = rig.faulty_messages, rig.other_messages
    try:
        node.kill()
        node.wait()

        async def killed() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]]]:
            async with httpx.AsyncClient(timeout=30) as http:
                failed = [await _timed_post(http, url, m) for m in lost_messages]
                served = [await _timed_post(http, url, m) for m in other_messages]
            return failed, served

        failed, served = asyncio.run(killed())
        for seconds, body in failed:
            assert error_code(lost, body) is ResponseCode.TRANSIENT_FAILURE
            assert seconds < STATE_TIMEOUT + 1.0
        for seconds, body in served:
            assert error_code(other, body) is None
            assert seconds < STATE_TIMEOUT / 2
        # The same node again: same port, same node ID (its nodes file), no data (the
        # test cluster keeps none on disk). The server reconnects by itself.
        procs[procs.index(node)] = Popen(node.args, stdout=DEVNULL, stderr=DEVNULL)
        _wait_cluster_ok(rig.port)
        with httpx.Client(timeout=30) as http:
            for message in lost_messages:  # never checked while the node was down
                assert error_code(lost, http.post(url, content=message).content) is None
                assert error_code(lost, http.post(url, content=message).content) is ResponseCode.REPLAYED
            for message in other_messages:
                assert error_code(other, http.post(url, content=message).content) is ResponseCode.REPLAYED
    finally:
        stop(server)


def _wait_redis(url: str, deadline_s: float = 30.0) -> None:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            try:
                info = client.info("persistence")
                if not info.get("loading") and not info.get("aof_rewrite_in_progress") and not info.get(
                    "aof_rewrite_scheduled"
                ):
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "redis-server did not come up"
            time.sleep(0.1)
    finally:
        client.close()


def test_killed_redis_fails_requests_transiently_and_a_durable_one_refuses_replays_after_restart(
    tmp_path: Path, private_redis: tuple[Popen[bytes], str]
) -> None:
    """Redis killed (SIGKILL): requests that need the state get TRANSIENT_FAILURE within
    the bound and the server keeps answering. Restarted with its append-only file
    (fsync on every write), Redis has kept what the server recorded: a message accepted
    before the kill is refused as a replay after it, the server reconnects and reloads
    its scripts by itself (a new Redis answers NOSCRIPT), and the messages refused while
    Redis was down are accepted once."""
    redis_proc, redis_url = private_redis
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.config_set("appendfsync", "always")
        admin.config_set("appendonly", "yes")  # writes the file in the background
    finally:
        admin.close()
    _wait_redis(redis_url)
    keys = write_keys(tmp_path)
    server, url = start_serve(keys / "server.json", "--redis", redis_url)
    restarted: Popen[bytes] | None = None
    try:
        built = client_context(keys)
        asyncio.run(establish(built, url))
        before = non_replayable_message(built, b"before the kill")
        during = [non_replayable_message(built, b"while Redis is down %d" % i) for i in range(2)]
        with httpx.Client(timeout=30) as http:
            assert error_code(built, http.post(url, content=before).content) is None
        redis_proc.kill()
        redis_proc.wait()

        async def down() -> tuple[list[tuple[float, bytes]], float]:
            async with httpx.AsyncClient(timeout=30) as http:
                *answers, get_seconds = await asyncio.gather(*(_timed_post(http, url, m) for m in during),
                                                             _timed_get(http, url))  # fmt: skip
            return answers, get_seconds

        answers, get_seconds = asyncio.run(down())
        assert get_seconds < 0.5
        for seconds, body in answers:
            assert error_code(built, body) is ResponseCode.TRANSIENT_FAILURE
            assert seconds < STATE_TIMEOUT + 1.0
        args = [str(arg) for arg in redis_proc.args]  # type: ignore[union-attr]
        args[args.index("--appendonly") + 1] = "yes"
        restarted = Popen([*args, "--appendfsync", "always"], stdout=DEVNULL, stderr=DEVNULL)
        _wait_redis(redis_url)
        with httpx.Client(timeout=30) as http:
            assert error_code(built, http.post(url, content=before).content) is ResponseCode.REPLAYED
            for message in during:
                assert error_code(built, http.post(url, content=message).content) is None
                assert error_code(built, http.post(url, content=message).content) is ResponseCode.REPLAYED
    finally:
        stop(server)
        if restarted is not None:
            stop_redis(restarted)
