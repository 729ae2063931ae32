"""A FastAPI service with an MSL endpoint: two routes and a per-user answer.

The MSL server is mounted under ``/msl`` beside ordinary FastAPI routes. Each route gets
a verified :class:`missile.Request`: ``/msl/whoami`` answers with the authenticated
entity and user, ``/msl/notes`` keeps a list of notes per user (a user must be
authenticated: the request is rejected otherwise, and the client asks its user for
credentials again).

Run it (keys from ``missile keygen keys``; the users and their passwords from the
environment, ``NOTES_USERS="alice@example.com=secret,bob@example.com=hunter2"``)::

    NOTES_KEYS=keys/server.json NOTES_STATE=notes.db uvicorn --factory notes_service:app --port 8080
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Mount

import missile


def parse_users(text: str) -> dict[str, str]:
    """``"a@x=pw1,b@x=pw2"`` as an email-to-password mapping."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {email.strip(): password for email, password in pairs}


def create_app(keys: str, state: str, users: dict[str, str]) -> FastAPI:
    """The FastAPI application, its MSL server mounted at /msl."""
    server = missile.Server(keys, state=state, users=users)
    notes: dict[str, list[str]] = {}

    @server.route("/whoami")
    async def whoami(request: missile.Request) -> bytes:
        user = request.user.identity if request.user is not None else "nobody"
        return f"entity {request.identity}, user {user}".encode()

    @server.route("/notes")
    async def user_notes(request: missile.Request) -> missile.Reply:
        if request.user is None:
            raise missile.RequestRejected(user=True, request=request)
        mine = notes.setdefault(request.user.identity, [])
        if request.payload:
            mine.append(request.payload.decode())
        return missile.Reply("\n".join(mine).encode())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await server.aclose()  # the token state's file or connections

    app = FastAPI(routes=[Mount("/msl", app=server.asgi())], lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "msl": server.identity}

    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory notes_service:app``, configured from the environment."""
    return create_app(
        os.environ.get("NOTES_KEYS", "keys/server.json"),
        os.environ.get("NOTES_STATE", "notes.db"),
        parse_users(os.environ.get("NOTES_USERS", "")),
    )
