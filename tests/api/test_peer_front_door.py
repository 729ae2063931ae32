"""The peer front door (``missile.Peer``): two peers over real loopback TCP.

Each test builds two peers from fresh key files (as the reference's ``p2p-keys.py``
writes them: server key files holding both entities' PSKs), lets them listen on free
loopback ports and exchange requests both ways, with users, empty payloads and
non-replayable messages; then checks the local misconfiguration errors and that closing
releases what each object holds.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import missile
from missile.cli.keys import write_private
from missile.errors import MslError

USER = "user1@foo.com"
PASSWORD = "user1pwd"
#: Every test is a handful of loopback exchanges; a minute means something hangs.
TIMEOUT_S = 60.0


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop, bounded in time."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), TIMEOUT_S))

    return run


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def write_peer_keys(directory: Path, names: tuple[str, str] = ("alice", "bob")) -> dict[str, Path]:
    """A fresh pair of peer key files (``<name>.json``) in ``directory``."""
    psk = [{"identity": name, "encryption_b64": _b64(16), "hmac_b64": _b64(32)} for name in names]
    paths = {}
    for name in names:
        content = {
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
            "users": [{"email": USER, "password": PASSWORD, "user": USER}],
        }
        paths[name] = directory / f"{name}.json"
        write_private(paths[name], content)
    return paths


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    return write_peer_keys(tmp_path)


class Recorder:
    """A handler that records what it was given and answers with who asked what."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[missile.Request] = []

    async def __call__(self, request: missile.Request) -> missile.Reply:
        self.seen.append(request)
        user = request.user.identity if request.user is not None else "-"
        text = f"{self.name} got [{request.payload.decode()}] from {request.identity} user {user}"
        return missile.Reply(text.encode())


def _peer(keys: dict[str, Path], name: str, **options: Any) -> tuple[missile.Peer, Recorder]:
    recorder = Recorder(name)

    async def handle(request: missile.Request) -> missile.Reply:
        return await recorder(request)

    options.setdefault("state", ":memory:")
    return missile.Peer(keys[name], handler=handle, **options), recorder


@sync
async def test_requests_both_ways_share_the_tokens(keys: dict[str, Path]) -> None:
    alice, alice_seen = _peer(keys, "alice")
    bob, bob_seen = _peer(keys, "bob", key_exchange="SYMMETRIC_WRAPPED")
    async with alice, bob:
        alice_listener = await alice.listen("127.0.0.1", 0)
        bob_listener = await bob.listen("127.0.0.1", 0)
        async with await alice.connect("127.0.0.1", bob_listener.port) as to_bob:
            first = await to_bob.request(b"one")
            second = await to_bob.request(b"two")
        assert first.payload == b"bob got [one] from alice user -"
        assert second.payload == b"bob got [two] from alice user -"
        # The first exchange authenticated both entities and exchanged keys both ways
        # (request, reply with keys, key-exchange answer); the second reused the tokens.
        assert first.messages == 3 and first.header.data.key_response_data is not None
        assert second.messages == 2 and second.header.data.key_response_data is None
        assert first.master_token is not None and second.master_token == first.master_token
        assert first.identity == "bob"
        assert [r.identity for r in bob_seen.seen] == ["alice", "alice"]

        # The other way, on a connection Bob opens: the tokens are already there.
        async with await bob.connect("127.0.0.1", alice_listener.port) as to_alice:
            back = await to_alice.request(b"three")
        assert back.payload == b"alice got [three] from bob user -"
        assert back.messages == 2 and back.header.data.key_response_data is None
        assert back.header.entity_auth_data is None and back.header.master_token is not None
        assert [r.payload for r in alice_seen.seen] == [b"three"]


@sync
async def test_user_id_token_is_issued_and_reused(keys: dict[str, Path]) -> None:
    alice, _ = _peer(keys, "alice")
    bob, bob_seen = _peer(keys, "bob")
    async with alice, bob:
        listener = await bob.listen()
        async with await alice.connect("127.0.0.1", listener.port) as conn:
            user = missile.EmailPassword(USER, PASSWORD)
            first = await conn.request(b"one", user=user)
            second = await conn.request(b"two", user=user)
            third = await conn.request(b"three", user=USER)  # the stored token, by email
    assert first.payload == f"bob got [one] from alice user {USER}".encode()
    assert third.payload == f"bob got [three] from alice user {USER}".encode()
    issued = first.user_id_token
    assert issued is not None and second.user_id_token == issued and third.user_id_token == issued
    # Credentials went once; then the user ID token Bob issued came back instead.
    data = [request.header.data for request in bob_seen.seen]
    assert data[0].user_auth_data is not None and data[0].user_id_token is None
    assert [d.user_auth_data for d in data[1:]] == [None, None]
    assert [d.user_id_token for d in data[1:]] == [issued, issued]


@sync
async def test_wrong_password_is_an_msl_error(keys: dict[str, Path]) -> None:
    alice, _ = _peer(keys, "alice")
    bob, bob_seen = _peer(keys, "bob")
    async with alice, bob:
        listener = await bob.listen()
        async with await alice.connect("127.0.0.1", listener.port) as conn:
            with pytest.raises(missile.MslErrorResponse) as caught:
                await conn.request(b"x", user=missile.EmailPassword(USER, "not the password"))
            assert caught.value.error is MslError.EMAILPASSWORD_INCORRECT
        # Bob closes a connection whose message failed to verify; a new one works.
        async with await alice.connect("127.0.0.1", listener.port) as conn:
            ok = await conn.request(b"y")
    assert ok.payload == b"bob got [y] from alice user -"
    assert [r.payload for r in bob_seen.seen] == [b"y"]


@sync
async def test_empty_payload_reaches_the_handler(keys: dict[str, Path]) -> None:
    alice, _ = _peer(keys, "alice")
    bob, bob_seen = _peer(keys, "bob")
    async with alice, bob:
        listener = await bob.listen()
        async with await alice.connect("127.0.0.1", listener.port) as conn:
            # A fresh peer needs keys: a handshake goes first, then the empty request.
            first = await conn.request(b"")
            second = await conn.request(b"")
    assert first.payload == second.payload == b"bob got [] from alice user -"
    assert [r.payload for r in bob_seen.seen] == [b"", b""]


@sync
async def test_non_replayable_request(keys: dict[str, Path]) -> None:
    alice, _ = _peer(keys, "alice")
    bob, bob_seen = _peer(keys, "bob")
    async with alice, bob:
        listener = await bob.listen()
        async with await alice.connect("127.0.0.1", listener.port) as conn:
            # No master token yet: keys are established first (a non-replayable ID needs one).
            await conn.request(b"once", non_replayable=True)
            await conn.request(b"again", non_replayable=True)
            await conn.request(b"plain")
    assert [(r.payload, r.non_replayable) for r in bob_seen.seen] == [
        (b"once", True),
        (b"again", True),
        (b"plain", False),
    ]
    ids = [r.header.data.non_replayable_id for r in bob_seen.seen[:2]]
    assert ids[0] is not None and ids[1] is not None and ids[1] > ids[0]


@sync
async def test_state_file_keeps_the_session(keys: dict[str, Path], tmp_path: Path) -> None:
    bob, _ = _peer(keys, "bob")
    state = tmp_path / "alice.db"
    async with bob:
        listener = await bob.listen()
        async with (
            _peer(keys, "alice", state=state)[0] as alice,
            await alice.connect("127.0.0.1", listener.port) as conn,
        ):
            first = await conn.request(b"one")
        assert state.exists() and Path(f"{state}{missile.peer.ISSUER_SUFFIX}").exists()
        # A new Peer on the same state holds the master token Bob issued.
        async with _peer(keys, "alice", state=state)[0] as again:
            assert again.engine.primary == first.master_token


def test_misconfiguration_names_the_option(keys: dict[str, Path], tmp_path: Path) -> None:
    async def handler(request: missile.Request) -> bytes:
        return b""

    def fails(match: str, keys_option: Any = keys["alice"], **options: Any) -> None:
        options.setdefault("state", ":memory:")
        with pytest.raises(missile.ConfigError, match=match):
            missile.Peer(keys_option, **options)

    fails(r"^keys='.*nope\.json': no such file", tmp_path / "nope.json")
    client_keys = tmp_path / "client.json"
    write_private(client_keys, {"role": "client", "identity": "c", "entity_auth": {"scheme": "PSK", "identity": "c"}})
    fails(r"^keys=.*: a client key file, but a peer needs a server key file", client_keys)
    no_token_keys = missile.KeyFile.from_dict(
        {"role": "server", "identity": "c", "entity_auth": {"scheme": "PSK", "identity": "c"}}
    )
    fails(r"^keys=: the key file has no msl_token_keys", no_token_keys)
    fails(r"^state=: required", state=None)
    fails(r"^state='redis://localhost': a peer keeps its state in a SQLite file", state="redis://localhost")
    fails(r"^state='.*': ", state=tmp_path / "missing-dir" / "peer.db")
    fails(r"^key_exchange='NOPE': unknown scheme", key_exchange="NOPE")
    fails(r"^handler=: the handler must be an async function", handler=lambda request: b"")
    fails(r"^token_renewal= and token_lifetime=", token_renewal=10, token_lifetime=5)
    missile.Peer(keys["alice"], handler=handler, state=":memory:")  # and the right ones work


@sync
async def test_misuse_on_first_use(keys: dict[str, Path]) -> None:
    async with missile.Peer(keys["alice"], state=":memory:") as requester_only:
        with pytest.raises(missile.ConfigError, match=r"^handler=: a peer that listens needs a handler"):
            await requester_only.listen()
    bob, _ = _peer(keys, "bob")
    async with bob:
        listener = await bob.listen()
        alice, _ = _peer(keys, "alice")
        async with alice, await alice.connect("127.0.0.1", listener.port) as conn:
            with pytest.raises(TypeError, match="unknown option"):
                await conn.request(b"x", path="/notes")  # type: ignore[call-arg]
            assert not conn.closed
        with pytest.raises(RuntimeError, match="closed"):
            await alice.connect("127.0.0.1", listener.port)


@sync
async def test_closing_releases_listeners_and_connections(keys: dict[str, Path]) -> None:
    bob, _ = _peer(keys, "bob")
    async with bob:
        bob_listener = await bob.listen()
        alice, _ = _peer(keys, "alice")
        async with alice:
            alice_listener = await alice.listen()
            opened = await alice.connect("127.0.0.1", bob_listener.port)
            await opened.request(b"hello")
            # Bob connects to Alice: a connection Alice accepted and is answering.
            accepted = await bob.connect("127.0.0.1", alice_listener.port)
            await accepted.request(b"hi")
        # Alice closed: her listener, the connection she opened, the one she accepted.
        assert opened.closed
        with pytest.raises(RuntimeError):
            await opened.request(b"again")
        with pytest.raises(RuntimeError):
            await alice.connect("127.0.0.1", bob_listener.port)
        with pytest.raises(missile.MslException) as caught:
            await bob.connect("127.0.0.1", alice_listener.port)
        assert caught.value.error is MslError.MSL_COMMS_FAILURE
        with pytest.raises(missile.MslException) as caught:
            await accepted.request(b"anyone there?")
        assert caught.value.error is MslError.MSL_COMMS_FAILURE
        assert accepted.closed  # a failure other than an MSL error answer closes it
        # A listener closes on its own too; Bob's listener then refuses connections.
        async with bob_listener:
            pass
        fresh, _ = _peer(keys, "alice")
        async with fresh:
            with pytest.raises(missile.MslException) as caught:
                await fresh.connect("127.0.0.1", bob_listener.port)
            assert caught.value.error is MslError.MSL_COMMS_FAILURE
