"""A stateful property test of a client and a server engine (issue #8 part 2).

A :class:`hypothesis.stateful.RuleBasedStateMachine` drives a real
:class:`~missile.engine.client.MslClient` (PSK, or RSA which cannot encrypt by itself)
and :class:`~missile.engine.server.MslServer` through random sequences of: application
requests (with or without a user and their EMAIL_PASSWORD credentials, non-replayable or
not, encrypted or not, alone or several at once), clock jumps past renewal windows and
expirations (for both, or only the server's clock so the client's estimate falls
behind), revocations of the master token and of user ID tokens at the server, replays
of captured requests, lost (reset, empty or truncated) responses, refusals by the server
application (KEYX_REQUIRED, entity and user rejection), and server restarts (a new
server and context over the same token-factory state, in SQLite or kept in memory, and
the same MSL token keys).

Everything the client sends and receives goes through a tap on the transport, and the
checks look at those bytes, parsed with a throw-away context that has the server's keys
but no token factory (so parsing changes no replay state):

(a) the server's handler never accepts a non-replayable message twice (per entity,
    master token serial number and non-replayable ID), never accepts a replayed captured
    non-replayable request at all, nor a revoked or superseded master token, a revoked
    user ID token, or an expired master token without renewing it;
(b) every request the client sends with a master token carries the newest master token
    it had been given (by the last key response it read) when it sent it, and once the
    requests are over its store holds nothing else;
(c) user authentication data and user ID tokens only travel in encrypted headers, and
    neither credentials nor application data the client was asked to encrypt appear in
    any plaintext layer of the wire bytes (every base64 / JSON / compression layer that
    can be opened without keys is opened and searched), in either direction;
(d) a request either succeeds or raises an :class:`~missile.errors.MslException`, and
    the server never fails with an unexpected exception. Moreover a request none of
    whose responses was lost succeeds, with the right echo and user (the client recovers
    from every revocation, expiry, refusal and replay-induced change of server state),
    unless it could not re-authenticate its user for lack of (fresh) credentials.

``MISSILE_STATEFUL_EXAMPLES`` (default 40) sets the number of runs, e.g. for a long
local search.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from missile.clock import FixedClock
from missile.context import MslConfiguration, MslContext
from missile.encoding.compression import decompress
from missile.engine.client import MslClient
from missile.engine.errors import MslErrorResponse
from missile.engine.options import MessageOptions
from missile.engine.server import MslServer, Reply, Request, RequestRejected
from missile.engine.transport import Channel, PipeChannel, channel_pair
from missile.errors import MslError, MslException, ResponseCode
from missile.keyx.repository import InMemoryWrapCryptoContextRepository
from missile.messages.events import HeaderReceived, PayloadReceived
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader
from missile.stores.memory import InMemoryStore
from missile.stores.sqlite_state import SqliteTokenState
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken
from missile.userauth.email_password import EmailPasswordAuthData

from .harness import T0, USER1, USER2, client_context, key_requests_for, server_context

MINUTE_MS = 60 * 1000
#: Short token lifetimes so that clock jumps cross renewal windows and expirations.
LIFETIMES = {
    "master_token_renewal_ms": 10 * MINUTE_MS,
    "master_token_expiration_ms": 30 * MINUTE_MS,
    "user_id_token_renewal_ms": 5 * MINUTE_MS,
    "user_id_token_expiration_ms": 20 * MINUTE_MS,
}
#: Client entity schemes: PSK encrypts its own messages; RSA only signs, so its user
#: credentials and encrypted data wait for a handshake.
CLIENTS = {"PSK": "SYMMETRIC_WRAPPED", "RSA": "ASYMMETRIC_WRAPPED/RSA"}
USERS = {"alice": USER1, "bob": USER2}
SECRETS = [s.encode() for pair in USERS.values() for s in pair]
SECRET_MARK = b"secret-"
PUBLIC_MARK = b"public-"


# -- the wire tap ---------------------------------------------------------------------


@dataclass
class Exchange:
    """One connection: the request bytes the server got, the response it produced and
    how the response was tampered with on its way back (None: delivered)."""

    request: bytes = b""
    response: bytes = b""
    drop: str | None = None
    issued: MasterToken | None = None
    """The master token of the response's key response data, if any."""
    newest_at_send: MasterToken | None = None
    """The newest master token the client had been given when it sent the request."""


class _MemoryChannel:
    """The server's end of one exchange: the whole request in, the response collected."""

    one_exchange = True

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.out = bytearray()

    async def read(self, n: int = 65536) -> bytes:
        out, self._data = self._data[:n], self._data[n:]
        return out

    async def write(self, data: bytes) -> None:
        self.out += data

    async def finish(self) -> None:
        pass

    async def close(self) -> None:
        pass


class _ClientEnd:
    """The client's end of one exchange; a "reset" drop fails the read like a lost
    connection would, once the server has finished with the request.

    It notes which master token the client has been given when the client starts
    sending (the client picks its tokens without yielding before the first write), and
    when the client has read a response whole (it stores the tokens without yielding
    after the last read)."""

    one_exchange = True

    def __init__(self, tap: TapTransport, inner: PipeChannel, exchange: Exchange) -> None:
        self._tap = tap
        self._inner = inner
        self._exchange = exchange
        self._started = False
        self._received = 0

    async def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._exchange.newest_at_send = self._tap.given
        await self._inner.write(data)

    async def finish(self) -> None:
        await self._inner.finish()

    async def read(self, n: int = 65536) -> bytes:
        if self._exchange.drop == "reset":
            while await self._inner.read():
                pass
            raise ConnectionResetError("connection reset by the test")
        data = await self._inner.read(n)
        self._received += len(data)
        exchange = self._exchange
        if exchange.drop is None and exchange.issued is not None and self._received == len(exchange.response):
            self._tap.given = exchange.issued
        return data

    async def close(self) -> None:
        await self._inner.close()


class TapTransport:
    """A loopback transport recording every exchange and dropping chosen responses."""

    def __init__(self, machine: ClientServerMachine) -> None:
        self.machine = machine
        self.exchanges: list[Exchange] = []
        self.drops: dict[int, str] = {}
        """Drop mode by connection number within the current application request."""
        self.request_start = 0
        self.given: MasterToken | None = None
        """The newest master token the client has been given (read a key response with)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def begin(self, drops: dict[int, str] | None = None) -> None:
        self.request_start = len(self.exchanges)
        self.drops = dict(drops or {})

    async def connect(self) -> Channel:
        client_end, server_end = channel_pair()
        exchange = Exchange(drop=self.drops.pop(len(self.exchanges) - self.request_start, None))
        self.exchanges.append(exchange)
        task = asyncio.ensure_future(self._relay(server_end, exchange))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _ClientEnd(self, client_end, exchange)

    async def _relay(self, channel: PipeChannel, exchange: Exchange) -> None:
        data = bytearray()
        while chunk := await channel.read():
            data += chunk
        exchange.request = bytes(data)
        exchange.response, exchange.issued = await self.machine.deliver(exchange.request)
        if exchange.drop is None:
            await channel.write(exchange.response)
        elif exchange.drop == "truncate":
            await channel.write(exchange.response[: len(exchange.response) // 2])
        await channel.finish()

    async def settle(self) -> None:
        """Wait for every server task (a client that failed early may leave one)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def since_begin(self) -> list[Exchange]:
        return self.exchanges[self.request_start :]


# -- looking at the wire without keys ----------------------------------------------------


def _json_objects(raw: bytes) -> Iterator[Any]:
    """The concatenated JSON values of a message stream (nothing when not JSON)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return
        yield value


def plaintext_layers(raw: bytes) -> list[bytes]:
    """Every layer of ``raw`` that can be read without keys: the bytes themselves, every
    base64 string value (recursively, through nested JSON), and decompressed chunk data."""
    layers: list[bytes] = [raw]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            algo = value.get("compressionalgo")
            data = value.get("data")
            if isinstance(algo, str) and isinstance(data, str):
                with contextlib.suppress(MslException, ValueError, binascii.Error):
                    layers.append(decompress(algo, base64.b64decode(data), max_ratio=1000))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            try:
                decoded = base64.b64decode(value, validate=True)
            except (ValueError, binascii.Error):
                return
            if decoded:
                layers.append(decoded)
                for inner in _json_objects(decoded):
                    walk(inner)

    for obj in _json_objects(raw):
        walk(obj)
    return layers


def leaks(raw: bytes, needles: list[bytes]) -> list[bytes]:
    """The needles found in some plaintext layer of ``raw``."""
    layers = plaintext_layers(raw)
    return [n for n in needles if any(n in layer for layer in layers)]


@dataclass
class Parsed:
    header: MessageHeader | None
    payload: bytes
    error: str | None
    """The name of the error an error message carried."""
    compressed: bool = False
    """Some payload chunk was compressed (its data is then not on the wire as is)."""


def parse_with(ctx: MslContext, raw: bytes) -> Parsed:
    """Parse a whole message with ``ctx``."""
    reader = MessageReader(ctx)
    events = list(reader.feed(raw))
    if not reader.done:
        events.extend(reader.end_of_stream())
    header = next((e.header for e in events if isinstance(e, HeaderReceived)), None)
    chunks = [e.chunk for e in events if isinstance(e, PayloadReceived)]
    payload = b"".join(chunk.data for chunk in chunks)
    error = None
    if reader.error_header is not None:
        known = reader.error_header.error
        error = known.name if known is not None else reader.error_header.error_code.name
    return Parsed(header, payload, error, any(chunk.compression_algo is not None for chunk in chunks))


# -- the machine ------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One application request. ``credentials``: "none", "static" (user auth data, which
    the client does not send again after USERDATA_REAUTH) or "provider" (a callable
    asked again after every user reauth code)."""

    user: str | None = None
    credentials: str = "none"
    non_replayable: bool = False
    encrypted: bool = True
    repeat: int = 1

    def options(self) -> MessageOptions:
        user_auth: EmailPasswordAuthData | Callable[[ResponseCode | None], EmailPasswordAuthData] | None = None
        if self.user is not None and self.credentials == "static":
            user_auth = EmailPasswordAuthData(*USERS[self.user])
        elif self.user is not None and self.credentials == "provider":
            email, password = USERS[self.user]

            def user_auth(code: ResponseCode | None) -> EmailPasswordAuthData:
                return EmailPasswordAuthData(email, password)

        return MessageOptions(
            encrypted=self.encrypted, non_replayable=self.non_replayable, user_id=self.user, user_auth=user_auth
        )


@cache
def _server_template() -> MslConfiguration:
    """The server's keys and schemes, loaded once (each run gets its own context)."""
    return server_context(FixedClock(T0)).config


@cache
def _client_template(scheme: str) -> MslConfiguration:
    return client_context(scheme, FixedClock(T0)).config


class _ServerErrors(logging.Handler):
    """Collects the server's unexpected-failure log records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Accepted:
    identity: str | None
    serial: int | None
    non_replayable_id: int | None
    replayed: bool


@dataclass
class Captured:
    raw: bytes
    non_replayable: bool


@dataclass
class Violations:
    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.items.append(text)


class ClientServerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        # A RAM-backed directory where there is one: the token-factory state commits
        # (and syncs) on every check, which is slow on a real disk.
        shm = Path("/dev/shm")
        self.tmpdir = Path(tempfile.mkdtemp(prefix="missile-stateful-", dir=shm if shm.is_dir() else None))
        self.clock = FixedClock(T0)
        """The server's clock."""
        self.client_clock = FixedClock(T0)
        """The client's clock: it estimates the server's time from response timestamps."""
        self.violations = Violations()
        self.accepted: list[Accepted] = []
        self.accepted_ids: set[tuple[str | None, int | None, int]] = set()
        self.captured: list[Captured] = []
        self.replaying = False
        self.requests = 0
        self.server_log = _ServerErrors()
        logging.getLogger("missile.server").addHandler(self.server_log)
        self.factory: TokenFactory | None = None
        self.demand: str | None = None
        self.issued: list[MasterToken] = []
        """Master tokens the server issued (in key responses), in order."""
        self.revoked_serials: set[int] = set()
        self.revoked_uit_serials: set[int] = set()
        self.concurrent = False

    # -- set-up -----------------------------------------------------------------------

    @initialize(scheme=st.sampled_from(sorted(CLIENTS)), persistence=st.sampled_from(["sqlite", "memory"]))
    def setup(self, scheme: str, persistence: str) -> None:
        self.scheme = scheme
        self.persistence = persistence
        self.factory = self._open_factory()
        self.server = self._new_server()
        self.peek = self._peek_context(self.server.ctx)
        self.transport = TapTransport(self)
        self.client_ctx = MslContext.from_config(
            dataclasses.replace(_client_template(scheme), clock=self.client_clock),
            store=InMemoryStore(),
            wrap_repository=InMemoryWrapCryptoContextRepository(),
        )
        key_requests = key_requests_for(CLIENTS[scheme], self.client_ctx.wrap_repository)
        self.client = MslClient(self.client_ctx, self.transport, key_request_factory=key_requests)

    def _open_factory(self) -> TokenFactory:
        if self.persistence == "sqlite":
            return TokenFactory(SqliteTokenState(self.tmpdir / "state.db"), **LIFETIMES)
        return TokenFactory(**LIFETIMES)

    def _new_server(self) -> MslServer:
        # Same keys and schemes, a new context (fresh caches) over the persistent state.
        config = dataclasses.replace(_server_template(), clock=self.clock, token_factory=self.factory)
        ctx = MslContext.from_config(config)
        return MslServer(ctx, self._handle)

    @staticmethod
    def _peek_context(ctx: MslContext) -> MslContext:
        return MslContext(
            msl_crypto=ctx.msl_crypto,
            entity_auth_data=ctx.entity_auth_data,
            entity_auth_factories=ctx.entity_auth_factories,
            user_auth_factories=ctx.user_auth_factories,
            key_exchange_factories=ctx.key_exchange_factories,
            clock=ctx.clock,
        )

    def teardown(self) -> None:
        logging.getLogger("missile.server").removeHandler(self.server_log)
        if self.factory is not None and isinstance(self.factory.state, SqliteTokenState):
            self.factory.state.close()
        self.loop.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    @property
    def store(self) -> InMemoryStore:
        store = self.client_ctx.store
        assert isinstance(store, InMemoryStore)
        return store

    # -- the server side ----------------------------------------------------------------

    async def _handle(self, request: Request) -> Reply:
        header = request.header
        nrid = header.data.non_replayable_id
        serial = header.master_token.serial_number if header.master_token is not None else None
        self.accepted.append(Accepted(header.identity, serial, nrid, self.replaying))
        if nrid is not None:
            key = (header.identity, serial, nrid)
            if key in self.accepted_ids:
                self.violations.add(f"non-replayable message accepted twice: {key}")
            self.accepted_ids.add(key)
        self._check_accepted(header)
        demand = self.demand
        if demand is not None and not self.replaying and (demand != "user" or request.user is not None):
            # The application refuses this one request (errors.md §3, control.md §4).
            self.demand = None
            event(f"application demanded {demand}")
            if demand == "keys":
                raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION)
            raise RequestRejected(entity=demand == "entity", user=demand == "user", request=request)
        user = request.user.identity if request.user is not None else "-"
        return Reply(data=b"echo " + request.payload + f" ({user})".encode())

    def _check_accepted(self, header: MessageHeader) -> None:
        """What the server lets through to the application honours its own state:
        revocations (also across restarts), the newest serial number of the entity, and
        expiry (an expired master token only on a renewable request with key request
        data, which renews it; control.md §10)."""
        mt = header.master_token
        if mt is None:
            return
        if mt.serial_number in self.revoked_serials:
            self.violations.add(f"revoked master token accepted: {mt}")
        uit = header.data.user_id_token
        if uit is not None and uit.serial_number in self.revoked_uit_serials:
            self.violations.add(f"revoked user ID token accepted: {uit.serial_number}")
        if not self.concurrent and self.issued and mt.serial_number != self.issued[-1].serial_number:
            # (With requests in flight at once, a new serial may be issued between the
            # check of a request's header and its delivery to the application.)
            self.violations.add(f"master token of a superseded serial number accepted: {mt}")
        if mt.is_expired(self.clock()) and not (header.data.renewable and header.data.key_request_data):
            self.violations.add(f"expired master token accepted without renewal: {mt}")

    async def deliver(self, raw: bytes) -> tuple[bytes, MasterToken | None]:
        """Hand one request to the current server: its response bytes and the master
        token of the response's key response data, if any."""
        channel = _MemoryChannel(raw)
        await self.server.serve_channel(channel)
        response = parse_with(self.peek, bytes(channel.out)) if channel.out else None
        issued = None
        if response is not None and response.header is not None:
            krd = response.header.data.key_response_data
            if krd is not None:
                issued = krd.master_token
                self.issued.append(issued)
        return bytes(channel.out), issued

    # -- rules ------------------------------------------------------------------------

    def _request(self, *calls: Call, drops: dict[int, str] | None = None) -> None:
        """Run application requests (several at once when given several) and check them."""
        self.transport.begin(drops)
        outcomes: list[bytes | Exception] = []
        payloads: list[bytes] = []

        async def one(data: bytes, options: MessageOptions) -> bytes | Exception:
            try:
                return (await self.client.request(data, options)).payload
            except Exception as exc:  # checked below: (d)
                return exc

        async def go() -> None:
            jobs = []
            for call in calls:
                self.requests += 1
                mark = SECRET_MARK if call.encrypted else PUBLIC_MARK
                payloads.append((mark + b"%04d;" % self.requests) * call.repeat)
                jobs.append(one(payloads[-1], call.options()))
            outcomes.extend(await asyncio.gather(*jobs))
            await self.transport.settle()

        self.concurrent = len(calls) > 1
        try:
            self.loop.run_until_complete(go())
        finally:
            self.concurrent = False
        exchanges = self.transport.since_begin()
        self._check_exchanges(exchanges)
        dropped = any(e.drop is not None for e in exchanges)
        for call, data, outcome in zip(calls, payloads, outcomes, strict=True):
            self._check_outcome(call, data, outcome, dropped, len(exchanges))

    def _check_outcome(self, call: Call, data: bytes, outcome: bytes | Exception, dropped: bool, n: int) -> None:
        user = call.user
        if isinstance(outcome, Exception):
            # (d) only MSL errors, and only when a response was lost or the user could
            # not be re-authenticated for lack of (fresh) credentials.
            event(f"request failed: {type(outcome).__name__} {getattr(outcome, 'error', None)}")
            assert isinstance(outcome, MslException), f"non-MSL failure: {outcome!r}"
            code = outcome.response_code if isinstance(outcome, MslErrorResponse) else None
            user_gave_up = user is not None and (
                (code is ResponseCode.USER_REAUTH and call.credentials == "none")
                or (code is ResponseCode.USERDATA_REAUTH and call.credentials != "provider")
            )
            assert dropped or user_gave_up, f"request failed with nothing lost: {outcome!r}"
            return
        event(f"request succeeded ({n} connection(s) for {'one request' if n == 1 else 'the batch'})")
        echoed, _, who = outcome.rpartition(b" (")
        assert echoed == b"echo " + data
        who = who.rstrip(b")")
        if user is None:
            assert who == b"-"
        elif who != b"-" or call.credentials != "none":
            # Never another user's identity; always the user when credentials were given.
            assert who == USERS[user][0].encode(), (user, who)

    def _check_exchanges(self, exchanges: list[Exchange]) -> None:
        for exchange in exchanges:
            request = parse_with(self.peek, exchange.request)
            header = request.header
            assert header is not None, "the client sent an unreadable request"
            data = header.data
            self.captured.append(Captured(exchange.request, data.non_replayable_id is not None))
            # (b) the newest master token the client had been given, or none.
            if header.master_token is not None:
                assert header.master_token == exchange.newest_at_send, self._describe(exchanges)
            # (c) user data only in encrypted headers; nothing secret in plaintext.
            if data.user_auth_data is not None:
                assert header.encrypting, "user authentication data in an unencrypted header"
            if data.user_id_token is not None:
                assert header.master_token is not None, "user ID token without a master token"
            if SECRET_MARK in request.payload:
                assert header.encrypting, "application data to encrypt sent unencrypted"
            assert not leaks(exchange.request, [*SECRETS, SECRET_MARK]), "secret in a plaintext layer"
            if PUBLIC_MARK in request.payload and not header.encrypting and not request.compressed:
                assert leaks(exchange.request, [PUBLIC_MARK]), "the scanner misses plaintext"
                event("unencrypted application data on the wire (as asked)")
            elif PUBLIC_MARK in request.payload and not header.encrypting:
                event("unencrypted application data on the wire, compressed")
            if exchange.response:
                assert not leaks(exchange.response, [*SECRETS, SECRET_MARK]), "secret in a plaintext response layer"
                error = parse_with(self.peek, exchange.response).error
                if error is not None:
                    event(f"server answered {error}")

    def _describe(self, exchanges: list[Exchange]) -> str:
        """The exchanges of a request (or batch), for a failure message."""

        def name(token: MasterToken | None) -> str:
            return f"{token.serial_number % 10000}/{token.sequence_number}" if token is not None else "-"

        lines = []
        for exchange in exchanges:
            header = parse_with(self.peek, exchange.request).header
            assert header is not None
            error = parse_with(self.peek, exchange.response).error if exchange.response else None
            lines.append(
                f"sent {name(header.master_token)} (newest given {name(exchange.newest_at_send)}), "
                f"handshake={header.is_handshake} renewable={header.is_renewable} "
                f"keyx={bool(header.data.key_request_data)} -> {error or 'ok'} issued {name(exchange.issued)}"
                f"{' dropped: ' + exchange.drop if exchange.drop else ''}"
            )
        return "\n".join(lines)

    @rule()
    def request_plain(self) -> None:
        """An encrypted request without a user (sorts first: the "simplest" step)."""
        self._request(Call())

    @rule(
        user=st.sampled_from([None, None, "alice", "bob"]),
        credentials=st.sampled_from(["none", "static", "provider"]),
        non_replayable=st.booleans(),
        encrypted=st.booleans(),
        repeat=st.sampled_from([1, 40]),
    )
    def request(self, user: str | None, credentials: str, non_replayable: bool, encrypted: bool, repeat: int) -> None:
        self._request(Call(user, credentials, non_replayable, encrypted, repeat))

    @rule(
        calls=st.lists(
            st.builds(
                Call,
                user=st.sampled_from([None, "alice", "bob"]),
                credentials=st.sampled_from(["static", "provider"]),
                non_replayable=st.booleans(),
            ),
            min_size=2,
            max_size=3,
        )
    )
    def concurrent_requests(self, calls: list[Call]) -> None:
        """Requests in flight at once (control.md §3.2, §11): one renewable message at a
        time, tokens in use are not deleted under a request, replay IDs out of order."""
        self._request(*calls)

    @rule(
        user=st.sampled_from([None, "alice"]),
        non_replayable=st.booleans(),
        at=st.integers(0, 2),
        mode=st.sampled_from(["reset", "eof", "truncate"]),
    )
    def request_with_lost_response(self, user: str | None, non_replayable: bool, at: int, mode: str) -> None:
        """The response of the ``at``-th connection never reaches the client intact."""
        self._request(Call(user, "provider", non_replayable), drops={at: mode})

    @rule(demand=st.sampled_from(["keys", "entity", "user"]))
    def application_refuses_next(self, demand: str) -> None:
        """The server application refuses the next request (for "user": the next one with
        a user): it demands key exchange (RESPONSE_REQUIRES_ENCRYPTION, KEYX_REQUIRED),
        or rejects the entity or the user."""
        self.demand = demand

    @rule(ms=st.sampled_from([1000, 4 * MINUTE_MS, 11 * MINUTE_MS, 21 * MINUTE_MS, 31 * MINUTE_MS, 180 * MINUTE_MS]))
    def advance_clock(self, ms: int) -> None:
        self.clock.advance(ms)
        self.client_clock.advance(ms)

    @rule(ms=st.sampled_from([11 * MINUTE_MS, 31 * MINUTE_MS]))
    def advance_server_clock_only(self, ms: int) -> None:
        """The client's estimate of the server's time falls behind: it sends a token the
        server finds renewable or expired (EXPIRED recovery, control.md §10)."""
        self.clock.advance(ms)

    @rule()
    def revoke_master_token(self) -> None:
        token = self.store.get_master_token()
        if token is not None:
            assert self.factory is not None
            self.loop.run_until_complete(self.factory.revoke_master_token(token.serial_number))
            self.revoked_serials.add(token.serial_number)

    @rule(user=st.sampled_from(sorted(USERS)))
    def revoke_user_id_token(self, user: str) -> None:
        token = self.store.get_user_id_token(user)
        if token is not None:
            assert self.factory is not None
            self.loop.run_until_complete(self.factory.revoke_user_id_token(token.serial_number))
            self.revoked_uit_serials.add(token.serial_number)

    @rule(pick=st.integers(0, 1000))
    def replay_non_replayable(self, pick: int) -> None:
        candidates = [c for c in self.captured if c.non_replayable]
        if candidates:
            self._replay(candidates[pick % len(candidates)])

    @rule(pick=st.integers(0, 1000))
    def replay_any(self, pick: int) -> None:
        if self.captured:
            self._replay(self.captured[pick % len(self.captured)])

    def _replay(self, captured: Captured) -> None:
        before = len(self.accepted)
        self.replaying = True
        try:
            response, _ = self.loop.run_until_complete(self.deliver(captured.raw))
        finally:
            self.replaying = False
        assert not leaks(response, [*SECRETS, SECRET_MARK])
        refused = parse_with(self.peek, response).error
        event(f"replay {'refused: ' + refused if refused else 'accepted'}")
        if captured.non_replayable:
            # (a) a captured non-replayable request is never accepted again.
            assert len(self.accepted) == before, "replayed non-replayable request accepted"
            assert parse_with(self.peek, response).error is not None

    @rule()
    def restart_server(self) -> None:
        """A new server and context over the same token-factory state and token keys."""
        if self.factory is not None and isinstance(self.factory.state, SqliteTokenState):
            self.factory.state.close()
            self.factory = self._open_factory()
        self.server = self._new_server()

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def no_violations(self) -> None:
        assert not self.violations.items, self.violations.items

    @invariant()
    def server_failed_only_with_msl_errors(self) -> None:
        assert not self.server_log.records, [r.getMessage() for r in self.server_log.records]

    @invariant()
    def store_holds_only_the_newest_master_token(self) -> None:
        # (b) the client keeps no master token older than the newest it was given.
        if self.factory is None:
            return
        held = list(self.store._contexts)
        for token in held:
            assert token == self.transport.given, (held, self.transport.given)


ClientServerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("MISSILE_STATEFUL_EXAMPLES", "40")),
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestClientServer = ClientServerMachine.TestCase
