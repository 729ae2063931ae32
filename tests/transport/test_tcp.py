"""Many messages over one raw TCP connection."""

from __future__ import annotations

import asyncio

import pytest

import vectorlib
from missile.engine.client import MslClient
from missile.engine.server import MslServer
from missile.errors import MslException
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
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "DIFFIE_HELLMAN"))
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


def test_connections_over_the_cap_are_closed_and_the_cap_frees_up() -> None:
    """A party opening connection after connection meets the listener's cap: the ones
    over it are closed at once, those under it stay open and are served, and closing
    one makes room for the next."""

    async def run() -> None:
        server_keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
        server_keys.time_ms = None
        tcp = await serve_tcp(MslServer(context_from_keyfile(server_keys).ctx, echo), max_connections=3)
        port = tcp.sockets[0].getsockname()[1]
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(extra_reader.read(1), 5) == b""  # closed unanswered
            extra_writer.close()
            # The held connections are still being served: a real client on one of them.
            keys = client_keys()
            ctx = context_from_keyfile(keys).ctx
            _, first = held.pop(0)
            first.close()
            await first.wait_closed()
            transport = TcpTransport("127.0.0.1", port)
            client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "DIFFIE_HELLMAN"))

            async def served() -> bytes:
                # The listener learns of the closed connection when its read ends;
                # until then the new connection may still be over the cap.
                while True:
                    try:
                        return (await client.request(b"room")).payload
                    except MslException:  # closed over the cap: try again
                        await asyncio.sleep(0.05)

            assert await asyncio.wait_for(served(), 10) == b"room|client1|-"
            await transport.aclose()
        finally:
            for _, writer in held:
                writer.close()
            tcp.close()
            await tcp.wait_closed()

    asyncio.run(run())


def test_the_cap_must_allow_a_connection() -> None:
    async def run() -> None:
        with pytest.raises(ValueError, match="max_connections"):
            await serve_tcp(MslServer(context_from_keyfile(client_keys()).ctx, echo), max_connections=0)

    asyncio.run(run())
