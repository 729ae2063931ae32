"""PooledHttpTransport against the real ASGI app under uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from missile.engine.client import MslClient
from missile.errors import MslError, MslException
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.pooled import PooledHttpTransport

from .conftest import RunningServer, client_keys


def _client(url: str, scheme: str = "SYMMETRIC_WRAPPED") -> tuple[MslClient, PooledHttpTransport]:
    keys = client_keys()
    ctx = context_from_keyfile(keys).ctx
    transport = PooledHttpTransport(url)
    return MslClient(ctx, transport, key_requests=key_request_factory(ctx, keys, scheme)), transport


@pytest.mark.parametrize("scheme", ["SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN", "JWK_LADDER"])
def test_requests_reuse_one_connection(http_server: RunningServer, scheme: str) -> None:
    async def run() -> None:
        client, transport = _client(http_server.url, scheme)
        try:
            for i in range(20):
                reply = await client.request(f"msg {i}".encode())
                assert reply.payload == f"msg {i}|client1|-".encode()
            assert transport.connections == 20
            assert transport.sockets == 1
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_concurrent_requests_use_several_connections(http_server: RunningServer) -> None:
    async def run() -> None:
        client, transport = _client(http_server.url)
        try:
            await client.request(b"warm")
            replies = await asyncio.gather(*(client.request(f"c{i}".encode()) for i in range(16)))
            assert [r.payload for r in replies] == [f"c{i}|client1|-".encode() for i in range(16)]
            assert 1 < transport.sockets <= 17
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_large_payload_streams_both_ways(http_server: RunningServer) -> None:
    """Over the coalescing limit the request goes out chunked; the response streams back."""

    async def run() -> None:
        client, transport = _client(http_server.url)
        data = bytes(range(256)) * (12 * 1024 + 3)  # ~3 MiB
        try:
            assert (await client.request(data)).payload == data + b"|client1|-"
            assert (await client.request(b"small")).payload == b"small|client1|-"
            assert transport.sockets == 1
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_unreachable_server_is_comms_failure() -> None:
    async def run() -> None:
        client, _ = _client("http://127.0.0.1:9/")
        with pytest.raises(MslException) as info:
            await client.request(b"x")
        assert info.value.error is MslError.MSL_COMMS_FAILURE

    asyncio.run(run())


def test_non_200_status_is_comms_failure(http_server: RunningServer) -> None:
    """A transport aimed at something other than an MSL endpoint sees MSL_COMMS_FAILURE."""

    async def run() -> None:
        async def not_msl(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(not_msl, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, transport = _client(f"http://127.0.0.1:{port}/msl")
        try:
            with pytest.raises(MslException) as info:
                await client.request(b"x")
            assert info.value.error is MslError.MSL_COMMS_FAILURE
        finally:
            server.close()
            await transport.aclose()

    asyncio.run(run())


def test_server_closing_idle_connections_is_survived(http_server: RunningServer) -> None:
    async def run() -> None:
        client, transport = _client(http_server.url)
        try:
            await client.request(b"one")
            for conn in transport._idle:  # the server (or a proxy) drops idle connections
                conn.close()
            assert (await client.request(b"two")).payload == b"two|client1|-"
            assert transport.sockets == 2
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        PooledHttpTransport("ftp://example.com/")


def _fake_server(
    answer: bytes, *, then_wait: float = 0.0
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A server that answers any request with ``answer`` and closes (after ``then_wait``)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        if then_wait:
            await asyncio.sleep(then_wait)
        writer.close()

    return handle


@pytest.mark.parametrize(
    ("answer", "then_wait"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"partial", 0.0),  # cut mid-body
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"partial", 5.0),  # stalls mid-body
        (b"NOT HTTP AT ALL\r\n\r\n", 0.0),  # garbage
    ],
    ids=["truncated", "stalled", "garbage"],
)
def test_broken_responses_are_comms_failures(answer: bytes, then_wait: float) -> None:
    async def run() -> None:
        server = await asyncio.start_server(_fake_server(answer, then_wait=then_wait), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        keys = client_keys()
        ctx = context_from_keyfile(keys).ctx
        transport = PooledHttpTransport(f"http://127.0.0.1:{port}/msl", timeout=0.5)
        client = MslClient(ctx, transport, key_requests=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"))
        try:
            with pytest.raises(MslException) as info:
                await asyncio.wait_for(client.request(b"x"), 10)
            assert info.value.error is MslError.MSL_COMMS_FAILURE
            assert transport._idle == []  # a broken connection is never reused
        finally:
            server.close()
            await transport.aclose()

    asyncio.run(run())
