"""Peers over one channel: messages back to back in any split, users, service tokens, TCP.

Messages on a peer connection follow each other without a reply in between (the
requester's key-exchange answer, then its next request), so one read can hold the end of
one message and the start of the next. These tests feed such bytes in every split, and
run users and service tokens through both peer roles as the reference does.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest

from missile.clock import FixedClock
from missile.engine.errors import MslErrorResponse
from missile.engine.message_io import MessageStream, read_message, write_message
from missile.engine.options import MessageOptions
from missile.engine.peer import MslPeer
from missile.engine.server import Reply, Request
from missile.engine.transport import channel_pair
from missile.errors import MslError
from missile.keyfile import KeyFile
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages.builder import build_request
from missile.messages.reader import MessageReader
from missile.messages.writer import MessageWriter
from missile.profiles import context_from_keyfile
from missile.stores.memory import InMemoryStore
from missile.tokens.factory import TokenFactory
from missile.tokens.service import ServiceToken
from missile.transport.tcp import connect_peer_tcp, serve_peer_tcp
from missile.userauth.email_password import EmailPasswordAuthData

HOUR = 3_600_000
USER = "user1@foo.com"
PASSWORD = "user1pwd"
#: Every test here is a few in-memory exchanges; a minute means something hangs.
TIMEOUT_S = 60.0


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def _keyfiles() -> dict[str, KeyFile]:
    """Fresh key files for two peers, as the reference's p2p-keys.py writes them."""
    psk = [{"identity": name, "encryption_b64": _b64(16), "hmac_b64": _b64(32)} for name in ("alice", "bob")]
    users = [{"email": USER, "password": PASSWORD, "user": USER}]
    return {
        name: KeyFile.from_dict(
            {
                "role": "server",
                "identity": name,
                "entity_auth": {"scheme": "PSK", "identity": name},
                "msl_token_keys": {
                    "keyid": f"{name}-msl",
                    "encryption_b64": _b64(16),
                    "hmac_b64": _b64(32),
                    "wrap_b64": _b64(16),
                },
                "psk": psk,
                "users": users,
            }
        )
        for name in ("alice", "bob")
    }


async def _echo(request: Request) -> Reply:
    user = f" [user {request.user}]" if request.user is not None else ""
    return Reply(data=b"got " + request.payload + user.encode())


def _peer(keys: KeyFile, clock: FixedClock, **kwargs: Any) -> MslPeer:
    factory = TokenFactory(
        master_token_renewal_ms=HOUR,
        master_token_expiration_ms=24 * HOUR,
        user_id_token_renewal_ms=HOUR,
        user_id_token_expiration_ms=24 * HOUR,
    )
    built = context_from_keyfile(keys, peer_to_peer=True, store=InMemoryStore(), token_factory=factory, clock=clock)
    kwargs.setdefault("handler", _echo)
    return MslPeer(built.ctx, key_request_factory=lambda: [SymmetricWrappedRequest("PSK")], **kwargs)


def _connected(clock: FixedClock, seen: list[Request]) -> tuple[MslPeer, MessageStream, asyncio.Future[None]]:
    """Alice and Bob on one in-memory connection, Bob serving it with an echo that
    records each request in ``seen``: (Alice, her stream, Bob's serving task)."""

    async def handler(request: Request) -> Reply:
        seen.append(request)
        return await _echo(request)

    keys = _keyfiles()
    alice, bob = _peer(keys["alice"], clock), _peer(keys["bob"], clock, handler=handler)
    a_end, b_end = channel_pair()
    serving = asyncio.ensure_future(bob.serve_channel(b_end))
    return alice, MessageStream(a_end), serving


def _user() -> MessageOptions:
    return MessageOptions(user_id=USER, user_auth=EmailPasswordAuthData(USER, PASSWORD))


class _Chunks:
    """A channel whose reads return the given pieces, then the end."""

    one_exchange = True

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(pieces)

    async def read(self, n: int = 65536) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""

    async def write(self, data: bytes) -> None:
        raise AssertionError("read-only")

    async def finish(self) -> None:
        pass

    async def close(self) -> None:
        pass


class _Coalescing:
    """A channel end that holds what it writes until it next reads, then sends it in one
    write: every message sent before waiting for the other side arrives as one chunk (as
    the reference's ``--coalesce`` sends its key-exchange answer and next request)."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._held = b""
        self.coalesced = 0
        """Writes that carried more than one message's bytes."""
        self._writes = 0

    @property
    def one_exchange(self) -> bool:
        return bool(self._channel.one_exchange)

    async def write(self, data: bytes) -> None:
        self._held += data
        self._writes += 1

    async def read(self, n: int = 65536) -> bytes:
        if self._held:
            self.coalesced += self._writes > 1
            await self._channel.write(self._held)
            self._held, self._writes = b"", 0
        data: bytes = await self._channel.read(n)
        return data

    async def finish(self) -> None:
        if self._held:
            await self._channel.write(self._held)
            self._held = b""
        await self._channel.finish()

    async def close(self) -> None:
        await self.finish()


def _two_messages() -> tuple[bytes, list[bytes], KeyFile]:
    keys = _keyfiles()["alice"]
    ctx = context_from_keyfile(keys, peer_to_peer=True, store=InMemoryStore()).ctx
    wire = b""
    payloads = [b"first message", b"second message, a little longer"]
    for payload in payloads:
        built = build_request(ctx, use_entity_auth=True)
        writer = MessageWriter(built.header, built.payload_crypto_context, chunk_size=8)
        wire += writer.header_bytes() + writer.write(payload) + writer.close()
    return wire, payloads, keys


def test_two_messages_in_one_chunk_and_in_every_split() -> None:
    wire, payloads, keys = _two_messages()
    ctx = context_from_keyfile(keys, peer_to_peer=True, store=InMemoryStore()).ctx

    async def read_all(pieces: list[bytes]) -> list[bytes]:
        stream = MessageStream(_Chunks(pieces))
        got = []
        while (message := await read_message(stream, MessageReader(ctx))) is not None:
            assert message.header is not None
            got.append(message.payload)
        return got

    async def go() -> None:
        assert await read_all([wire]) == payloads
        for cut in range(1, len(wire)):
            assert await read_all([wire[:cut], wire[cut:]]) == payloads, cut
        # And byte by byte.
        assert await read_all([wire[i : i + 1] for i in range(len(wire))]) == payloads

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_a_message_cut_short_is_refused() -> None:
    wire, _, keys = _two_messages()
    ctx = context_from_keyfile(keys, peer_to_peer=True, store=InMemoryStore()).ctx

    async def go() -> None:
        stream = MessageStream(_Chunks([wire[:-5]]))
        assert await read_message(stream, MessageReader(ctx)) is not None
        with pytest.raises(Exception) as info:
            await read_message(stream, MessageReader(ctx))
        assert getattr(info.value, "error", None) in (MslError.MSL_PARSE_ERROR, MslError.MESSAGE_FORMAT_ERROR)

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_write_message_sends_the_header_with_the_first_chunk() -> None:
    keys = _keyfiles()["alice"]
    ctx = context_from_keyfile(keys, peer_to_peer=True, store=InMemoryStore()).ctx

    async def go() -> None:
        built = build_request(ctx, use_entity_auth=True)
        a, b = channel_pair()
        writer = MessageWriter(built.header, built.payload_crypto_context, chunk_size=4)
        await write_message(a, writer, b"0123456789", 4)
        await a.finish()
        writes = []
        while data := await b.read(1 << 20):
            writes.append(data)
        assert writes[0].startswith(built.header.encode()) and len(writes[0]) > len(built.header.encode())
        message = await read_message(MessageStream(_Chunks([b"".join(writes)])), MessageReader(ctx))
        assert message is not None and message.payload == b"0123456789"

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_key_exchange_answer_and_next_request_in_one_write() -> None:
    async def go() -> None:
        keys = _keyfiles()
        clock = FixedClock(1_800_000_000_000)
        alice, bob = _peer(keys["alice"], clock), _peer(keys["bob"], clock)
        a_end, b_end = channel_pair()
        coalescing = _Coalescing(a_end)
        serving = asyncio.ensure_future(bob.serve_channel(b_end))
        stream = MessageStream(coalescing)
        for i in range(3):
            reply = await alice.request(stream, f"hello {i}".encode())
            assert reply.payload == f"got hello {i}".encode()
        # Alice's answer to Bob's key request went out with her second request.
        assert coalescing.coalesced >= 1
        assert bob.primary == alice.issued and alice.primary == bob.issued
        await stream.finish()
        await serving

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_user_id_token_issued_in_the_peer_slot_stored_reused_and_renewed() -> None:
    seen: list[Request] = []

    async def go() -> None:
        clock = FixedClock(1_800_000_000_000)
        alice, stream, serving = _connected(clock, seen)

        first = await alice.request(stream, b"one", _user())
        assert first.payload == b"got one [user user1@foo.com]"
        issued = first.header.data.peer_user_id_token
        assert issued is not None and first.header.data.user_id_token is None
        assert alice.user_id_token(USER) == issued
        assert seen[0].header.data.user_auth_data is not None

        second = await alice.request(stream, b"two", _user())
        assert second.payload == b"got two [user user1@foo.com]"
        # Reused: the token travelled instead of the credentials, and came back as it was.
        assert seen[1].header.data.user_auth_data is None
        assert seen[1].header.data.user_id_token is not None
        assert seen[1].header.data.user_id_token.serial_number == issued.serial_number
        assert not seen[1].header.data.renewable

        clock.advance(HOUR + 1000)  # the user ID token (and master tokens) enter their renewal window
        third = await alice.request(stream, b"three", _user())
        assert third.payload == b"got three [user user1@foo.com]"
        assert seen[2].header.data.renewable
        renewed = third.header.data.peer_user_id_token
        assert renewed is not None and renewed.serial_number == issued.serial_number
        assert renewed.renewal_window > issued.renewal_window
        assert alice.user_id_token(USER) == renewed

        await stream.finish()
        await serving

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_wrong_password_is_refused_with_the_user_auth_error() -> None:
    async def go() -> None:
        keys = _keyfiles()
        clock = FixedClock(1_800_000_000_000)
        alice, bob = _peer(keys["alice"], clock), _peer(keys["bob"], clock)
        a_end, b_end = channel_pair()
        serving = asyncio.ensure_future(bob.serve_channel(b_end))
        stream = MessageStream(a_end)
        wrong = MessageOptions(user_id=USER, user_auth=EmailPasswordAuthData(USER, "not the password"))
        with pytest.raises(MslErrorResponse) as info:
            await alice.request(stream, b"one", wrong)
        assert info.value.error is MslError.EMAILPASSWORD_INCORRECT
        assert alice.user_id_token(USER) is None
        await stream.finish()
        await serving

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_service_tokens_travel_in_the_peer_slots_and_come_back() -> None:
    keys = _keyfiles()
    clock = FixedClock(1_800_000_000_000)
    bob_box: list[MslPeer] = []
    seen: list[Request] = []

    async def handler(request: Request) -> Reply:
        seen.append(request)
        bob = bob_box[0]
        token = ServiceToken.create("bob-cookie", b"for alice", bob.ctx.msl_crypto)
        return Reply(data=b"ok", service_tokens=[token])

    async def go() -> None:
        alice = _peer(keys["alice"], clock)
        bob = _peer(keys["bob"], clock, handler=handler)
        bob.service_token_contexts["bob-cookie"] = bob.ctx.msl_crypto
        bob_box.append(bob)
        a_end, b_end = channel_pair()
        serving = asyncio.ensure_future(bob.serve_channel(b_end))
        stream = MessageStream(a_end)
        first = await alice.request(stream, b"one")
        assert [t.name for t in first.header.data.peer_service_tokens] == ["bob-cookie"]
        await alice.request(stream, b"two")
        back = [t for t in seen[1].service_tokens if t.name == "bob-cookie"]
        assert len(back) == 1 and back[0].data == b"for alice"
        await stream.finish()
        await serving

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_peers_over_tcp() -> None:
    async def go() -> None:
        keys = _keyfiles()
        clock = FixedClock(1_800_000_000_000)
        alice, bob = _peer(keys["alice"], clock), _peer(keys["bob"], clock)
        server = await serve_peer_tcp(bob)
        port = server.sockets[0].getsockname()[1]
        connection = await connect_peer_tcp("127.0.0.1", port)
        try:
            for i in range(3):
                reply = await alice.request(connection, f"hi {i}".encode(), _user())
                assert reply.payload == f"got hi {i} [user user1@foo.com]".encode()
            assert alice.user_id_token(USER) is not None
        finally:
            await connection.close()
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))


def test_connecting_to_nothing_is_a_comms_failure() -> None:
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(Exception) as info:
            await connect_peer_tcp("127.0.0.1", port)
        assert getattr(info.value, "error", None) is MslError.MSL_COMMS_FAILURE

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))
