"""uvicorn's httptools protocol with the connection limits a server facing hostile peers needs.

Why a wrapper: uvicorn (0.36 to 0.55) bounds a connection only once a request is under
way. It has no deadline for the request head, so a connection that sends nothing, or
drips a header byte now and then, stays open forever; httptools puts no bound on the
head's size (its Python layer collects a header value until the value ends, so a 64 MiB
header is held in memory); and ``limit_concurrency`` is checked only when a head is
complete, so idle connections are accepted until the process runs out of file
descriptors, after which nobody is served. :class:`HardenedHttpToolsProtocol` adds, per
connection:

- a **head deadline**: a request head must be complete ``head_timeout`` seconds after the
  connection opens, or after its first byte on a kept-alive connection. A connection that
  sent nothing is closed; one that sent part of a head gets ``408``. Idle kept-alive
  connections are closed by uvicorn's own ``timeout_keep_alive``.
- a **head size bound**: bytes are counted while a head is incomplete and the completed
  head is measured; past ``max_head_size`` the answer is ``431``. httptools buffers at
  most one read (256 KiB under uvloop) beyond the bound.
- a **connection cap checked at accept**: past ``max_connections`` open connections a new
  one is answered ``503`` at once and closed, so the process never runs out of
  descriptors. :func:`fit_open_file_limit` raises the soft ``RLIMIT_NOFILE`` to fit the
  cap (or lowers the cap to the hard limit).

The fast path stays as it was: no task per request, and one timer per connection that
is re-armed lazily (a request only records its deadline; the timer, when it fires early,
sleeps until the recorded deadline). It is a system call shorter: a response's head
leaves with its first body write instead of on its own (:class:`_ResponseWrites`).

Refusals are written as a complete minimal response, then the write side is shut and
whatever the peer still sends is read and dropped for a second (and at most 256 KiB)
before the socket closes: closing with unread data would make the kernel reset the
connection, and the peer might never see the status. At most :data:`MAX_REFUSING` refused connections per
server linger; beyond that they are dropped at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from missile.deadlines import check_seconds

__all__ = ["ConnectionLimits", "HardenedHttpToolsProtocol", "fit_open_file_limit", "protocol_with"]

log = logging.getLogger(__name__)

#: Seconds a refused connection is drained before it is closed (see the module docstring).
REFUSAL_LINGER_S = 1.0
#: Bytes drained from a refused connection; a peer that sends more is cut off at once.
REFUSAL_DRAIN_BYTES = 256 * 1024
#: Refused connections draining at once, per server; more are dropped without an answer.
MAX_REFUSING = 64
#: Descriptors kept free beside the connections: listening socket, event loop, state
#: database or Redis connections, spool files, logging.
FD_RESERVE = 64
#: A completed head's size is counted as request target + names + values + this per
#: header line (": " and CRLF) + :data:`_REQUEST_LINE_OVERHEAD`.
_HEADER_LINE_OVERHEAD = 4
_REQUEST_LINE_OVERHEAD = 16
#: Seconds between two "connection limit reached" warnings.
_WARN_INTERVAL_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """What one server process allows a connection; every default has its reason."""

    head_timeout: float = 10.0
    """Seconds for a request head to arrive complete. Real clients send their head in
    one write; 10 s covers a slow network and still frees a slowloris connection fast."""
    keep_alive_timeout: int = 5
    """Seconds an idle kept-alive connection stays open (uvicorn's ``timeout_keep_alive``).
    Pooling clients reuse connections within milliseconds; 5 s is uvicorn's default."""
    max_head_size: int = 16 * 1024
    """Bytes of request line and headers. MSL carries everything in the body; clients send
    a few hundred bytes of head, proxies a few KiB more. 16 KiB is Node.js's bound."""
    max_connections: int = 2048
    """Open connections per server process, idle ones included; beyond, ``503``. Leaves
    room for 1,000 held idle connections plus real clients."""

    def __post_init__(self) -> None:
        check_seconds(self.head_timeout, "head_timeout")
        check_seconds(self.keep_alive_timeout, "keep_alive_timeout")
        if self.max_head_size < 1024:
            raise ValueError("max_head_size must be at least 1024 bytes")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


def _refusal(status: int, reason: str) -> bytes:
    body = reason.encode("ascii")
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


_REFUSALS = {
    408: _refusal(408, "Request Timeout"),
    431: _refusal(431, "Request Header Fields Too Large"),
    503: _refusal(503, "Service Unavailable"),
}


class _Refusals:
    """Per protocol class: refused connections still draining, and when we last warned."""

    def __init__(self) -> None:
        self.draining = 0
        self.warned_at = -_WARN_INTERVAL_S


class _ResponseWrites:
    """The connection's transport as its responses write to it (one per connection).

    uvicorn writes a response's head (status line and headers) as soon as the
    application starts the response, and the body in a second write: two ``send``
    system calls, and two segments to the peer, for a response that fits in one (about
    4.5 us of CPU per request on loopback). Here the head, the first write once the
    response has started, is held until the response's first body write, which takes
    it along in one ``writelines``. The head never waits long: one still held when the
    event loop's pass ends (a body that is not ready yet, a ``HEAD`` response) is
    written then, and before anything else is written or the connection is closed.
    Writes before the response starts (``100 Continue``) go out at once."""

    __slots__ = ("__weakref__", "_cycle", "_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._cycle: RequestResponseCycle | None = None
        self._head: bytes | None = None

    def begin(self, cycle: RequestResponseCycle) -> None:
        """``cycle``'s response comes next (the one before it is complete)."""
        self.flush()
        self._cycle = cycle

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
            return
        cycle = self._cycle
        if cycle is not None and cycle.response_started:
            self._cycle = None  # the head is this response's first write since it started
            self._head = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def writelines(self, data: Iterable[bytes]) -> None:
        self.flush()
        self._transport.writelines(data)

    def flush(self) -> None:
        """Write the held head, if any."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_extra_info, abort, ...) is the transport's own.
        return getattr(self._transport, name)


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head size bound and a
    connection cap (see the module docstring). Pass the class as ``http=`` to
    :class:`uvicorn.Config`; set the limits with :func:`protocol_with` or by overriding
    :meth:`connection_limits` in a subclass."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    _refusals: ClassVar[_Refusals] = _Refusals()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._refusals = _Refusals()

    @classmethod
    def connection_limits(cls) -> ConnectionLimits:
        """The limits for a new connection (the class's :attr:`limits`)."""
        return cls.limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.connection_limits()
        self._timer: asyncio.TimerHandle | None = None
        self._head_deadline: float | None = None
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self._drained = 0
        self._draining = False
        self._writes: _ResponseWrites | None = None

    # -- connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections:
            self.transport = transport
            self._refuse_at_accept()
            return
        super().connection_made(transport)
        self._writes = _ResponseWrites(transport, self.loop)
        self._head_deadline = self.loop.time() + self._limits.head_timeout
        self._timer = self.loop.call_later(self._limits.head_timeout, self._on_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._draining:
            self._draining = False
            self._refusals.draining -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drained += len(data)  # dropped: see _refuse
            if self._drained > REFUSAL_DRAIN_BYTES:
                self.transport.abort()
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self._limits.max_head_size:
            self._refuse(431)

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A request starts: its head is counted and timed from here."""
        super().on_message_begin()
        self._in_head = True
        if self._head_deadline is None:
            self._head_deadline = self.loop.time() + self._limits.head_timeout

    def on_headers_complete(self) -> None:
        """The head is complete: refuse it with 431 if it was too large."""
        if self._refused:
            return
        self._in_head = False
        self._head_bytes = 0
        self._head_deadline = None
        size = len(self.url) + _REQUEST_LINE_OVERHEAD
        for name, value in self.headers:
            size += len(name) + len(value) + _HEADER_LINE_OVERHEAD
        if size > self._limits.max_head_size:
            self._refuse(431)
            return
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous and self._writes is not None:
            cycle.transport = self._writes  # type: ignore[assignment]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """A response starts (now, or after the pipelined ones before it): its head is
        the first write once it has started (see :class:`_ResponseWrites`)."""
        if self._writes is not None:
            self._writes.begin(cycle)
        super()._start_asgi_task(cycle, app)

    def on_body(self, body: bytes) -> None:
        """Body bytes (no longer counted against the head)."""
        if not self._refused:
            super().on_body(body)

    def on_response_complete(self) -> None:
        """A response is complete: a head it still holds (a ``HEAD`` response) goes first."""
        if self._writes is not None:
            self._writes.flush()
        super().on_response_complete()

    def on_message_complete(self) -> None:
        """The request is complete: the next head's deadline starts with its first byte."""
        if not self._refused:
            super().on_message_complete()

    # -- timer ------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        """The connection's one timer: head deadline, or the end of a refusal's drain."""
        self._timer = None
        if self.transport.is_closing():
            return
        if self._refused:
            self.transport.close()
            return
        now = self.loop.time()
        deadline = self._head_deadline
        responding = self.cycle is not None and not self.cycle.response_complete
        if deadline is None or responding:
            # No head under way (or a pipelined one waits for a response): look again later.
            self._timer = self.loop.call_later(self._limits.head_timeout, self._on_timer)
        elif now < deadline:
            self._timer = self.loop.call_later(deadline - now, self._on_timer)
        elif self._head_bytes > 0 or self.cycle is not None:
            self._refuse(408)  # part of a head arrived, the rest did not
        else:
            self.transport.close()  # nothing arrived at all

    # -- refusals ---------------------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """Answer ``status``, shut the write side and drain the peer briefly (see module)."""
        if self.transport.is_closing():
            return
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way: it cannot be interleaved
            return
        self.transport.write(_REFUSALS[status])
        self._drain()

    def _refuse_at_accept(self) -> None:
        self._refused = True
        refusals = self._refusals
        now = time.monotonic()
        if now - refusals.warned_at >= _WARN_INTERVAL_S:
            refusals.warned_at = now
            log.warning("connection limit (%d) reached: refusing with 503", self._limits.max_connections)
        if refusals.draining >= MAX_REFUSING:
            self.transport.abort()
            return
        refusals.draining += 1
        self._draining = True
        self.transport.write(_REFUSALS[503])
        self._drain()

    def _drain(self) -> None:
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(REFUSAL_LINGER_S, self._on_timer)


def protocol_with(limits: ConnectionLimits) -> type[HardenedHttpToolsProtocol]:
    """A protocol class with ``limits`` (for a server in this process; worker processes
    import the protocol by name, so give them a module-level subclass instead)."""
    return type("LimitedHttpToolsProtocol", (HardenedHttpToolsProtocol,), {"limits": limits})


def fit_open_file_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise this process's soft ``RLIMIT_NOFILE`` so ``limits.max_connections`` fits.

    Needed: the connections, the refused ones draining and :data:`FD_RESERVE`. When the
    hard limit is lower, the cap is lowered to what fits; the result says which cap
    applies. Worker processes inherit the raised limit.
    """
    needed = limits.max_connections + MAX_REFUSING + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft >= needed:
        return limits
    return replace(limits, max_connections=max(1, soft - MAX_REFUSING - FD_RESERVE))
