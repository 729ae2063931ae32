"""Reading and writing whole MSL messages on a channel: the engine's one copy of each loop.

A channel delivers bytes in whatever pieces the network made, and one read may hold the
end of one message and the start of the next (a peer answering a key exchange and then
sending its next request, two writes that TCP coalesced). The sans-IO
:class:`~missile.messages.reader.MessageReader` never consumes past its message and gives
the rest back (:meth:`~missile.messages.reader.MessageReader.remaining`); a
:class:`MessageStream` keeps those bytes and hands them to the reader of the next message
before reading the channel again. Every receiving loop of the engine (client, server,
peer, a streamed body) goes through :func:`read_head` and :func:`read_payload`, so the
rule "nothing after a message is lost" lives here once.

:func:`write_message` is the matching sending loop: the header goes out together with the
first payload chunk, so that a failure while producing the data leaves nothing sent and
the other side can still get a proper error message.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from missile.crypto.context import CryptoContext
from missile.engine.transport import Channel
from missile.errors import MslError, MslMessageException
from missile.messages.error_header import ErrorHeader
from missile.messages.events import Event, PayloadReceived
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader
from missile.messages.writer import MessageWriter

__all__ = ["Message", "MessageStream", "read_head", "read_message", "read_payload", "read_rest", "write_message"]

#: Application data to send: bytes-like, or an async iterable producing it piece by piece.
Data = bytes | bytearray | memoryview | AsyncIterable[bytes]


class MessageStream:
    """A channel read message after message: bytes past a message's end wait for the next.

    It is a :class:`~missile.engine.transport.Channel` itself (writes, ``finish`` and
    ``close`` go to the wrapped channel), so it can be handed wherever a channel is taken.
    Wrap a connection once and read every message of it through the same stream.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._kept = b""
        self._eof = False
        self._finished: MessageReader | None = None

    @property
    def one_exchange(self) -> bool:
        """The wrapped channel's."""
        return self.channel.one_exchange

    @property
    def at_eof(self) -> bool:
        """True once the channel ended and no kept bytes are left."""
        return self._eof and not self._kept

    def keep_rest(self, reader: MessageReader) -> None:
        """Hold what ``reader`` received after its finished message for the next read
        (once per reader: asking again would hand out the same bytes twice)."""
        if reader.done and reader is not self._finished:
            self._finished = reader
            self._kept = reader.remaining() + self._kept

    async def ended(self) -> bool:
        """True when nothing more will come: no kept bytes and the channel ended. Reads
        the channel once when it must, keeping what arrived for the next :meth:`read` (so
        a reader for a next message is built only when there are bytes to give it)."""
        if self._kept:
            return False
        if self._eof:
            return True
        data = await self.channel.read()
        if not data:
            self._eof = True
            return True
        self._kept = data
        return False

    async def read(self, n: int = 65536) -> bytes:
        """Kept bytes first, then the channel's; b"" at the end (and from then on)."""
        if self._kept:
            data, self._kept = self._kept, b""
            return data
        if self._eof:
            return b""
        data = await self.channel.read(n)
        if not data:
            self._eof = True
        return data

    async def write(self, data: bytes) -> None:
        """Send bytes on the channel."""
        await self.channel.write(data)

    async def finish(self) -> None:
        """Signal the end of what this side sends."""
        await self.channel.finish()

    async def close(self) -> None:
        """Release the channel."""
        await self.channel.close()


def _keep_rest(channel: Channel, reader: MessageReader) -> None:
    """Give the bytes after a finished message back to a stream (a plain channel has
    nowhere to keep them: only single-message readers, which refuse such bytes, use one)."""
    if isinstance(channel, MessageStream):
        channel.keep_rest(reader)


def _collect(events: list[Event], pending: list[bytes]) -> None:
    for event in events:
        if isinstance(event, PayloadReceived) and event.data:
            pending.append(event.data)


async def read_head(channel: Channel, reader: MessageReader, pending: list[bytes]) -> bool:
    """Feed ``reader`` from ``channel`` until its header or error header has arrived.

    Payload chunks that arrived with the header (already verified) are appended to
    ``pending``. Returns False when the channel ended before a message started (only
    whitespace, or nothing); a channel ending inside a header raises MSL_PARSE_ERROR.
    """
    started = False
    while reader.header is None and reader.error_header is None:
        data = await channel.read()
        if not data:
            if not started:
                return False
            _collect(reader.end_of_stream(), pending)  # raises: the header is incomplete
            break
        started = started or bool(data.strip())
        _collect(reader.feed(data), pending)
    _keep_rest(channel, reader)
    return True


async def read_payload(channel: Channel, reader: MessageReader, pending: list[bytes]) -> AsyncIterator[bytes]:
    """The rest of ``reader``'s payload after :func:`read_head`: the chunks in
    ``pending``, then each one as it arrives and verifies, up to the end of the message
    (or of the channel, which completes a header-only message)."""
    while True:
        while pending:
            yield pending.pop(0)
        if reader.done:
            _keep_rest(channel, reader)
            return
        data = await channel.read()
        _collect(reader.feed(data) if data else reader.end_of_stream(), pending)
        if not data and not pending:
            return


async def read_rest(
    channel: Channel, reader: MessageReader, pending: list[bytes], limit: int | None = None, what: str = "payload"
) -> bytes:
    """The rest of ``reader``'s payload, whole: what :func:`read_payload` yields, joined.

    The loop of :func:`read_payload` without the async generator: a buffered payload
    (every request a non-streaming server reads, every response a client buffers) is
    read this way, and an async generator's setup, its registration with the event loop
    and its finalization cost more than the loop itself. More than ``limit`` bytes is
    MESSAGE_FORMAT_ERROR ("``what`` exceeds ``limit`` bytes").
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        while pending:
            chunk = pending.pop(0)
            size += len(chunk)
            if limit is not None and size > limit:
                raise MslMessageException(MslError.MESSAGE_FORMAT_ERROR, f"{what} exceeds {limit} bytes")
            chunks.append(chunk)
        if reader.done:
            _keep_rest(channel, reader)
            break
        data = await channel.read()
        _collect(reader.feed(data) if data else reader.end_of_stream(), pending)
        if not data and not pending:
            break
    return b"".join(chunks)


@dataclass(frozen=True)
class Message:
    """One whole received message."""

    header: MessageHeader | None
    """The header (None for an error message)."""
    error: ErrorHeader | None
    """The error header of an error message."""
    payload: bytes = field(repr=False)
    """The application data (plaintext: never in the repr)."""
    key_exchange_crypto_context: CryptoContext | None
    """The session keys of key response data in the header, if any."""
    handshake: bool
    """A handshake, including the legacy form (messages.md §9)."""


async def read_message(channel: Channel, reader: MessageReader, *, max_payload: int | None = None) -> Message | None:
    """Read one whole message; None when the channel ended before one started.

    A handshake header is not followed by application data, and the sender may wait for
    the answer before it sends anything else: reading stops at it. More than
    ``max_payload`` bytes of application data is MESSAGE_FORMAT_ERROR.
    """
    pending: list[bytes] = []
    if not await read_head(channel, reader, pending):
        return None
    payload = b""
    if reader.header is not None and not reader.header.is_handshake:
        payload = await read_rest(channel, reader, pending, max_payload)
    return Message(reader.header, reader.error_header, payload, reader.key_exchange_crypto_context, reader.is_handshake)


async def write_message(
    channel: Channel, writer: MessageWriter, data: Data | None, chunk_size: int, *, header_first: bool = False
) -> None:
    """Send ``writer``'s message: the header with the first chunk (or on its own first,
    with ``header_first``), then ``data`` in chunks of ``chunk_size``, then the
    end-of-message chunk. ``None`` sends the header alone (a handshake has no payload)."""
    head = writer.header_bytes()
    if data is None or header_first:
        await channel.write(head)
        head = b""
    if data is None:
        return
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), chunk_size):
            out = writer.write(view[start : start + chunk_size])
            if out:
                await channel.write(head + out if head else out)
                head = b""
    else:
        async for piece in data:
            out = writer.write(piece)
            if out:
                await channel.write(head + out if head else out)
                head = b""
    await channel.write(head + writer.close())
