"""Buffered payloads are bounded on both sides."""

from __future__ import annotations

import asyncio

import pytest

import vectorlib
from missile.clock import FixedClock
from missile.engine.client import MslClient
from missile.engine.errors import MslErrorResponse
from missile.engine.server import MslServer, Reply, Request
from missile.engine.transport import LoopbackTransport
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.profiles import context_from_keyfile


def _pair(server_limit: int, client_limit: int, reply: bytes) -> MslClient:
    clock = FixedClock(1_735_689_600_000)
    server_keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    client_keys = KeyFile.from_dict(vectorlib.load("03_c_response_asymmetric_wrapped_rsa")["keys"])
    client_keys.master_tokens = []

    async def handler(request: Request) -> Reply:
        return Reply(data=reply)

    server = MslServer(context_from_keyfile(server_keys, clock=clock).ctx, handler, max_payload_size=server_limit)
    ctx = context_from_keyfile(client_keys, clock=clock).ctx
    return MslClient(
        ctx,
        LoopbackTransport(server.serve_channel),
        key_request_factory=lambda: [SymmetricWrappedRequest("PSK")],
        max_payload_size=client_limit,
    )


def test_server_refuses_an_oversized_request() -> None:
    async def go() -> None:
        client = _pair(10_000, 1 << 20, b"ok")
        assert (await client.request(b"x" * 10_000)).payload == b"ok"  # at the limit
        with pytest.raises(MslErrorResponse) as info:
            await client.request(b"x" * 10_001)
        assert info.value.error is MslError.MESSAGE_FORMAT_ERROR

    asyncio.run(go())


def test_client_refuses_an_oversized_response() -> None:
    async def go() -> None:
        client = _pair(1 << 20, 5_000, b"y" * 5_001)
        with pytest.raises(MslException) as info:
            await client.request(b"hello")
        assert info.value.error is MslError.MESSAGE_FORMAT_ERROR
        # Streaming has no such bound: the application reads as much as it wants.
        async with await client.request_stream(b"hello") as response:
            assert len(await response.body.read()) == 5_001

    asyncio.run(go())
