"""The front door for peer-to-peer MSL: :class:`Peer`, its listeners and connections.

How it sits on the engine: a :class:`Peer` is one :class:`~missile.engine.peer.MslPeer`
(both roles: requesting, and answering with the application's handler) over one
peer-to-peer :class:`~missile.context.MslContext` built from the key file
(:func:`~missile.profiles.context_from_keyfile`). It holds both halves of an entity's
state, because a peer is client and server at once: a session store for the tokens the
other peer issued to it, and the issuer's token state (replay windows, revocation) for
the tokens it issues. :meth:`Peer.listen` answers peers on TCP
(:func:`~missile.transport.tcp.serve_peer_tcp`); :meth:`Peer.connect` opens a
connection (:func:`~missile.transport.tcp.connect_peer_tcp`) whose
:meth:`PeerConnection.request` returns the same :class:`~missile.engine.client.Response`
the clients return. Handlers take the same :class:`~missile.engine.server.Request` and
return bytes or a :class:`~missile.engine.server.Reply`, as :class:`~missile.server.Server`
routes do (peers have no paths: ``request.path`` is "/").

A :class:`Peer` is one entity talking to one other entity (the reference's peer mode
keeps one master token per side): every listener and connection of a :class:`Peer`
shares the tokens, so they must all lead to the same other peer.

Options, their names and their errors are those of :class:`~missile.client.AsyncClient`
and :class:`~missile.server.Server` (:mod:`missile._setup`): misconfiguration raises
:class:`~missile._setup.ConfigError` naming the option, at construction or on first use.
``state=`` has no default for the reason the server's has none: in memory, a restart
forgets which non-replayable messages were already accepted.

:meth:`Peer.listen` returns a :class:`PeerListener` that is already accepting (close it,
or ``await listener.serve_forever()`` to serve until cancelled), so one task can listen
and connect. Closing the :class:`Peer` closes its listeners, the connections it opened
and the connections it accepted, then its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Mapping
from typing import Any, Unpack

from missile._setup import (
    AsyncClosing,
    CallOptions,
    ConfigError,
    KeysOption,
    key_request_factory_for,
    load_keys,
    message_options,
    open_state,
    open_store,
    user_factories,
)
from missile.deadlines import check_seconds_or_none
from missile.engine.client import Payload, Response
from missile.engine.errors import MslErrorResponse
from missile.engine.message_io import MessageStream
from missile.engine.peer import MAX_PAYLOAD_SIZE, MslPeer
from missile.engine.server import Handler
from missile.engine.transport import Channel
from missile.errors import MslException
from missile.profiles import context_from_keyfile
from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.stores.open import MEMORY
from missile.tokens.factory import TokenFactory
from missile.tokens.state import TokenState
from missile.transport.tcp import MAX_CONNECTIONS, PEER_READ_TIMEOUT_S, connect_peer_tcp, serve_peer_tcp
from missile.userauth.email_password import EmailPasswordStore

__all__ = ["ISSUER_SUFFIX", "Peer", "PeerConnection", "PeerListener"]

DAY_S = 24 * 3600

#: Appended to a ``state=`` path for the issuer's token state: the session store and the
#: token state are two SQLite files (their schemas differ), kept side by side.
ISSUER_SUFFIX = "-issuer"


class _Engine(MslPeer):
    """The peer engine, noting the connections it answers so that closing can end them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.serving: dict[asyncio.Task[Any], Channel] = {}
        self.closing = False

    async def serve_channel(self, channel: Channel) -> None:
        task = asyncio.current_task()
        if self.closing or task is None:
            return  # accepted as the peer closed: the transport closes the connection
        self.serving[task] = channel
        try:
            await super().serve_channel(channel)
        finally:
            self.serving.pop(task, None)

    async def end_serving(self) -> None:
        """Close every connection being answered and wait until their answers end."""
        self.closing = True
        serving = dict(self.serving)
        for channel in serving.values():
            with contextlib.suppress(ConnectionError, OSError):
                await channel.close()  # the reader sees the end: serve_channel returns
        if serving:
            await asyncio.wait(serving)


class PeerListener(AsyncClosing):
    """A TCP listener answering peers (:meth:`Peer.listen`); already accepting."""

    def __init__(self, peer: Peer, server: asyncio.Server) -> None:
        self._peer = peer
        self._server = server
        self.host, self.port = server.sockets[0].getsockname()[:2]
        """The address it listens on (the port chosen when 0 was asked for)."""

    async def serve_forever(self) -> None:
        """Wait until cancelled (the listener accepts meanwhile), then stop listening."""
        try:
            await self._server.serve_forever()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop accepting connections. Connections already accepted are answered until
        the other peer closes them, they stay idle for ``read_timeout``, or the
        :class:`Peer` closes."""
        self._peer._listeners.discard(self)
        # close() stops listening at once. Not wait_closed(): since Python 3.12 it also
        # waits for the accepted connections, which are meant to go on being answered.
        self._server.close()

    def __repr__(self) -> str:
        return f"PeerListener({self.host!r}, {self.port})"


class PeerConnection(AsyncClosing):
    """One connection to another peer (:meth:`Peer.connect`); requests on it take turns."""

    def __init__(self, peer: Peer, stream: MessageStream, host: str, port: int) -> None:
        self._peer = peer
        self._stream = stream
        self._lock = asyncio.Lock()
        self._closed = False
        self.host = host
        self.port = port

    async def request(self, payload: Payload = b"", **options: Unpack[CallOptions]) -> Response:
        """Send ``payload`` and return the other peer's :class:`Response`, exchanging keys
        (both ways) and obtaining the user's user ID token on the way; the options are
        the clients' (``user=``, ``non_replayable=``...).

        An MSL error answer raises :class:`~missile.engine.errors.MslErrorResponse` and
        leaves the connection open, though the other peer may close it (missile's peers
        do when a request fails to verify: connect again). Any other failure (a broken
        or stalled connection, a reply that fails verification, cancellation) closes it,
        because the two sides may no longer agree where the next message starts."""
        if self._closed:
            raise RuntimeError("the connection is closed")
        engine_options = message_options(options, self._peer._service_token_contexts)
        async with self._lock:
            try:
                return await self._peer.engine.request(self._stream, bytes(payload), engine_options)
            except MslErrorResponse:
                raise
            except BaseException:
                await self.aclose()
                raise

    @property
    def closed(self) -> bool:
        """True once closed (by :meth:`aclose`, a failure, or the :class:`Peer` closing)."""
        return self._closed

    async def aclose(self) -> None:
        """Close the connection."""
        if self._closed:
            return
        self._closed = True
        self._peer._connections.discard(self)
        await self._stream.close()

    def __repr__(self) -> str:
        return f"PeerConnection({self.host!r}, {self.port}{', closed' if self._closed else ''})"


class Peer(AsyncClosing):
    """One entity of a peer-to-peer MSL network: ``listen`` for the other peer, or
    ``connect`` to it, or both.

    ``keys``: the peer's key file (path or :class:`~missile.keyfile.KeyFile`), a server
    key file: it needs ``msl_token_keys`` to issue tokens to the other peer, and the other
    peer's entity authentication keys. ``handler``: the async function answering
    requests (as a :class:`~missile.server.Server` route; required to listen).
    ``state``: a SQLite file path keeping the tokens the other peer issued (the issuer's
    token state goes next to it, in the path plus :data:`ISSUER_SUFFIX`), or
    ``":memory:"`` (tests: a restart forgets everything); required, see the module
    docstring. ``key_exchange`` and ``mechanism``: the key exchange scheme this peer
    asks the other for (default as for clients: the key file's ``key_request_data``,
    else SYMMETRIC_WRAPPED for PSK). ``users``: EMAIL_PASSWORD users this peer
    authenticates, as for :class:`~missile.server.Server` (default: the key file's
    ``users``). ``token_renewal`` and ``token_lifetime``: seconds after issue when the
    tokens this peer issues become renewable and expire. ``read_timeout``: seconds a
    connection may stay silent (idle between requests when answering, or waiting for a
    reply when requesting) before it is closed. ``max_payload_size``: the largest
    payload buffered, either way.
    """

    def __init__(
        self,
        keys: KeysOption,
        *,
        handler: Handler | None = None,
        state: str | os.PathLike[str] | None,
        key_exchange: str | None = None,
        mechanism: str | None = None,
        users: Mapping[str, str] | EmailPasswordStore | None = None,
        token_renewal: int = DAY_S,
        token_lifetime: int = 7 * DAY_S,
        read_timeout: float | None = PEER_READ_TIMEOUT_S,
        max_payload_size: int = MAX_PAYLOAD_SIZE,
    ) -> None:
        if handler is not None and not inspect.iscoroutinefunction(handler):
            raise ConfigError("handler=: the handler must be an async function")
        key_file = load_keys(keys, "server", needed_by="peer")
        if key_file.token_keys is None:
            raise ConfigError("keys=: the key file has no msl_token_keys (a peer needs them to issue tokens)")
        if not 0 < token_renewal <= token_lifetime:
            raise ConfigError("token_renewal= and token_lifetime=: need 0 < token_renewal <= token_lifetime (seconds)")
        check_seconds_or_none(read_timeout, "read_timeout")
        self.state_location, self._store, self._state = _open_peer_state(state)
        """Where the state is (as given, made absolute; ":memory:" for memory)."""
        try:
            factory = TokenFactory(
                self._state,
                master_token_renewal_ms=token_renewal * 1000,
                master_token_expiration_ms=token_lifetime * 1000,
                user_id_token_renewal_ms=token_renewal * 1000,
                user_id_token_expiration_ms=token_lifetime * 1000,
            )
            # Users are part of the configuration: given to the context as it is built.
            overrides: dict[str, Any] = {}
            if users is not None:
                overrides["user_auth_factories"] = user_factories(key_file, users)
            try:
                built = context_from_keyfile(
                    key_file, role="server", peer_to_peer=True, store=self._store, token_factory=factory, **overrides
                )
            except MslException as exc:
                raise ConfigError(f"keys=: {exc.error.name} ({exc.detail or exc.error.message})") from exc
            requests = key_request_factory_for(built.ctx, key_file, key_exchange, mechanism)
        except BaseException:
            _close_now(self._store, self._state)
            raise
        self._service_token_contexts = key_file.service_token_crypto_contexts(built.ctx.random)
        self.engine: MslPeer = _Engine(
            built.ctx,
            handler=handler,
            key_request_factory=requests,
            max_payload_size=max_payload_size,
            service_token_contexts=self._service_token_contexts,
        )
        """The protocol engine (for options the front door does not expose)."""
        self.read_timeout = read_timeout
        self._listeners: set[PeerListener] = set()
        self._connections: set[PeerConnection] = set()
        self._closed = False

    @property
    def identity(self) -> str:
        """This peer's entity identity."""
        return self.engine.ctx.identity or ""

    async def listen(
        self, host: str = "127.0.0.1", port: int = 0, *, max_connections: int = MAX_CONNECTIONS
    ) -> PeerListener:
        """Answer peers connecting to ``host``:``port`` (0: any free port, see
        :attr:`PeerListener.port`) with the handler; returns once listening. At most
        ``max_connections`` connections are open at once: one more is closed unanswered."""
        self._check_open()
        if self.engine.handler is None:
            raise ConfigError("handler=: a peer that listens needs a handler to answer requests")
        try:
            server = await serve_peer_tcp(
                self.engine, host, port, read_timeout=self.read_timeout, max_connections=max_connections
            )
        except OSError as exc:
            raise ConfigError(f"listen({host!r}, {port}): {exc.strerror or exc}") from exc
        listener = PeerListener(self, server)
        self._listeners.add(listener)
        return listener

    async def connect(self, host: str, port: int) -> PeerConnection:
        """A connection to the peer listening on ``host``:``port``; failing to connect
        raises MSL_COMMS_FAILURE."""
        self._check_open()
        stream = await connect_peer_tcp(host, port, read_timeout=self.read_timeout)
        connection = PeerConnection(self, stream, host, port)
        self._connections.add(connection)
        return connection

    async def aclose(self) -> None:
        """Stop listening, close every connection (opened and accepted), then the state."""
        if self._closed:
            return
        self._closed = True
        try:
            for listener in list(self._listeners):
                await listener.aclose()
            for connection in list(self._connections):
                await connection.aclose()
            assert isinstance(self.engine, _Engine)
            await self.engine.end_serving()
        finally:
            close = getattr(self._store, "close", None)
            if close is not None:
                close()
            await self._state.aclose()

    def __repr__(self) -> str:
        return f"Peer(identity={self.identity!r}, state={self.state_location!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the peer is closed")


def _open_peer_state(state: str | os.PathLike[str] | None) -> tuple[str, MslStore, TokenState]:
    """(location, session store, issuer token state) for ``state=``."""
    if state is None:
        raise ConfigError(
            "state=: required. Pass a SQLite file path (e.g. state='peer.db'), or ':memory:' for tests "
            "(in memory, a restart forgets the session and replayed message IDs)"
        )
    text = os.fspath(state)
    if not text:
        raise ConfigError("state=: empty; pass a SQLite file path or ':memory:'")
    if text == MEMORY:
        return MEMORY, InMemoryStore(), open_state(MEMORY)
    if "://" in text:
        raise ConfigError(f"state={text!r}: a peer keeps its state in a SQLite file path (or ':memory:')")
    location = os.path.abspath(text)
    store = open_store(location, "peer")
    assert store is not None  # a path always opens a file
    try:
        return location, store, open_state(location + ISSUER_SUFFIX)
    except BaseException:
        _close_now(store, None)
        raise


def _close_now(store: MslStore, state: TokenState | None) -> None:
    """Release what a constructor opened before it failed (no event loop needed)."""
    for held in (store, state):
        close = getattr(held, "close", None)
        if close is not None:
            close()
