"""Blocking and asyncio stream adapters over the reader and writer."""

from __future__ import annotations

import asyncio
import io
import socket
import threading

import pytest

from missile.errors import MslError, MslException
from missile.messages import MessageReader, MessageWriter
from missile.messages.builder import build_error_response, build_request, build_response
from missile.messages.streams import (
    AsyncMessageInputStream,
    AsyncMessageOutputStream,
    MessageInputStream,
    MessageOutputStream,
)

from .conftest import Session, encode_message, objects


def _writer(session: Session, chunk_size: int = 1000) -> MessageWriter:
    request = build_request(session.client)
    return MessageWriter(request.header, request.payload_crypto_context, chunk_size=chunk_size, compression=None)


def test_output_then_input_over_bytesio(session: Session) -> None:
    sink = io.BytesIO()
    out = MessageOutputStream(_writer(session, chunk_size=100), sink)
    assert len(objects(sink.getvalue())) == 1  # the header is sent at once
    out.write(b"a" * 250)  # two full chunks go out, 50 bytes stay buffered
    assert len(objects(sink.getvalue())) == 3
    out.flush()
    assert len(objects(sink.getvalue())) == 4
    out.write(memoryview(b"tail"))
    out.close()
    out.close()
    assert len(objects(sink.getvalue())) == 5

    stream = MessageInputStream(MessageReader(session.server), io.BytesIO(sink.getvalue()))
    assert stream.header is not None and stream.error_header is None
    assert stream.read(30) == b"a" * 30
    assert stream.read(100) == b"a" * 70  # rest of the first chunk
    assert stream.read() == b"a" * 150 + b"tail"
    assert stream.read(10) == b""


def test_readinto_and_chunks(session: Session) -> None:
    data = bytes(range(256)) * 10
    stream = MessageInputStream(MessageReader(session.server), io.BytesIO(encode_message(_writer(session), data)))
    buf = bytearray(600)
    n = stream.readinto(buf)
    assert n == 600 and bytes(buf) == data[:600]
    assert b"".join(stream.chunks()) == data[600:]


def test_remaining_gives_next_message_and_close_drains(session: Session) -> None:
    first = encode_message(_writer(session), b"1" * 3000)
    second = encode_message(_writer(session), b"second message")
    source = io.BytesIO(first + second)
    stream = MessageInputStream(MessageReader(session.server), source, read_size=512)
    assert stream.read(10) == b"1" * 10
    stream.close()  # consumes the rest of the first message only
    assert stream.closed
    rest = stream.remaining() + source.read()
    assert rest == second
    nxt = MessageInputStream(MessageReader(session.server), io.BytesIO(rest))
    assert nxt.read() == b"second message"


def test_error_message_stream(session: Session) -> None:
    error = build_error_response(session.server, MslError.MESSAGE_EXPIRED_NOT_RENEWABLE, 9)
    stream = MessageInputStream(MessageReader(session.client), io.BytesIO(error.encode()))
    assert stream.header is None
    assert stream.error_header is not None and stream.error_header.error is MslError.MESSAGE_EXPIRED_NOT_RENEWABLE
    assert stream.read() == b""


def test_empty_source(session: Session) -> None:
    stream = MessageInputStream(MessageReader(session.server), io.BytesIO(b""))
    with pytest.raises(MslException) as info:
        stream.read()
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_socketpair_chunk_by_chunk(session: Session) -> None:
    """Each chunk is readable as soon as it is flushed, before the writer continues."""
    left, right = socket.socketpair()
    acks = [threading.Event() for _ in range(3)]
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with left.makefile("wb") as sink:
                out = MessageOutputStream(_writer(session), sink)
                sink.flush()
                for i in range(3):
                    out.write(f"chunk {i}".encode())
                    out.flush()
                    if not acks[i].wait(10):
                        raise TimeoutError(f"chunk {i} not read")
                out.close()
                sink.flush()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        with right.makefile("rb", buffering=0) as source:
            stream = MessageInputStream(MessageReader(session.server), source)  # type: ignore[arg-type]
            chunks = stream.chunks()
            for i in range(3):
                assert next(chunks) == f"chunk {i}".encode()
                acks[i].set()
            assert list(chunks) == []
    finally:
        for ack in acks:
            ack.set()
        thread.join(10)
        left.close()
        right.close()
    assert not errors


def test_async_streams_over_tcp(session: Session) -> None:
    """A request and its response over a real asyncio connection on 127.0.0.1."""

    async def main() -> tuple[bytes, bytes]:
        received: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stream = AsyncMessageInputStream(MessageReader(session.server), reader, read_size=700)
            header = await stream.header()
            assert header is not None
            async for chunk in stream:
                received.append(chunk)
            response = build_response(session.server, header)
            out = AsyncMessageOutputStream(MessageWriter(response.header, response.payload_crypto_context), writer)
            await out.write(b"pong " * 10)
            await out.aclose()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            out = AsyncMessageOutputStream(_writer(session, chunk_size=500), writer)
            await out.write(b"p" * 1200)
            await out.flush()
            await out.write(b"ing")
            await out.aclose()
            stream = AsyncMessageInputStream(MessageReader(session.client), reader)
            reply = await stream.read()
            assert stream.remaining() == b""
            writer.close()
            await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()
        return b"".join(received), reply

    request_data, reply = asyncio.run(asyncio.wait_for(main(), 20))
    assert request_data == b"p" * 1200 + b"ing"
    assert reply == b"pong " * 10


def test_async_stream_reads_chunks_as_they_arrive(session: Session) -> None:
    wire = encode_message(_writer(session, chunk_size=4), b"abcdefghij") + encode_message(_writer(session), b"next")
    parts = objects(wire)
    header, chunks, next_message = parts[0], parts[1:4], b"".join(parts[4:])

    async def main() -> None:
        feed = asyncio.StreamReader()
        stream = AsyncMessageInputStream(MessageReader(session.server), feed)
        feed.feed_data(header)
        assert (await stream.header()) is not None
        feed.feed_data(chunks[0])
        assert await stream.read(100) == b"abcd"
        feed.feed_data(chunks[1][:10])
        pending = asyncio.ensure_future(stream.read(100))
        await asyncio.sleep(0.01)
        assert not pending.done()  # waiting for the rest of chunk 2
        feed.feed_data(chunks[1][10:])
        assert await pending == b"efgh"
        feed.feed_data(chunks[2] + next_message)
        await stream.aclose()  # drains chunk 3 without handing it out
        assert stream.remaining() == next_message
        feed.feed_eof()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_async_output_header_sent_lazily_and_flush(session: Session) -> None:
    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()
            self.drains = 0

        def write(self, data: bytes) -> None:
            self.data += data

        async def drain(self) -> None:
            self.drains += 1

    async def main() -> bytes:
        sink = Sink()
        out = AsyncMessageOutputStream(_writer(session, chunk_size=5), sink)
        assert sink.data == b""
        await out.flush()
        assert len(objects(bytes(sink.data))) == 1  # header only
        await out.write(b"1234567")
        assert len(objects(bytes(sink.data))) == 2
        await out.aclose()
        return bytes(sink.data)

    wire = asyncio.run(main())
    stream = MessageInputStream(MessageReader(session.server), io.BytesIO(wire))
    assert stream.read() == b"1234567"
