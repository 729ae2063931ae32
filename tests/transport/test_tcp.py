"""Many messages over one raw TCP connection."""

from __future__ import annotations

import asyncio

import vectorlib
from missile.engine.client import MslClient
from missile.engine.server import MslServer
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.tcp import TcpTransport, serve_tcp

from .conftest import client_keys, echo


def test_many_messages_on_one_connection() -> None:
    async def run() -> None:
        server_keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
        server_keys.time_ms = None
        server = MslServer(context_from_keyfile(server_keys).ctx, echo)
        tcp = await serve_tcp(server)
        port = tcp.sockets[0].getsockname()[1]
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = TcpTransport("127.0.0.1", port)
        client = MslClient(ctx, transport, key_requests=key_request_factory(ctx, keys, "DIFFIE_HELLMAN"))
        try:
            for i in range(5):
                reply = await client.request(f"msg {i}".encode())
                assert reply.payload == f"msg {i}|client1|-".encode()
            assert transport.connections == 1
        finally:
            await transport.aclose()
            tcp.close()
            await tcp.wait_closed()

    asyncio.run(run())
