"""How :class:`~missile.transport.http_server.HardenedHttpToolsProtocol` writes responses
(``_ResponseWrites``): a response's head goes out with its first body write, in one
system call, and never waits past the event loop's pass; checked on a recording
transport and on a real uvicorn server on loopback, read with a raw socket."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from missile.transport.http_server import HardenedHttpToolsProtocol, _ResponseWrites
from redis_helpers import free_port

#: Bound on every wait in these tests.
WAIT_S = 10.0


class _Recording:
    """A transport that records what is written to it, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, data: Any) -> None:
        self.calls.append(("writelines", b"".join(data)))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


class _Cycle:
    """Stands for uvicorn's request cycle: only whether its response has started."""

    response_started = False


def _writes() -> tuple[_ResponseWrites, _Recording, _Cycle]:
    transport = _Recording()
    writes = _ResponseWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    cycle = _Cycle()
    writes.begin(cycle)  # type: ignore[arg-type]
    return writes, transport, cycle


def test_head_leaves_with_the_first_body_write() -> None:
    async def run() -> None:
        writes, transport, cycle = _writes()
        cycle.response_started = True
        writes.write(b"HEAD\r\n\r\n")
        assert transport.calls == []
        writes.write(b"body")
        writes.write(b"more")
        assert transport.calls == [("writelines", b"HEAD\r\n\r\nbody"), ("write", b"more")]
        await asyncio.sleep(0)  # the pass ends: nothing is left to write
        assert transport.calls == [("writelines", b"HEAD\r\n\r\nbody"), ("write", b"more")]

    asyncio.run(run())


def test_a_head_alone_is_written_when_the_pass_ends() -> None:
    async def run() -> None:
        writes, transport, cycle = _writes()
        cycle.response_started = True
        writes.write(b"HEAD\r\n\r\n")
        await asyncio.sleep(0)
        assert transport.calls == [("write", b"HEAD\r\n\r\n")]
        writes.write(b"body")  # later body writes go straight out
        assert transport.calls == [("write", b"HEAD\r\n\r\n"), ("write", b"body")]

    asyncio.run(run())


def test_writes_before_the_response_starts_go_out_at_once() -> None:
    async def run() -> None:
        writes, transport, cycle = _writes()
        writes.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert transport.calls == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]
        cycle.response_started = True
        writes.write(b"HEAD")
        writes.write(b"body")
        assert transport.calls[1:] == [("writelines", b"HEADbody")]

    asyncio.run(run())


def test_closing_and_the_next_response_write_a_held_head_first() -> None:
    async def run() -> None:
        writes, transport, cycle = _writes()
        cycle.response_started = True
        writes.write(b"HEAD1")
        following = _Cycle()
        writes.begin(following)  # type: ignore[arg-type]
        assert transport.calls == [("write", b"HEAD1")]
        following.response_started = True
        writes.write(b"HEAD2")
        writes.writelines([b"a", b"b"])
        assert transport.calls[1:] == [("write", b"HEAD2"), ("writelines", b"ab")]
        third = _Cycle()
        writes.begin(third)  # type: ignore[arg-type]
        third.response_started = True
        writes.write(b"HEAD3")
        writes.close()
        assert transport.calls[3:] == [("write", b"HEAD3")]
        assert transport.closed and writes.is_closing()
        assert writes.get_extra_info("socket") == "info:socket"

    asyncio.run(run())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` starts its response, then sends the body once ``release`` is set."""
    assert scope["type"] == "http"
    while (await receive()).get("more_body", False):
        pass
    if scope["path"] == "/slow":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await _app_state["release"].wait()
        await send({"type": "http.response.body", "body": b"late", "more_body": False})
        return
    body = b"quick"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


_app_state: dict[str, Any] = {}


@contextmanager
def _serving() -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    port = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", http=HardenedHttpToolsProtocol
    )
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        _app_state["release"] = asyncio.Event()
        await server.serve()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port, loops[0]
    finally:
        server.should_exit = True
        thread.join(WAIT_S)


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    deadline = time.monotonic() + WAIT_S
    while not data.endswith(end):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out with {data!r}"
        if select.select([sock], [], [], remaining)[0]:
            chunk = sock.recv(65536)
            assert chunk, f"closed with {data!r}"
            data += chunk
    return data


def test_a_started_response_head_arrives_before_its_body_is_ready() -> None:
    with _serving() as (port, loop), socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        head = _read_until(sock, b"\r\n\r\n")  # while the body waits for release
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
        loop.call_soon_threadsafe(_app_state["release"].set)
        assert _read_until(sock, b"0\r\n\r\n") == b"4\r\nlate\r\n0\r\n\r\n"
        # The kept-alive connection serves small responses and HEAD requests whole.
        sock.sendall(b"POST /quick HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        quick = _read_until(sock, b"quick")
        assert quick.startswith(b"HTTP/1.1 200 OK\r\n") and quick.count(b"HTTP/1.1") == 1
        sock.sendall(b"HEAD /quick HTTP/1.1\r\nhost: x\r\n\r\n")
        assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")
