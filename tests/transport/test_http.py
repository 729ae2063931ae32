"""Client and server engines over real HTTP on loopback."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.engine.sync import SyncClient
from missile.errors import MslError, MslException
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.http import HttpTransport
from missile.userauth.email_password import EmailPasswordAuthData

from .conftest import RunningServer, client_keys

SCHEMES = [
    ("SYMMETRIC_WRAPPED", None),
    ("ASYMMETRIC_WRAPPED", "RSA"),
    ("ASYMMETRIC_WRAPPED", "JWE_RSA"),
    ("ASYMMETRIC_WRAPPED", "JWEJS_RSA"),
    ("ASYMMETRIC_WRAPPED", "JWK_RSA"),
    ("ASYMMETRIC_WRAPPED", "JWK_RSAES"),
    ("DIFFIE_HELLMAN", None),
    ("JWE_LADDER", None),
    ("JWK_LADDER", None),
]


@pytest.mark.parametrize(("scheme", "mechanism"), SCHEMES)
def test_every_key_exchange_over_http(http_server: RunningServer, scheme: str, mechanism: str | None) -> None:
    async def run() -> None:
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = HttpTransport(http_server.url)
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, scheme, mechanism))
        try:
            first = await client.request(b"one")
            krd = first.header.data.key_response_data
            assert krd is not None and krd.scheme == scheme
            assert first.payload == b"one|client1|-"
            second = await client.request(b"two")
            assert second.header.data.key_response_data is None
            assert second.payload == b"two|client1|-"
            assert transport.connections == 2
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_sync_client_with_user_over_http(http_server: RunningServer) -> None:
    keys = client_keys()
    ctx = context_from_keyfile(keys).ctx
    transport = HttpTransport(http_server.url)
    client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "JWK_LADDER"))
    with SyncClient(client, timeout=30) as sync:
        options = MessageOptions(user_id="u", user_auth=EmailPasswordAuthData("user1@foo.com", "user1pwd"))
        reply = sync.request(b"hi", options)
        assert reply.payload == b"hi|client1|user1@foo.com"
        assert reply.user_id_token is not None
        again = sync.request(b"again", MessageOptions(user_id="u"))
        assert again.payload == b"again|client1|user1@foo.com"
        big = bytes(range(256)) * 8192  # 2 MiB, several chunks each way
        assert sync.request(big).payload == big + b"|client1|-"


def test_large_streamed_payload_over_http(http_server: RunningServer) -> None:
    async def run() -> None:
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = HttpTransport(http_server.url)
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"))
        data = b"x" * (5 * 1024 * 1024 + 7)
        try:
            assert (await client.request(data)).payload == data + b"|client1|-"
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_garbage_body_gets_an_msl_error_message(http_server: RunningServer) -> None:
    response = httpx.post(http_server.url, content=b"not msl")
    assert response.status_code == 200
    assert response.content.startswith(b"{")  # JSON: errors are never in the binary format
    assert b'"entityauthdata"' in response.content and b'"errordata"' in response.content


def test_get_is_refused(http_server: RunningServer) -> None:
    assert httpx.get(http_server.url).status_code == 405


def test_unreachable_server_is_comms_failure() -> None:
    async def run() -> None:
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = HttpTransport("http://127.0.0.1:9/")
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"))
        try:
            with pytest.raises(MslException) as info:
                await client.request(b"x")
            assert info.value.error is MslError.MSL_COMMS_FAILURE
        finally:
            await transport.aclose()

    asyncio.run(run())
