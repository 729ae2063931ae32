"""Live interop with the Java MSL reference, in both directions, on every scheme both offer.

The reference's example echo server (``java-server.sh``) answers ``missile send`` and
the library client; ``missile serve`` with the same deployment's keys answers the
reference's example client (``java-client.sh``). Every case checks the exact echoed text
and evidence that the expected key exchange took place (see ``_live`` for where that
evidence comes from). The JVM starts slowly, so the client processes of one direction run
together, four at a time, inside one fixture (except the few that must not overlap, see
:attr:`Case.exclusive`); the tests then look at their results.

Without Java these tests skip, except in CI (``CI`` set), where they fail instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from missile.engine.client import MslClient, Response
from missile.engine.options import MessageOptions
from missile.engine.transport import Channel
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.stores.sqlite import SqliteStore
from missile.transport.http import HttpTransport
from missile.userauth.email_password import EmailPasswordAuthData

from ._live import (
    JAVA_DIR,
    MISSILE,
    PSK_CLIENT_KEYS,
    RSA_CLIENT_KEYS,
    JavaServer,
    MissileServer,
    Run,
    read_java_log,
    read_send_summary,
    read_wire,
    require_java,
    run_process,
    start_java_server,
    start_missile_server,
)

#: Two cores: more concurrent JVMs only queue for the CPU.
PARALLEL = 4

USER_EMAIL = "user1@foo.com"
USER_PASSWORD = "user1pwd"
ENTITY_AUTH = {"client1": "PSK", "rsaclient1": "RSA", "ANY": "NONE"}


@dataclass(frozen=True)
class Case:
    """One scenario, run by each of the three clients."""

    name: str
    scheme: str
    mechanism: str
    """As the reference client reports it ("null": Diffie-Hellman has none)."""
    identity: str = "client1"
    user: bool = False
    non_replayable: bool = False
    encrypted: bool = True
    sends: int = 1
    """2: a second request reuses the session (and the user ID token) of the first."""

    @property
    def text(self) -> str:
        return f"echo me: {self.name} / 0123456789 !?"

    @property
    def exclusive(self) -> bool:
        """True when a client1 session must last several messages on ``missile serve``.

        missile's token factory retires an identity's master token once it issues a
        newer one to that identity, so another client1 exchanging keys meanwhile would
        end this session (MASTERTOKEN_IDENTITY_REVOKED, then a fresh key exchange).
        """
        return self.identity == "client1" and (self.sends > 1 or self.non_replayable)

    @property
    def entity_auth(self) -> str:
        return ENTITY_AUTH[self.identity]

    @property
    def keys(self) -> Path:
        return RSA_CLIENT_KEYS if self.identity == "rsaclient1" else PSK_CLIENT_KEYS

    def java_args(self) -> list[str]:
        args = ["-msg", self.text, "-kx", self.scheme, "-v", "true"]
        if self.mechanism != "null":
            args += ["-kxm", self.mechanism]
        if self.identity == "ANY":
            args += ["-eas", "NONE"]
        args += ["-eid", self.identity]
        if self.user:
            args += ["-uid", "user1"]
        if self.non_replayable:
            args += ["-nrep", "true"]
        if not self.encrypted:
            args += ["-enc", "false"]
        if self.sends > 1:
            args += ["-nsnd", str(self.sends)]
        return args

    def send_args(self, url: str, state: Path) -> list[str]:
        args = [*MISSILE, "send", url, "--keys", str(self.keys), "--data", self.text, "-v"]
        args += ["--key-exchange", self.scheme, "--state", str(state)]
        if self.scheme == "ASYMMETRIC_WRAPPED":
            args += ["--mechanism", self.mechanism]
        if self.identity == "ANY":
            args += ["--entity-auth", "NONE", "--identity", "ANY"]
        if self.user:
            args += ["--user", USER_EMAIL, "--password", USER_PASSWORD]
        if self.non_replayable:
            args.append("--non-replayable")
        if not self.encrypted:
            args.append("--no-encrypt")
        return args


CASES = [
    Case("asymmetric-jwe-rsa", "ASYMMETRIC_WRAPPED", "JWE_RSA"),
    Case("asymmetric-jwejs-rsa", "ASYMMETRIC_WRAPPED", "JWEJS_RSA"),
    Case("asymmetric-jwk-rsa", "ASYMMETRIC_WRAPPED", "JWK_RSA"),
    Case("asymmetric-jwk-rsaes", "ASYMMETRIC_WRAPPED", "JWK_RSAES"),
    Case("symmetric-wrapped", "SYMMETRIC_WRAPPED", "PSK"),
    Case("diffie-hellman", "DIFFIE_HELLMAN", "null"),
    Case("jwe-ladder", "JWE_LADDER", "PSK"),
    Case("jwk-ladder", "JWK_LADDER", "PSK"),
    Case("user", "SYMMETRIC_WRAPPED", "PSK", user=True, sends=2),
    Case("non-replayable", "SYMMETRIC_WRAPPED", "PSK", non_replayable=True),
    Case("unencrypted", "SYMMETRIC_WRAPPED", "PSK", encrypted=False),
    # RSA and NONE entity auth cannot encrypt: these clients need an asymmetric exchange.
    Case("rsa-client", "ASYMMETRIC_WRAPPED", "JWE_RSA", identity="rsaclient1"),
    Case("none-entity-auth", "ASYMMETRIC_WRAPPED", "JWE_RSA", identity="ANY"),
    Case("session-reuse", "SYMMETRIC_WRAPPED", "PSK", sends=2),
]
BY_NAME = {case.name: case for case in CASES}
NAMES = list(BY_NAME)


@pytest.fixture(scope="module", autouse=True)
def _java() -> None:
    require_java()


@pytest.fixture(scope="module")
def java_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaServer]:
    server = start_java_server(tmp_path_factory.mktemp("java-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def missile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MissileServer]:
    directory = tmp_path_factory.mktemp("missile-server")
    server = start_missile_server(
        directory / "state.db",
        directory / "serve.log",
        "--allow-insecure",
        "NONE",
        "--allow-insecure",
        "JWK_RSAES",
    )
    try:
        yield server
    finally:
        server.stop()


# -- the reference client against missile serve ------------------------------------------


@pytest.fixture(scope="module")
def java_client_runs(missile_server: MissileServer) -> dict[str, Run]:
    """Every case of the reference client against ``missile serve``: concurrently, then
    the exclusive ones (see :attr:`Case.exclusive`) one at a time."""
    script = str(JAVA_DIR / "java-client.sh")

    def run(case: Case) -> Run:
        return run_process(["bash", script, missile_server.url, *case.java_args()])

    shared = [case for case in CASES if not case.exclusive]
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = dict(zip([case.name for case in shared], pool.map(run, shared), strict=True))
    runs.update((case.name, run(case)) for case in CASES if case.exclusive)
    return runs


@pytest.mark.parametrize("name", NAMES)
def test_java_client_against_missile_serve(java_client_runs: dict[str, Run], name: str) -> None:
    case, run = BY_NAME[name], java_client_runs[name]
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == (case.text + "\n").encode()
    log = read_java_log(run.stderr)
    wire = read_wire(run.stderr)
    # The client offered exactly this exchange, as this entity ...
    assert log.offered == {(case.scheme, case.mechanism)}
    assert log.auth_data == ({case.entity_auth, "EMAIL_PASSWORD"} if case.user else {case.entity_auth})
    assert case.entity_auth in wire.entity_auth
    # ... missile answered with key response data of that scheme (once: a reused
    # session needs none), and the client took the master token it carried.
    assert wire.key_responses == [case.scheme]
    assert log.added_master_tokens == wire.issued_serials
    assert log.messages_sent == case.sends
    if case.sends > 1:
        # The later request travelled under the session the first one set up.
        assert wire.issued_serials[0] in wire.used_serials
    if case.user:
        assert wire.user_id_token_in_key_response_header
        serials = {serial for serial, user in log.added_user_id_tokens if user == "user1"}
        # Re-authenticating would have earned a fresh token: one serial means reuse.
        assert len(log.added_user_id_tokens) == case.sends
        assert len(serials) == 1


# -- missile send against the reference server ------------------------------------------


@dataclass(frozen=True)
class SendRun:
    """One ``missile send`` process, and the user ID token its state file kept."""

    run: Run
    stored_user_id_token: int | None


def _stored_user_id_token(state: Path) -> int | None:
    store = SqliteStore(state)
    try:
        token = store.get_user_id_token(USER_EMAIL)
    finally:
        store.close()
    return token.serial_number if token else None


@pytest.fixture(scope="module")
def send_runs(java_server: JavaServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[SendRun]]:
    """Every case of ``missile send`` (each send a new process), run concurrently."""
    directory = tmp_path_factory.mktemp("send")

    def run(case: Case) -> list[SendRun]:
        state = directory / f"{case.name}.db"
        runs = []
        for _ in range(case.sends):
            outcome = run_process(case.send_args(java_server.url, state))
            runs.append(SendRun(outcome, _stored_user_id_token(state) if case.user else None))
        return runs

    with ThreadPoolExecutor(PARALLEL) as pool:
        return dict(zip(NAMES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_missile_send_against_java_server(send_runs: dict[str, list[SendRun]], name: str) -> None:
    case, sends = BY_NAME[name], send_runs[name]
    runs = [send.run for send in sends]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout == case.text.encode()
    first = read_send_summary(runs[0].stderr)
    assert first.serial is not None
    if case.identity != "client1" or case.non_replayable:
        # A client that cannot protect its message yet (RSA or NONE entity auth, or a
        # non-replayable message before a session exists) first does a handshake, and
        # the summary describes only the final response, which carries no key response
        # data; the library test below reads the handshake itself.
        assert first.messages == 4
        assert first.keyx in (case.scheme, "-")
    else:
        assert (first.messages, first.keyx) == (2, case.scheme)
    assert first.user_id_token == case.user
    for run in runs[1:]:
        later = read_send_summary(run.stderr)
        # The session survived the process: no new exchange, the same master token.
        assert (later.messages, later.keyx, later.serial) == (2, "-", first.serial)
        assert later.user_id_token == case.user
    if case.user:
        serials = [send.stored_user_id_token for send in sends]
        assert serials[0] is not None
        assert len(set(serials)) == 1  # the user ID token was reused, not re-issued


# -- the library client against the reference server -------------------------------------


class _RecordingChannel:
    """A channel that keeps a copy of every byte in both directions."""

    one_exchange = True

    def __init__(self, inner: Channel, sent: bytearray, received: bytearray) -> None:
        self._inner = inner
        self._sent = sent
        self._received = received

    async def write(self, data: bytes) -> None:
        self._sent += data
        await self._inner.write(data)

    async def finish(self) -> None:
        await self._inner.finish()

    async def read(self, n: int = 65536) -> bytes:
        data = await self._inner.read(n)
        self._received += data
        return data

    async def close(self) -> None:
        await self._inner.close()


class _RecordingTransport:
    """:class:`HttpTransport` plus a record of the conversation."""

    def __init__(self, url: str) -> None:
        self.inner = HttpTransport(url, timeout=30.0)
        self.sent = bytearray()
        self.received = bytearray()

    async def connect(self) -> Channel:
        return _RecordingChannel(await self.inner.connect(), self.sent, self.received)

    def take(self) -> tuple[str, str]:
        """What was sent and received since the last call."""
        sent, received = self.sent.decode(errors="replace"), self.received.decode(errors="replace")
        self.sent.clear()
        self.received.clear()
        return sent, received


async def _library_exchange(url: str, case: Case) -> list[tuple[Response, str, str]]:
    keys = KeyFile.load(case.keys)
    keys.time_ms = None
    if case.identity == "ANY":
        keys.entity_auth = {"scheme": "NONE", "identity": "ANY"}
        keys.raw = {**keys.raw, "entity_auth": keys.entity_auth}
    ctx = context_from_keyfile(keys, role="client").ctx
    mechanism = case.mechanism if case.scheme == "ASYMMETRIC_WRAPPED" else None
    transport = _RecordingTransport(url)
    client = MslClient(ctx, transport, key_request_factory=key_request_factory(ctx, keys, case.scheme, mechanism))
    options = MessageOptions(
        encrypted=case.encrypted,
        non_replayable=case.non_replayable,
        service_token_contexts=keys.service_token_crypto_contexts(ctx.random),
    )
    if case.user:
        options.user_id = USER_EMAIL
        options.user_auth = EmailPasswordAuthData(USER_EMAIL, USER_PASSWORD)
    results = []
    try:
        for _ in range(case.sends):
            response = await asyncio.wait_for(client.request(case.text.encode(), options), timeout=60)
            results.append((response, *transport.take()))
    finally:
        await transport.inner.aclose()
    return results


@pytest.mark.parametrize("name", NAMES)
def test_library_client_against_java_server(java_server: JavaServer, name: str) -> None:
    case = BY_NAME[name]
    results = asyncio.run(_library_exchange(java_server.url, case))
    (first, first_sent, first_received), *later = results
    assert first.payload == case.text.encode()
    sent, received = read_wire(first_sent), read_wire(first_received)
    assert sent.entity_auth[:1] == [case.entity_auth]
    # The reference server answered with key response data of the scheme asked for, and
    # the client now holds the master token it carried.
    assert received.key_responses == [case.scheme]
    assert first.master_token is not None
    assert received.issued_serials == [first.master_token.serial_number]
    if case.user:
        assert first.user_id_token is not None
    for response, sent_text, received_text in later:
        assert response.payload == case.text.encode()
        assert read_wire(received_text).key_responses == []
        assert response.master_token is not None
        assert response.master_token.serial_number == first.master_token.serial_number
        assert first.master_token.serial_number in read_wire(sent_text).used_serials
        if case.user:
            # The reference issues a fresh token for every EMAIL_PASSWORD login, so the
            # same serial means the token itself was presented.
            assert response.user_id_token is not None and first.user_id_token is not None
            assert response.user_id_token.serial_number == first.user_id_token.serial_number
