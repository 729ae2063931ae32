"""The front door for responders: :class:`Server`, routes, and an ASGI application.

How it sits on the engine: a :class:`Server` is one
:class:`~missile.engine.server.MslServer` (the protocol: verifying requests, answering
handshakes, issuing tokens, error messages) over one
:class:`~missile.context.MslContext` built from the key file
(:func:`~missile.profiles.context_from_keyfile`) and one
:class:`~missile.tokens.factory.TokenFactory` over the token state named by ``state=``.
Its handler is a router: the path below the mount point
(:class:`~missile.engine.server.Origin`, filled in by
:class:`~missile.transport.http.MslAsgiApp`) picks the application function. Several
endpoints therefore share one server, one token state and one mount.

Routing is exact after normalisation: "/notes" and "/notes/" are the same route, so no
trailing-slash redirect (Starlette answers a POST to a mount point without its slash with
a 307, which an MSL client can only report as a failure) is ever needed inside the
server. A path with no route is answered with an MSL error message (not an HTTP 404,
which a client cannot authenticate): :data:`NOT_FOUND`, ``MESSAGE_FORMAT_ERROR`` (6008)
with response code FAIL, and the user message "no route for <path>". The reference has
no "not found" error (its servers answer every path); this is the closest: a valid MSL
message that this receiver cannot use, and FAIL tells the requester not to resend it
(no reauthentication or key exchange would help).

Token state must survive restarts and be shared by every worker, or a replayed
non-replayable message is accepted after a restart (or by another worker). So ``state=``
has no default: a SQLite path, a ``redis://`` URL, or ``":memory:"`` for tests and
single-process demos, said explicitly.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from missile._setup import AsyncClosing, ConfigError, KeysOption, load_keys, open_state, user_factories
from missile.context import INSECURE_SCHEMES
from missile.engine.server import MslServer, Reply, Request, RequestRejected
from missile.errors import MslError, MslException
from missile.observe import Observer
from missile.profiles import context_from_keyfile
from missile.stores.open import MEMORY
from missile.tokens.factory import TokenFactory
from missile.transport.http import MslAsgiApp
from missile.userauth.email_password import EmailPasswordStore

__all__ = ["NOT_FOUND", "Handler", "Reply", "Request", "RequestRejected", "Server"]

#: The MSL error a request for a path without a route is answered with.
NOT_FOUND = MslError.MESSAGE_FORMAT_ERROR

DAY_S = 24 * 3600

#: An application function: the verified request in, the payload (or a :class:`Reply`) out.
Handler = Callable[[Request], Awaitable[bytes | Reply | None]]
H = TypeVar("H", bound=Callable[..., Awaitable[bytes | Reply | None]])


class RouteNotFound(MslException):
    """No route for the request's path (answered with :data:`NOT_FOUND`, FAIL)."""

    def __init__(self, path: str) -> None:
        shown = path if len(path) <= 200 else path[:200] + "..."  # the path is the requester's input
        super().__init__(NOT_FOUND, f"no route for {shown}")
        self.path = path
        self.user_message = f"no route for {shown}"
        """Sent in the error message, so the requester sees which path was wrong."""


def normalize_path(path: str) -> str:
    """The route key for ``path``: a leading "/", no trailing "/" (except the root), no query."""
    path = path.split("?", 1)[0]
    path = "/" + path.strip("/")
    return path


class Server(AsyncClosing):
    """An MSL server: keys, token state, routes; serve it with :meth:`asgi`.

    ``keys``: the server's key file (path or :class:`~missile.keyfile.KeyFile`).
    ``state``: where token state lives: a SQLite file path, a ``redis://`` URL, or
    ``":memory:"`` (one process, forgotten on restart: tests only); required, see the
    module docstring. ``allow_insecure``: insecure schemes to accept from clients
    (NONE, NONE_SUFFIXED, JWK_RSAES; refused by default). ``token_renewal`` and
    ``token_lifetime``: seconds after issue when master and user ID tokens become
    renewable and expire. ``users``: EMAIL_PASSWORD users, as an email-to-password
    mapping or an :class:`~missile.userauth.email_password.EmailPasswordStore`
    (default: the key file's ``users``). ``read_timeout``: seconds a stalled request
    may wait. ``max_payload_size``: largest request payload handed to a handler.
    """

    def __init__(
        self,
        keys: KeysOption,
        *,
        state: str | os.PathLike[str] | None,
        allow_insecure: Iterable[str] = (),
        token_renewal: int = DAY_S,
        token_lifetime: int = 7 * DAY_S,
        users: Mapping[str, str] | EmailPasswordStore | None = None,
        read_timeout: float | None = 30.0,
        max_payload_size: int = 64 * 1024 * 1024,
    ) -> None:
        key_file = load_keys(keys, "server")
        if key_file.token_keys is None:
            raise ConfigError("keys=: the key file has no msl_token_keys (a server needs them to issue tokens)")
        insecure = frozenset(allow_insecure)
        unknown = insecure - INSECURE_SCHEMES
        if unknown:
            choices = ", ".join(sorted(INSECURE_SCHEMES))
            raise ConfigError(f"allow_insecure=: unknown scheme(s) {', '.join(sorted(unknown))}; choose from {choices}")
        if not 0 < token_renewal <= token_lifetime:
            raise ConfigError("token_renewal= and token_lifetime=: need 0 < token_renewal <= token_lifetime (seconds)")
        self.state_location = _state_location(state)
        """Where the token state is (as given; ":memory:" for memory)."""
        self._state = open_state(self.state_location)
        factory = TokenFactory(
            self._state,
            master_token_renewal_ms=token_renewal * 1000,
            master_token_expiration_ms=token_lifetime * 1000,
            user_id_token_renewal_ms=token_renewal * 1000,
            user_id_token_expiration_ms=token_lifetime * 1000,
        )
        # Users are part of the configuration: given to the context as it is built.
        overrides: dict[str, Any] = {} if users is None else {"user_auth_factories": user_factories(key_file, users)}
        built = context_from_keyfile(
            key_file, role="server", token_factory=factory, allowed_insecure_schemes=insecure, **overrides
        )
        self._routes: dict[str, Callable[[Request], Awaitable[bytes | Reply | None]]] = {}
        self.engine = MslServer(
            built.ctx,
            self._dispatch,
            read_timeout=read_timeout,
            max_payload_size=max_payload_size,
            service_token_contexts=key_file.service_token_crypto_contexts(built.ctx.random),
        )
        """The protocol engine (for options the front door does not expose)."""
        self._app: MslAsgiApp | None = None
        self._closed = False

    @property
    def identity(self) -> str:
        """The server's entity identity."""
        return self.engine.ctx.identity or ""

    @property
    def routes(self) -> Sequence[str]:
        """The routed paths."""
        return tuple(self._routes)

    def route(self, path: str) -> Callable[[H], H]:
        """Decorator: ``@server.route("/notes")`` on ``async def notes(request) -> bytes | Reply``."""
        key = normalize_path(path)

        def register(handler: H) -> H:
            is_async = inspect.iscoroutinefunction(handler)  # (not a type guard here: H stays H)
            if not is_async:
                raise ConfigError(f"route({path!r}): the handler must be an async function")
            if key in self._routes:
                raise ConfigError(f"route({path!r}): {key} already has a handler")
            self._routes[key] = handler
            return handler

        return register

    async def _dispatch(self, request: Request) -> bytes | Reply | None:
        handler = self._routes.get(normalize_path(request.path))
        if handler is None:
            raise RouteNotFound(request.path)
        return await handler(request)

    def observe(self, observer: Observer) -> None:
        """Tell ``observer`` of every message and state call (:mod:`missile.observe`;
        by default messages are logged on the ``missile.server`` logger)."""
        self.engine.observer = observer
        factory = self.engine.ctx.token_factory
        if factory is not None:
            factory.observer = observer

    def asgi(self) -> MslAsgiApp:
        """The ASGI application: run it with uvicorn, or mount it in Starlette or FastAPI
        (``Mount("/msl", app=server.asgi())``); routes are relative to the mount point."""
        if self._app is None:
            self._app = MslAsgiApp(self.engine)
        return self._app

    async def aclose(self) -> None:
        """Release the token state (connections, file handles)."""
        if not self._closed:
            self._closed = True
            await self._state.aclose()

    def __repr__(self) -> str:
        return f"Server(identity={self.identity!r}, state={self.state_location!r}, routes={list(self._routes)})"


def _state_location(state: str | os.PathLike[str] | None) -> str:
    if state is None:
        raise ConfigError(
            "state=: required. Pass a SQLite file path (e.g. state='server.db'), a 'redis://' URL shared by "
            "every server, or ':memory:' for tests (in memory, a restart forgets replayed message IDs)"
        )
    text = os.fspath(state)
    if not text:
        raise ConfigError("state=: empty; pass a SQLite file path, a 'redis://' URL or ':memory:'")
    return text if text == MEMORY or "://" in text else os.path.abspath(text)
