"""Two real server processes sharing one real Redis; a server restart over SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from missile.engine.client import MslClient
from missile.errors import ResponseCode
from missile.stores.redis_state import RedisTokenState
from missile.transport.http import HttpTransport
from serve_helpers import client_context, error_code, establish, non_replayable_message, start_serve, stop, write_keys


@dataclass
class Deployment:
    keys: Path
    urls: list[str]


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    directory = write_keys(tmp_path_factory.mktemp("shared"))
    procs = []
    urls = []
    try:
        for _ in range(2):
            proc, url = start_serve(directory / "server.json", "--redis", redis_url, "--renewal", "2")
            procs.append(proc)
            urls.append(url)
        yield Deployment(directory, urls)
    finally:
        for proc in procs:
            stop(proc)


def test_non_replayable_accepted_by_one_is_rejected_by_the_other(two_servers: Deployment) -> None:
    built = client_context(two_servers.keys)
    asyncio.run(establish(built, two_servers.urls[0]))
    message = non_replayable_message(built)
    first = httpx.post(two_servers.urls[0], content=message, timeout=30)
    assert first.status_code == 200
    assert error_code(built, first.content) is None
    replay = httpx.post(two_servers.urls[1], content=message, timeout=30)
    assert error_code(built, replay.content) is ResponseCode.REPLAYED


def test_master_token_revoked_in_shared_state_is_refused_by_both(two_servers: Deployment, redis_url: str) -> None:
    async def go() -> None:
        built = client_context(two_servers.keys)
        client = await establish(built, two_servers.urls[0])
        store = built.ctx.store
        assert store is not None
        token = store.get_master_token()
        assert token is not None
        # Revoke through the shared state, as an operator on server A would.
        admin = RedisTokenState(redis_url)
        await admin.revoke_master_token(token.serial_number)
        await admin.aclose()
        other = MslClient(built.ctx, HttpTransport(two_servers.urls[1]), key_request_factory=client.key_request_factory)
        reply = await other.request(b"after revocation")
        # Server B refused the revoked token (ENTITY_REAUTH); the client re-authenticated.
        assert reply.payload == b"after revocation"
        assert reply.messages == 4
        new_token = store.get_master_token()
        assert new_token is not None and new_token.serial_number != token.serial_number

    asyncio.run(go())


def test_renewals_through_both_servers_lose_no_sequence_update(two_servers: Deployment) -> None:
    async def go() -> None:
        built = client_context(two_servers.keys)
        clients = [await establish(built, two_servers.urls[0])]
        clients.append(
            MslClient(built.ctx, HttpTransport(two_servers.urls[1]), key_request_factory=clients[0].key_request_factory)
        )
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
    directory = write_keys(tmp_path)
    state = tmp_path / "state.db"
    proc, url = start_serve(directory / "server.json", "--state", str(state))
    try:
        built = client_context(directory)
        asyncio.run(establish(built, url))
        message = non_replayable_message(built)
        assert error_code(built, httpx.post(url, content=message, timeout=30).content) is None
    finally:
        stop(proc)
    proc, url = start_serve(directory / "server.json", "--state", str(state))
    try:
        # The replay window survived the restart, and so does the session.
        assert error_code(built, httpx.post(url, content=message, timeout=30).content) is ResponseCode.REPLAYED

        async def again() -> None:
            client = MslClient(built.ctx, HttpTransport(url), key_request_factory=None)
            reply = await client.request(b"still here")
            assert reply.payload == b"still here"
            assert reply.header.data.key_response_data is None

        asyncio.run(again())
    finally:
        stop(proc)
