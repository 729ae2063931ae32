"""Streaming both ways: the server reads the request payload as it arrives and streams
its reply; the client reads the response payload chunk by chunk."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import pytest

import vectorlib
from missile.engine.client import MslClient
from missile.engine.errors import MslErrorResponse
from missile.engine.server import MslServer, Reply, Request
from missile.engine.transport import LoopbackTransport
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.profiles import context_from_keyfile
from missile.transport.http import HttpTransport, MslAsgiApp

from .conftest import client_keys


async def streaming_echo(request: Request) -> Reply:
    assert request.body is not None and request.payload == b""

    async def echo() -> AsyncIterator[bytes]:
        assert request.body is not None
        async for chunk in request.body:
            yield chunk

    return Reply(data=echo())


def _server() -> MslServer:
    keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    keys.time_ms = None
    return MslServer(context_from_keyfile(keys).ctx, streaming_echo, streaming=True, chunk_size=16 * 1024)


def _client(transport: LoopbackTransport | HttpTransport, *, json_only: bool = False) -> MslClient:
    keys = client_keys()
    ctx = context_from_keyfile(keys).ctx
    # json_only: the tampering below finds chunks by their JSON member name.
    caps = MessageCapabilities.of(["GZIP", "LZW"], ["en-US"], ["JSON"]) if json_only else DEFAULT_CAPABILITIES
    return MslClient(
        ctx, transport, key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"), capabilities=caps
    )


def test_streaming_echo_over_loopback_in_bounded_memory() -> None:
    async def go() -> None:
        client = _client(LoopbackTransport(_server().serve_channel))
        await client.request(b"warm up: establish the session")
        data = bytes(range(256)) * (32 * 1024)  # 8 MiB
        tracemalloc.start()
        try:
            async with await client.request_stream(data) as response:
                digest = hashlib.sha256()
                chunks = 0
                async for chunk in response.body:
                    digest.update(chunk)
                    chunks += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert digest.digest() == hashlib.sha256(data).digest()
        assert chunks > 100  # arrived piece by piece, not as one buffer
        # The request data itself is 8 MiB; nothing else near that size was held.
        assert peak < len(data) + 4 * 1024 * 1024

    asyncio.run(go())


def test_streaming_over_http_asgi() -> None:
    async def go() -> None:
        app = MslAsgiApp(_server())
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://msl")
        client = _client(HttpTransport("http://msl/", client=http))
        try:
            data = b"streamed " * 100_000
            response = await client.request_stream(data)
            assert await response.read() == data
            # The buffered API works against a streaming server too.
            assert (await client.request(b"small")).payload == b"small"
        finally:
            await http.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(("tamper_at", "expected"), [(1, "error message"), (4, "cut message")])
def test_tampered_request_chunk(tamper_at: int, expected: str) -> None:
    """Tampering with the first request chunk happens before the streamed reply starts:
    the server answers with an error message. Later, the reply is under way and can
    only be cut short: the client refuses the truncated message."""

    async def go() -> None:
        server = _server()
        tampered = False
        seen = 0

        async def serve(channel):  # type: ignore[no-untyped-def]
            class Tamper:
                async def read(self, n: int = 65536) -> bytes:
                    nonlocal tampered, seen
                    data = await channel.read(n)
                    if b'"payload"' in data:
                        seen += 1
                    if b'"payload"' in data and not tampered and seen == tamper_at and len(data) > 200:
                        tampered = True
                        i = data.index(b'"payload":"') + 20
                        data = data[:i] + (b"A" if data[i : i + 1] != b"A" else b"B") + data[i + 1 :]
                    return data

                def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
                    return getattr(channel, name)

            await server.serve_channel(Tamper())  # type: ignore[arg-type]

        client = _client(LoopbackTransport(_server().serve_channel), json_only=True)
        await client.request(b"session")  # same keys: the session is good for the tampering server
        client.transport = LoopbackTransport(serve)
        with pytest.raises(MslException) as info:
            await client.request(bytes(range(256)) * 2000)
        assert tampered
        if expected == "error message":
            assert isinstance(info.value, MslErrorResponse)
            assert info.value.error is MslError.PAYLOAD_VERIFICATION_FAILED
        else:
            assert info.value.error is MslError.MESSAGE_FORMAT_ERROR

    asyncio.run(go())
