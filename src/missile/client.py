"""The front door for requesters: :class:`AsyncClient` and its blocking twin :class:`Client`.

How it sits on the engine: an :class:`AsyncClient` is one
:class:`~missile.engine.client.MslClient` (token choice, key exchange, renewal, error
recovery) over one :class:`~missile.context.MslContext` built from the key file
(:func:`~missile.profiles.context_from_keyfile`), one store for its sessions (a
:class:`~missile.stores.sqlite.SqliteStore` at ``state=``, in memory without it), one
key request factory (:func:`~missile.keyx.requests.key_request_factory`, the key file's
scheme by default) and one :class:`~missile.transport.pooled.PooledHttpTransport` for
the base URL. Every call names a path below the base URL; all paths share the pool, the
session and the renewal lock (the path travels to the transport in a context variable,
so concurrent calls to different paths each get their own).

Names follow httpx where the meaning is the same (``request``, ``stream``, ``aclose``,
base URL plus path) and differ where it is not: a message with no response is
:meth:`AsyncClient.one_way` (httpx's ``send`` sends a prepared request).

:class:`Client` runs an :class:`AsyncClient` on a private event loop in a daemon thread
(:class:`~missile.engine.sync.EventLoopThread`), so blocking code and several threads
share one session exactly as asyncio callers do; it has every method of the async
client, blocking.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any, Unpack
from urllib.parse import quote, urlsplit

from missile._setup import (
    AsyncClosing,
    CallOptions,
    ConfigError,
    KeysOption,
    key_request_factory_for,
    load_keys,
    message_options,
    open_store,
)
from missile.deadlines import check_seconds_or_none
from missile.engine.client import MslClient, Payload, Response, StreamingResponse
from missile.engine.options import MessageOptions
from missile.engine.sync import EventLoopThread
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.profiles import context_from_keyfile
from missile.transport.pooled import PooledHttpTransport
from missile.userauth.email_password import EmailPasswordAuthData

__all__ = ["AsyncClient", "BlockingStreamingResponse", "CallOptions", "Client", "EmailPassword"]

#: User credentials for EMAIL_PASSWORD: ``EmailPassword("alice@example.com", "pw")``.
EmailPassword = EmailPasswordAuthData

_path: contextvars.ContextVar[str] = contextvars.ContextVar("missile_client_path")


class _RoutedTransport:
    """The engine's transport: channels to the path of the current call, over one pool."""

    def __init__(self, pool: PooledHttpTransport, base_path: str) -> None:
        self.pool = pool
        self.base_path = base_path.rstrip("/")

    def target(self, path: str) -> str:
        """The request target for ``path`` below the base URL's path."""
        if "://" in path:
            raise ValueError(f"path {path!r}: give a path below the base URL, not a URL")
        path = "/" + path.lstrip("/")
        return quote(self.base_path + path, safe="/?&=%:@!$'()*+,;~-._")

    async def connect(self) -> Any:
        return await self.pool.connect(_path.get())


class AsyncClient(AsyncClosing):
    """An MSL client for one server (``base_url``); every call names a path below it.

    ``keys``: the client's key file (path or :class:`~missile.keyfile.KeyFile`).
    ``state``: a SQLite file keeping the session (master token, keys, user ID tokens)
    across runs and processes; None (or ":memory:") keeps it in memory.
    ``key_exchange`` and ``mechanism``: the key exchange scheme (default: the key file's
    ``key_request_data``, else SYMMETRIC_WRAPPED for PSK and ASYMMETRIC_WRAPPED/JWK_RSA
    otherwise). ``entity_auth`` and ``identity``: override the key file's entity
    authentication scheme and identity. ``timeout``, ``max_connections``,
    ``keepalive_expiry``, ``ssl_context``: the HTTP connection pool's settings
    (:class:`~missile.transport.pooled.PooledHttpTransport`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        keys: KeysOption,
        state: str | os.PathLike[str] | None = None,
        key_exchange: str | None = None,
        mechanism: str | None = None,
        entity_auth: str | None = None,
        identity: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 100,
        keepalive_expiry: float | None = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        key_file = _with_entity_auth(load_keys(keys, "client"), entity_auth, identity)
        parts = urlsplit(base_url)
        if parts.query or parts.fragment:
            raise ConfigError(f"base_url={base_url!r}: no query or fragment (give them with the path)")
        try:
            pool = PooledHttpTransport(
                base_url,
                timeout=timeout,
                max_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
                ssl_context=ssl_context,
            )
        except ValueError as exc:
            raise ConfigError(f"base_url={base_url!r}: {exc}") from exc
        self.base_url = base_url
        self._store = open_store(state)
        try:
            built = context_from_keyfile(key_file, role="client", store=self._store)
        except MslException as exc:
            self._close_store()
            raise ConfigError(f"keys=: {exc.error.name} ({exc.detail or exc.error.message})") from exc
        ctx = built.ctx
        self._transport = _RoutedTransport(pool, parts.path)
        factory = key_request_factory_for(ctx, key_file, key_exchange, mechanism)
        self.engine = MslClient(ctx, self._transport, key_request_factory=factory)
        """The protocol engine (for options the front door does not expose)."""
        self._service_token_contexts = key_file.service_token_crypto_contexts(ctx.random)
        self._closed = False

    # -- calls ------------------------------------------------------------------------

    async def request(self, path: str = "/", payload: Payload = b"", **options: Unpack[CallOptions]) -> Response:
        """Send ``payload`` to ``path`` and return the :class:`Response` (``.payload``,
        ``.master_token``, ``.user_id_token``...), establishing keys and recovering from
        recoverable MSL errors on the way. Failures raise :class:`~missile.errors.MslException`
        (:class:`~missile.engine.errors.MslErrorResponse` for the server's errors)."""
        token = self._enter(path)
        try:
            return await self.engine.request(payload, self._options(options))
        finally:
            _path.reset(token)

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str = "/", payload: Payload = b"", **options: Unpack[CallOptions]
    ) -> AsyncIterator[StreamingResponse]:
        """``async with client.stream(path, payload) as response:`` then ``async for chunk
        in response`` reads the response payload as it arrives and verifies."""
        token = self._enter(path)
        try:
            response = await self.engine.request_stream(payload, self._options(options))
        finally:
            _path.reset(token)
        try:
            yield response
        finally:
            await response.aclose()

    async def one_way(self, path: str = "/", payload: Payload = b"", **options: Unpack[CallOptions]) -> Response | None:
        """Send a one-way message: the server answers only when it has tokens to deliver
        (that answer is processed and returned); otherwise None."""
        token = self._enter(path)
        try:
            return await self.engine.one_way(payload, self._options(options))
        finally:
            _path.reset(token)

    # -- lifetime ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the pooled connections and the state file."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._transport.pool.aclose()
        finally:
            self._close_store()

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r}, identity={self.engine.ctx.identity!r})"

    # -- helpers ----------------------------------------------------------------------

    def _enter(self, path: str) -> contextvars.Token[str]:
        if self._closed:
            raise RuntimeError("the client is closed")
        try:
            target = self._transport.target(path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return _path.set(target)

    def _options(self, options: CallOptions) -> MessageOptions:
        return message_options(options, self._service_token_contexts)

    def _close_store(self) -> None:
        close = getattr(self._store, "close", None)
        if close is not None:
            close()


def _with_entity_auth(keys: KeyFile, scheme: str | None, identity: str | None) -> KeyFile:
    if scheme is None and identity is None:
        return keys
    auth = dict(keys.entity_auth)
    if scheme is not None:
        auth["scheme"] = scheme
    if identity is not None:
        auth["identity"] = identity
    return dataclasses.replace(keys, entity_auth=auth, raw={**keys.raw, "entity_auth": auth})


class BlockingStreamingResponse:
    """A streaming response read from blocking code: ``for chunk in response``."""

    def __init__(self, response: StreamingResponse, loop: EventLoopThread, timeout: float | None) -> None:
        self.response = response
        """The underlying asyncio response (header, tokens)."""
        self._loop = loop
        self._timeout = timeout
        self._chunks = aiter(response.body)

    @property
    def header(self) -> Any:
        """The verified response header."""
        return self.response.header

    @property
    def master_token(self) -> Any:
        """The master token now in use."""
        return self.response.master_token

    @property
    def user_id_token(self) -> Any:
        """The user ID token the response carried, if any."""
        return self.response.user_id_token

    @property
    def identity(self) -> str | None:
        """See :attr:`missile.engine.client.Response.identity`."""
        return self.response.identity

    @property
    def messages(self) -> int:
        """How many MSL messages the exchange took."""
        return self.response.messages

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield self._loop.run(self._next(), self._timeout)
            except StopAsyncIteration:
                return

    async def _next(self) -> bytes:
        return await anext(self._chunks)

    def read(self) -> bytes:
        """The rest of the payload."""
        return b"".join(self)

    def close(self) -> None:
        """Release the connection."""
        self._loop.run(self.response.aclose(), self._timeout)


class Client:
    """The blocking twin of :class:`AsyncClient`: the same constructor and methods.

    ``call_timeout`` bounds each blocking call in seconds (None: only the transport's
    ``timeout`` and the engine's message budget bound it)."""

    def __init__(
        self,
        base_url: str,
        *,
        keys: KeysOption,
        state: str | os.PathLike[str] | None = None,
        key_exchange: str | None = None,
        mechanism: str | None = None,
        entity_auth: str | None = None,
        identity: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 100,
        keepalive_expiry: float | None = 4.0,
        ssl_context: ssl.SSLContext | None = None,
        call_timeout: float | None = None,
    ) -> None:
        check_seconds_or_none(call_timeout, "call_timeout")
        self._async = AsyncClient(
            base_url,
            keys=keys,
            state=state,
            key_exchange=key_exchange,
            mechanism=mechanism,
            entity_auth=entity_auth,
            identity=identity,
            timeout=timeout,
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            ssl_context=ssl_context,
        )
        self._timeout = call_timeout
        self._loop = EventLoopThread()

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._async.base_url

    @property
    def engine(self) -> MslClient:
        """The protocol engine (for options the front door does not expose)."""
        return self._async.engine

    def request(self, path: str = "/", payload: Payload = b"", **options: Unpack[CallOptions]) -> Response:
        """Blocking :meth:`AsyncClient.request`."""
        return self._loop.run(self._async.request(path, payload, **options), self._timeout)

    @contextlib.contextmanager
    def stream(
        self, path: str = "/", payload: Payload = b"", **options: Unpack[CallOptions]
    ) -> Iterator[BlockingStreamingResponse]:
        """Blocking :meth:`AsyncClient.stream`: ``with client.stream(...) as response:``
        then ``for chunk in response``."""
        manager = self._async.stream(path, payload, **options)
        response = self._loop.run(manager.__aenter__(), self._timeout)
        try:
            yield BlockingStreamingResponse(response, self._loop, self._timeout)
        finally:
            self._loop.run(manager.__aexit__(None, None, None), self._timeout)

    def one_way(self, path: str = "/", payload: Payload = b"", **options: Unpack[CallOptions]) -> Response | None:
        """Blocking :meth:`AsyncClient.one_way`."""
        return self._loop.run(self._async.one_way(path, payload, **options), self._timeout)

    def close(self) -> None:
        """Close the connections and the state file, then stop the background loop."""
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._async.aclose(), self._timeout)
        finally:
            self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"
