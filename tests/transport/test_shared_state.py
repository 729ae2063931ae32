"""Two real server processes sharing one real Redis; a server restart over SQLite."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from missile.cli.keys import generate, write_private
from missile.engine.client import MslClient
from missile.errors import ResponseCode
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.messages import ErrorReceived, MessageReader, MessageWriter
from missile.messages.builder import build_request
from missile.profiles import KeyFileContext, context_from_keyfile
from missile.stores.redis_state import RedisTokenState
from missile.transport.http import HttpTransport
from redis_helpers import free_port

CLI = [sys.executable, "-m", "missile.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


@dataclass
class Deployment:
    keys: Path
    urls: list[str]


def _start_server(keys: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--keys", str(keys), "--port", str(port), *extra],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/"
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def _keys(directory: Path) -> Path:
    server, client = generate("server1", "client1")
    write_private(directory / "server.json", server)
    write_private(directory / "client.json", client)
    return directory


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    directory = _keys(tmp_path_factory.mktemp("shared"))
    procs = []
    urls = []
    try:
        for _ in range(2):
            proc, url = _start_server(directory / "server.json", "--redis", redis_url, "--renewal", "2")
            procs.append(proc)
            urls.append(url)
        yield Deployment(directory, urls)
    finally:
        for proc in procs:
            _stop(proc)


def _client(directory: Path) -> KeyFileContext:
    keys = KeyFile.load(directory / "client.json")
    return context_from_keyfile(keys)


async def _session(built: KeyFileContext, url: str) -> MslClient:
    client = MslClient(
        built.ctx, HttpTransport(url), key_requests=key_request_factory(built.ctx, built.keys, "SYMMETRIC_WRAPPED")
    )
    await client.request(b"establish")
    return client


def _non_replayable_message(built: KeyFileContext) -> bytes:
    built_msg = build_request(built.ctx, non_replayable=True)
    writer = MessageWriter(built_msg.header, built_msg.payload_crypto_context)
    return writer.header_bytes() + writer.write(b"pay once") + writer.close()


def _error_code(built: KeyFileContext, body: bytes) -> ResponseCode | None:
    reader = MessageReader(built.ctx, single_message=True)
    events = [*reader.feed(body), *reader.end_of_stream()]
    first = events[0]
    return first.error_header.error_code if isinstance(first, ErrorReceived) else None


def test_non_replayable_accepted_by_one_is_rejected_by_the_other(two_servers: Deployment) -> None:
    built = _client(two_servers.keys)
    asyncio.run(_session(built, two_servers.urls[0]))
    message = _non_replayable_message(built)
    first = httpx.post(two_servers.urls[0], content=message, timeout=30)
    assert first.status_code == 200
    assert _error_code(built, first.content) is None
    replay = httpx.post(two_servers.urls[1], content=message, timeout=30)
    assert _error_code(built, replay.content) is ResponseCode.REPLAYED


def test_master_token_revoked_in_shared_state_is_refused_by_both(two_servers: Deployment, redis_url: str) -> None:
    async def go() -> None:
        built = _client(two_servers.keys)
        client = await _session(built, two_servers.urls[0])
        store = built.ctx.store
        assert store is not None
        token = store.get_master_token()
        assert token is not None
        # Revoke through the shared state, as an operator on server A would.
        admin = RedisTokenState(redis_url)
        await admin.revoke_master_token(token.serial_number)
        await admin.aclose()
        other = MslClient(built.ctx, HttpTransport(two_servers.urls[1]), key_requests=client.key_requests)
        reply = await other.request(b"after revocation")
        # Server B refused the revoked token (ENTITY_REAUTH); the client re-authenticated.
        assert reply.payload == b"after revocation"
        assert reply.messages == 4
        new_token = store.get_master_token()
        assert new_token is not None and new_token.serial_number != token.serial_number

    asyncio.run(go())


def test_renewals_through_both_servers_lose_no_sequence_update(two_servers: Deployment) -> None:
    async def go() -> None:
        built = _client(two_servers.keys)
        clients = [await _session(built, two_servers.urls[0])]
        clients.append(MslClient(built.ctx, HttpTransport(two_servers.urls[1]), key_requests=clients[0].key_requests))
        store = built.ctx.store
        assert store is not None
        start = store.get_master_token()
        assert start is not None
        for round_no in range(1, 4):
            await asyncio.sleep(2.1)  # into the renewal window (2 s)
            # Both servers get a request at once carrying the same renewable token.
            replies = await asyncio.gather(*(c.request(f"r{round_no}".encode()) for c in clients))
            assert all(r.payload == f"r{round_no}".encode() for r in replies)
            token = store.get_master_token()
            assert token is not None
            assert token.serial_number == start.serial_number
            assert token.sequence_number == round_no  # exactly one renewal per round, none lost

    asyncio.run(go())


def test_server_restart_keeps_state(tmp_path: Path) -> None:
    directory = _keys(tmp_path)
    state = tmp_path / "state.db"
    proc, url = _start_server(directory / "server.json", "--state", str(state))
    try:
        built = _client(directory)
        asyncio.run(_session(built, url))
        message = _non_replayable_message(built)
        assert _error_code(built, httpx.post(url, content=message, timeout=30).content) is None
    finally:
        _stop(proc)
    proc, url = _start_server(directory / "server.json", "--state", str(state))
    try:
        # The replay window survived the restart, and so does the session.
        assert _error_code(built, httpx.post(url, content=message, timeout=30).content) is ResponseCode.REPLAYED

        async def again() -> None:
            client = MslClient(built.ctx, HttpTransport(url), key_requests=None)
            reply = await client.request(b"still here")
            assert reply.payload == b"still here"
            assert reply.header.data.key_response_data is None

        asyncio.run(again())
    finally:
        _stop(proc)
