"""A lean Redis connection for the token state's batches: RESP2 over an asyncio
``Protocol``, commands packed and replies parsed by hiredis.

Why not redis-py's own connection: its asyncio path costs about 30 us of Python per
batch before Redis does anything (each argument encoded in Python, a ``StreamWriter``
write and drain, then per reply a coroutine with a timeout wrapper reading through
``StreamReader``). At the batch sizes a server sees at low concurrency (one or two
operations) that per-batch cost is most of what Redis state adds to a request. Here a
batch is one ``hiredis.pack_command`` per command and one ``transport.write``; the
replies are parsed in C as they arrive in :meth:`RespConnection.data_received`, which
resolves the batch's future directly: no reader object, no coroutine per reply.

What the connection guarantees, and what its user (:mod:`missile.stores.redis_state`)
relies on:

* replies are matched to batches strictly in the order the batches were sent;
* a batch is never resent: a connection that fails (closed by the server, a malformed
  reply, a reply overdue) fails every batch still waiting for a reply and refuses new
  ones, so a later batch can never read an earlier batch's reply as its own;
* :meth:`RespConnection.close` (what a caller does after a cancelled batch) cancels the
  waiting batches and aborts the socket, for the same reason;
* an error reply is that command's result, as an exception of redis-py's classes
  (:func:`reply_error`), so the callers' handling of NOSCRIPT, MOVED, ASK, TRYAGAIN and
  CLUSTERDOWN is the same as with redis-py's connections.

The connection speaks RESP2 whatever ``protocol`` redis-py was given (the batches need
no RESP3 type), and returns bulk strings as bytes whatever ``decode_responses`` says:
the token state reads both. Everything else about the server (host, port or unix
socket, database, user and password, TLS, timeouts) comes from redis-py's connection
keyword arguments (:func:`settings_for`), so one URL configures redis-py's client and
these connections alike.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import redis.asyncio
import redis.exceptions as errors

__all__ = ["ConnectionSettings", "RespConnection", "open_connection", "reply_error", "settings_for"]

#: What ``hiredis.Reader.gets`` returns while a reply is still incomplete (a private
#: object: ``False`` could be a reply in RESP3).
_MORE = object()

#: Error replies whose first word names a redis-py exception class. Redis prefixes its
#: error messages with such a code; a code not listed is a plain ResponseError.
_ERROR_CODES: dict[str, type[errors.RedisError]] = {
    "NOSCRIPT": errors.NoScriptError,
    "MOVED": errors.MovedError,
    "ASK": errors.AskError,
    "TRYAGAIN": errors.TryAgainError,
    "CLUSTERDOWN": errors.ClusterDownError,
    "MASTERDOWN": errors.MasterDownError,
    "CROSSSLOT": errors.ClusterCrossSlotError,
    "READONLY": errors.ReadOnlyError,
    "LOADING": errors.BusyLoadingError,
    "NOPERM": errors.NoPermissionError,
    "NOAUTH": errors.AuthenticationError,
    "WRONGPASS": errors.AuthenticationError,
    "EXECABORT": errors.ExecAbortError,
    "OOM": errors.OutOfMemoryError,
}


def reply_error(message: str) -> errors.RedisError:
    """The redis-py exception for an error reply: the class its code names, with the
    message after the code (as redis-py's parsers give it), else a ResponseError with
    the whole message."""
    code, _, rest = message.partition(" ")
    cls = _ERROR_CODES.get(code)
    if cls is None:
        if message == "ERR invalid password":  # servers before Redis 6
            return errors.AuthenticationError(rest)
        return errors.ResponseError(message)
    try:
        return cls(rest)
    except ValueError:  # MOVED or ASK without "slot host:port": not a redirection one can follow
        return errors.ResponseError(message)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect: a TCP ``host`` and ``port``, or a unix socket ``path``;
    ``tls`` a context for ``rediss://``. ``connect_timeout`` bounds the connection and
    its handshake (AUTH, SELECT), ``reply_timeout`` how long a batch may wait for its
    replies (None: no bound). The password is kept out of the repr."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    credential_provider: Any = field(default=None, repr=False)
    client_name: str | None = None
    connect_timeout: float | None = None
    reply_timeout: float | None = None
    keepalive: bool = False
    tls: ssl.SSLContext | None = field(default=None, repr=False)


def settings_for(factory: Any) -> ConnectionSettings:
    """The settings of the connections redis-py would open for ``factory`` (a
    connection pool or a cluster node: anything with ``connection_class`` and
    ``connection_kwargs``)."""
    kwargs: Mapping[str, Any] = factory.connection_kwargs
    tls = issubclass(factory.connection_class, redis.asyncio.SSLConnection)
    return ConnectionSettings(
        host=str(kwargs.get("host", "localhost")),
        port=int(kwargs.get("port", 6379)),
        path=kwargs.get("path"),
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        credential_provider=kwargs.get("credential_provider"),
        client_name=kwargs.get("client_name"),
        connect_timeout=kwargs.get("socket_connect_timeout"),
        reply_timeout=kwargs.get("socket_timeout"),
        keepalive=bool(kwargs.get("socket_keepalive")),
        tls=tls_context(kwargs) if tls else None,
    )


_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def tls_context(kwargs: Mapping[str, Any]) -> ssl.SSLContext:
    """A client TLS context from redis-py's ``ssl_*`` options: the CA (file, directory
    or PEM data), a client certificate, the verification mode (``ssl_cert_reqs``, by
    default required), host name checking, the lowest version and the ciphers."""
    context = ssl.create_default_context(
        cafile=kwargs.get("ssl_ca_certs"), capath=kwargs.get("ssl_ca_path"), cadata=kwargs.get("ssl_ca_data")
    )
    reqs = kwargs.get("ssl_cert_reqs", "required")
    mode = _VERIFY_MODES[reqs.lower()] if isinstance(reqs, str) else ssl.VerifyMode(reqs)
    context.check_hostname = bool(kwargs.get("ssl_check_hostname", True)) and mode != ssl.CERT_NONE
    context.verify_mode = mode
    if kwargs.get("ssl_certfile"):
        context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"), kwargs.get("ssl_password"))
    if kwargs.get("ssl_min_version") is not None:
        context.minimum_version = kwargs["ssl_min_version"]
    if kwargs.get("ssl_ciphers"):
        context.set_ciphers(kwargs["ssl_ciphers"])
    return context


class _Batch:
    """One sent batch: its future and the replies so far."""

    __slots__ = ("count", "future", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]], count: int, sent_at: float) -> None:
        self.future = future
        self.count = count
        self.replies: list[Any] = []
        self.sent_at = sent_at


class RespConnection(asyncio.Protocol):
    """One connection to one Redis server. :meth:`send` writes a batch of commands and
    returns a future of their replies (an error reply is that command's result, as an
    exception); batches may be sent before earlier ones are answered.

    Writes are not flow-controlled: the caller sends one bounded batch at a time (the
    :class:`~missile.stores.batching.Batcher`'s rule), so the transport's buffer holds
    at most one batch.
    """

    def __init__(self, reply_timeout: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(replyError=reply_error, notEnoughData=_MORE)
        self._waiting: deque[_Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._reply_timeout = reply_timeout
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        """Whether the connection can no longer be used (a new one must be opened)."""
        return self._closed

    @property
    def waiting_since(self) -> float | None:
        """When (event-loop time) the oldest batch still waiting for its replies was
        sent; None when none is waiting."""
        return self._waiting[0].sent_at if self._waiting else None

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport instances

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        waiting = self._waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not _MORE:
                if not waiting:
                    raise errors.InvalidResponse("a reply to no command")
                batch = waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.count:
                    waiting.popleft()
                    if not batch.future.done():  # not cancelled by its caller
                        batch.future.set_result(batch.replies)
        except (hiredis.HiredisError, errors.InvalidResponse) as exc:
            self._fail(lambda: errors.InvalidResponse("malformed reply from Redis"), exc)
            self._abort()

    def eof_received(self) -> bool:
        return False  # the server closed its side: close ours (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(lambda: errors.ConnectionError("connection to Redis lost"), exc)
        self._transport = None
        if not self._lost.done():
            self._lost.set_result(None)

    # -- use ---------------------------------------------------------------------------

    def send(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        """Write ``commands`` (each a command name and its arguments: str, bytes, int or
        float) at once; the future resolves to one reply per command, in order."""
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not commands:
            future.set_result([])
            return future
        transport = self._transport
        if self._closed or transport is None:
            raise errors.ConnectionError("connection to Redis closed")
        pack = hiredis.pack_command
        data = pack(tuple(commands[0])) if len(commands) == 1 else b"".join([pack(tuple(c)) for c in commands])
        self._waiting.append(_Batch(future, len(commands), self._loop.time()))
        transport.write(data)
        if self._reply_timeout is not None and self._watchdog is None:
            self._watchdog = self._loop.call_later(self._reply_timeout, self._check_overdue)
        return future

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """:meth:`send` and wait for the replies."""
        return await self.send(commands)

    def close(self) -> None:
        """Stop using the connection: waiting batches are cancelled (their replies would
        otherwise be read by no one, or by the wrong batch) and the socket aborted."""
        self._closed = True
        waiting, self._waiting = self._waiting, deque()
        for batch in waiting:
            batch.future.cancel()
        self._abort()

    async def aclose(self) -> None:
        """:meth:`close`, and wait until the socket is closed."""
        open_ = self._transport is not None
        self.close()
        if open_:
            await asyncio.shield(self._lost)  # connection_lost, after the abort

    # -- failure -----------------------------------------------------------------------

    def _fail(self, error: Any, cause: BaseException | None) -> None:
        """Fail every waiting batch with a new ``error()`` (caused by ``cause``) and
        refuse new ones."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiting, self._waiting = self._waiting, deque()
        for batch in waiting:
            if not batch.future.done():
                exc = error()
                exc.__cause__ = cause
                batch.future.set_exception(exc)

    def _abort(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.abort()  # connection_lost follows, on the next loop iteration

    def _check_overdue(self) -> None:
        """The reply timeout: one timer at a time, re-armed for the oldest waiting batch,
        so a batch costs no timer of its own."""
        self._watchdog = None
        if not self._waiting:
            return
        remaining = self._waiting[0].sent_at + (self._reply_timeout or 0.0) - self._loop.time()
        if remaining > 0:
            self._watchdog = self._loop.call_later(remaining, self._check_overdue)
            return
        self._fail(lambda: errors.TimeoutError("Redis did not answer in time"), None)
        self._abort()


async def open_connection(settings: ConnectionSettings) -> RespConnection:
    """A connection to the server of ``settings``, authenticated and on its database,
    within ``settings.connect_timeout``. Raises redis-py's ConnectionError (or its
    subclasses TimeoutError and AuthenticationError)."""
    try:
        if settings.connect_timeout is None:
            return await _connect(settings)
        return await asyncio.wait_for(_connect(settings), settings.connect_timeout)
    except TimeoutError as exc:  # before OSError: asyncio's TimeoutError is one
        raise errors.TimeoutError("timed out connecting to Redis") from exc
    except OSError as exc:
        raise errors.ConnectionError(f"cannot connect to Redis: {exc.strerror or type(exc).__name__}") from exc


async def _connect(settings: ConnectionSettings) -> RespConnection:
    loop = asyncio.get_running_loop()

    def protocol() -> RespConnection:
        return RespConnection(settings.reply_timeout)

    conn: RespConnection
    if settings.path is not None:
        _, conn = await loop.create_unix_connection(protocol, settings.path, ssl=settings.tls)
    else:
        _, conn = await loop.create_connection(protocol, settings.host, settings.port, ssl=settings.tls)
    try:
        if settings.keepalive and conn._transport is not None:
            sock = conn._transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        await _handshake(conn, settings)
    except BaseException:
        conn.close()
        raise
    return conn


async def _handshake(conn: RespConnection, settings: ConnectionSettings) -> None:
    """AUTH, SELECT and CLIENT SETNAME as the settings ask, in one round trip."""
    commands: list[tuple[Any, ...]] = []
    username, password = settings.username, settings.password
    if settings.credential_provider is not None:
        credentials = await settings.credential_provider.get_credentials_async()
        username, password = credentials if len(credentials) == 2 else (None, credentials[0])
    if password is not None:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if settings.db:
        commands.append(("SELECT", settings.db))
    if settings.client_name:
        commands.append(("CLIENT", "SETNAME", settings.client_name))
    for reply in await conn.execute(commands):
        if isinstance(reply, errors.AuthenticationError):
            raise reply
        if isinstance(reply, Exception):
            raise errors.ConnectionError(f"Redis refused the connection's set-up: {reply}") from reply
