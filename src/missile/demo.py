"""The main demo: a missile server and a missile client over HTTP on loopback.

Run with ``python -m missile.demo``. It generates fresh keys, starts an HTTP echo
server, and has a PSK client:

1. send a first request that carries key exchange data (JWK_LADDER, PSK mechanism)
   and receives a master token with new session keys;
2. reuse the session without key exchange;
3. authenticate a user with EMAIL_PASSWORD and receive a user ID token;
4. wait for the master token's renewal window and renew it (JWK_LADDER, WRAP
   mechanism with the wrapping key from step 1), keeping its serial number;
5. send a non-replayable message (it carries a fresh non-replayable ID).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from missile.cli.keys import generate, write_private
from missile.engine.client import MslClient, Response
from missile.engine.options import MessageOptions
from missile.engine.server import MslServer, Reply, Request
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.tokens.factory import TokenFactory
from missile.transport.http import HttpTransport, MslAsgiApp
from missile.userauth.email_password import EmailPasswordAuthData

RENEWAL_MS = 2000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _describe(step: str, response: Response) -> None:
    data = response.header.data
    mt = response.master_token
    krd = data.key_response_data
    print(f"\n== {step}")
    print(f"   response payload     : {response.payload.decode()!r}")
    print(f"   MSL messages used    : {response.messages}")
    print(f"   key exchange         : {krd.scheme if krd else 'none (session reused)'}")
    if mt is not None:
        print(f"   master token         : serial {mt.serial_number}, sequence {mt.sequence_number}")
    uit = data.user_id_token
    print(f"   user ID token        : {'serial ' + str(uit.serial_number) if uit else 'none'}")


async def _handler(request: Request) -> Reply:
    user = request.user.identity if request.user is not None else "no user"
    return Reply(data=f"echo from server to {request.identity} ({user}): ".encode() + request.payload)


def main() -> None:
    """Run the demo."""
    workdir = Path(tempfile.mkdtemp(prefix="missile-demo-"))
    server_keys_doc, client_keys_doc = generate("demo-server", "demo-client")
    write_private(workdir / "server.json", server_keys_doc)
    write_private(workdir / "client.json", client_keys_doc)
    print(f"keys written to {workdir} (owner-only files)")

    server_keys = KeyFile.load(workdir / "server.json")
    factory = TokenFactory(master_token_renewal_ms=RENEWAL_MS, master_token_expiration_ms=60_000)
    server_ctx = context_from_keyfile(server_keys, token_factory=factory).ctx
    server = MslServer(server_ctx, _handler)
    port = _free_port()
    config = uvicorn.Config(MslAsgiApp(server), host="127.0.0.1", port=port, log_level="warning")
    http_server = uvicorn.Server(config)
    thread = threading.Thread(target=http_server.run, daemon=True)
    thread.start()
    while not http_server.started:
        time.sleep(0.05)
    print(f"server listening on http://127.0.0.1:{port}/ (RSA entity auth, token renewal after {RENEWAL_MS} ms)")

    asyncio.run(_client_steps(workdir, port, server_keys))
    http_server.should_exit = True
    thread.join(timeout=5)
    print("\ndemo finished")


async def _client_steps(workdir: Path, port: int, server_keys: KeyFile) -> None:
    client_keys = KeyFile.load(workdir / "client.json")
    ctx = context_from_keyfile(client_keys).ctx
    transport = HttpTransport(f"http://127.0.0.1:{port}/")
    client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, client_keys, "JWK_LADDER"))
    try:
        _describe("1. first request: PSK entity auth + JWK_LADDER key exchange", await client.request(b"hello"))
        _describe("2. second request: the session is reused", await client.request(b"hello again"))
        user = server_keys.users[0]
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(user.email, user.password))
        _describe(f"3. user authentication as {user.email}", await client.request(b"who am I?", options))
        print(f"\n   ... waiting {RENEWAL_MS / 1000:.0f} s for the master token's renewal window")
        await asyncio.sleep(RENEWAL_MS / 1000 + 0.5)
        _describe("4. renewal (JWK_LADDER with the WRAP mechanism)", await client.request(b"renew me", options))
        replay = MessageOptions(non_replayable=True)
        _describe("5. non-replayable message", await client.request(b"exactly once", replay))
    finally:
        await transport.aclose()


if __name__ == "__main__":
    main()
