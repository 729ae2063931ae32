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


def token_factory_for(state: str | None, redis_url: str | None) -> TokenFactory | None:
    """The server state backend: SQLite file, Redis, or None for in-memory."""
    if redis_url:
        from missile.stores.redis_state import RedisTokenFactory

        return RedisTokenFactory(redis_url)
    if state:
        from missile.stores.sqlite_state import SqliteTokenFactory

        return SqliteTokenFactory(state)
    return None


async def echo(request: Request) -> Reply:
    """Answer with the request's payload."""
    return Reply(data=request.payload)


def build_app(keys_path: str, state: str | None = None, redis_url: str | None = None) -> MslAsgiApp:
    """The echo server's ASGI application for a key file."""
    keys = KeyFile.load(keys_path)
    keys.time_ms = None  # a live server uses the wall clock
    built = context_from_keyfile(keys, role="server", token_factory=token_factory_for(state, redis_url))
    server = MslServer(
        built.ctx,
        echo,
        service_token_contexts=keys.service_token_crypto_contexts(built.ctx.random),
    )
    return MslAsgiApp(server)


def create_app() -> Any:
    """Application factory for uvicorn workers (configured through the environment)."""
    return build_app(os.environ[ENV_KEYS], os.environ.get(ENV_STATE), os.environ.get(ENV_REDIS))
