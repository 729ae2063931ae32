"""``missile serve``: an MSL echo server over HTTP.

The command validates its options and checks everything it can once in the parent
process (key file, state backend, Redis reachability and persistence), so that a bad
start-up is one line on stderr rather than a traceback from every worker. Worker
processes are spawned by uvicorn and configured through the environment (the
``MISSILE_*`` variables below): :func:`create_app` builds the application and
:class:`ServeHttpProtocol` reads the connection limits.

State is durable by default: without ``--state``/``--redis``/``--redis-cluster`` the
server keeps its token state in SQLite at :func:`default_state_path`. In-memory state
forgets every accepted non-replayable ID when the server restarts, and with several
workers each worker would keep its own, so a replay refused by one is accepted by the
other; it is therefore only used when asked for (``--state :memory:``, one worker).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from missile.cli import observing
from missile.engine.server import MslServer, Reply, Request
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.messages.capabilities import DEFAULT_CAPABILITIES, JSON_PREFERRED
from missile.profiles import context_from_keyfile
from missile.stores.open import MEMORY, open_token_state
from missile.stores.redis_state import redacted_url
from missile.tokens.factory import DEFAULT_STATE_TIMEOUT, TokenFactory
from missile.transport.http import MslAsgiApp
from missile.transport.http_server import ConnectionLimits, HardenedHttpToolsProtocol

if TYPE_CHECKING:
    from missile.server import Server

ENV_KEYS = "MISSILE_KEYS"
ENV_STATE = "MISSILE_STATE"
ENV_REDIS = "MISSILE_REDIS"
ENV_REDIS_CLUSTER = "MISSILE_REDIS_CLUSTER"
ENV_RENEWAL = "MISSILE_RENEWAL_S"
ENV_EXPIRATION = "MISSILE_EXPIRATION_S"
ENV_INSECURE = "MISSILE_ALLOW_INSECURE"
ENV_READ_TIMEOUT = "MISSILE_READ_TIMEOUT_S"
ENV_MAX_SPOOL = "MISSILE_MAX_SPOOL"
ENV_STATE_TIMEOUT = "MISSILE_STATE_TIMEOUT_S"
ENV_PREFER_JSON = "MISSILE_PREFER_JSON"
ENV_HTTP_LIMITS = "MISSILE_HTTP_LIMITS"
ENV_APP = "MISSILE_APP"

DAY_S = 24 * 3600


#: Request payloads up to this size are echoed from memory; larger ones from a temp file.
SPOOL_MEMORY = 4 * 1024 * 1024

#: Largest request payload the echo server spools to disk for one request. A payload is
#: echoed only once it has been read completely (see :func:`make_echo`), so without a
#: bound every request could fill the disk; 256 MiB is far above what MSL applications
#: send in one message and small enough that a few concurrent ones fit in /tmp.
DEFAULT_MAX_SPOOL = 256 * 1024 * 1024


class StartupError(Exception):
    """A start-up failure, as the one line ``missile serve`` prints."""


def token_factory_for(
    state: str | None,
    redis_url: str | None,
    renewal_s: int = DAY_S,
    expiration_s: int = 7 * DAY_S,
    *,
    redis_cluster_url: str | None = None,
    state_timeout: float = DEFAULT_STATE_TIMEOUT,
) -> TokenFactory:
    """The server's token factory over its state: a Redis Cluster, Redis, or ``state``
    (a SQLite path or ``":memory:"``; None means memory, for callers that ask so)."""
    if redis_cluster_url:
        backend = open_token_state(redis_cluster_url, cluster=True)
    elif redis_url:
        backend = open_token_state(redis_url)
    else:
        backend = open_token_state(state or MEMORY)
    renewal, expiration = renewal_s * 1000, expiration_s * 1000
    return TokenFactory(
        backend,
        master_token_renewal_ms=renewal,
        master_token_expiration_ms=expiration,
        user_id_token_renewal_ms=renewal,
        user_id_token_expiration_ms=expiration,
        state_timeout=state_timeout,
    )


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/missile/server-state.db``, or ``~/.local/state/missile/...``
    when ``XDG_STATE_HOME`` is unset or relative (the XDG base directory rules)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "missile" / "server-state.db"


def prepare_default_state() -> Path:
    """The default state path, its directory created owner-only (0700) if missing."""
    path = default_state_path()
    try:
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create state directory {path.parent}: {exc.strerror or exc}") from exc
    return path


# -- the echo handler -----------------------------------------------------------------------


Handler = Callable[[Request], Awaitable[Reply]]


def make_echo(max_spool: int = DEFAULT_MAX_SPOOL) -> Handler:
    """A handler answering with the request's payload, spooling at most ``max_spool``
    bytes of it to disk (beyond: MESSAGE_FORMAT_ERROR, the error the reference gives an
    oversized message, and the temporary file is removed)."""

    async def echo(request: Request) -> Reply:
        """Answer with the request's payload.

        The payload is read completely before the reply starts: HTTP/1.1 clients (httpx,
        the reference's HttpURLConnection) send their whole request before reading the
        response, so writing while still reading could deadlock them. It is spooled to a
        temporary file past 4 MiB, so memory stays flat however large the message.
        """
        body = request.body
        if body is None:
            return Reply(data=request.payload)
        pieces: list[bytes] = []
        size = 0
        iterator = aiter(body)
        async for chunk in iterator:
            pieces.append(chunk)
            size += len(chunk)
            if size > SPOOL_MEMORY:
                break
        else:
            # The common case: a payload small enough to answer from memory.
            return Reply(data=b"".join(pieces))
        # Closed by replay() once the reply has been sent, or here on any failure (a
        # TemporaryFile has no name: closing it frees its disk space).
        spool = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            _check_spool(size, max_spool)
            spool.writelines(pieces)
            del pieces
            async for chunk in iterator:
                size += len(chunk)
                _check_spool(size, max_spool)
                spool.write(chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise

        async def replay() -> AsyncIterator[bytes]:
            with spool:
                while piece := spool.read(256 * 1024):
                    yield piece

        return Reply(data=replay())

    return echo


def _check_spool(size: int, max_spool: int) -> None:
    if size > max_spool:
        raise MslException(MslError.MESSAGE_FORMAT_ERROR, f"request payload over the server's {max_spool}-byte limit")


#: The handler with the default spool bound.
echo = make_echo()


# -- the application ------------------------------------------------------------------------


def build_app(
    keys_path: str,
    state: str | None = None,
    redis_url: str | None = None,
    renewal_s: int = DAY_S,
    expiration_s: int = 7 * DAY_S,
    allow_insecure: frozenset[str] = frozenset(),
    read_timeout: float = 30.0,
    *,
    redis_cluster_url: str | None = None,
    max_spool: int = DEFAULT_MAX_SPOOL,
    state_timeout: float = DEFAULT_STATE_TIMEOUT,
) -> MslAsgiApp:
    """The echo server's ASGI application for a key file."""
    keys = KeyFile.load(keys_path)
    keys.time_ms = None  # a live server uses the wall clock
    factory = token_factory_for(
        state, redis_url, renewal_s, expiration_s, redis_cluster_url=redis_cluster_url, state_timeout=state_timeout
    )
    built = context_from_keyfile(
        keys, role="server", token_factory=factory, allowed_insecure_schemes=allow_insecure
    )
    observer = observing.server_observer()
    factory.observer = observer
    server = MslServer(
        built.ctx,
        make_echo(max_spool),
        streaming=True,
        read_timeout=read_timeout,
        service_token_contexts=keys.service_token_crypto_contexts(built.ctx.random),
        observer=observer,
        capabilities=JSON_PREFERRED if os.environ.get(ENV_PREFER_JSON) else DEFAULT_CAPABILITIES,
    )
    return MslAsgiApp(server)


def create_app() -> Any:
    """Application factory for uvicorn workers (configured through the environment).

    Without ``MISSILE_STATE`` (nor Redis) the state is the SQLite file at
    :func:`default_state_path`, as for the command.
    """
    app_ref = os.environ.get(ENV_APP)
    if app_ref:
        user_server = load_user_server(app_ref)
        user_server.observe(observing.server_observer())
        return observing.with_metrics(user_server.asgi())
    redis_url = os.environ.get(ENV_REDIS)
    cluster = os.environ.get(ENV_REDIS_CLUSTER)
    state = os.environ.get(ENV_STATE)
    if state is None and not redis_url and not cluster:
        state = str(default_state_path())
    app = build_app(
        os.environ[ENV_KEYS],
        state,
        redis_url,
        int(os.environ.get(ENV_RENEWAL, DAY_S)),
        int(os.environ.get(ENV_EXPIRATION, 7 * DAY_S)),
        frozenset(filter(None, os.environ.get(ENV_INSECURE, "").split(","))),
        float(os.environ.get(ENV_READ_TIMEOUT, 30.0)),
        redis_cluster_url=cluster,
        max_spool=int(os.environ.get(ENV_MAX_SPOOL, DEFAULT_MAX_SPOOL)),
        state_timeout=float(os.environ.get(ENV_STATE_TIMEOUT, DEFAULT_STATE_TIMEOUT)),
    )
    return observing.with_metrics(app)


# -- connection limits ----------------------------------------------------------------------


def limits_to_env(limits: ConnectionLimits) -> str:
    """The value of ``MISSILE_HTTP_LIMITS`` for ``limits``."""
    return json.dumps(asdict(limits), sort_keys=True)


def limits_from_env() -> ConnectionLimits:
    """The limits the command put in the environment (the defaults when absent)."""
    raw = os.environ.get(ENV_HTTP_LIMITS)
    return ConnectionLimits(**json.loads(raw)) if raw else ConnectionLimits()


class ServeHttpProtocol(HardenedHttpToolsProtocol):
    """The HTTP protocol of ``missile serve``: uvicorn imports it by name in every
    worker, and it takes its limits from the environment the command set."""

    _from_env: ClassVar[ConnectionLimits | None] = None

    @classmethod
    def connection_limits(cls) -> ConnectionLimits:
        if cls._from_env is None:
            cls._from_env = limits_from_env()
        return cls._from_env


# -- the command's settings ----------------------------------------------------------------


@dataclass(frozen=True)
class StateChoice:
    """The state backend ``missile serve`` uses: the SQLite path or ``":memory:"``
    (None with Redis) and how the start-up line names it."""

    state: str | None
    description: str


def resolve_state(
    state: str | None, redis_url: str | None, redis_cluster_url: str | None, *, warn: Callable[[str], None]
) -> StateChoice:
    """Check the chosen backend (the default SQLite file when none is given); a Redis
    persistence warning goes to ``warn``. Raises :class:`StartupError`."""
    if redis_url:
        warning = check_redis(redis_url)
        if warning:
            warn(warning)
        return StateChoice(None, f"redis {redacted_url(redis_url)}")
    if redis_cluster_url:
        for warning in check_redis_cluster(redis_cluster_url):
            warn(warning)
        return StateChoice(None, f"redis cluster {redacted_url(redis_cluster_url)}")
    if state is None:
        state = str(prepare_default_state())
    elif state != MEMORY:
        state = os.path.abspath(state)
    check_state(state)
    return StateChoice(state, "memory (lost on restart)" if state == MEMORY else f"sqlite {state}")


@dataclass(frozen=True)
class ServeSettings:
    """What the command passes to its workers, through the environment."""

    keys_path: str
    state: str | None
    redis_url: str | None
    redis_cluster_url: str | None
    renewal_s: int
    expiration_s: int
    allow_insecure: tuple[str, ...]
    read_timeout: float
    max_spool: int
    limits: ConnectionLimits
    state_timeout: float = DEFAULT_STATE_TIMEOUT
    prefer_binary: bool = True

    def export(self, env: MutableMapping[str, str]) -> None:
        """Set (or clear) every ``MISSILE_*`` variable :func:`create_app` and
        :class:`ServeHttpProtocol` read."""
        optional = {ENV_STATE: self.state, ENV_REDIS: self.redis_url, ENV_REDIS_CLUSTER: self.redis_cluster_url}
        for name, value in optional.items():
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        env.pop(ENV_APP, None)  # the echo server, not a --app one
        env[ENV_KEYS] = self.keys_path
        env[ENV_RENEWAL] = str(self.renewal_s)
        env[ENV_EXPIRATION] = str(self.expiration_s)
        env[ENV_INSECURE] = ",".join(self.allow_insecure)
        env[ENV_READ_TIMEOUT] = str(self.read_timeout)
        env[ENV_MAX_SPOOL] = str(self.max_spool)
        env[ENV_STATE_TIMEOUT] = str(self.state_timeout)
        env[ENV_PREFER_JSON] = "" if self.prefer_binary else "1"
        env[ENV_HTTP_LIMITS] = limits_to_env(self.limits)


# -- start-up checks ------------------------------------------------------------------------


def load_keys_checked(keys_path: str) -> None:
    """Raise :class:`StartupError` (one line) unless ``keys_path`` is a usable key file."""
    if not os.path.exists(keys_path):
        raise StartupError(f"key file {keys_path} not found")
    try:
        keys = KeyFile.load(keys_path)
        keys.time_ms = None
        context_from_keyfile(keys, role="server")
    except OSError as exc:
        raise StartupError(f"cannot read key file {keys_path}: {exc.strerror or type(exc).__name__}") from exc
    except MslException as exc:
        raise StartupError(f"bad key file {keys_path}: {exc}") from exc
    except Exception as exc:
        # Other parse failures: the type only, since a message might quote key material.
        raise StartupError(f"bad key file {keys_path}: {type(exc).__name__}") from exc


def check_state(state: str) -> None:
    """Raise :class:`StartupError` unless the SQLite state file can be opened."""
    if state == MEMORY:
        return
    from missile.stores.sqlite import StateFileError
    from missile.stores.sqlite_state import SqliteTokenState

    try:
        SqliteTokenState(state).close()
    except StateFileError as exc:
        raise StartupError(str(exc)) from exc  # already one line naming the file and the remedy
    except MslException as exc:
        raise StartupError(f"cannot use state file {state}: {exc}") from exc
    except (OSError, sqlite3.Error) as exc:
        raise StartupError(f"cannot use state file {state}: {exc}") from exc


def check_redis(url: str) -> str | None:
    """Ping Redis at ``url``; a one-line warning when its persistence is off (or cannot
    be checked), else None. Unreachable: :class:`StartupError`.

    Without RDB snapshots or an append-only file, a Redis restart forgets every accepted
    non-replayable ID and every revocation, so replays and revoked tokens are accepted
    again afterwards.
    """
    import redis

    shown = redacted_url(url)
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    except ValueError as exc:
        raise StartupError(f"bad Redis URL {shown}: {exc}") from exc
    try:
        client.ping()
        try:
            persistent = _persistent(client)
        except redis.ResponseError:
            return f"warning: could not check the persistence of Redis at {shown} (CONFIG not allowed)"
        if not persistent:
            return (
                f"warning: Redis at {shown} has persistence off (no snapshots, no append-only file): "
                "a restart forgets replay windows and revocations"
            )
        return None
    except redis.RedisError as exc:
        raise StartupError(f"cannot reach Redis at {shown}: {exc}") from exc
    finally:
        client.close()


def check_redis_cluster(url: str) -> list[str]:
    """Reach the Redis Cluster at ``url`` (any node) and check each of its nodes as
    :func:`check_redis` checks one Redis: one-line warnings for the nodes whose
    persistence is off or cannot be checked. Unreachable, or down (a node says its
    ``cluster_state`` is not ok: no check would succeed): :class:`StartupError`.

    Every node counts, replicas too: a replica promoted after a failover holds the
    state from then on, and a master that restarts empty makes its replicas empty too
    (they copy it)."""
    import redis
    from redis.cluster import RedisCluster

    shown = redacted_url(url)
    try:
        client = RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    except ValueError as exc:
        raise StartupError(f"bad Redis Cluster URL {shown}: {exc}") from exc
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise StartupError(f"cannot use Redis Cluster at {shown}: {_first_line(exc)}") from exc
    try:
        every = sorted(client.get_nodes(), key=lambda n: n.name)  # type: ignore[no-untyped-call]
        nodes = [_check_cluster_node(client, node) for node in every]
    finally:
        client.close()
    down = [node.name for node in nodes if node.state not in (None, "ok")]
    if down:
        raise StartupError(f"Redis Cluster at {shown} is down (cluster_state not ok on {', '.join(down)})")
    off = [node.name for node in nodes if node.persistent is False]
    unknown = [node.name for node in nodes if node.persistent is None]
    warnings = []
    if off:
        warnings.append(
            f"warning: Redis Cluster at {shown} has persistence off on {len(off)} node(s) ({', '.join(off)}): "
            "a restart of one forgets its replay windows and revocations"
        )
    if unknown:
        warnings.append(
            f"warning: could not check the persistence of Redis Cluster at {shown} on {len(unknown)} node(s) "
            f"({', '.join(unknown)}: CONFIG not allowed, or no answer)"
        )
    return warnings


@dataclass(frozen=True)
class _ClusterNodeCheck:
    name: str
    state: str | None
    """Its ``cluster_state`` (None: it did not answer)."""
    persistent: bool | None
    """Whether snapshots or the append-only file are on (None: could not be read)."""


def _check_cluster_node(client: Any, node: Any) -> _ClusterNodeCheck:
    import redis

    conn = client.get_redis_connection(node)
    try:
        info = conn.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        state = fields.get("cluster_state", "").strip()
    except redis.RedisError:
        return _ClusterNodeCheck(node.name, None, None)
    try:
        return _ClusterNodeCheck(node.name, state, _persistent(conn))
    except redis.RedisError:
        return _ClusterNodeCheck(node.name, state, None)


def _persistent(client: Any) -> bool:
    """Whether the Redis behind ``client`` (a sync ``redis.Redis``) keeps its data over a
    restart: RDB snapshots (``save``) or the append-only file. Raises redis-py's errors
    (a ResponseError when CONFIG is not allowed)."""
    save = client.config_get("save").get("save", "")
    appendonly = client.config_get("appendonly").get("appendonly", "no")
    return bool(str(save).strip()) or str(appendonly).lower() != "no"


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (redis-py's cluster errors may span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_listen(host: str, port: int) -> None:
    """Raise :class:`StartupError` unless ``host:port`` can be listened on now: an
    address in use, a host that does not resolve or is not this machine's, or a port
    that needs privileges is one line before the start-up line, not a uvicorn log
    record after it. The socket is bound and closed at once (with SO_REUSEADDR, as
    uvicorn binds, so nothing lingers); uvicorn then binds the address itself."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:  # socket.gaierror included
        raise StartupError(f"cannot listen on {where}: {exc.strerror or type(exc).__name__}") from exc


def check_app() -> None:
    """Build the application once as a worker will, reporting failures as one line."""
    try:
        create_app()
    except StartupError:
        raise
    except MslException as exc:
        raise StartupError(str(exc)) from exc
    except Exception as exc:
        raise StartupError(f"cannot start: {type(exc).__name__}") from exc


def parse_size(text: str) -> int:
    """Bytes from ``"16384"``, ``"16K"``, ``"256M"`` or ``"1G"`` (binary multiples)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = units.get(value[-1:], 1)
    if factor != 1:
        value = value[:-1]
    if not value.isdigit():
        raise ValueError(f"not a size: {text!r} (use e.g. 16384, 16K, 256M)")
    return int(value) * factor


# -- --app: the user's own Server ------------------------------------------------------------


def load_user_server(ref: str) -> Server:
    """The :class:`missile.Server` named ``package.module:attribute``, imported with the
    current directory on ``sys.path`` (as uvicorn imports an application)."""
    import importlib
    import sys

    from missile.server import Server

    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise StartupError(f"--app {ref}: expected package.module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StartupError(f"--app {ref}: cannot import {module_name} ({exc})") from exc
    found: object = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise StartupError(f"--app {ref}: {module_name} has no attribute {attribute}")
    if not isinstance(found, Server):
        raise StartupError(f"--app {ref}: {type(found).__name__}, not a missile.Server")
    return found


def check_user_app(ref: str, workers: int) -> str:
    """Import the user's server once in the parent; how the start-up line describes it."""
    from missile._setup import ConfigError

    try:
        server = load_user_server(ref)
    except StartupError:
        raise
    except (ConfigError, MslException) as exc:
        raise StartupError(f"--app {ref}: {exc}") from exc
    except Exception as exc:
        raise StartupError(f"--app {ref}: importing it failed ({type(exc).__name__}: {exc})") from exc
    if server.state_location == MEMORY and workers > 1:
        raise StartupError(
            f"--app {ref}: state ':memory:' gives each worker its own state (a replay refused by one is "
            "accepted by another); use a state file or a redis:// URL with --workers > 1"
        )
    routes = ", ".join(server.routes) or "no routes"
    shown = server.state_location if "://" not in server.state_location else redacted_url(server.state_location)
    return f"routes {routes}, state {shown}"


def export_user_app(ref: str, limits: ConnectionLimits, env: MutableMapping[str, str]) -> None:
    """Tell the workers to serve ``ref`` with ``limits``."""
    env[ENV_APP] = ref
    env[ENV_HTTP_LIMITS] = limits_to_env(limits)
