"""PooledHttpTransport against the real ASGI app under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
import uvicorn

from missile.engine.client import MslClient
from missile.errors import MslError, MslException
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport import pooled
from missile.transport.pooled import PooledHttpTransport

from .conftest import RunningServer, client_keys


def _client(url: str, scheme: str = "SYMMETRIC_WRAPPED") -> tuple[MslClient, PooledHttpTransport]:
    keys = client_keys()
    ctx = context_from_keyfile(keys).ctx
    transport = PooledHttpTransport(url)
    return MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, scheme)), transport


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
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"))
        try:
            with pytest.raises(MslException) as info:
                await asyncio.wait_for(client.request(b"x"), 10)
            assert info.value.error is MslError.MSL_COMMS_FAILURE
            assert transport._idle == []  # a broken connection is never reused
        finally:
            server.close()
            await transport.aclose()

    asyncio.run(run())


# -- HTTP framing against scripted raw servers, through the channel API ----------------------


async def _read_request(reader: asyncio.StreamReader) -> tuple[list[str], bytes]:
    """One request off a connection: its head lines and its body (Content-Length or chunked)."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("ascii").split("\r\n")[:-2]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        return lines, await reader.readexactly(int(headers["content-length"]))
    assert headers["transfer-encoding"] == "chunked"
    parts = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    assert await reader.readexactly(2) == b"\r\n"
    return lines, b"".join(parts)


@contextlib.asynccontextmanager
async def _serving(
    answer: Callable[[bytes], Sequence[bytes]], *, close_after: bool = False, read_delay: float = 0.0
) -> AsyncIterator[tuple[str, list[list[str]]]]:
    """A keep-alive server writing ``answer(body)`` piece by piece for each request; yields
    its URL and the head lines of the requests it got."""
    heads: list[list[str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                if read_delay:
                    await asyncio.sleep(read_delay)  # let the client's send buffer fill up
                try:
                    head, body = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                heads.append(head)
                for piece in answer(body):
                    writer.write(piece)
                    await writer.drain()
                if close_after:
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/msl?x=1", heads
    finally:
        server.close()


async def _exchange(transport: PooledHttpTransport, *writes: bytes, finish: bool = True) -> bytes:
    channel = await transport.connect()
    try:
        for data in writes:
            await channel.write(data)
        if finish:
            await channel.finish()
        body = b""
        while chunk := await channel.read():
            body += chunk
        return body
    finally:
        await channel.close()


def _ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in (*headers, f"Content-Length: {len(body)}"))
    return f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body


def _assert_echoes_on_one_connection(answer: Callable[[bytes], Sequence[bytes]], *bodies: bytes) -> None:
    """Exchanges with a server answering ``answer(body)`` echo each body and share one
    connection, which is back in the pool at the end."""

    async def run() -> None:
        async with _serving(answer) as (url, _):
            transport = PooledHttpTransport(url)
            try:
                for body in bodies:
                    assert await _exchange(transport, body) == body
                assert transport.sockets == 1
                assert len(transport._idle) == 1
            finally:
                await transport.aclose()

    asyncio.run(run())


def test_request_framing() -> None:
    """Small bodies go out whole with a Content-Length; the head names host and target."""

    async def run() -> None:
        async with _serving(lambda body: [_ok(body)]) as (url, heads):
            transport = PooledHttpTransport(url)
            try:
                assert await _exchange(transport, b"ab", b"cd") == b"abcd"
                assert await _exchange(transport, b"efg", finish=False) == b"efg"  # read finishes first
                assert await _exchange(transport) == b""
            finally:
                await transport.aclose()
        port = url.split(":")[2].split("/")[0]
        assert heads[0] == [
            "POST /msl?x=1 HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/octet-stream",
            "Content-Length: 4",
        ]
        assert heads[2][-1] == "Content-Length: 0"
        assert transport.sockets == 1

    asyncio.run(run())


def test_chunked_responses() -> None:
    """Chunk sizes, extensions and trailers, split anywhere across reads."""

    def answer(body: bytes) -> list[bytes]:
        half = len(body) // 2
        wire = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x;name=value\r\n%s\r\n" % (half, body[:half])
            + b"%X\r\n%s\r\n" % (len(body) - half, body[half:])
            + b"0\r\nX-Trailer: yes\r\n\r\n"
        )
        return [wire[i : i + 7] for i in range(0, len(wire), 7)]

    _assert_echoes_on_one_connection(answer, b"hello, chunked world", bytes(range(256)) * 40)


@pytest.mark.parametrize(
    "answer",
    [
        lambda body: [_ok(body, "Connection: close")],
        lambda body: [_ok(body, "connection: Close")],
        lambda body: [_ok(body) + b"HTTP/1.1 200 OK\r\n"],  # more than the response: out of step
    ],
    ids=["close", "close-case", "trailing-data"],
)
def test_connection_close_responses_are_not_reused(answer: Callable[[bytes], list[bytes]]) -> None:
    async def run() -> None:
        async with _serving(answer) as (url, _):
            transport = PooledHttpTransport(url)
            try:
                assert await _exchange(transport, b"one") == b"one"
                assert transport._idle == []
                assert await _exchange(transport, b"two") == b"two"
                assert transport.sockets == 2
            finally:
                await transport.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("answer", "close_after", "reused"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", False, False),
        (b"HTTP/1.0 200 OK\r\n\r\nhello", True, False),  # the body ends with the connection
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello", False, True),
    ],
    ids=["content-length", "until-close", "keep-alive"],
)
def test_http10_responses(answer: bytes, close_after: bool, reused: bool) -> None:
    async def run() -> None:
        async with _serving(lambda _: [answer], close_after=close_after) as (url, _):
            transport = PooledHttpTransport(url)
            try:
                assert await _exchange(transport, b"x") == b"hello"
                assert await _exchange(transport, b"y") == b"hello"
                assert transport.sockets == (1 if reused else 2)
            finally:
                await transport.aclose()

    asyncio.run(run())


def test_informational_responses_are_skipped() -> None:
    def answer(body: bytes) -> list[bytes]:
        return [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
            _ok(body),
        ]

    _assert_echoes_on_one_connection(answer, b"one", b"two")


@pytest.mark.parametrize(
    "answer",
    [
        [b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000],  # one endless header line
        [b"HTTP/1.1 200 OK\r\n" + b"X-Many: abcdefghijklmnopqrstuvwxyz\r\n" * 3000 + b"Content-Length: 0\r\n\r\n"],
        [b"HTTP/1.1 100 Continue\r\n\r\n" * 5000],  # informational responses count too
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Trailer: " + b"a" * 200_000],
    ],
    ids=["long-line", "many-headers", "informational-flood", "trailer"],
)
def test_oversized_response_heads_are_comms_failures(answer: list[bytes]) -> None:
    async def run() -> None:
        async with _serving(lambda _: answer) as (url, _):
            transport = PooledHttpTransport(url, timeout=30)
            try:
                with pytest.raises(MslException) as info:
                    await asyncio.wait_for(_exchange(transport, b"x"), 10)  # fails without waiting for a timeout
                assert info.value.error is MslError.MSL_COMMS_FAILURE
                assert "too large" in str(info.value)
                assert transport._idle == []
            finally:
                await transport.aclose()

    asyncio.run(run())


def test_response_head_just_under_the_limit_is_accepted() -> None:
    _assert_echoes_on_one_connection(lambda body: [_ok(body, "X-Big: " + "a" * 60_000)], b"x", b"y")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",  # cut mid-chunk
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",  # no last chunk
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",  # ambiguous length
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",  # cut in the head
    ],
    ids=["cut-chunk", "no-last-chunk", "two-lengths", "upgrade", "cut-head"],
)
def test_more_broken_responses_are_comms_failures(answer: bytes) -> None:
    async def run() -> None:
        async with _serving(lambda _: [answer], close_after=True) as (url, _):
            transport = PooledHttpTransport(url, timeout=5)
            try:
                with pytest.raises(MslException) as info:
                    await asyncio.wait_for(_exchange(transport, b"x"), 10)
                assert info.value.error is MslError.MSL_COMMS_FAILURE
                assert transport._idle == []
            finally:
                await transport.aclose()

    asyncio.run(run())


def test_url_cannot_inject_into_the_request() -> None:
    for url in (
        "http://example.com/a\r\nX-Injected: 1",
        "http://example.com/a\nb",
        "http://example.com/a b",
        "http://example.com/\x00",
        "http://example.com/é",
    ):
        with pytest.raises(ValueError):
            PooledHttpTransport(url)
    transport = PooledHttpTransport("http://user:secret@example.com:8080/path?q=1#frag")
    assert transport.host_header == "example.com:8080"
    assert transport.target == "/path?q=1"


def test_large_streamed_body_waits_for_a_slow_server() -> None:
    """A body far over the coalescing limit streams with flow control: the client waits
    (pause_writing) while a slow server's receive buffer is full, then finishes."""
    paused = 0
    original = pooled._Connection.pause_writing

    def counting(self: pooled._Connection) -> None:
        nonlocal paused
        paused += 1
        original(self)

    async def run() -> None:
        data = os.urandom(8 * 1024 * 1024)
        async with _serving(lambda body: [_ok(body)], read_delay=0.3) as (url, heads):
            transport = PooledHttpTransport(url)
            try:
                big = (data[i : i + 300_000] for i in range(70_000, len(data), 300_000))
                writes = [data[:1000], data[1000:70_000], *big]
                assert await _exchange(transport, *writes) == data
                assert await _exchange(transport, b"small") == b"small"
                assert transport.sockets == 1
            finally:
                await transport.aclose()
        assert "Transfer-Encoding: chunked" in heads[0]
        assert "Content-Length: 5" in heads[1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pooled._Connection, "pause_writing", counting)
        asyncio.run(run())
    assert paused > 0


def test_idle_connection_the_server_ends_is_not_reused() -> None:
    """Data on an idle connection (a server timing it out with a 408) drops it from the pool."""

    def answer(body: bytes) -> list[bytes]:
        return [_ok(body)]

    async def run() -> None:
        async with _serving(answer) as (url, _):
            transport = PooledHttpTransport(url)
            try:
                assert await _exchange(transport, b"one") == b"one"
                (conn,) = transport._idle
                conn.data_received(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
                assert await _exchange(transport, b"two") == b"two"
                assert transport.sockets == 2
            finally:
                await transport.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("answer", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", True),  # all arrived: reusable
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", False),  # more owed: never reused
    ],
    ids=["complete", "incomplete"],
)
def test_closing_before_the_end_of_the_body(answer: bytes, reused: bool) -> None:
    """The caller stops reading early (at the end of its MSL message) and closes."""

    async def run() -> None:
        async with _serving(lambda _: [answer]) as (url, _):
            transport = PooledHttpTransport(url, timeout=5)
            try:
                channel = await transport.connect()
                await channel.write(b"x")
                assert await channel.read(2) == b"he"
                await channel.close()
                with pytest.raises(MslException):
                    await channel.read()  # closed
                assert len(transport._idle) == (1 if reused else 0)
            finally:
                await transport.aclose()

    asyncio.run(run())


# -- a large streamed body through a real server ---------------------------------------------


async def _echo_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any) -> None:
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/y")]})
    # Two body messages: uvicorn answers with chunked encoding.
    await send({"type": "http.response.body", "body": bytes(body[:1000]), "more_body": True})
    await send({"type": "http.response.body", "body": bytes(body[1000:])})


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(_echo_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/echo"
    server.should_exit = True
    thread.join(timeout=10)


def test_large_streamed_body_round_trips_through_uvicorn(echo_url: str) -> None:
    async def run() -> None:
        transport = PooledHttpTransport(echo_url)
        data = os.urandom(5 * 1024 * 1024 + 17)
        try:
            writes = [data[i : i + 48 * 1024] for i in range(0, len(data), 48 * 1024)]
            assert await _exchange(transport, *writes) == data
            assert await _exchange(transport, b"after") == b"after"
            assert await _exchange(transport, data[: pooled.COALESCE_LIMIT]) == data[: pooled.COALESCE_LIMIT]
            assert transport.sockets == 1
        finally:
            await transport.aclose()

    asyncio.run(run())


def test_a_server_that_stops_taking_the_body_times_out() -> None:
    """Waiting for a server to accept request data is bounded by the timeout too."""

    async def run() -> None:
        async with _serving(lambda body: [_ok(body)], read_delay=30) as (url, _heads):
            transport = PooledHttpTransport(url, timeout=0.5)
            try:
                data = os.urandom(32 * 1024 * 1024)  # far more than both socket buffers hold
                started = asyncio.get_running_loop().time()
                with pytest.raises(MslException) as err:
                    await asyncio.wait_for(_exchange(transport, data[:70_000], data[70_000:]), 20)
                assert err.value.error is MslError.MSL_COMMS_FAILURE
                assert asyncio.get_running_loop().time() - started < 10
            finally:
                await transport.aclose()

    asyncio.run(run())
