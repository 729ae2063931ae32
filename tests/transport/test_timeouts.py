"""Read timeouts: a stalled or silent peer never holds a server (or client) forever."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import uvicorn

import vectorlib
from missile.encoding import decode
from missile.engine.client import MslClient
from missile.engine.server import MslServer
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.messages.builder import build_request
from missile.messages.error_header import ErrorHeader
from missile.profiles import context_from_keyfile
from missile.transport.http import MslAsgiApp
from missile.transport.tcp import TcpTransport, serve_tcp

from .conftest import _free_port, client_keys, echo

TIMEOUT = 0.3


def _server() -> MslServer:
    keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    keys.time_ms = None
    return MslServer(context_from_keyfile(keys).ctx, echo, read_timeout=TIMEOUT)


def _request_bytes() -> bytes:
    """The header of a real request from the PSK client of vector 01."""
    keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    keys.time_ms = None
    keys.master_tokens = []
    ctx = context_from_keyfile(keys, role="client").ctx
    return build_request(ctx, use_entity_auth=True).header.encode()


def test_tcp_server_closes_an_idle_connection() -> None:
    async def go() -> None:
        tcp = await serve_tcp(_server())
        port = tcp.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing sent
            assert TIMEOUT <= time.monotonic() - start < 5
            writer.close()
        finally:
            tcp.close()
            await tcp.wait_closed()

    asyncio.run(go())


def test_tcp_server_answers_a_stalled_request_with_comms_failure() -> None:
    async def go() -> None:
        server = _server()
        tcp = await serve_tcp(server)
        port = tcp.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            header = _request_bytes()
            writer.write(header[: len(header) // 2])  # half a header, then silence
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            error = ErrorHeader.parse(server.ctx, decode(answer))
            assert error.error is MslError.MSL_COMMS_FAILURE
            writer.close()
        finally:
            tcp.close()
            await tcp.wait_closed()

    asyncio.run(go())


def test_tcp_client_gives_up_on_a_silent_server() -> None:
    async def go() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            await asyncio.sleep(10)

        tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = tcp.sockets[0].getsockname()[1]
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = TcpTransport("127.0.0.1", port, read_timeout=TIMEOUT)
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "DIFFIE_HELLMAN"))
        try:
            with pytest.raises(MslException) as info:
                await asyncio.wait_for(client.request(b"hello"), 5)
            assert info.value.error is MslError.MSL_COMMS_FAILURE
        finally:
            await transport.aclose()
            tcp.close()

    asyncio.run(go())


def test_http_server_times_out_a_stalled_body() -> None:
    """Over HTTP, a body that stops midway gets an MSL error; one that never starts, 408."""

    async def go() -> None:
        port = _free_port()
        config = uvicorn.Config(MslAsgiApp(_server()), host="127.0.0.1", port=port, log_level="warning")
        uv = uvicorn.Server(config)
        task = asyncio.ensure_future(uv.serve())
        while not uv.started:
            await asyncio.sleep(0.02)
        try:
            header = _request_bytes()

            async def stalled(first: bytes) -> httpx.Response:
                async def body():  # type: ignore[no-untyped-def]
                    if first:
                        yield first
                    await asyncio.sleep(1.5)
                    yield b""

                async with httpx.AsyncClient(timeout=5) as http:
                    return await http.post(f"http://127.0.0.1:{port}/msl", content=body())

            midway = await stalled(header[: len(header) // 2])
            assert midway.status_code == 200
            assert json.loads(midway.content)["errordata"]
            never = await stalled(b"")
            assert never.status_code == 408
        finally:
            uv.should_exit = True
            await task

    asyncio.run(go())
