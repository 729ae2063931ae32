"""Transport interfaces the engine talks through, and an in-memory loopback.

A :class:`Channel` is one bidirectional byte stream carrying a request and its
response. A trusted-network client opens a new channel for every exchange (and every
resend), as the reference does over HTTP. Real transports (HTTP, TCP) live in
:mod:`missile.transport`; :class:`LoopbackTransport` connects a client to a server in
the same process for tests and demos.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from missile.deadlines import Deadlines
from missile.engine.errors import ReadTimeout

__all__ = [
    "Channel",
    "ClientTransport",
    "CountingChannel",
    "LoopbackTransport",
    "PipeChannel",
    "TimedChannel",
    "channel_pair",
]


class Channel(Protocol):
    """One exchange's byte stream."""

    @property
    def one_exchange(self) -> bool:
        """True when the channel carries one exchange and then ends (HTTP, the in-memory
        pair): after the response, a requester reads the messages the server pushes until
        the channel ends (control.md §4.5). False when the connection carries more
        exchanges (TCP): its end may be far away, so a requester must not wait for it.
        Implementations declare it as a class attribute, or a property of a wrapper
        that answers for the channel it wraps."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes."""
        ...

    async def finish(self) -> None:
        """Signal the end of what this side sends."""
        ...

    async def read(self, n: int = 65536) -> bytes:
        """Receive up to ``n`` bytes; b"" at the end of the peer's data."""
        ...

    async def close(self) -> None:
        """Release the channel."""
        ...


class TimedChannel:
    """A channel whose reads fail with :class:`~missile.engine.errors.ReadTimeout` when
    the peer sends nothing for ``timeout`` seconds (a stalled or slow-loris peer).

    Each read gets the whole ``timeout``, counted from its start; the reads share one
    timer (:class:`~missile.deadlines.Deadlines`) instead of an ``asyncio.timeout``
    each, which cost about 4 us per read. :meth:`close` (or :meth:`disarm`, when the
    channel is closed by someone else) drops the timer."""

    def __init__(self, channel: Channel, timeout: float) -> None:
        self._channel = channel
        self.timeout = timeout
        self._deadlines: Deadlines | None = None

    @property
    def one_exchange(self) -> bool:
        """The wrapped channel's."""
        return self._channel.one_exchange

    async def write(self, data: bytes) -> None:
        """Send bytes."""
        await self._channel.write(data)

    async def finish(self) -> None:
        """Signal the end of what this side sends."""
        await self._channel.finish()

    async def read(self, n: int = 65536) -> bytes:
        """Receive up to ``n`` bytes; ReadTimeout after the timeout without data."""
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines(asyncio.get_running_loop(), self.timeout)
        try:
            return await deadlines.run(self._channel.read(n))
        except TimeoutError:
            raise ReadTimeout(self.timeout) from None

    def disarm(self) -> None:
        """Drop the timer (the channel will not be read again)."""
        if self._deadlines is not None:
            self._deadlines.close()

    async def close(self) -> None:
        """Release the channel."""
        self.disarm()
        await self._channel.close()


class CountingChannel:
    """A channel that counts the bytes written to it and read from it (for observers)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self.sent = 0
        """Bytes written so far."""
        self.received = 0
        """Bytes read so far."""

    async def write(self, data: bytes) -> None:
        """Send bytes, counting them."""
        self.sent += len(data)
        await self._channel.write(data)

    async def finish(self) -> None:
        """Signal the end of what this side sends."""
        await self._channel.finish()

    async def read(self, n: int = 65536) -> bytes:
        """Receive up to ``n`` bytes, counting them."""
        data = await self._channel.read(n)
        self.received += len(data)
        return data

    async def close(self) -> None:
        """Release the channel."""
        await self._channel.close()

    @property
    def one_exchange(self) -> bool:
        """The wrapped channel's: True when it carries one exchange (HTTP), False when
        the connection carries more (TCP), where reading pushes must not wait for its end."""
        return self._channel.one_exchange


class ClientTransport(Protocol):
    """Opens channels to the server."""

    async def connect(self) -> Channel:
        """A new channel for one request and its response."""
        ...


class _Pipe:
    """One direction of an in-memory pair: chunks in order, and the reader's waiter.

    A deque and one future rather than an ``asyncio.Queue``: a pipe has one reader, and
    the queue's coroutine ``put`` and getter bookkeeping cost more than the rest of the
    loopback's plumbing.
    """

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.buffer = b""
        self.eof = False

    def put_nowait(self, data: bytes) -> None:
        """Queue a chunk (b"" marks the end) and wake the reader."""
        self.chunks.append(data)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> bytes:
        """The next chunk, waiting for it."""
        while not self.chunks:
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self.waiter = None
        return self.chunks.popleft()


class PipeChannel:
    """One end of an in-memory channel pair."""

    one_exchange = True
    """A pair carries one exchange (:class:`LoopbackTransport` opens one per request)."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing

    async def write(self, data: bytes) -> None:
        """Send bytes to the other end."""
        if data:
            self._out.put_nowait(bytes(data))

    async def finish(self) -> None:
        """Signal the end of what this side sends."""
        self._out.put_nowait(b"")

    async def read(self, n: int = 65536) -> bytes:
        """Receive up to ``n`` bytes; b"" once the other end finished."""
        pipe = self._in
        if not pipe.buffer:
            if pipe.eof:
                return b""
            pipe.buffer = await pipe.get()
            if not pipe.buffer:
                pipe.eof = True
                return b""
        out, pipe.buffer = pipe.buffer[:n], pipe.buffer[n:]
        return out

    async def close(self) -> None:
        """Release the channel."""
        await self.finish()


def channel_pair() -> tuple[PipeChannel, PipeChannel]:
    """Two connected in-memory channel ends."""
    a, b = _Pipe(), _Pipe()
    return PipeChannel(a, b), PipeChannel(b, a)


class LoopbackTransport:
    """A client transport that hands each new channel to an in-process server coroutine."""

    def __init__(self, serve: Callable[[Channel], Awaitable[object]]) -> None:
        self._serve = serve
        self._tasks: set[asyncio.Task[object]] = set()
        self.connections = 0
        """Number of channels opened so far (tests count round trips with it)."""

    async def connect(self) -> Channel:
        """A new in-memory channel to the server, served by its own task."""
        client_end, server_end = channel_pair()
        self.connections += 1
        task: asyncio.Task[object] = asyncio.ensure_future(self._serve(server_end))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client_end
