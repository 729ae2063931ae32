"""The key files of the reference's example deployment (tests/interop, copied from the
shared interop folder) drive missile on both sides, and the app mounts in Starlette."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.engine.server import MslServer, Reply, Request
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.http import HttpTransport, MslAsgiApp
from missile.userauth.email_password import EmailPasswordAuthData

INTEROP = Path(__file__).resolve().parent.parent / "interop"


async def _echo(request: Request) -> Reply:
    user = request.user.identity if request.user else "-"
    return Reply(data=f"{request.identity}/{user}: ".encode() + request.payload)


def _starlette_app() -> Starlette:
    server = MslServer(context_from_keyfile(KeyFile.load(INTEROP / "main-server-keys.json")).ctx, _echo)
    return Starlette(routes=[Mount("/mslcli-server", app=MslAsgiApp(server))])


@pytest.mark.parametrize(
    ("client_file", "identity"),
    [("main-client-psk-keys.json", "client1"), ("main-client-rsa-keys.json", "rsaclient1")],
)
def test_example_deployment_keys_mounted_in_starlette(client_file: str, identity: str) -> None:
    async def go() -> None:
        app = _starlette_app()
        keys = KeyFile.load(INTEROP / client_file)
        ctx = context_from_keyfile(keys).ctx
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://example")
        transport = HttpTransport("http://example/mslcli-server/", client=http)
        client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys))
        try:
            reply = await client.request(b"hello")
            assert reply.payload == f"{identity}/-: hello".encode()
            options = MessageOptions(user_id="u", user_auth=EmailPasswordAuthData("user2@foo.com", "user2pwd"))
            reply = await client.request(b"as user", options)
            assert reply.payload == f"{identity}/user2@foo.com: as user".encode()
            assert reply.user_id_token is not None
        finally:
            await http.aclose()

    asyncio.run(go())
