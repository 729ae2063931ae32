"""A lean HTTP/1.1 client transport: asyncio streams, h11 framing, pooled keep-alive
connections.

:class:`PooledHttpTransport` speaks the same framing as
:class:`~missile.transport.http.HttpTransport` (``POST``, one MSL message per body, status
200) without httpx's layers, which cost more per request than MSL itself on small
messages. It suits a client sending many messages to one server: connections are kept
open and reused, a small message leaves as one write with a ``Content-Length``, a large
one streams with chunked encoding. Plain ``http://`` and ``https://`` URLs; no proxies,
no redirects, no HTTP/2: use :class:`~missile.transport.http.HttpTransport` for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

import h11

from missile.errors import MslError, MslException

__all__ = ["PooledHttpTransport"]

#: Request bodies below this size are sent whole with a Content-Length.
COALESCE_LIMIT = 64 * 1024
_READ_SIZE = 65536


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def close(self) -> None:
        self.writer.close()


class _PooledChannel:
    """One POST on a pooled connection: the request body out, the response body back."""

    def __init__(self, transport: PooledHttpTransport, connection: _Connection) -> None:
        self._transport = transport
        self._conn: _Connection | None = connection
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._started = False  # request headers sent
        self._finished = False  # request body complete
        self._response = False  # response headers received
        self._eof = False  # response body complete
        self._buffer = b""

    def _connection(self) -> _Connection:
        if self._conn is None:
            raise MslException(MslError.MSL_COMMS_FAILURE, "channel closed")
        return self._conn

    async def _send(self, *events: h11.Event) -> None:
        conn = self._connection()
        try:
            conn.writer.write(b"".join(conn.h11.send(event) or b"" for event in events))
            await conn.writer.drain()
        except (OSError, h11.LocalProtocolError) as exc:
            raise MslException(MslError.MSL_COMMS_FAILURE, type(exc).__name__) from exc

    def _request(self, length: int | None) -> h11.Request:
        headers = [("host", self._transport.host_header), ("content-type", "application/octet-stream")]
        if length is None:
            headers.append(("transfer-encoding", "chunked"))
        else:
            headers.append(("content-length", str(length)))
        return h11.Request(method="POST", target=self._transport.target, headers=headers)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._started:
            await self._send(h11.Data(data=bytes(data)))
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size >= COALESCE_LIMIT:
            # A large body streams with chunked encoding from here on.
            self._started = True
            body, self._pending = b"".join(self._pending), []
            await self._send(self._request(None), h11.Data(data=body))

    async def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._started:
            await self._send(h11.EndOfMessage())
            return
        self._started = True
        body, self._pending = b"".join(self._pending), []
        events: list[h11.Event] = [self._request(len(body))]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await self._send(*events)

    async def _next_event(self) -> h11.Event:
        conn = self._connection()
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise MslException(MslError.MSL_COMMS_FAILURE, "malformed HTTP response") from exc
            if event is h11.PAUSED:
                raise MslException(MslError.MSL_COMMS_FAILURE, "HTTP connection out of step")
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                async with asyncio.timeout(self._transport.timeout):
                    data = await conn.reader.read(_READ_SIZE)
            except TimeoutError:
                raise MslException(MslError.MSL_COMMS_FAILURE, "HTTP response timed out") from None
            except OSError as exc:
                raise MslException(MslError.MSL_COMMS_FAILURE, type(exc).__name__) from exc
            conn.h11.receive_data(data)

    async def read(self, n: int = 65536) -> bytes:
        while not self._buffer and not self._eof:
            if not self._finished:
                await self.finish()  # reading before finishing: the request is complete
            event = await self._next_event()
            if isinstance(event, h11.Response):
                if event.status_code != 200:
                    raise MslException(MslError.MSL_COMMS_FAILURE, f"HTTP status {event.status_code}")
                self._response = True
            elif isinstance(event, h11.Data):
                self._buffer = bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._eof = True
            # Informational responses (100 Continue) are skipped.
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if not self._eof and self._finished:
            # The caller stopped reading at the end of the MSL message: take what the
            # server already sent, so the connection can still be reused.
            while True:
                try:
                    event = conn.h11.next_event()
                except h11.RemoteProtocolError:
                    break
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        self._transport._release(conn)


class PooledHttpTransport:
    """Client transport: each exchange is one POST on a pooled keep-alive connection."""

    def __init__(self, url: str, *, timeout: float = 30.0, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.timeout = timeout
        """Seconds to wait for a connection or for response data."""
        self.max_idle = max_idle
        """Most idle connections kept open."""
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._idle: list[_Connection] = []
        self.connections = 0
        """Exchanges opened so far."""
        self.sockets = 0
        """TCP connections opened so far."""

    async def connect(self) -> _PooledChannel:
        self.connections += 1
        while self._idle:
            conn = self._idle.pop()
            if not conn.writer.is_closing() and not conn.reader.at_eof():
                return _PooledChannel(self, conn)
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port, ssl=self._ssl), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise MslException(MslError.MSL_COMMS_FAILURE, f"cannot connect: {exc}") from exc
        self.sockets += 1
        return _PooledChannel(self, _Connection(reader, writer))

    def _release(self, conn: _Connection) -> None:
        h = conn.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE and len(self._idle) < self.max_idle:
            h.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()
