"""Encoder format negotiation through the engine (docs/binary-format.md §8): a client
writes JSON until its server advertised the binary format, remembers the server's
formats in its store (across restarts with SQLite), and never sends binary to a
JSON-only server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import vectorlib
from missile.encoding import EncoderFormat
from missile.engine.client import MslClient
from missile.engine.server import MslServer, Reply, Request
from missile.engine.transport import Channel, LoopbackTransport
from missile.errors import MslError, MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.messages.capabilities import DEFAULT_CAPABILITIES, JSON_PREFERRED, MessageCapabilities
from missile.profiles import context_from_keyfile
from missile.stores.memory import InMemoryStore
from missile.stores.sqlite import SqliteStore

BIN = EncoderFormat.MISSILE_CBOR
JSON_ONLY = MessageCapabilities.of(["GZIP", "LZW"], ["en-US"], ["JSON"])


async def _echo(request: Request) -> Reply:
    return Reply(data=b"echo: " + request.payload)


def _keys(stem: str) -> KeyFile:
    keys = KeyFile.from_dict(vectorlib.load(stem)["keys"])
    keys.time_ms = None
    return keys


def _server(capabilities: MessageCapabilities | None = None) -> MslServer:
    # missile's default capabilities (binary first) unless the test says otherwise.
    server = MslServer(context_from_keyfile(_keys("01_a_psk_request_encrypted")).ctx, _echo)
    if capabilities is not None:
        server.capabilities = capabilities
    return server


class _Recorder:
    """Serves channels with ``server``, recording the first byte of every request and
    every response; ``tamper`` may rewrite request bytes on their way in."""

    def __init__(self, server: MslServer, tamper: Callable[[bytes], bytes] | None = None) -> None:
        self.server = server
        self.tamper = tamper
        self.requests: list[int] = []
        self.responses: list[int] = []

    async def serve(self, channel: Channel) -> None:
        recorder = self

        class Recording:
            first_read = True
            first_write = True

            async def read(self, n: int = 65536) -> bytes:
                data = await channel.read(n)
                if data and self.first_read:
                    self.first_read = False
                    recorder.requests.append(data[0])
                    if recorder.tamper is not None:
                        data = recorder.tamper(data)
                return data

            async def write(self, data: bytes) -> None:
                if data and self.first_write:
                    self.first_write = False
                    recorder.responses.append(data[0])
                await channel.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(channel, name)

        await self.server.serve_channel(Recording())


def _client(recorder: _Recorder, store: Any = None, **options: Any) -> MslClient:
    keys = _keys("03_c_response_asymmetric_wrapped_rsa")
    ctx = context_from_keyfile(keys, store=store).ctx
    assert ctx.store is not None
    ctx.store.clear_crypto_contexts()
    return MslClient(
        ctx,
        LoopbackTransport(recorder.serve),
        key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"),
        **options,
    )


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def test_client_writes_json_first_then_binary() -> None:
    """With missile's defaults on both ends (no capabilities given)."""
    assert MslServer(context_from_keyfile(_keys("01_a_psk_request_encrypted")).ctx, _echo).capabilities == (
        DEFAULT_CAPABILITIES
    )

    async def go() -> None:
        recorder = _Recorder(_server())
        client = _client(recorder, InMemoryStore())
        assert (await client.request(b"one")).payload == b"echo: one"
        assert (await client.request(b"two")).payload == b"echo: two"
        assert (await client.request(b"three")).payload == b"echo: three"
        # First request JSON (never heard from the server); its answer is already binary.
        assert recorder.requests == [ord("{"), BIN.identifier, BIN.identifier]
        assert recorder.responses == [BIN.identifier] * 3
        assert client.ctx.store.get_peer_encoder_formats() == ("missile.cbor.v1", "JSON")  # type: ignore[union-attr]

    _run(go)


def test_each_side_writes_its_own_preference() -> None:
    """A server preferring JSON answers JSON to a client that reads both, and the client
    still writes its own first choice (binary) once it knows the server reads it; a
    client preferring JSON keeps writing JSON to a server preferring binary."""

    async def go() -> None:
        recorder = _Recorder(_server(JSON_PREFERRED))
        client = _client(recorder, InMemoryStore())
        for word in (b"one", b"two", b"three"):
            assert (await client.request(word)).payload == b"echo: " + word
        assert recorder.requests == [ord("{"), BIN.identifier, BIN.identifier]
        assert recorder.responses == [ord("{")] * 3

        recorder = _Recorder(_server())
        client = _client(recorder, InMemoryStore(), capabilities=JSON_PREFERRED)
        for word in (b"one", b"two", b"three"):
            assert (await client.request(word)).payload == b"echo: " + word
        assert recorder.requests == [ord("{")] * 3
        assert recorder.responses == [BIN.identifier] * 3

    _run(go)


def test_a_json_only_server_never_gets_binary() -> None:
    async def go() -> None:
        recorder = _Recorder(_server(JSON_ONLY))
        client = _client(recorder, InMemoryStore())
        for i in range(3):
            assert (await client.request(b"%d" % i)).payload == b"echo: %d" % i
        assert recorder.requests == [ord("{")] * 3
        assert recorder.responses == [ord("{")] * 3
        assert client.ctx.store.get_peer_encoder_formats() == ("JSON",)  # type: ignore[union-attr]

    _run(go)


def test_a_server_that_stops_advertising_binary_gets_json_again() -> None:
    async def go() -> None:
        server = _server()
        recorder = _Recorder(server)
        client = _client(recorder, InMemoryStore())
        await client.request(b"one")
        await client.request(b"two")
        server.capabilities = JSON_ONLY  # e.g. a rollback of the server
        await client.request(b"three")
        await client.request(b"four")
        assert recorder.requests == [ord("{"), BIN.identifier, BIN.identifier, ord("{")]
        assert recorder.responses == [BIN.identifier, BIN.identifier, ord("{"), ord("{")]

    _run(go)


def test_an_unreadable_binary_request_puts_the_client_back_to_json() -> None:
    """A server behind the same name that cannot read the binary format answers
    MSL_PARSE_ERROR (simulated by mangling the identifier byte); the client then writes
    JSON again."""

    def mangle(data: bytes) -> bytes:
        return b"\x00" + data[1:] if data[0] == BIN.identifier else data

    async def go() -> None:
        recorder = _Recorder(_server())
        client = _client(recorder, InMemoryStore())
        await client.request(b"one")
        recorder.tamper = mangle
        with pytest.raises(MslException) as info:
            await client.request(b"two")
        assert info.value.error is MslError.MSL_PARSE_ERROR
        assert client.ctx.store.get_peer_encoder_formats() == ("JSON",)  # type: ignore[union-attr]
        assert (await client.request(b"three")).payload == b"echo: three"
        assert recorder.requests == [ord("{"), BIN.identifier, ord("{")]

    _run(go)


def test_formats_survive_a_restart_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "client.db"

    async def go() -> None:
        recorder = _Recorder(_server())
        store = SqliteStore(path)
        try:
            client = _client(recorder, store)
            await client.request(b"before restart")
        finally:
            store.close()
        reopened = SqliteStore(path)
        try:
            assert reopened.get_peer_encoder_formats() == ("missile.cbor.v1", "JSON")
            keys = _keys("03_c_response_asymmetric_wrapped_rsa")
            ctx = context_from_keyfile(keys, store=reopened).ctx
            client = MslClient(
                ctx,
                LoopbackTransport(recorder.serve),
                key_request_factory=key_request_factory(ctx, keys, "SYMMETRIC_WRAPPED"),
                capabilities=DEFAULT_CAPABILITIES,
            )
            assert (await client.request(b"after restart")).payload == b"echo: after restart"
        finally:
            reopened.close()
        # The restarted client wrote binary straight away, under its stored master token.
        assert recorder.requests == [ord("{"), BIN.identifier]

    _run(go)


def test_stores_start_with_no_formats(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        assert store.get_peer_encoder_formats() is None
        store.set_peer_encoder_formats(())
        assert store.get_peer_encoder_formats() == ()
        store.set_peer_encoder_formats(["JSON"])
        assert store.get_peer_encoder_formats() == ("JSON",)
    finally:
        store.close()
    memory = InMemoryStore()
    assert memory.get_peer_encoder_formats() is None
    memory.set_peer_encoder_formats(["missile.cbor.v1"])
    assert memory.get_peer_encoder_formats() == ("missile.cbor.v1",)


def test_sqlite_store_writes_the_formats_only_when_they_change(tmp_path: Path) -> None:
    """Each response repeats the server's formats: only a change is written (another
    connection to the file sees a new data_version after a commit, and only then)."""
    import sqlite3

    path = tmp_path / "s.db"
    store = SqliteStore(path)
    watcher = sqlite3.connect(path)
    try:

        def version() -> int:
            return int(watcher.execute("PRAGMA data_version").fetchone()[0])

        store.set_peer_encoder_formats(("missile.cbor.v1", "JSON"))
        before = version()
        store.set_peer_encoder_formats(("missile.cbor.v1", "JSON"))
        assert version() == before  # unchanged: nothing written
        store.set_peer_encoder_formats(("JSON",))
        assert version() != before  # changed: written
        assert store.get_peer_encoder_formats() == ("JSON",)
        # Another process's write is seen: the same list as before is written back.
        writer = sqlite3.connect(path)
        writer.execute("UPDATE peer_encoder_formats SET formats = 'missile.cbor.v1,JSON' WHERE id = 1")
        writer.commit()
        writer.close()
        store.set_peer_encoder_formats(("JSON",))
        assert store.get_peer_encoder_formats() == ("JSON",)
    finally:
        watcher.close()
