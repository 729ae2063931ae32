"""Blocking and asyncio stream adapters over the sans-IO reader and writer.

:class:`MessageInputStream` is a readable binary file object over a source with a
``read(n)`` method: it parses the header on first use and then returns payload bytes as
each chunk arrives and verifies. :class:`MessageOutputStream` is a writable binary file
object that sends the header at once and each chunk as it fills (``flush`` forces a
chunk, ``close`` ends the message). The async twins do the same over asyncio streams.
Nothing buffers more than one chunk.

Bytes read past the end of the message (the next message on a connection) are kept in
:meth:`MessageInputStream.remaining` for the caller to hand to the next reader.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, Protocol

from missile.errors import MslError, MslMessageException
from missile.messages.error_header import ErrorHeader
from missile.messages.events import ErrorReceived, Event, HeaderReceived, MessageEnd, PayloadReceived
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader
from missile.messages.writer import MessageWriter

__all__ = [
    "AsyncMessageInputStream",
    "AsyncMessageOutputStream",
    "MessageInputStream",
    "MessageOutputStream",
]

DEFAULT_READ_SIZE = 64 * 1024


class _Source(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Sink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class _AsyncSource(Protocol):
    def read(self, n: int = -1, /) -> Awaitable[bytes]: ...


class _AsyncSink(Protocol):
    def write(self, data: bytes, /) -> Any: ...

    def drain(self) -> Awaitable[None]: ...


class _EventState:
    """Bookkeeping shared by the blocking and asyncio input streams."""

    def __init__(self, reader: MessageReader) -> None:
        self.reader = reader
        self.header: MessageHeader | None = None
        self.error_header: ErrorHeader | None = None
        self.pending: deque[bytes] = deque()
        self.ended = False
        self.offset = 0

    def absorb(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, HeaderReceived):
                self.header = event.header
            elif isinstance(event, ErrorReceived):
                self.error_header = event.error_header
                self.ended = True
            elif isinstance(event, PayloadReceived):
                if event.data:
                    self.pending.append(event.data)
            elif isinstance(event, MessageEnd):
                self.ended = True

    @property
    def has_header(self) -> bool:
        return self.header is not None or self.error_header is not None

    def take(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes (``n < 0``: one whole chunk)."""
        if not self.pending:
            return b""
        head = self.pending[0]
        if n < 0 or len(head) - self.offset <= n:
            self.pending.popleft()
            out = head[self.offset :] if self.offset else head
            self.offset = 0
            return out
        out = head[self.offset : self.offset + n]
        self.offset += n
        return out


class MessageInputStream(io.RawIOBase):
    """Read one MSL message's payload from a blocking source."""

    def __init__(self, reader: MessageReader, source: _Source, *, read_size: int = DEFAULT_READ_SIZE) -> None:
        super().__init__()
        self._state = _EventState(reader)
        self._source = source
        self._read_size = read_size

    def _pump(self) -> bool:
        """Read once from the source; False at end of stream."""
        data = self._source.read(self._read_size)
        if not data:
            self._state.absorb(self._state.reader.end_of_stream())
            if not self._state.has_header:
                raise MslMessageException(MslError.MSL_PARSE_ERROR, "no message data")
            self._state.ended = True
            return False
        self._state.absorb(self._state.reader.feed(data))
        return True

    @property
    def header(self) -> MessageHeader | None:
        """The message header (reads until it arrives); None for an error message."""
        while not self._state.has_header and self._pump():
            pass
        return self._state.header

    @property
    def error_header(self) -> ErrorHeader | None:
        """The error header, if this is an error message."""
        while not self._state.has_header and self._pump():
            pass
        return self._state.error_header

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Read payload bytes into ``buffer``; the count read, 0 at the end."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes of payload (all of it when ``size`` is negative)."""
        if size is None or size < 0:
            return b"".join(self.chunks())
        while not self._state.pending and not self._state.ended:
            self._pump()
        return self._state.take(size)

    def chunks(self) -> Iterator[bytes]:
        """Yield the payload chunk by chunk as each one verifies."""
        while True:
            while not self._state.pending and not self._state.ended:
                self._pump()
            if not self._state.pending:
                return
            yield self._state.take(-1)

    def remaining(self) -> bytes:
        """Bytes received after this message (the start of the next one)."""
        return self._state.reader.remaining()

    def close(self) -> None:
        """Consume the rest of the message (messages.md §11) without closing the source."""
        if not self.closed:
            try:
                while not self._state.ended:
                    self._pump()
                    self._state.pending.clear()
            finally:
                super().close()


class MessageOutputStream(io.RawIOBase):
    """Write one MSL message to a blocking sink; the header is sent immediately."""

    def __init__(self, writer: MessageWriter, sink: _Sink) -> None:
        super().__init__()
        self._writer = writer
        self._sink = sink
        sink.write(writer.header_bytes())

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Write payload bytes (sent in chunks); the count accepted."""
        payload = bytes(data)
        out = self._writer.write(payload)
        if out:
            self._sink.write(out)
        return len(payload)

    def flush(self) -> None:
        """Send buffered data as a chunk."""
        if not self.closed and not self._writer.closed:
            out = self._writer.flush() if self._writer.header is not None and self._has_payload() else b""
            if out:
                self._sink.write(out)
        flush = getattr(self._sink, "flush", None)
        if callable(flush):
            flush()

    def _has_payload(self) -> bool:
        header = self._writer.header
        return isinstance(header, MessageHeader) and not header.is_handshake

    def close(self) -> None:
        """Send the end-of-message chunk."""
        if not self.closed:
            out = self._writer.close()
            if out:
                self._sink.write(out)
            super().close()


class AsyncMessageInputStream:
    """Read one MSL message's payload from an asyncio stream."""

    def __init__(self, reader: MessageReader, source: _AsyncSource, *, read_size: int = DEFAULT_READ_SIZE) -> None:
        self._state = _EventState(reader)
        self._source = source
        self._read_size = read_size

    async def _pump(self) -> bool:
        data = await self._source.read(self._read_size)
        if not data:
            self._state.absorb(self._state.reader.end_of_stream())
            if not self._state.has_header:
                raise MslMessageException(MslError.MSL_PARSE_ERROR, "no message data")
            self._state.ended = True
            return False
        self._state.absorb(self._state.reader.feed(data))
        return True

    async def header(self) -> MessageHeader | None:
        """The message header; None for an error message."""
        while not self._state.has_header and await self._pump():
            pass
        return self._state.header

    async def error_header(self) -> ErrorHeader | None:
        """The error header, if this is an error message."""
        while not self._state.has_header and await self._pump():
            pass
        return self._state.error_header

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` payload bytes (all when negative); b"" at the end."""
        if size < 0:
            return b"".join([chunk async for chunk in self])
        while not self._state.pending and not self._state.ended:
            await self._pump()
        return self._state.take(size)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            while not self._state.pending and not self._state.ended:
                await self._pump()
            if not self._state.pending:
                return
            yield self._state.take(-1)

    def remaining(self) -> bytes:
        """Bytes received after this message."""
        return self._state.reader.remaining()

    async def aclose(self) -> None:
        """Consume the rest of the message."""
        while not self._state.ended:
            await self._pump()
            self._state.pending.clear()


class AsyncMessageOutputStream:
    """Write one MSL message to an asyncio stream writer."""

    def __init__(self, writer: MessageWriter, sink: _AsyncSink) -> None:
        self._writer = writer
        self._sink = sink
        self._started = False

    async def _start(self) -> None:
        if not self._started:
            self._started = True
            self._sink.write(self._writer.header_bytes())
            await self._sink.drain()

    async def _send(self, out: bytes) -> None:
        await self._start()
        if out:
            self._sink.write(out)
            await self._sink.drain()

    async def write(self, data: bytes) -> None:
        """Write payload bytes; full chunks are sent as they fill."""
        await self._send(self._writer.write(data))

    async def flush(self) -> None:
        """Send buffered data as a chunk."""
        await self._send(self._writer.flush())

    async def aclose(self) -> None:
        """Send the end-of-message chunk."""
        await self._send(self._writer.close())
