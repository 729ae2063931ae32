"""Peer-to-peer interop with the Java reference's ``MslControl`` (``java-peer.sh``).

Each case runs one connection between ``missile.engine.peer.MslPeer`` (in this process,
on :func:`~missile.transport.tcp.serve_peer_tcp` or
:func:`~missile.transport.tcp.connect_peer_tcp`) and the reference's peer entity, in
both directions, with SYMMETRIC_WRAPPED and DIFFIE_HELLMAN, two exchanges each: the
first exchanges keys (each side issues a master token to the other), the second must
reuse them. With a user, the responder issues a user ID token in ``peeruseridtoken`` and
the requester sends it back instead of its credentials. With ``--coalesce`` the reference
writes its key-exchange answer and its next request in one write. Key files are fresh
for every run (``p2p-keys.py``). One more case drives the reference through the front
door, ``missile.Peer``.

The evidence is the reference's own account: its ``EXCHANGE i PASS`` verdicts, and the
header summaries it prints for every message it sends and receives.

Without Java these tests skip, except in CI (``CI`` set), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import missile
from missile.engine.client import Response
from missile.engine.options import MessageOptions
from missile.engine.peer import MslPeer
from missile.engine.server import Reply, Request
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.stores.memory import InMemoryStore
from missile.transport.tcp import connect_peer_tcp, serve_peer_tcp
from missile.userauth.email_password import EmailPasswordAuthData

from ._live import (
    CLIENT_TIMEOUT_S,
    JAVA_PEER,
    MISSILE_PEER_ID,
    SERVER_START_TIMEOUT_S,
    PeerLog,
    _stop_group,
    free_port,
    read_peer_log,
    require_java,
    write_p2p_keys,
)

EXCHANGES = 2
USER_EMAIL = "user1@foo.com"
USER_PASSWORD = "user1pwd"
JAVA_PEER_ID = "javapeer"


@dataclass(frozen=True)
class Case:
    missile_role: str
    """"respond" (the reference initiates) or "initiate"."""
    scheme: str
    user: bool = False
    coalesce: bool = False

    @property
    def name(self) -> str:
        extra = "-user" if self.user else "-coalesce" if self.coalesce else ""
        return f"missile-{self.missile_role}s-{self.scheme.lower()}{extra}"


CASES = [
    *(Case(role, scheme) for role in ("respond", "initiate") for scheme in ("SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN")),
    Case("respond", "SYMMETRIC_WRAPPED", user=True),
    Case("initiate", "DIFFIE_HELLMAN", user=True),
    Case("respond", "SYMMETRIC_WRAPPED", coalesce=True),
    Case("respond", "DIFFIE_HELLMAN", coalesce=True),
]


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str
    """The reference's stdout and stderr."""
    replies: list[Response]
    """What missile received as initiator."""
    stored_user_id_token: int | None
    """Serial of the user ID token missile holds for the user, as initiator."""

    @property
    def log(self) -> PeerLog:
        return read_peer_log(self.output)


@pytest.fixture(scope="module", autouse=True)
def _java() -> None:
    require_java()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_p2p_keys(tmp_path_factory.mktemp("p2p-keys"))


async def _handler(request: Request) -> Reply:
    user = f" [user {request.user}]" if request.user is not None else ""
    return Reply(data=b"missile got " + request.payload + user.encode())


def _missile_peer(keyfile: Path, scheme: str) -> MslPeer:
    keys = KeyFile.load(keyfile)
    built = context_from_keyfile(keys, peer_to_peer=True, store=InMemoryStore())
    return MslPeer(built.ctx, handler=_handler, key_request_factory=key_request_factory(built.ctx, keys, scheme))


async def _start_java(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "bash",
        str(JAVA_PEER),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ},
        # Its own process group, so a hung JVM can be stopped with everything it started.
        start_new_session=True,
    )


async def _finish_java(proc: asyncio.subprocess.Process, head: bytes = b"") -> tuple[int, str]:
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            assert proc.stdout is not None
            out = head + await proc.stdout.read()
            returncode = await proc.wait()
    except TimeoutError:
        _stop_group(proc.pid, [proc.pid])
        await proc.wait()
        return -1, f"timed out after {CLIENT_TIMEOUT_S} s"
    return returncode, out.decode(errors="replace")


async def _missile_responds(case: Case, java_keys: Path, missile_keys: Path) -> Outcome:
    peer = _missile_peer(missile_keys, case.scheme)
    server = await serve_peer_tcp(peer)
    port = server.sockets[0].getsockname()[1]
    args = ["--keys", str(java_keys), "--remote", MISSILE_PEER_ID, "--role", "initiate", "--port", str(port)]
    args += ["--kx", case.scheme, "--n", str(EXCHANGES)]
    if case.user:
        args += ["--user", f"{USER_EMAIL}:{USER_PASSWORD}"]
    if case.coalesce:
        args.append("--coalesce")
    try:
        returncode, output = await _finish_java(await _start_java(args))
    finally:
        server.close()
        await server.wait_closed()
    return Outcome(returncode, output, [], None)


async def _start_java_responder(java_keys: Path, port: int, scheme: str) -> tuple[asyncio.subprocess.Process, bytes]:
    """The reference responding on ``port``, once it listens; with what it printed so far."""
    args = ["--keys", str(java_keys), "--remote", MISSILE_PEER_ID, "--role", "respond", "--port", str(port)]
    proc = await _start_java([*args, "--kx", scheme, "--n", str(EXCHANGES)])
    assert proc.stdout is not None
    head = b""
    try:
        async with asyncio.timeout(SERVER_START_TIMEOUT_S):
            while b"LISTENING" not in head:
                line = await proc.stdout.readline()
                if not line:
                    break
                head += line
    except TimeoutError:
        pass
    if b"LISTENING" not in head:
        _stop_group(proc.pid, [proc.pid])
        _, output = await _finish_java(proc, head)
        raise AssertionError(f"java-peer.sh did not listen: {output[-3000:]}")
    return proc, head


async def _missile_initiates(case: Case, java_keys: Path, missile_keys: Path) -> Outcome:
    peer = _missile_peer(missile_keys, case.scheme)
    port = free_port()
    proc, head = await _start_java_responder(java_keys, port, case.scheme)
    options = MessageOptions()
    if case.user:
        options = MessageOptions(user_id=USER_EMAIL, user_auth=EmailPasswordAuthData(USER_EMAIL, USER_PASSWORD))
    replies = []
    connection = await connect_peer_tcp("127.0.0.1", port, read_timeout=CLIENT_TIMEOUT_S)
    try:
        for i in range(1, EXCHANGES + 1):
            replies.append(await peer.request(connection, f"missile says hello #{i}".encode(), options))
    finally:
        await connection.close()
        returncode, output = await _finish_java(proc, head)
    stored = peer.user_id_token(USER_EMAIL)
    return Outcome(returncode, output, replies, stored.serial_number if stored is not None else None)


def _run(case: Case, keys: tuple[Path, Path]) -> Outcome:
    java_keys, missile_keys = keys
    if case.missile_role == "respond":
        return asyncio.run(_missile_responds(case, java_keys, missile_keys))
    return asyncio.run(_missile_initiates(case, java_keys, missile_keys))


def _summaries(log: PeerLog, exchange: int) -> list[dict[str, Any]]:
    return [summary for _, summary in log.in_exchange(exchange)]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_java_peer(case: Case, keys: tuple[Path, Path]) -> None:
    outcome = _run(case, keys)
    log = outcome.log
    assert outcome.returncode == 0, outcome.output[-4000:]
    assert log.verdicts == {i: "PASS" for i in range(1, EXCHANGES + 1)}, outcome.output[-4000:]

    # Exchange 1 exchanged keys both ways: a key response from each side.
    first = _summaries(log, 1)
    key_responses = [s for s in first if s.get("keyresponsedata")]
    assert len(key_responses) == 2, outcome.output[-4000:]
    # Later exchanges reuse the tokens: no key exchange, no entity authentication.
    for number in range(2, EXCHANGES + 1):
        for summary in _summaries(log, number):
            assert summary.get("keyresponsedata") is None, summary
            assert summary.get("mastertoken") is not None, summary
            assert not summary.get("entityauth"), summary

    if case.missile_role == "initiate":
        assert [r.payload for r in outcome.replies] == [
            f"java got missile says hello #{i}{' [user ' + USER_EMAIL + ']' if case.user else ''}".encode()
            for i in range(1, EXCHANGES + 1)
        ]
    if case.coalesce:
        assert log.coalesced
    if case.user:
        _check_user(case, outcome)


def _check_user(case: Case, outcome: Outcome) -> None:
    log = outcome.log
    first, second = _summaries(log, 1), _summaries(log, 2)
    if case.missile_role == "respond":
        # missile issued the user ID token in the peer slot of its reply ...
        issued = [s["peeruseridtoken"] for way, s in log.in_exchange(1) if way == "RECV" and s.get("peeruseridtoken")]
        assert len(issued) == 1, outcome.output[-4000:]
        # ... and the reference sent it back with its next request.
        sent = [s.get("useridtoken") for way, s in log.in_exchange(2) if way == "SENT"]
        assert sent == [issued[0]], outcome.output[-4000:]
    else:
        # The reference issued it; missile stored it and sent it back instead of credentials.
        issued = [s["peeruseridtoken"] for way, s in log.in_exchange(1) if way == "SENT" and s.get("peeruseridtoken")]
        assert len(issued) == 1, outcome.output[-4000:]
        assert outcome.stored_user_id_token == issued[0]
        received = [s for way, s in log.in_exchange(2) if way == "RECV"]
        assert [s.get("useridtoken") for s in received] == [issued[0]]
        assert all(not s.get("userauthdata") for s in received)
        assert any(s.get("userauthdata") for s in first)
    assert second


def test_java_peer_through_the_front_door(keys: tuple[Path, Path]) -> None:
    """``missile.Peer`` (key file, ``connect``, ``request(user=...)``) drives the reference."""
    java_keys, missile_keys = keys

    async def go() -> Outcome:
        port = free_port()
        proc, head = await _start_java_responder(java_keys, port, "DIFFIE_HELLMAN")
        replies = []
        user = missile.EmailPassword(USER_EMAIL, USER_PASSWORD)
        try:
            async with (
                missile.Peer(missile_keys, state=":memory:", key_exchange="DIFFIE_HELLMAN") as peer,
                await peer.connect("127.0.0.1", port) as connection,
            ):
                for i in range(1, EXCHANGES + 1):
                    replies.append(await connection.request(f"missile says hello #{i}".encode(), user=user))
        finally:
            returncode, output = await _finish_java(proc, head)
        return Outcome(returncode, output, replies, None)

    outcome = asyncio.run(go())
    log = outcome.log
    assert outcome.returncode == 0, outcome.output[-4000:]
    assert log.verdicts == {i: "PASS" for i in range(1, EXCHANGES + 1)}, outcome.output[-4000:]
    assert [r.payload for r in outcome.replies] == [
        f"java got missile says hello #{i} [user {USER_EMAIL}]".encode() for i in range(1, EXCHANGES + 1)
    ]
    # The reference issued a user ID token in the peer slot; missile sent it back.
    issued = [s["peeruseridtoken"] for way, s in log.in_exchange(1) if way == "SENT" and s.get("peeruseridtoken")]
    assert len(issued) == 1, outcome.output[-4000:]
    first, second = outcome.replies
    assert first.user_id_token is not None and first.user_id_token.serial_number == issued[0]
    assert [s.get("useridtoken") for way, s in log.in_exchange(2) if way == "RECV"] == [issued[0]]
    assert second.messages == 2 and second.header.data.key_response_data is None
