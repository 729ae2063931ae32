"""The delaying TCP proxy (tests/latency_proxy.py) in front of a real redis-server.

Only lower bounds on time are asserted (a round trip through the proxy takes at least
the delay): an upper bound would depend on the machine's load.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from latency_proxy import MAX_PENDING, LatencyProxy
from redis_helpers import free_port

DELAY_S = 0.005


def _target(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture
def proxy(redis_url: str) -> Iterator[LatencyProxy]:
    with LatencyProxy(*_target(redis_url), delay_s=DELAY_S) as running:
        yield running


@pytest.fixture
def client(proxy: LatencyProxy) -> Iterator[redis.Redis]:
    conn = redis.Redis(host="127.0.0.1", port=proxy.port, db=3, socket_timeout=10, socket_connect_timeout=5)
    try:
        yield conn
    finally:
        conn.close()


def test_round_trip_takes_at_least_the_delay(client: redis.Redis) -> None:
    assert client.ping()  # connects (and pays the delay once) outside the measurement
    for _ in range(5):
        t0 = time.perf_counter()
        assert client.ping()
        assert time.perf_counter() - t0 >= DELAY_S


def test_one_mib_value_passes_intact(client: redis.Redis) -> None:
    # 1 MiB is four times MAX_PENDING: reading from the client pauses and resumes.
    value = os.urandom(1024 * 1024)
    assert len(value) > MAX_PENDING
    assert client.set("latency-proxy:big", value)
    assert client.get("latency-proxy:big") == value
    assert client.strlen("latency-proxy:big") == len(value)
    client.delete("latency-proxy:big")


def test_pipelined_commands_keep_their_order(client: redis.Redis) -> None:
    client.delete("latency-proxy:counter")
    pipe = client.pipeline(transaction=False)
    for _ in range(2000):
        pipe.incr("latency-proxy:counter")
    assert pipe.execute() == list(range(1, 2001))
    client.delete("latency-proxy:counter")


def test_connections_are_independent(proxy: LatencyProxy) -> None:
    clients = [redis.Redis(host="127.0.0.1", port=proxy.port, db=3, socket_timeout=10) for _ in range(4)]
    try:
        for i, conn in enumerate(clients):
            conn.set(f"latency-proxy:conn{i}", i)
        assert [conn.get(f"latency-proxy:conn{i}") for i, conn in enumerate(clients)] == [b"0", b"1", b"2", b"3"]
        clients[0].delete(*(f"latency-proxy:conn{i}" for i in range(4)))
    finally:
        for conn in clients:
            conn.close()


def test_unreachable_target_closes_the_client_connection() -> None:
    with LatencyProxy("127.0.0.1", free_port(), delay_s=DELAY_S) as proxy:
        conn = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
        try:
            with pytest.raises(redis.ConnectionError):
                conn.ping()
        finally:
            conn.close()


def test_stop_closes_the_listener_and_connections(redis_url: str) -> None:
    proxy = LatencyProxy(*_target(redis_url), delay_s=DELAY_S).start()
    port = proxy.port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"PING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"
    proxy.stop()
    try:
        # The proxied connection was closed (FIN, or RST where data was still in flight).
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""
    finally:
        sock.close()
    with pytest.raises(RuntimeError):
        _ = proxy.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError):
        LatencyProxy("127.0.0.1", 6379, delay_s=-0.001)


def test_runs_as_a_process(redis_url: str) -> None:
    """The command-line form the benchmarks use: prints its port, serves until SIGTERM."""
    host, port = _target(redis_url)
    script = Path(__file__).with_name("latency_proxy.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), host, str(port), "--delay-ms", "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), line
        conn = redis.Redis(host="127.0.0.1", port=int(line.split()[1]), socket_timeout=10)
        try:
            assert conn.ping()
            t0 = time.perf_counter()
            assert conn.ping()
            assert time.perf_counter() - t0 >= 0.002
        finally:
            conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
