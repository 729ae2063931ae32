"""One-way messages and server pushes."""

from __future__ import annotations

import asyncio

import pytest

import vectorlib
from missile.clock import FixedClock
from missile.engine.client import MslClient
from missile.engine.server import MslServer, Reply, Request
from missile.engine.transport import LoopbackTransport
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.profiles import context_from_keyfile


def _pair(handler):  # type: ignore[no-untyped-def]
    clock = FixedClock(1_735_689_600_000)
    server_keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    client_keys = KeyFile.from_dict(vectorlib.load("03_c_response_asymmetric_wrapped_rsa")["keys"])
    client_keys.master_tokens = []
    server = MslServer(context_from_keyfile(server_keys, clock=clock).ctx, handler)
    transport = LoopbackTransport(server.serve_channel)
    ctx = context_from_keyfile(client_keys, clock=clock).ctx
    return MslClient(ctx, transport, key_request_factory=lambda: [SymmetricWrappedRequest("PSK")]), transport


def test_one_way_send() -> None:
    seen: list[bytes] = []

    async def handler(request: Request) -> Reply:
        seen.append(request.payload)
        return Reply(respond=False)

    async def go() -> None:
        client, transport = _pair(handler)
        # No session yet: the message asks for keys, so the server must answer with them.
        first = await client.one_way(b"first")
        assert first is not None and first.header.data.key_response_data is not None
        assert first.payload == b""
        # With a session the server sends nothing back.
        assert await client.one_way(b"second") is None
        assert await client.one_way(b"third") is None
        assert seen == [b"first", b"second", b"third"]
        assert transport.connections == 3

    asyncio.run(go())


def test_server_pushes_after_the_response() -> None:
    pushes = [b"push one", b"", b"push three " * 10000]

    async def handler(request: Request) -> Reply:
        # Pushes are protected like the request (no key exchange): only a request under
        # a master token can be answered with encrypted pushes.
        return Reply(data=b"reply", pushes=pushes if request.header.master_token is not None else [])

    async def go() -> None:
        client, _ = _pair(handler)
        first = await client.request(b"hi")
        assert first.payload == b"reply" and first.pushes == ()
        again = await client.request(b"hi again")
        assert again.payload == b"reply"
        assert again.pushes == tuple(pushes)

    asyncio.run(go())


def test_push_that_cannot_be_encrypted_is_refused() -> None:
    async def handler(request: Request) -> Reply:
        return Reply(data=b"reply", pushes=[b"secret"])

    async def go() -> None:
        client, _ = _pair(handler)
        # The server refuses (KEYX_REQUIRED) every time, since pushes never carry keys:
        # the client gives up when its message budget runs out.
        with pytest.raises(MslException) as info:
            await client.request(b"no session yet")
        assert info.value.error is MslError.RESPONSE_REQUIRES_ENCRYPTION

    asyncio.run(go())
