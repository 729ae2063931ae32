"""A real uvicorn HTTP server on loopback serving an MslServer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

import vectorlib
from missile.engine.server import MslServer, Reply, Request
from missile.keyfile import KeyFile
from missile.profiles import context_from_keyfile
from missile.transport.http import MslAsgiApp


async def echo(request: Request) -> Reply:
    user = request.user.identity if request.user else "-"
    return Reply(data=request.payload + f"|{request.identity}|{user}".encode())


@dataclass
class RunningServer:
    url: str
    server: MslServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def http_server() -> Iterator[RunningServer]:
    keys = KeyFile.from_dict(vectorlib.load("01_a_psk_request_encrypted")["keys"])
    keys.time_ms = None
    # Every key exchange is tested over HTTP, the explicitly enabled JWK_RSAES included.
    server = MslServer(context_from_keyfile(keys, allowed_insecure_schemes=frozenset({"JWK_RSAES"})).ctx, echo)
    port = _free_port()
    config = uvicorn.Config(MslAsgiApp(server), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield RunningServer(f"http://127.0.0.1:{port}/msl", server)
    uv.should_exit = True
    thread.join(timeout=10)


def client_keys() -> KeyFile:
    keys = KeyFile.from_dict(vectorlib.load("03_c_response_asymmetric_wrapped_rsa")["keys"])
    keys.time_ms = None
    keys.master_tokens = []
    return keys
