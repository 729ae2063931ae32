"""A lean HTTP/1.1 client transport: an asyncio protocol, httptools parsing, pooled
keep-alive connections.

:class:`PooledHttpTransport` speaks the same framing as
:class:`~missile.transport.http.HttpTransport` (``POST``, one MSL message per body, status
200) without httpx's layers, which cost more per request than MSL itself on small
messages. It suits a client sending many messages to one server: connections are kept
open and reused, a small message leaves as one write with a ``Content-Length``, a large
one streams with chunked encoding. Responses are parsed with httptools (llhttp, the C
parser uvicorn uses); requests are formatted directly. Plain ``http://`` and ``https://``
URLs; no proxies, no redirects, no HTTP/2: use :class:`~missile.transport.http.HttpTransport`
for those.

Every network failure, timeout, malformed or truncated response and non-200 status is an
``MSL_COMMS_FAILURE``. A connection goes back to the pool only when its request and
response both completed and the server did not ask to close it; informational (1xx)
responses are skipped; response headers are limited to :data:`MAX_HEAD_SIZE` bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import ssl
from typing import cast
from urllib.parse import urlsplit

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from missile.errors import MslError, MslException

__all__ = ["PooledHttpTransport"]

#: Request bodies below this size are sent whole with a Content-Length.
COALESCE_LIMIT = 64 * 1024
#: Most bytes of response head (status lines and headers, 1xx responses included), and
#: most bytes of chunk framing and trailers without body data in between.
MAX_HEAD_SIZE = 64 * 1024
# Unread response body above which the socket stops being read (and below which it
# resumes), as a StreamReader's limit does.
_READ_HIGH = 256 * 1024
_READ_LOW = 64 * 1024
_VISIBLE_ASCII = re.compile(r"[!-~]+")


def _comms(message: str) -> MslException:
    return MslException(MslError.MSL_COMMS_FAILURE, message)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes requests, parses responses as they arrive.

    The per-exchange state (``active`` to ``request_done``) is reset by :meth:`start`;
    ``broken`` is for good: the connection must not carry another exchange.
    """

    __slots__ = (
        "active", "body", "broken", "buffered", "closed", "complete", "drain_waiter", "error", "framed",
        "head_room", "in_head", "informational", "keep_alive", "loop", "lost", "offset", "parser", "progress",
        "reading_paused", "request_done", "transport", "unframed", "waiter", "writing_paused",
    )  # fmt: skip

    transport: asyncio.Transport
    error: str | None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = HttpResponseParser(self)
        self.closed: asyncio.Future[None] = loop.create_future()
        self.broken = False
        self.lost = False
        self.writing_paused = False
        self.reading_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self.active = False
        self._reset()

    def _reset(self) -> None:
        self.in_head = True  # the final response's headers are still to come
        self.head_room = MAX_HEAD_SIZE
        self.informational = False
        self.framed = False  # the current response has a Content-Length or chunked encoding
        self.keep_alive = False
        self.complete = False  # the final response ended cleanly
        self.error = None
        self.request_done = False
        self.body.clear()
        self.offset = 0  # already read from body[0]
        self.buffered = 0  # unread body bytes
        self.unframed = 0  # bytes parsed since the last body data
        self.progress = False

    def start(self) -> None:
        """Begin an exchange."""
        self._reset()
        self.active = True

    def end(self) -> None:
        """End the exchange: drop what was not read."""
        self.active = False
        self.body.clear()
        self.buffered = self.offset = 0
        if self.reading_paused and not self.broken:
            self.reading_paused = False
            self.transport.resume_reading()

    @property
    def reusable(self) -> bool:
        return (
            self.request_done
            and self.complete
            and self.keep_alive
            and not self.broken
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        self.broken = True
        self.transport.close()

    def fail(self, message: str) -> None:
        """The exchange failed: the connection is dropped at once."""
        if self.error is None:
            self.error = message
        self.broken = True
        self.transport.abort()
        self._wake()
        self._wake_writer()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    # -- writing --------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.error is not None:
            raise _comms(self.error)
        if self.lost or self.transport.is_closing():
            raise _comms("connection closed")
        try:
            self.transport.write(data)
        except OSError as exc:
            self.fail(type(exc).__name__)
            raise _comms(type(exc).__name__) from exc

    async def drain(self, timeout: float) -> None:
        while self.writing_paused and not self.lost and self.error is None:
            waiter = self.drain_waiter = self.loop.create_future()
            timer = self.loop.call_later(timeout, self._timed_out, waiter, "HTTP request timed out")
            try:
                await waiter
            finally:
                timer.cancel()
                self.drain_waiter = None
        if self.error is not None:
            raise _comms(self.error)
        if self.lost:
            raise _comms("connection closed")

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    # -- reading --------------------------------------------------------------------------

    async def wait(self, timeout: float) -> None:
        """Until something arrives (or the connection ends or times out)."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._timed_out, waiter, "HTTP response timed out")
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _timed_out(self, waiter: asyncio.Future[None], message: str) -> None:
        if not waiter.done():
            self.fail(message)

    def take(self, n: int) -> bytes:
        chunk = self.body[0]
        if not self.offset and len(chunk) <= n:
            self.body.popleft()
            out = chunk
        else:
            out = chunk[self.offset : self.offset + n]
            self.offset += len(out)
            if self.offset >= len(chunk):
                self.body.popleft()
                self.offset = 0
        self.buffered -= len(out)
        if self.reading_paused and self.buffered <= _READ_LOW and not self.broken:
            self.reading_paused = False
            self.transport.resume_reading()
        return out

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete or self.error is not None:
            # Nothing is owed on this connection: it is out of step with the server.
            self.close()
            return
        if self.in_head:
            room = self.head_room
            if len(data) > room:
                # Feed no more head than allowed: the parser buffers header lines.
                self.head_room = 0
                self._feed(data[:room])
                if self.in_head and self.error is None:
                    self.fail("HTTP response headers too large")
                if self.error is not None:
                    return
                data = data[room:]
            else:
                self.head_room = room - len(data)
        if self.in_head:
            self._feed(data)
        else:
            self.progress = False
            self._feed(data)
            if self.progress or self.complete:
                self.unframed = 0
            else:
                self.unframed += len(data)
                if self.unframed > MAX_HEAD_SIZE:
                    self.fail("HTTP response framing too large")
        self._wake()

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self.fail("HTTP response switches protocols")
        except HttpParserError:
            if self.complete:
                self.close()  # trailing data after the response: not reusable
            else:
                self.fail("malformed HTTP response")

    def eof_received(self) -> bool | None:
        self._ended(clean=True)
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._ended(clean=exc is None)
        self._wake_writer()
        if not self.closed.done():
            self.closed.set_result(None)

    def _ended(self, *, clean: bool) -> None:
        self.broken = True
        if self.active and not self.complete and self.error is None:
            if clean and not self.in_head and not self.framed:
                self.complete = True  # a body delimited by the end of the connection
            else:
                self.error = "connection closed before the HTTP response ended"
        self._wake()

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _Unexpected  # more after the response: stop parsing
        self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_head:
            return  # a trailer
        name = name.lower()
        if name == b"content-length":
            self.framed = True
        elif name == b"transfer-encoding":
            self.framed = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            self.informational = True  # skipped (101 fails with HttpParserUpgrade)
            return
        self.in_head = False
        self.keep_alive = self.parser.should_keep_alive()
        if status != 200:
            self.fail(f"HTTP status {status}")

    def on_body(self, body: bytes) -> None:
        if self.error is None:
            self.body.append(body)
            self.buffered += len(body)
            self.progress = True
            if self.buffered > _READ_HIGH and not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
        elif self.error is None:
            self.complete = True


class _Unexpected(Exception):
    pass


class _PooledChannel:
    """One POST on a pooled connection: the request body out, the response body back."""

    __slots__ = ("_conn", "_finished", "_pending", "_pending_size", "_started", "_transport")

    def __init__(self, transport: PooledHttpTransport, connection: _Connection) -> None:
        self._transport = transport
        self._conn: _Connection | None = connection
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._started = False  # request headers sent
        self._finished = False  # request body complete
        connection.start()

    def _connection(self) -> _Connection:
        if self._conn is None:
            raise _comms("channel closed")
        return self._conn

    async def _send(self, data: bytes) -> None:
        conn = self._connection()
        conn.send(data)
        if conn.writing_paused:
            await conn.drain(self._transport.timeout)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._finished:
            raise _comms("request already finished")
        if self._started:
            await self._send(b"".join((b"%x\r\n" % len(data), data, b"\r\n")))
            return
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size >= COALESCE_LIMIT:
            # A large body streams with chunked encoding from here on.
            self._started = True
            pending, self._pending = self._pending, []
            size = b"%x\r\n" % self._pending_size
            await self._send(b"".join((self._transport._head_chunked, size, *pending, b"\r\n")))

    async def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._started:
            await self._send(b"0\r\n\r\n")
        else:
            self._started = True
            pending, self._pending = self._pending, []
            length = b"Content-Length: %d\r\n\r\n" % self._pending_size
            await self._send(b"".join((self._transport._head, length, *pending)))
        self._connection().request_done = True

    async def read(self, n: int = 65536) -> bytes:
        conn = self._connection()
        if not self._finished:
            await self.finish()  # reading before finishing: the request is complete
        while True:
            if conn.buffered:
                return conn.take(n)
            if conn.error is not None:
                raise _comms(conn.error)
            if conn.complete:
                return b""
            await conn.wait(self._transport.timeout)

    async def close(self) -> None:
        # Whatever already arrived has been parsed: if the caller stopped reading at the
        # end of the MSL message and the HTTP response is complete, the connection is
        # reused; otherwise it is closed.
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport._release(conn)


class PooledHttpTransport:
    """Client transport: each exchange is one POST on a pooled keep-alive connection."""

    def __init__(self, url: str, *, timeout: float = 30.0, max_idle: int = 64) -> None:
        if "\r" in url or "\n" in url or "\t" in url:
            raise ValueError(f"control characters in URL: {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.timeout = timeout
        """Seconds to wait for a connection, for response data, or for the server to take
        request data."""
        self.max_idle = max_idle
        """Most idle connections kept open."""
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc.rpartition("@")[2]
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for value in (self.host_header, self.target):
            if not _VISIBLE_ASCII.fullmatch(value):
                raise ValueError(f"URL needs escaping (spaces, controls or non-ASCII): {url!r}")
        self._head = (
            f"POST {self.target} HTTP/1.1\r\nHost: {self.host_header}\r\nContent-Type: application/octet-stream\r\n"
        ).encode("ascii")
        self._head_chunked = self._head + b"Transfer-Encoding: chunked\r\n\r\n"
        self._idle: list[_Connection] = []
        self.connections = 0
        """Exchanges opened so far."""
        self.sockets = 0
        """TCP connections opened so far."""

    async def connect(self) -> _PooledChannel:
        self.connections += 1
        while self._idle:
            conn = self._idle.pop()
            if not conn.broken and not conn.transport.is_closing():
                return _PooledChannel(self, conn)
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self._host, self._port, ssl=self._ssl),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise _comms(f"cannot connect: {exc}") from exc
        self.sockets += 1
        return _PooledChannel(self, conn)

    def _release(self, conn: _Connection) -> None:
        reusable = conn.reusable
        conn.end()
        if reusable and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(OSError):
                await conn.closed
