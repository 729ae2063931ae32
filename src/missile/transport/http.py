"""MSL over HTTP, framed like the reference's example server (interop/README.md):
``POST`` with one MSL message as the request body, one MSL message as the response
body, status 200. Bodies stream in both directions.

:class:`HttpTransport` is the client side on httpx (it opens a fresh exchange per
message, as a trusted-network client does for every resend). :class:`MslAsgiApp` is an
ASGI application serving an :class:`~missile.engine.server.MslServer` at any path; it
runs under uvicorn and mounts in Starlette or FastAPI, and hands the handler the request's
path below the mount point, its HTTP headers and the client address
(:class:`~missile.engine.server.Origin`).
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from missile.deadlines import check_seconds
from missile.engine.errors import ReadTimeout
from missile.engine.server import MslServer, Origin
from missile.errors import MslError, MslException
from missile.observe.base import trace_headers

__all__ = ["HttpTransport", "MslAsgiApp", "origin_of", "route_path"]

CONTENT_TYPE = "application/octet-stream"

#: Writes smaller than this are collected before anything is sent, so a small message
#: (header and a chunk or two) leaves as one request or response with a Content-Length
#: instead of several chunked-encoding writes. Larger bodies stream as before.
COALESCE_LIMIT = 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _HttpChannel:
    """One POST: the request body streams out while the response streams back."""

    one_exchange = True
    """A POST carries one exchange: what follows the response is pushed (control.md §4.5)."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        self._response: httpx.Response | None = None
        self._iterator: AsyncIterator[bytes] | None = None
        self._buffer = b""
        self._eof = False
        self._task: asyncio.Task[httpx.Response] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def _body(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._outgoing.get()
            if item is None:
                return
            yield item

    def _send(self, content: bytes | AsyncIterator[bytes]) -> None:
        request = self._client.build_request(
            "POST", self._url, content=content, headers={"content-type": CONTENT_TYPE, **trace_headers()}
        )
        self._task = asyncio.ensure_future(self._client.send(request, stream=True))

    async def _start(self) -> None:
        """Start a streaming POST, sending what was collected so far first."""
        if self._task is None:
            self._send(self._body())
            pending, self._pending = self._pending, []
            self._pending_size = 0
            if pending:
                await self._outgoing.put(b"".join(pending))

    async def write(self, data: bytes) -> None:
        if self._task is None:
            if not data:
                return
            self._pending.append(bytes(data))
            self._pending_size += len(data)
            if self._pending_size < COALESCE_LIMIT:
                return
            await self._start()
            return
        if data:
            await self._outgoing.put(bytes(data))

    async def finish(self) -> None:
        if self._task is None:
            # The whole message was small: one POST with a Content-Length body.
            content, self._pending = b"".join(self._pending), []
            self._pending_size = 0
            self._send(content)
            return
        await self._outgoing.put(None)

    async def read(self, n: int = 65536) -> bytes:
        if not self._buffer:
            if self._eof:
                return b""
            try:
                if self._iterator is None:
                    await self._start()  # reading before finishing: send what we have
                    assert self._task is not None
                    self._response = await self._task
                    if self._response.status_code != 200:
                        status = self._response.status_code
                        await self._response.aclose()
                        raise MslException(MslError.MSL_COMMS_FAILURE, f"HTTP status {status}")
                    self._iterator = self._response.aiter_raw()
                self._buffer = await self._iterator.__anext__()
            except StopAsyncIteration:
                self._eof = True
                return b""
            except httpx.HTTPError as exc:
                raise MslException(MslError.MSL_COMMS_FAILURE, type(exc).__name__) from exc
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    async def close(self) -> None:
        if self._response is not None:
            await self._response.aclose()
        elif self._task is not None and not self._task.done():
            self._task.cancel()


class HttpTransport:
    """Client transport: each exchange is one streaming POST to ``url``."""

    def __init__(self, url: str, *, client: httpx.AsyncClient | None = None, timeout: float = 30.0) -> None:
        check_seconds(timeout, "timeout")
        self.url = url
        self._owned = client is None
        self.client = client or httpx.AsyncClient(timeout=timeout)
        self.connections = 0
        """Exchanges opened so far."""

    async def connect(self) -> _HttpChannel:
        """A channel for one exchange: one POST to the URL."""
        self.connections += 1
        return _HttpChannel(self.client, self.url)

    async def aclose(self) -> None:
        """Close the underlying httpx client if this transport created it."""
        if self._owned:
            await self.client.aclose()


class _AsgiChannel:
    one_exchange = True
    """A POST carries one exchange."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._buffer = b""
        self._eof = False
        self._started = False
        self._finished = False
        self._pending: list[bytes] = []
        self._pending_size = 0

    @property
    def started(self) -> bool:
        """True once the response has begun."""
        return self._started

    async def read(self, n: int = 65536) -> bytes:
        while not self._buffer and not self._eof:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._eof = True
                break
            self._buffer = message.get("body", b"")
            if not message.get("more_body", False):
                self._eof = True
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    async def _start(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        if not self._started:
            self._started = True
            await self._send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE.encode()), *(headers or [])],
                }
            )

    async def _flush_pending(self) -> None:
        await self._start()
        if self._pending:
            body = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def write(self, data: bytes) -> None:
        if not self._started:
            # Collect small responses; a large one streams once it passes the limit.
            if data:
                self._pending.append(bytes(data))
                self._pending_size += len(data)
            if self._pending_size >= COALESCE_LIMIT:
                await self._flush_pending()
            return
        if data:
            await self._send({"type": "http.response.body", "body": bytes(data), "more_body": True})

    async def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if not self._started:
            # The whole response was small: one body with a Content-Length.
            body = b"".join(self._pending)
            self._pending = []
            await self._start([(b"content-length", str(len(body)).encode())])
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def close(self) -> None:
        await self.finish()


#: The transports whose socket already has TCP_NODELAY (weakly held: a connection leaves
#: the set when its transport goes, so the set is as large as the open connections).
_NODELAY_SET: weakref.WeakSet[object] = weakref.WeakSet()


def _set_nodelay(send: Send) -> None:
    """Disable Nagle's algorithm on the connection ``send`` writes to, when reachable.

    uvicorn with several workers accepts on a socket created without an explicit
    protocol, so asyncio does not set TCP_NODELAY on the connections (single-worker
    servers get it); a response written as headers then body then waits for the
    client's delayed ACK (~40 ms per request on Linux). The transport is reached through
    the server's send callable; anything else is left alone.

    The option stays set for the connection's life, so it is set once per transport,
    on its first request (about 4 µs of every later request on a kept-alive
    connection); a transport that refused it is tried again on its next request.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return
    try:
        if transport in _NODELAY_SET:
            return
    except TypeError:
        pass  # not weakly referenceable: set the option on every request
    get_extra_info = getattr(transport, "get_extra_info", None)
    if get_extra_info is None:
        return
    try:
        sock = get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _NODELAY_SET.add(transport)
    except (OSError, AttributeError, TypeError):
        pass


def route_path(scope: Scope) -> str:
    """The request path below the mount point: ``scope["path"]`` without ``root_path``
    (Starlette's ``Mount`` keeps the full path and extends ``root_path``; older versions
    strip it), always starting with "/" (the mount point itself is "/")."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root.rstrip("/")) :]
    return path if path.startswith("/") else "/" + path


def origin_of(scope: Scope) -> Origin:
    """Path, headers and client address of an ASGI HTTP scope, for the handler."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    client = scope.get("client")
    address = (str(client[0]), int(client[1])) if client else None
    return Origin(route_path(scope), headers, address)


class MslAsgiApp:
    """ASGI application: every POST body is an MSL message answered by ``server``."""

    def __init__(self, server: MslServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST")]})
            await send({"type": "http.response.body", "body": b""})
            return
        _set_nodelay(send)
        channel = _AsgiChannel(receive, send)
        try:
            await self.server.serve_channel(channel, origin_of(scope))
        except ReadTimeout:
            # No request body arrived within the server's read timeout.
            if not channel.started:
                await send({"type": "http.response.start", "status": 408, "headers": [(b"connection", b"close")]})
                await send({"type": "http.response.body", "body": b""})
