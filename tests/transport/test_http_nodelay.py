"""TCP_NODELAY on the ASGI adapter's connections (transport/http.py ``_set_nodelay``):
set on each real loopback connection before its first response, once per connection,
and tried again on a connection that refused it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from missile.transport.http import _set_nodelay


class _Cycle:
    """Stands for uvicorn's per-request cycle: ``send`` is its bound method."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    async def send(self, message: Any) -> None:
        pass


class _Refusing:
    """A transport whose socket refuses the option the first time."""

    def __init__(self) -> None:
        self.calls = 0

    def get_extra_info(self, name: str) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise OSError("refused")
        return None


def _nodelay(transport: asyncio.BaseTransport) -> int:
    sock = transport.get_extra_info("socket")
    return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_each_connection_gets_nodelay_once() -> None:
    async def run() -> None:
        accepted: asyncio.Queue[asyncio.BaseTransport] = asyncio.Queue()

        class _Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.put_nowait(transport)

        # A listening socket made without a protocol, as uvicorn's workers make theirs.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.get_running_loop().create_server(_Protocol, sock=listener)
        port = listener.getsockname()[1]
        writers = []
        try:
            for _ in range(2):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writers.append(writer)
                transport = await asyncio.wait_for(accepted.get(), 10)
                transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
                _set_nodelay(_Cycle(transport).send)
                assert _nodelay(transport) == 1
                # Later requests on the kept-alive connection find it set.
                _set_nodelay(_Cycle(transport).send)
                assert _nodelay(transport) == 1
        finally:
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def test_a_refusing_connection_is_tried_again() -> None:
    transport = _Refusing()
    _set_nodelay(_Cycle(transport).send)
    _set_nodelay(_Cycle(transport).send)
    assert transport.calls == 2


def test_a_send_without_a_transport_is_left_alone() -> None:
    async def send(message: Any) -> None:
        pass

    _set_nodelay(send)
    _set_nodelay(_Cycle(None).send)
