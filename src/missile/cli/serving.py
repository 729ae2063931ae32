"""``missile serve``: an MSL echo server over HTTP."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from missile.engine.server import MslServer, Reply, Request
from missile.keyfile import KeyFile
from missile.profiles import context_from_keyfile
from missile.tokens.factory import TokenFactory
from missile.transport.http import MslAsgiApp

ENV_KEYS = "MISSILE_KEYS"
ENV_STATE = "MISSILE_STATE"
ENV_REDIS = "MISSILE_REDIS"
ENV_RENEWAL = "MISSILE_RENEWAL_S"
ENV_EXPIRATION = "MISSILE_EXPIRATION_S"
ENV_INSECURE = "MISSILE_ALLOW_INSECURE"
ENV_READ_TIMEOUT = "MISSILE_READ_TIMEOUT_S"

DAY_S = 24 * 3600


def token_factory_for(
    state: str | None, redis_url: str | None, renewal_s: int = DAY_S, expiration_s: int = 7 * DAY_S
) -> TokenFactory:
    """The server state backend: Redis, an SQLite file, or memory."""
    renewal, expiration = renewal_s * 1000, expiration_s * 1000
    if redis_url:
        from missile.stores.redis_state import RedisTokenFactory

        return RedisTokenFactory(
            redis_url,
            master_token_renewal_ms=renewal,
            master_token_expiration_ms=expiration,
            user_id_token_renewal_ms=renewal,
            user_id_token_expiration_ms=expiration,
        )
    if state:
        from missile.stores.sqlite_state import SqliteTokenFactory

        return SqliteTokenFactory(
            state,
            master_token_renewal_ms=renewal,
            master_token_expiration_ms=expiration,
            user_id_token_renewal_ms=renewal,
            user_id_token_expiration_ms=expiration,
        )
    from missile.tokens.factory import InMemoryTokenFactory

    return InMemoryTokenFactory(
        master_token_renewal_ms=renewal,
        master_token_expiration_ms=expiration,
        user_id_token_renewal_ms=renewal,
        user_id_token_expiration_ms=expiration,
    )


#: Request payloads up to this size are echoed from memory; larger ones from a temp file.
SPOOL_MEMORY = 4 * 1024 * 1024


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
    # Closed by replay() once the reply has been sent.
    spool = tempfile.TemporaryFile()  # noqa: SIM115
    spool.writelines(pieces)
    del pieces
    async for chunk in iterator:
        spool.write(chunk)
    spool.seek(0)

    async def replay() -> AsyncIterator[bytes]:
        with spool:
            while piece := spool.read(256 * 1024):
                yield piece

    return Reply(data=replay())


def build_app(
    keys_path: str,
    state: str | None = None,
    redis_url: str | None = None,
    renewal_s: int = DAY_S,
    expiration_s: int = 7 * DAY_S,
    allow_insecure: frozenset[str] = frozenset(),
    read_timeout: float = 30.0,
) -> MslAsgiApp:
    """The echo server's ASGI application for a key file."""
    keys = KeyFile.load(keys_path)
    keys.time_ms = None  # a live server uses the wall clock
    factory = token_factory_for(state, redis_url, renewal_s, expiration_s)
    built = context_from_keyfile(
        keys, role="server", token_factory=factory, allowed_insecure_schemes=allow_insecure
    )
    server = MslServer(
        built.ctx,
        echo,
        streaming=True,
        read_timeout=read_timeout,
        service_token_contexts=keys.service_token_crypto_contexts(built.ctx.random),
    )
    return MslAsgiApp(server)


def create_app() -> Any:
    """Application factory for uvicorn workers (configured through the environment)."""
    return build_app(
        os.environ[ENV_KEYS],
        os.environ.get(ENV_STATE),
        os.environ.get(ENV_REDIS),
        int(os.environ.get(ENV_RENEWAL, DAY_S)),
        int(os.environ.get(ENV_EXPIRATION, 7 * DAY_S)),
        frozenset(filter(None, os.environ.get(ENV_INSECURE, "").split(","))),
        float(os.environ.get(ENV_READ_TIMEOUT, 30.0)),
    )
