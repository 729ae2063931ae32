"""A lean HTTP/1.1 client transport: an asyncio protocol, httptools parsing, pooled
keep-alive connections.

:class:`PooledHttpTransport` speaks the same framing as
:class:`~missile.transport.http.HttpTransport` (``POST``, one MSL message per body, status
200) without httpx's layers, which cost more per request than MSL itself on small
messages. It suits a client sending many messages to one server: connections are kept
open and reused, a small message leaves as one write with a ``Content-Length``, a large
one streams with chunked encoding. Responses are parsed with httptools (llhttp, the C
parser uvicorn uses); requests are formatted directly. Plain ``http://`` and ``https://``
URLs (TLS through an :class:`ssl.SSLContext`, the URL's host checked against the
certificate); no proxies, no redirects, no HTTP/2: use
:class:`~missile.transport.http.HttpTransport` for those.

Every network failure, timeout, malformed or truncated response and non-200 status is an
``MSL_COMMS_FAILURE``. A connection goes back to the pool only when its request and
response both completed and the server did not ask to close it; informational (1xx)
responses are skipped; response headers are limited to :data:`MAX_HEAD_SIZE` bytes.

The pool holds at most ``max_connections`` connections (in use and idle together): a
client with more requests in flight waits, at most ``timeout`` seconds, for one to be
free, so a burst cannot open thousands of sockets against one server. Idle connections
are reused most recent first, and dropped after ``keepalive_expiry`` seconds: servers
close idle connections on their own timers (5 s in uvicorn, Node and Apache), and
reusing one at the moment the server closes it is the race that loses requests.

Servers close idle connections without warning, so a pooled connection can be dead when
it is taken. Before the first byte of a request goes out on a reused connection the
pool checks it: the protocol has seen no EOF, reset or stray data, the transport is not
closing, and a zero-timeout poll of the socket finds nothing waiting that the event loop
has not handled yet (an EOF that arrived a moment ago). A dead connection is replaced by
a fresh one; nothing was sent, so this is always safe.

A server can still close the connection while the request is on its way. The request is
then sent again, once, on a fresh connection, but only when the server provably did not
read it, because an MSL request is not idempotent (it can carry a non-replayable message,
a key exchange, a user authentication). Each of these must hold:

- the connection carried an earlier exchange (a fresh connection that fails is not
  stale: the failure is reported);
- the whole request went out in one write and is still held (a small, coalesced
  request; a large streamed one is never resent);
- no byte of a response arrived;
- the server's kernel refused the request: the connection was reset (``ECONNRESET`` or
  ``EPIPE``), or it ended with an EOF while a reset was already pending on the socket
  (the server closed, then its kernel answered our request with a reset). A TCP stack
  resets a connection when data arrives after the application closed its socket, or
  when the application closes it with received data still unread; in both cases the
  server application did not read the request to its end.

A plain EOF with no reset pending is never retried: the server may have read the
request, acted on it and closed without answering. (A "resend whatever failed before a
response on a reused connection" rule would resend that request too; httpx does not
resend a failed POST at all, and Go's client only one of which nothing was written.) The
one case the rule cannot tell apart is a server (or proxy) that reads a whole request
and then deliberately resets the connection without answering; MSL's non-replayable
message IDs make a resent non-replayable message fail, but other messages would be
delivered twice. Some closes are reported rather than resent: over a real network a
close that crosses the request in flight usually arrives as a plain EOF before the
server's reset, and a TLS server that consumes the request while shutting down its TLS
session sends no reset at all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import re
import select
import socket
import ssl
import time
from typing import cast
from urllib.parse import urlsplit

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from missile.deadlines import check_seconds
from missile.errors import MslError, MslException
from missile.observe.base import trace_headers

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
# Errors with which a server's kernel refuses data its application did not read.
_REFUSED = (ConnectionResetError, BrokenPipeError)
_CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"


def _comms(message: str) -> MslException:
    return MslException(MslError.MSL_COMMS_FAILURE, message)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes requests, parses responses as they arrive.

    The per-exchange state (``active`` to ``request_done``, ``received``, ``refused``) is
    reset by :meth:`start`; ``broken`` is for good: the connection must not carry another
    exchange.
    """

    __slots__ = (
        "active", "body", "broken", "buffered", "closed", "complete", "drain_waiter", "error", "framed",
        "head_room", "idle_since", "in_head", "informational", "keep_alive", "loop", "lost", "offset", "parser",
        "poller", "progress", "reading_paused", "received", "refused", "request_done", "transport", "unframed",
        "uses", "waiter", "writing_paused",
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
        self.uses = 0  # exchanges started on this connection
        self.idle_since = 0.0  # when it last went back to the pool
        self.poller: select.poll | None = None
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
        self.received = False  # a byte of the response arrived
        self.refused = False  # the server's kernel reset the connection before any response

    def start(self) -> None:
        """Begin an exchange."""
        self._reset()
        self.active = True
        self.uses += 1

    @property
    def usable(self) -> bool:
        """Not known to be dead (what the event loop has seen)."""
        return not self.broken and not self.transport.is_closing()

    def alive(self) -> bool:
        """Usable, and nothing waiting on the socket that the loop has not handled yet: on
        an idle connection any readable event is an EOF, a reset or stray data."""
        if not self.usable:
            return False
        poller = self.poller
        if poller is None:
            sock = self.transport.get_extra_info("socket")
            if sock is None or not hasattr(select, "poll"):
                return True
            poller = self.poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)

    def _reset_pending(self) -> bool:
        """Whether the socket holds a reset (SO_ERROR) the loop has not reported."""
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        except OSError:
            return False

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
        self.received = True
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
        if self.active and not self.received and self.error is None:
            # Did the server's kernel answer the request with a reset after its FIN?
            self.refused = self._reset_pending()
        self._ended(clean=True)
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.active and not self.received and self.error is None and isinstance(exc, _REFUSED):
            self.refused = True
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

    __slots__ = ("_conn", "_finished", "_head", "_pending", "_pending_size", "_request", "_started", "_transport")

    one_exchange = True
    """A POST carries one exchange, although the connection is kept for the next: its
    response body ends where the exchange does."""

    def __init__(self, transport: PooledHttpTransport, connection: _Connection, head: bytes) -> None:
        self._transport = transport
        self._head = head  # the request line and headers, up to the framing header
        self._conn: _Connection | None = connection
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._started = False  # request headers sent
        self._finished = False  # request body complete
        self._request: bytes | None = None  # the whole request, while it may be resent
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

    async def _send_first(self, data: bytes) -> None:
        """Send the first bytes of the request, on a live connection."""
        conn = self._connection()
        if conn.uses > 1 and not conn.alive():
            await self._reconnect(conn)  # nothing sent yet: always safe
        await self._send(data)

    async def _reconnect(self, conn: _Connection) -> _Connection:
        """Move the exchange to a fresh connection (which takes over ``conn``'s slot)."""
        self._conn = None
        conn.end()
        fresh = await self._transport._replace(conn)
        fresh.start()
        self._conn = fresh
        return fresh

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
            # A large body streams with chunked encoding from here on (and is never resent).
            self._started = True
            pending, self._pending = self._pending, []
            size = b"%x\r\n" % self._pending_size
            await self._send_first(b"".join((self._head, _CHUNKED, size, *pending, b"\r\n")))

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
            request = self._request = b"".join((self._head, length, *pending))
            conn = self._connection()
            if conn.uses > 1 and not conn.alive():
                conn = await self._reconnect(conn)  # nothing sent yet: always safe
            conn.send(request)
            if conn.writing_paused:
                await conn.drain(self._transport.timeout)
        self._connection().request_done = True

    def _resendable(self, conn: _Connection) -> bool:
        """Whether the server provably did not take the request (see the module docstring)."""
        return self._request is not None and conn.refused and conn.uses > 1 and conn.request_done

    async def _resend(self, conn: _Connection) -> _Connection:
        request, self._request = self._request, None  # once
        assert request is not None
        conn = await self._reconnect(conn)
        self._transport.resent += 1
        await self._send(request)
        conn.request_done = True
        return conn

    async def read(self, n: int = 65536) -> bytes:
        conn = self._connection()
        if not self._finished:
            await self.finish()  # reading before finishing: the request is complete
            conn = self._connection()
        while True:
            if conn.buffered:
                return conn.take(n)
            error = conn.error
            if error is not None:
                if self._resendable(conn):
                    conn = await self._resend(conn)
                    continue
                raise _comms(error)
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
    """Client transport: each exchange is one POST on a pooled keep-alive connection.

    ``timeout``: seconds to wait for a connection (a free place under
    ``max_connections`` and the TCP and TLS handshakes together), for response data, or
    for the server to take request data. ``max_idle``: most idle connections kept open.
    ``max_connections``: most connections open at once, in use and idle (at least 1).
    ``keepalive_expiry``: seconds an idle connection is kept for reuse (``None``: no
    limit). ``ssl_context``: the TLS configuration for an ``https://`` URL (trusted CAs,
    client certificate, protocol versions); by default :func:`ssl.create_default_context`,
    the system's CAs. The certificate must match the URL's host in either case.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_idle: int = 64,
        max_connections: int = 100,
        keepalive_expiry: float | None = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if "\r" in url or "\n" in url or "\t" in url:
            raise ValueError(f"control characters in URL: {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if ssl_context is not None and parts.scheme != "https":
            raise ValueError(f"ssl_context given for a URL without TLS: {url!r}")
        if max_connections < 1 or max_idle < 0:
            raise ValueError("max_connections must be at least 1 and max_idle at least 0")
        check_seconds(timeout, "timeout")
        if keepalive_expiry is not None and not 0 <= keepalive_expiry < math.inf:  # NaN fails too
            raise ValueError("keepalive_expiry must be a finite number of seconds, 0 or more (None: no limit)")
        self.url = url
        self.timeout = timeout
        """Seconds to wait for a connection (a free place in the pool and the handshakes),
        for response data, or for the server to take request data."""
        self.max_idle = max_idle
        """Most idle connections kept open."""
        self.max_connections = max_connections
        """Most connections open at once, in use and idle. Requests beyond it wait (up to
        ``timeout``) for one to be free. 100 by default: more than a client's useful
        concurrency against one server, well under servers' per-client and file
        descriptor limits."""
        self.keepalive_expiry = keepalive_expiry
        """Seconds an idle connection may be reused for. 4 by default: below the 5 s after
        which uvicorn, Node and Apache close idle connections (their clock starts when they
        send the response, ours when it has arrived)."""
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.host_header = parts.netloc.rpartition("@")[2]
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for value in (self.host_header, self.target):
            if not _VISIBLE_ASCII.fullmatch(value):
                raise ValueError(f"URL needs escaping (spaces, controls or non-ASCII): {url!r}")
        self._head = self._head_for(self.target)
        self._idle: list[_Connection] = []  # oldest first
        self._open = 0  # connections open or opening, in use or idle
        # Requests waiting for a connection, first come first served: each gets a released
        # connection, or None for the place of a closed one.
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self.connections = 0
        """Exchanges opened so far."""
        self.sockets = 0
        """TCP connections opened so far."""
        self.resent = 0
        """Requests sent again on a fresh connection after a reused one was found reset."""

    async def connect(self, path: str | None = None) -> _PooledChannel:
        """A channel for one exchange: a POST to the URL's path, or to ``path`` (a path and
        optional query on the same host, e.g. ``"/msl/notes"``) sharing this pool."""
        head = self._head if path is None else self._head_for(path)
        traced = trace_headers()
        if traced:
            head += "".join(f"{name}: {value}\r\n" for name, value in traced.items()).encode("ascii")
        self.connections += 1
        conn = self._take_idle()
        if conn is None:
            conn = await self._acquire()
        return _PooledChannel(self, conn, head)

    def _head_for(self, path: str) -> bytes:
        if not path.startswith("/") or not _VISIBLE_ASCII.fullmatch(path):
            raise ValueError(f"not an escaped absolute path: {path!r}")
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host_header}\r\nContent-Type: application/octet-stream\r\n"
        return head.encode("ascii")

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        if self.keepalive_expiry is not None and idle[0].idle_since < time.monotonic() - self.keepalive_expiry:
            self._expire(self.keepalive_expiry)
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
            conn.close()
            self._free_place()
        return None

    def _expire(self, expiry: float) -> None:
        oldest = time.monotonic() - expiry
        expired = 0
        for conn in self._idle:
            if conn.idle_since >= oldest:
                break
            expired += 1
        gone, self._idle[:expired] = self._idle[:expired], []
        for conn in gone:
            conn.close()
            self._free_place()

    async def _acquire(self) -> _Connection:
        """A connection for a request when none is idle: a new one while the pool has room,
        else the first released one (or the place of the first closed one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        if self._open < self.max_connections and not self._waiters:
            self._open += 1
        else:
            conn = await self._wait(loop, deadline)
            if conn is not None:
                if conn.usable:
                    return conn
                conn.close()  # its place is ours
        try:
            return await self._new(loop, deadline)
        except BaseException:
            self._free_place()
            raise

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, self._wait_expired, waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on(waiter.result())  # handed over as this task was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _wait_expired(self, waiter: asyncio.Future[_Connection | None]) -> None:
        if not waiter.done():
            message = f"no free connection in {self.timeout} s (max_connections={self.max_connections})"
            waiter.set_exception(_comms(message))

    def _pass_on(self, conn: _Connection | None) -> None:
        if conn is None:
            self._free_place()
        else:
            self._give(conn)

    async def _new(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """Open a connection (its place in the pool already taken)."""
        tls = self._ssl
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), self._host, self._port,
                    ssl=tls, server_hostname=self._host if tls is not None else None,
                )  # fmt: skip
        except TimeoutError:
            raise _comms(f"cannot connect: no connection in {self.timeout} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise _comms(f"cannot connect: TLS certificate not trusted: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise _comms(f"cannot connect: TLS handshake failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise _comms(f"cannot connect: {exc}") from exc
        self.sockets += 1
        return conn

    async def _replace(self, conn: _Connection) -> _Connection:
        """Close ``conn`` and open a fresh connection in its place."""
        conn.close()
        loop = asyncio.get_running_loop()
        try:
            return await self._new(loop, loop.time() + self.timeout)
        except BaseException:
            self._free_place()
            raise

    def _free_place(self) -> None:
        """A connection was closed: its place goes to the first waiting request."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1

    def _give(self, conn: _Connection) -> None:
        """A live connection is free: to the first waiting request, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if len(self._idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
            self._open -= 1

    def _release(self, conn: _Connection) -> None:
        reusable = conn.reusable
        conn.end()
        if reusable:
            self._give(conn)
        else:
            conn.close()
            self._free_place()

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._free_place()
        for conn in idle:
            with contextlib.suppress(OSError):
                await conn.closed
