"""MSL over a raw TCP connection carrying many messages (asyncio streams).

MSL messages delimit themselves (a header, then chunks up to the end-of-message
chunk), so one connection carries request after response after request. Exchanges on
a connection are in lockstep: the client sends a request and reads its response before
sending the next. Messages must end with an end-of-message chunk (or be an error or
handshake message); a peer that ends a response after its header without one (as the
Java reference's automatic handshake response does) can only be used over HTTP.

Peers (:class:`~missile.engine.peer.MslPeer`) use one connection the same way, except
that the requester's key-exchange answer gets no reply, so the next request can follow
it in the same segment: :func:`serve_peer_tcp` and :func:`connect_peer_tcp` read each
connection through one :class:`~missile.engine.message_io.MessageStream`, which keeps
the bytes after a message for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from missile.deadlines import Deadlines, check_seconds_or_none
from missile.engine.errors import ReadTimeout
from missile.engine.message_io import MessageStream
from missile.engine.peer import MslPeer
from missile.engine.server import MslServer
from missile.errors import MslError, MslException

__all__ = ["MAX_CONNECTIONS", "PeerConnection", "TcpTransport", "connect_peer_tcp", "serve_peer_tcp", "serve_tcp"]

#: Seconds a peer connection may carry nothing before it is closed: a peer that went
#: away without closing its end must not hold the connection (and its task) forever.
PEER_READ_TIMEOUT_S = 300.0

#: Connections one listener keeps open at once; one more is closed as soon as it is
#: accepted. Each open connection holds a task, buffers and a file descriptor, so a
#: party that opens connections without end must meet a bound well below the process's
#: descriptor limit (commonly 1,024), leaving room for the state, logs and clients.
MAX_CONNECTIONS = 512

_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _capped(handle: _Handler, max_connections: int) -> _Handler:
    """``handle`` for at most ``max_connections`` connections at once; a connection over
    the cap is closed unanswered (TCP has no "busy" answer; the other side sees EOF)."""
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections}")
    open_now = 0

    async def capped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now
        if open_now >= max_connections:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            return
        open_now += 1
        try:
            await handle(reader, writer)
        finally:
            open_now -= 1

    return capped


class _StreamChannel:
    one_exchange = False
    """Many exchanges share the connection: nothing after a response belongs to it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        release: asyncio.Lock | None,
        read_timeout: float | None = None,
    ):
        self._reader = reader
        self._writer = writer
        self._release = release
        self._read_timeout = read_timeout
        self._deadlines: Deadlines | None = None  # the reads' bound: one timer for all of them

    async def write(self, data: bytes) -> None:
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def finish(self) -> None:
        # The message ends itself; the connection stays open for the next one.
        await self._writer.drain()

    async def read(self, n: int = 65536) -> bytes:
        if self._read_timeout is None:
            return await self._reader.read(n)
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines(asyncio.get_running_loop(), self._read_timeout)
        try:
            return await deadlines.run(self._reader.read(n))
        except TimeoutError:
            # The connection is out of step with the peer now: drop it.
            self._writer.close()
            raise ReadTimeout(self._read_timeout) from None

    async def close(self) -> None:
        if self._deadlines is not None:
            self._deadlines.close()
        if self._release is not None and self._release.locked():
            self._release.release()
            self._release = None


class TcpTransport:
    """Client transport over one long-lived TCP connection (reopened if it drops).

    A response that stalls for ``read_timeout`` seconds fails with MSL_COMMS_FAILURE
    (:class:`~missile.engine.errors.ReadTimeout`) and the connection is closed.
    """

    def __init__(self, host: str, port: int, *, read_timeout: float | None = 30.0) -> None:
        check_seconds_or_none(read_timeout, "read_timeout")
        self.host = host
        self.port = port
        self.read_timeout = read_timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()
        self.connections = 0
        """TCP connections opened so far."""

    async def connect(self) -> _StreamChannel:
        """A channel on the one TCP connection (opened on first use); exchanges take turns."""
        await self._lock.acquire()
        try:
            if self._streams is None or self._streams[1].is_closing() or self._streams[0].at_eof():
                try:
                    self._streams = await asyncio.open_connection(self.host, self.port)
                except OSError as exc:
                    raise MslException(MslError.MSL_COMMS_FAILURE, f"cannot connect: {exc.strerror or exc}") from exc
                self.connections += 1
        except BaseException:
            self._lock.release()
            raise
        reader, writer = self._streams
        return _StreamChannel(reader, writer, self._lock, self.read_timeout)

    async def aclose(self) -> None:
        """Close the connection."""
        if self._streams is not None:
            self._streams[1].close()
            await self._streams[1].wait_closed()
            self._streams = None


async def serve_tcp(
    server: MslServer, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = MAX_CONNECTIONS
) -> asyncio.Server:
    """Serve ``server`` on TCP: each connection answers messages one after another.

    A connection on which no message starts within the server's ``read_timeout`` is
    closed; one that stalls within a message is answered with MSL_COMMS_FAILURE, then
    closed. Beyond ``max_connections`` open at once, new connections are closed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = _StreamChannel(reader, writer, None)
        try:
            while not reader.at_eof():
                await server.serve_channel(channel)
                # Stop when the peer has closed and nothing is left to read.
                if reader.at_eof():
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ReadTimeout):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(_capped(handle, max_connections), host, port)


class _PeerChannel(_StreamChannel):
    """A peer connection's channel: closing it closes the connection."""

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        # The other peer may have reset it first: it is closed either way.
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


#: One peer-to-peer connection: pass it to :meth:`MslPeer.request` for every exchange,
#: and ``await connection.close()`` when done.
PeerConnection = MessageStream


async def connect_peer_tcp(host: str, port: int, *, read_timeout: float | None = PEER_READ_TIMEOUT_S) -> PeerConnection:
    """Open a connection to a peer listening on ``host``:``port`` (see :func:`serve_peer_tcp`).

    A reply that stalls for ``read_timeout`` seconds fails with MSL_COMMS_FAILURE
    (:class:`~missile.engine.errors.ReadTimeout`) and the connection is closed.
    """
    check_seconds_or_none(read_timeout, "read_timeout")
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise MslException(MslError.MSL_COMMS_FAILURE, f"cannot connect: {exc.strerror or exc}") from exc
    return MessageStream(_PeerChannel(reader, writer, None, read_timeout))


async def serve_peer_tcp(
    peer: MslPeer,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    read_timeout: float | None = PEER_READ_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """Answer peers connecting on TCP with ``peer``: each connection carries request
    after request (and the key-exchange answers between them) until the other peer
    closes it, or sends nothing for ``read_timeout`` seconds. Beyond
    ``max_connections`` open at once, new connections are closed."""
    check_seconds_or_none(read_timeout, "read_timeout")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = _PeerChannel(reader, writer, None, read_timeout)
        try:
            await peer.serve_channel(MessageStream(channel))
        except (ConnectionError, asyncio.IncompleteReadError, ReadTimeout):
            pass
        finally:
            await channel.close()

    return await asyncio.start_server(_capped(handle, max_connections), host, port)
