"""``missile serve`` against hostile connections: real server processes on loopback.

Idle and dripping connections, a flood of held sockets, a connection cap, oversized
heads, kept-alive idle connections and oversized spooled bodies
(:mod:`missile.transport.http_server`, the echo handler of :mod:`missile.cli.serving`).
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from missile.cli.keys import generate, write_private
from missile.client import Client
from missile.engine.client import MslClient
from missile.engine.errors import MslErrorResponse
from missile.engine.server import MslServer
from missile.engine.sync import SyncClient
from missile.errors import MslError
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.peer import Peer
from missile.profiles import context_from_keyfile
from missile.stores.redis_state import RedisTokenState
from missile.tokens.factory import TokenFactory
from missile.transport.http import HttpTransport
from missile.transport.http_server import ConnectionLimits
from missile.transport.pooled import PooledHttpTransport
from missile.transport.tcp import TcpTransport
from process_helpers import terminate, wait_listening
from redis_helpers import free_port

CLI = [sys.executable, "-m", "missile.cli"]
#: Bound on every wait for the server in these tests.
WAIT_S = 20.0


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    keys: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@contextmanager
def serving(
    tmp_path: Path, *args: str, nofile: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """``missile serve`` with fresh keys and in-memory state; ``nofile`` sets its soft
    RLIMIT_NOFILE before it starts (the server raises it itself when it needs more)."""
    keys = tmp_path / "keys"
    if not (keys / "server.json").exists():
        keys.mkdir(exist_ok=True)
        server, client = generate("server1", "client1")
        write_private(keys / "server.json", server)
        write_private(keys / "client.json", client)
    port = free_port()
    errors = tmp_path / f"serve-{port}.err"

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with errors.open("wb") as sink:
        proc = subprocess.Popen(
            [*CLI, "serve", "--keys", str(keys / "server.json"), "--port", str(port), "--state", ":memory:", *args],
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=sink,
            preexec_fn=limit_files,
        )
    try:
        wait_listening(proc, port, errors.read_text, WAIT_S)
        yield Served(proc, port, keys)
    finally:
        terminate(proc)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket timeout)."""
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not piece:
            return data
        data += piece


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:80]
    return int(response[9:12])


def _get(port: int, extra_headers: bytes = b"") -> bytes:
    """A GET with ``Connection: close`` (the app answers 405: it serves POST only)."""
    with _connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra_headers + b"\r\n")
        return _read_until_closed(sock)


def _readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()  # not select(): descriptors may be above FD_SETSIZE here
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(timeout * 1000))


def _is_closed_by_peer(sock: socket.socket) -> bool:
    if not _readable(sock, 0):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def _client_request(served: Served, payload: bytes) -> bytes:
    keys = KeyFile.load(served.keys / "client.json")
    keys.time_ms = None
    built = context_from_keyfile(keys)

    async def go() -> bytes:
        transport = HttpTransport(served.url, timeout=WAIT_S)
        try:
            client = MslClient(
                built.ctx,
                transport,
                key_request_factory=key_request_factory(built.ctx, built.keys, "SYMMETRIC_WRAPPED"),
            )
            return (await client.request(payload)).payload
        finally:
            await transport.aclose()

    return asyncio.run(go())


# -- head deadline --------------------------------------------------------------------------


def test_idle_connection_is_closed_by_the_head_timeout(tmp_path: Path) -> None:
    with serving(tmp_path, "--head-timeout", "1") as served, _connect(served.port) as sock:
        # Nothing sent, nothing answered: the server just closes.
        assert _read_until_closed(sock) == b""


def test_dripping_connection_is_closed_by_the_head_timeout(tmp_path: Path) -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"d" * 40 + b"\r\n\r\n"
    with serving(tmp_path, "--head-timeout", "1") as served, _connect(served.port) as sock:
        sent = 0
        answer = b""
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            # One byte a second, until the server answers or closes.
            if _readable(sock, 1.0):
                answer = _read_until_closed(sock)
                break
        assert sent < len(head) // 4, "the server waited for most of a dripped head"
        assert _status(answer) == 408
        assert b"connection: close" in answer


def test_keep_alive_idle_connection_is_closed(tmp_path: Path) -> None:
    # A long head timeout: only the keep-alive timeout can close the connection.
    with serving(tmp_path, "--keep-alive-timeout", "1", "--head-timeout", "60") as served:
        with _connect(served.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = _read_until_closed(sock)
        assert _status(response) == 405
        assert b"connection: close" not in response.lower()  # it was kept alive, then closed


def test_kept_alive_connection_outlives_the_head_timeout(tmp_path: Path) -> None:
    """The head deadline is per request head: a connection making requests for longer
    than the head timeout is not cut."""
    with serving(tmp_path, "--head-timeout", "1") as served, _connect(served.port) as sock:
        for _ in range(4):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = b""
            while not response.endswith(b"0\r\n\r\n"):  # the end of the chunked 405 body
                piece = sock.recv(65536)
                assert piece, "the server closed a busy kept-alive connection"
                response += piece
            assert _status(response) == 405
            assert not _readable(sock, 0.6)  # idle for a while, but under the keep-alive timeout


# -- head size ------------------------------------------------------------------------------


def test_oversized_header_gets_431(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        response = _get(served.port, b"X-Big: " + b"a" * (64 * 1024 + 1) + b"\r\n")
        assert _status(response) == 431
        # Many small headers add up the same way.
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(200))
        assert _status(_get(served.port, many)) == 431


def test_header_under_the_limit_is_served(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-head-size", "32K") as served:
        assert _status(_get(served.port, b"X-Big: " + b"a" * (30 * 1024) + b"\r\n")) == 405
        assert _status(_get(served.port, b"X-Big: " + b"a" * (33 * 1024) + b"\r\n")) == 431


def test_huge_header_is_refused_before_it_is_all_sent(tmp_path: Path) -> None:
    """A 64 MiB header: the server answers 431 and closes long before it has read it."""
    with serving(tmp_path) as served, _connect(served.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nX-Huge: ")
        sent = 0
        piece = b"h" * 65536
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 64 * 1024 * 1024


# -- connection cap -------------------------------------------------------------------------


def test_connection_cap_answers_503(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-connections", "4", "--head-timeout", "60") as served:
        held = [_connect(served.port) for _ in range(3)]
        try:
            # Three idle connections and one request: under the cap.
            assert _status(_get(served.port)) == 405
            held.append(_connect(served.port))
            # Four idle connections held: the next one is refused at once.
            response = _get(served.port)
            assert _status(response) == 503
            assert b"connection: close" in response
        finally:
            for sock in held:
                sock.close()


def test_client_is_served_while_1100_idle_sockets_are_held(tmp_path: Path) -> None:
    """The issue's scenario: 1,100 idle sockets against a server started with
    ``ulimit -n 1024``. The server raises its own limit to fit its connection cap, so
    the sockets cost it descriptors but lock nobody out."""
    count = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 200
    if hard != resource.RLIM_INFINITY and hard < 2048 + 200:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is too low for this test")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    held: list[socket.socket] = []
    try:
        with serving(tmp_path, "--head-timeout", "120", nofile=1024) as served:
            held = [_connect(served.port) for _ in range(count)]
            assert _client_request(served, b"still served") == b"still served"
            # The idle sockets were held open by the server all along.
            assert not any(_is_closed_by_peer(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- spooled bodies -------------------------------------------------------------------------


def _open_files_under(pid: int, directory: Path) -> list[str]:
    found = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_body_over_the_spool_bound_is_a_clear_error_and_leaves_no_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    with serving(tmp_path, "--max-spool-size", "5M", env={"TMPDIR": str(spool)}) as served:
        # Over 4 MiB and under 5 MiB: spooled to disk, echoed, the file gone afterwards.
        payload = os.urandom(4 * 1024 * 1024 + 12345)
        assert _client_request(served, payload) == payload
        assert _open_files_under(served.proc.pid, spool) == []
        with pytest.raises(MslErrorResponse) as info:
            _client_request(served, os.urandom(6 * 1024 * 1024))
        assert info.value.error is MslError.MESSAGE_FORMAT_ERROR
        assert _open_files_under(served.proc.pid, spool) == []
        assert list(spool.iterdir()) == []
        # The server is still there for the next client.
        assert _client_request(served, b"after") == b"after"

@pytest.mark.parametrize("bound", [0, math.nan, math.inf])
def test_every_configured_bound_is_positive_and_finite(bound: float, tmp_path: Path) -> None:
    """Each public place that takes a time bound refuses one that bounds nothing, when
    it is configured rather than at the first request."""
    server_keys, client_keys = generate("server1", "client1")
    write_private(tmp_path / "server.json", server_keys)
    write_private(tmp_path / "client.json", client_keys)
    ctx = context_from_keyfile(KeyFile.load(tmp_path / "client.json"), role="client").ctx
    refused = {
        "MslServer(read_timeout=)": lambda: MslServer(ctx, _echo, read_timeout=bound),
        "PooledHttpTransport(timeout=)": lambda: PooledHttpTransport("http://127.0.0.1:9/", timeout=bound),
        "PooledHttpTransport(keepalive_expiry=)": lambda: PooledHttpTransport(
            "http://127.0.0.1:9/", keepalive_expiry=math.nan if bound == 0 else bound
        ),
        "HttpTransport(timeout=)": lambda: HttpTransport("http://127.0.0.1:9/", timeout=bound),
        "TcpTransport(read_timeout=)": lambda: TcpTransport("127.0.0.1", 9, read_timeout=bound),
        "RedisTokenState(socket_timeout=)": lambda: RedisTokenState("redis://127.0.0.1:9", socket_timeout=bound),
        "SyncClient(timeout=)": lambda: SyncClient(MslClient(ctx, HttpTransport("http://127.0.0.1:9/")), timeout=bound),
        "Client(call_timeout=)": lambda: Client("http://127.0.0.1:9/", keys=tmp_path / "client.json",
                                                state=":memory:", call_timeout=bound),
        "Peer(read_timeout=)": lambda: Peer(tmp_path / "server.json", state=":memory:", read_timeout=bound),
    }
    for name, make in refused.items():
        with pytest.raises(ValueError, match="must be a"):
            make()
            pytest.fail(f"{name} accepted {bound}")
    with pytest.raises(ValueError, match="state_timeout must be a positive, finite"):
        TokenFactory(state_timeout=bound)
    with pytest.raises(ValueError, match="head_timeout must be a positive, finite"):
        ConnectionLimits(head_timeout=bound)
    with pytest.raises(ValueError, match="keep_alive_timeout must be a positive, finite"):
        ConnectionLimits(keep_alive_timeout=bound)  # type: ignore[arg-type]


async def _echo(request: Any) -> bytes:
    return b""
