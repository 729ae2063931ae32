"""A client and a server engine talking over the in-memory transport."""

from __future__ import annotations

import asyncio

import vectorlib
from missile.clock import FixedClock
from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.engine.server import MslServer, Reply, Request
from missile.engine.transport import LoopbackTransport
from missile.keyfile import KeyFile
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.profiles import context_from_keyfile
from missile.userauth.email_password import EmailPasswordAuthData


def _pair() -> tuple[MslClient, LoopbackTransport]:
    clock = FixedClock(1_735_689_600_000)
    server_keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    client_keys = KeyFile.from_dict(vectorlib.load("03_c_response_asymmetric_wrapped_rsa")["keys"])
    server_ctx = context_from_keyfile(server_keys, clock=clock).ctx
    client_ctx = context_from_keyfile(client_keys, clock=clock).ctx
    client_ctx.store.clear_crypto_contexts()  # type: ignore[union-attr]

    async def handler(request: Request) -> Reply:
        user = request.user.identity if request.user else "-"
        return Reply(data=b"echo " + request.payload + f" ({request.identity}/{user})".encode())

    server = MslServer(server_ctx, handler)
    transport = LoopbackTransport(server.serve_channel)
    client = MslClient(client_ctx, transport, key_request_factory=lambda: [SymmetricWrappedRequest("PSK")])
    return client, transport


def test_request_response_and_session_reuse() -> None:
    async def run() -> None:
        client, _transport = _pair()
        first = await client.request(b"hello")
        assert first.payload == b"echo hello (client1/-)"
        assert first.header.data.key_response_data is not None
        store = client.ctx.store
        assert store is not None and store.get_master_token() == first.master_token
        second = await client.request(b"again")
        assert second.payload == b"echo again (client1/-)"
        assert second.header.data.key_response_data is None
        assert second.messages == 2
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData("user1@foo.com", "user1pwd"))
        third = await client.request(b"as user", options)
        assert third.payload == b"echo as user (client1/user1@foo.com)"
        assert store.get_user_id_token("alice") is not None

    asyncio.run(run())
