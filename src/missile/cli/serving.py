"""``missile serve``: an MSL echo server over HTTP."""

from __future__ import annotations

import os
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


async def echo(request: Request) -> Reply:
    """Answer with the request's payload, streamed back as it arrives."""
    body = request.body
    if body is None:
        return Reply(data=request.payload)
    return Reply(data=aiter(body))


def build_app(
    keys_path: str,
    state: str | None = None,
    redis_url: str | None = None,
    renewal_s: int = DAY_S,
    expiration_s: int = 7 * DAY_S,
) -> MslAsgiApp:
    """The echo server's ASGI application for a key file."""
    keys = KeyFile.load(keys_path)
    keys.time_ms = None  # a live server uses the wall clock
    factory = token_factory_for(state, redis_url, renewal_s, expiration_s)
    built = context_from_keyfile(keys, role="server", token_factory=factory)
    server = MslServer(
        built.ctx,
        echo,
        streaming=True,
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
    )
