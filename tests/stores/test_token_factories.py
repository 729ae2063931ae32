"""TokenFactory over every token state (memory, SQLite, Redis, Redis Cluster): the same
issuer behaviour, shared state, atomicity across threads and processes, the time bound
on a slow or hung store, and failure handling (control.md §2.2, §7; tokens.md §1.3).

State calls are coroutines; each test runs on a fresh event loop (:func:`sync`, or
:func:`asyncio.run` where a test forks or starts threads), and every state it opens is
closed on that loop. Redis tests use a key prefix of their own (``redis_prefix``), so
they share the session's redis-server and Redis Cluster with other tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
import redis
import redis.asyncio

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.errors import MslError, MslException, MslMasterTokenException, ResponseCode
from missile.stores.open import MEMORY, open_token_state
from missile.stores.redis_state import RedisTokenState
from missile.stores.sqlite_state import SqliteTokenState
from missile.tokens import MasterToken, MslUser
from missile.tokens.factory import DAY_MS, NON_REPLAYABLE_WINDOW, TokenFactory
from missile.tokens.state import MemoryTokenState, TokenState
from process_helpers import results_of
from redis_helpers import free_port, start_redis, stop_redis

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
KE1, KH1 = bytes(range(16)), bytes(range(32))
KE2, KH2 = bytes(range(16, 32)), bytes(range(32, 64))
NOW = 1_700_000_000_123
W = NON_REPLAYABLE_WINDOW

#: The bound of state calls in behaviour tests: generous, so a loaded 2-core CI machine
#: never turns a slow answer into a spurious failure (the bound itself is tested below
#: with short values).
RELAXED_TIMEOUT_S = 10.0
#: Seconds a test allows beyond a call's bound before calling it "not bounded".
MARGIN_S = 2.0
#: Processes racing on one store: enough to race on a 2-core machine, few enough to start fast.
PROCESSES = 4
#: Threads racing on one store.
THREADS = 8

_P = ParamSpec("_P")
_T = TypeVar("_T")


class CountingRandom:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def random_bytes(self, n: int) -> bytes:
        with self.lock:
            self.n += 1
            return self.n.to_bytes(n, "big")


def context(clock: FixedClock | None = None) -> MslContext:
    return MslContext(msl_crypto=MSL, clock=clock or FixedClock(NOW), random=CountingRandom())


def open_state(kind: str, location: str, prefix: str) -> TokenState:
    """A new state object of ``kind`` over the store at ``location`` (a server process
    opening its state)."""
    if kind == "sqlite":
        return SqliteTokenState(location)
    if kind in ("redis", "redis-cluster"):
        return RedisTokenState(location, cluster=kind == "redis-cluster", prefix=prefix)
    raise AssertionError(kind)


@dataclass
class Backend:
    """One store of one kind; every state opened from it sees the same data (as the
    servers of one deployment do). The in-memory kind shares one state object."""

    kind: str
    location: str
    prefix: str = "missile:"
    memory: MemoryTokenState = field(default_factory=MemoryTokenState)
    opened: list[TokenFactory] = field(default_factory=list)

    def state(self) -> TokenState:
        return self.memory if self.kind == "memory" else open_state(self.kind, self.location, self.prefix)

    def new(self, state_timeout: float = RELAXED_TIMEOUT_S) -> TokenFactory:
        """A factory over a newly opened state, closed when the test's loop ends."""
        factory = TokenFactory(self.state(), state_timeout=state_timeout)
        self.opened.append(factory)
        return factory

    async def aclose(self) -> None:
        while self.opened:
            await self.opened.pop().aclose()

    def once(self, use: Callable[[TokenFactory], Awaitable[_T]]) -> _T:
        """``use`` a fresh factory on an event loop of its own (a thread's or a
        synchronous test's), closing it afterwards."""

        async def main() -> _T:
            factory = TokenFactory(self.state(), state_timeout=RELAXED_TIMEOUT_S)
            try:
                return await use(factory)
            finally:
                await factory.aclose()

        return asyncio.run(main())

    async def seed_largest(self, factory: TokenFactory, mt: MasterToken, value: int) -> None:
        """Put the largest accepted ID close to 2^53 (2^37 calls away through the API)."""
        assert mt.identity is not None
        if self.kind == "memory":
            self.memory._largest[(mt.identity, mt.serial_number)] = value
        elif self.kind == "sqlite":
            with sqlite3.connect(self.location) as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO non_replayable (identity, serial, largest) VALUES (?, ?, ?)",
                    (mt.identity, mt.serial_number, value),
                )
            conn.close()
        else:
            state = factory.state
            assert isinstance(state, RedisTokenState)
            await state.client.hset(identity_key(self.prefix, mt.identity), f"nr:{mt.serial_number}", str(value))


def identity_key(prefix: str, identity: str) -> str:
    """The Redis hash of one identity (documented key layout of missile.stores.redis_state)."""
    return f"{prefix}{{{identity.encode().hex()}}}"


def sync(test: Callable[_P, Coroutine[Any, Any, None]]) -> Callable[_P, None]:
    """Run an ``async def`` test on a fresh event loop, then close the states its
    backends opened on that loop (pytest-asyncio is not used)."""

    @functools.wraps(test)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        async def main() -> None:
            try:
                await test(*args, **kwargs)
            finally:
                for value in kwargs.values():
                    if isinstance(value, Backend):
                        await value.aclose()

        asyncio.run(main())

    return run


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "memory":
        return Backend(kind, MEMORY)
    if kind == "sqlite":
        return Backend(kind, str(tmp_path / "state.db"))
    prefix: str = request.getfixturevalue("redis_prefix")
    url: str = request.getfixturevalue("redis_cluster_url" if kind == "redis-cluster" else "redis_url")
    return Backend(kind, url, prefix)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every kind of token state."""
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The kinds several processes can share."""
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)


async def issue(factory: TokenFactory, ctx: MslContext, identity: str, ke: bytes = KE1, kh: bytes = KH1) -> MasterToken:
    """A new master token, recorded as the engine records it before sending it."""
    token = factory.create_master_token(ctx, identity, ke, kh)
    await factory.record_issued(None, token)
    return token


async def renew(factory: TokenFactory, ctx: MslContext, token: MasterToken) -> MasterToken:
    """The renewal of ``token``, recorded (raises when another renewal won)."""
    renewed = factory.renew_master_token(ctx, token, KE2, KH2)
    await factory.record_issued(token, renewed)
    return renewed


def bare_token(serial: int = 1, sequence: int = 0, identity: str = "device") -> MasterToken:
    return MasterToken.create(
        MSL,
        renewal_window_ms=NOW,
        expiration_ms=NOW + 1000,
        sequence_number=sequence,
        serial_number=serial,
        identity=identity,
        encryption_key=KE1,
        signature_key=KH1,
    )


# -- the issuer behaviour on every backend ---------------------------------------------------------


@sync
async def test_create_master_token(backend: Backend) -> None:
    factory = backend.new()
    ctx = context()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"x": 1})
    assert token.sequence_number == 0 and token.serial_number == 1
    assert token.renewal_window == (NOW + DAY_MS) // 1000
    assert token.expiration == (NOW + 7 * DAY_MS) // 1000
    assert token.identity == "device-1" and token.issuer_data == {"x": 1}
    assert MasterToken.parse(decode(encode(token)), MSL).decrypted
    # An unknown serial is trusted on the strength of its signature ...
    assert await factory.is_master_token_revoked(ctx, token) is None
    # ... and so is a recorded one.
    await factory.record_issued(None, token)
    assert await factory.is_master_token_revoked(ctx, token) is None
    assert await factory.is_master_token_renewable(ctx, token) is None


@sync
async def test_new_master_token_invalidates_earlier_tokens(backend: Backend) -> None:
    factory = backend.new()
    ctx = context()
    first = await issue(factory, ctx, "device-1")
    second = factory.create_master_token(ctx, "device-1", KE2, KH2)
    assert await factory.is_master_token_revoked(ctx, first) is None  # creation alone records nothing
    await factory.record_issued(None, second)
    assert await factory.is_master_token_revoked(ctx, second) is None
    assert await factory.is_master_token_revoked(ctx, first) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_renewable(ctx, first) is MslError.MASTERTOKEN_IDENTITY_REVOKED


@sync
async def test_renew_and_out_of_sync(backend: Backend) -> None:
    clock = FixedClock(NOW)
    ctx = context(clock)
    factory = backend.new()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"a": 1, "b": 1})
    await factory.record_issued(None, token)
    clock.advance(3 * DAY_MS)
    renewed = factory.renew_master_token(ctx, token, KE2, KH2, {"b": 2})
    await factory.record_issued(token, renewed)
    assert (renewed.serial_number, renewed.sequence_number) == (token.serial_number, 1)
    assert renewed.issuer_data == {"a": 1, "b": 2}
    assert renewed.renewal_window == (NOW + 4 * DAY_MS) // 1000
    assert await factory.is_master_token_revoked(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, renewed) is None
    # The superseded sequence number stays usable but cannot be renewed again.
    assert await factory.is_master_token_revoked(ctx, token) is None
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    with pytest.raises(MslMasterTokenException) as exc:
        await factory.record_issued(token, factory.renew_master_token(ctx, token, KE2, KH2))
    assert exc.value.error is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert exc.value.master_token is token
    assert await factory.is_master_token_renewable(ctx, renewed) is None
    await factory.state.forget_master_token("device-1", token.serial_number)
    assert await factory.is_master_token_renewable(ctx, token) is None


@sync
async def test_renew_wraps_sequence_number(backend: Backend) -> None:
    factory = backend.new()
    ctx = context()
    token = bare_token(serial=12345, sequence=MAX_LONG_VALUE, identity="device-1")
    renewed = await renew(factory, ctx, token)
    assert renewed.sequence_number == 0
    assert await factory.is_master_token_revoked(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert (await renew(factory, ctx, renewed)).sequence_number == 1


@sync
async def test_revocations(backend: Backend) -> None:
    factory = backend.new()
    ctx = context()
    bad = await issue(factory, ctx, "bad")
    good = await issue(factory, ctx, "good")
    other = await issue(factory, ctx, "other")
    await factory.revoke_identity("bad")
    await factory.revoke_master_token(other.serial_number)
    assert await factory.is_master_token_revoked(ctx, bad) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_renewable(ctx, bad) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_revoked(ctx, other) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_revoked(ctx, good) is None

    alice = factory.create_user_id_token(ctx, MslUser("alice"), good)
    bob = factory.create_user_id_token(ctx, MslUser("bob"), good)
    assert await factory.is_user_id_token_revoked(ctx, good, alice) is None
    await factory.revoke_user("alice")
    await factory.revoke_user_id_token(bob.serial_number)
    assert await factory.is_user_id_token_revoked(ctx, good, alice) is MslError.USERIDTOKEN_REVOKED
    assert await factory.is_user_id_token_revoked(ctx, good, bob) is MslError.USERIDTOKEN_REVOKED
    carol = factory.create_user_id_token(ctx, MslUser("carol"), good)
    assert await factory.is_user_id_token_revoked(ctx, good, carol) is None
    renewed = factory.renew_user_id_token(ctx, carol, good)
    assert renewed.serial_number == carol.serial_number and renewed.user == MslUser("carol")
    # Revoking twice is harmless.
    await factory.revoke_user("alice")
    assert await factory.is_user_id_token_revoked(ctx, good, alice) is MslError.USERIDTOKEN_REVOKED


@sync
async def test_revoked_serial_unknown_to_the_state_is_refused(backend: Backend) -> None:
    """A token the state has no record of (issued before the state existed, or state
    lost) is trusted on its signature, until its serial is revoked; a superseded serial
    revoked stays refused; and revoking one identity's serial leaves others' alone."""
    factory = backend.new()
    ctx = context()
    unknown = bare_token(serial=424242, identity="unrecorded")
    assert await factory.is_master_token_revoked(ctx, unknown) is None
    await factory.revoke_master_token(unknown.serial_number)
    assert await factory.is_master_token_revoked(ctx, unknown) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    error, replay = await factory.check_master_token(ctx, unknown, 1)
    assert error is MslError.MASTERTOKEN_IDENTITY_REVOKED and replay is None

    old = await issue(factory, ctx, "device")
    new = await issue(factory, ctx, "device")
    await factory.revoke_master_token(old.serial_number)
    assert await factory.is_master_token_revoked(ctx, old) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_revoked(ctx, new) is None
    error, replay = await factory.check_master_token(ctx, new, 1)
    assert (error, replay) == (None, None)
    await factory.revoke_master_token(new.serial_number)
    error, replay = await factory.check_master_token(ctx, new, 2)
    assert error is MslError.MASTERTOKEN_IDENTITY_REVOKED


@sync
async def test_accept_non_replayable_id_sequence(backend: Backend) -> None:
    factory = backend.new()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    accept = factory.accept_non_replayable_id
    assert await accept(ctx, mt, 0) is MslError.MESSAGE_REPLAYED
    assert await accept(ctx, mt, 1) is None
    assert await accept(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
    assert await accept(ctx, mt, 10) is None
    assert await accept(ctx, mt, 9) is MslError.MESSAGE_REPLAYED
    assert await accept(ctx, mt, 4) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert await accept(ctx, mt, 10 + W + 1) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert await accept(ctx, mt, 11 + W - 1) is None
    # Renewal keeps the serial number and so the replay state; other tokens are separate.
    renewed = await renew(factory, ctx, mt)
    assert await accept(ctx, renewed, 10 + W) is MslError.MESSAGE_REPLAYED
    other = await issue(factory, ctx, "f")
    assert await accept(ctx, other, 1) is None
    # A new master token for the identity starts a fresh replay window.
    newer = await issue(factory, ctx, "e")
    assert await accept(ctx, newer, 1) is None


@sync
async def test_accept_wraps_around(backend: Backend) -> None:
    factory = backend.new()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    await backend.seed_largest(factory, mt, MAX_LONG_VALUE - 2)
    for value in (MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2):
        assert await factory.accept_non_replayable_id(ctx, mt, value) is None, value
    assert await factory.accept_non_replayable_id(ctx, mt, MAX_LONG_VALUE) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert await factory.accept_non_replayable_id(ctx, mt, 0) is MslError.MESSAGE_REPLAYED


@pytest.mark.parametrize(
    ("largest", "candidate", "expected"),
    [
        (MAX_LONG_VALUE, 0, None),
        (MAX_LONG_VALUE, W - 1, None),
        (MAX_LONG_VALUE, W, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (MAX_LONG_VALUE - 10, W - 11, None),
        (MAX_LONG_VALUE - 10, W - 10, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (MAX_LONG_VALUE, MAX_LONG_VALUE, MslError.MESSAGE_REPLAYED),
        (MAX_LONG_VALUE, MAX_LONG_VALUE - 5, MslError.MESSAGE_REPLAYED),
        (MAX_LONG_VALUE, MAX_LONG_VALUE - 6, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (MAX_LONG_VALUE - W, MAX_LONG_VALUE, None),
        (MAX_LONG_VALUE - W - 1, MAX_LONG_VALUE, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
    ],
)
@sync
async def test_window_near_2_to_the_53(
    backend: Backend, largest: int, candidate: int, expected: MslError | None
) -> None:
    """The window rules near 2^53, with the largest ID stored in the backend itself
    (every kind stores the full 53-bit range exactly)."""
    factory = backend.new()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    await backend.seed_largest(factory, mt, largest)
    assert await factory.accept_non_replayable_id(ctx, mt, candidate) is expected
    # A refusal leaves the stored largest ID alone; an acceptance moves it to the candidate.
    now_largest = largest if expected is not None else candidate
    assert await factory.accept_non_replayable_id(ctx, mt, now_largest) is MslError.MESSAGE_REPLAYED


# -- several factories sharing one store ------------------------------------------------------------


@sync
async def test_two_factories_share_replay_windows(backend: Backend) -> None:
    a, b = backend.new(), backend.new()
    ctx = context()
    mt = await issue(a, ctx, "device")
    assert await a.accept_non_replayable_id(ctx, mt, 1) is None
    assert await b.accept_non_replayable_id(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
    assert await b.accept_non_replayable_id(ctx, mt, 2) is None
    assert await a.accept_non_replayable_id(ctx, mt, 2) is MslError.MESSAGE_REPLAYED


@sync
async def test_two_factories_share_revocation_and_sequence(backend: Backend) -> None:
    a, b = backend.new(), backend.new()
    ctx = context()
    mt = await issue(a, ctx, "device")
    assert await b.is_master_token_revoked(ctx, mt) is None
    renewed = await renew(b, ctx, mt)
    assert await a.is_master_token_renewable(ctx, mt) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    with pytest.raises(MslMasterTokenException):
        await renew(a, ctx, mt)
    assert await a.is_master_token_revoked(ctx, renewed) is None
    await a.revoke_master_token(renewed.serial_number)
    assert await b.is_master_token_revoked(ctx, renewed) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    fresh = await issue(b, ctx, "device2")
    newer = await issue(a, ctx, "device2", KE2, KH2)
    assert await b.is_master_token_revoked(ctx, fresh) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await b.is_master_token_revoked(ctx, newer) is None
    uit = a.create_user_id_token(ctx, MslUser("alice"), newer)
    await b.revoke_user("alice")
    assert await a.is_user_id_token_revoked(ctx, newer, uit) is MslError.USERIDTOKEN_REVOKED
    await b.revoke_identity("device2")
    assert await a.is_master_token_revoked(ctx, newer) is MslError.MASTERTOKEN_IDENTITY_REVOKED


def test_sqlite_state_worker_thread_ends_on_close_and_errors_reach_the_caller(tmp_path: Path) -> None:
    """The SQLite state's own worker thread: a database error in it reaches the awaiting
    caller as a transient failure, the state keeps working afterwards, and closing the
    state ends the thread (no thread left behind per state)."""
    before = set(threading.enumerate())

    async def go() -> set[threading.Thread]:
        state = SqliteTokenState(tmp_path / "state.db")
        await state.record_new_master_token("device", 1)
        started = set(threading.enumerate()) - before
        with pytest.raises(MslException) as caught:
            await state._run(_fail_in_worker)  # an SQLite error inside the batch's transaction
        assert_transient(caught.value)
        snapshot, verdict = await state.check_master_token("device", 1, 1)
        assert (snapshot.newest_serial, snapshot.sequence, verdict) == (1, 0, None)
        await state.aclose()
        return started

    started = asyncio.run(go())
    assert [t.name for t in started] == ["missile-sqlite-state"]
    for thread in started:
        thread.join(timeout=10)
        assert not thread.is_alive()


def _fail_in_worker(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT * FROM no_such_table")


@sync
async def test_sqlite_state_survives_restart(tmp_path: Path) -> None:
    ctx = context()
    path = tmp_path / "state.db"
    first = TokenFactory(SqliteTokenState(path))
    mt = await issue(first, ctx, "device")
    renewed = await renew(first, ctx, mt)
    assert await first.accept_non_replayable_id(ctx, renewed, 5) is None
    await first.revoke_identity("evil")
    await first.aclose()
    second = TokenFactory(SqliteTokenState(path))
    try:
        assert await second.is_master_token_renewable(ctx, mt) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
        assert await second.accept_non_replayable_id(ctx, renewed, 5) is MslError.MESSAGE_REPLAYED
        evil = await issue(second, ctx, "evil")
        assert await second.is_master_token_revoked(ctx, evil) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    finally:
        await second.aclose()


# -- atomicity: threads, coroutines and processes racing on one store -------------------------------


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Start ``count`` threads together, wait for all (bounded), re-raise a failure."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            target(index)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    if failures:
        raise failures[0]


def test_threads_lose_no_update(backend: Backend) -> None:
    ctx = context()
    mt = backend.once(lambda f: issue(f, ctx, "device"))
    accepted: list[int] = []
    lock = threading.Lock()

    async def accept(factory: TokenFactory, thread: int) -> None:
        for i in range(50):
            candidate = i * THREADS + thread + 1  # 1 … 400, interleaved across threads
            if await factory.accept_non_replayable_id(ctx, mt, candidate) is None:
                with lock:
                    accepted.append(candidate)

    run_threads(THREADS, lambda t: backend.once(lambda f: accept(f, t)))
    last = 50 * THREADS
    assert len(accepted) == len(set(accepted))
    assert last in accepted
    # The stored largest is the maximum: a lost update would have moved it back.
    assert backend.once(lambda f: f.accept_non_replayable_id(ctx, mt, last)) is MslError.MESSAGE_REPLAYED
    assert backend.once(lambda f: f.accept_non_replayable_id(ctx, mt, last - 5)) is MslError.MESSAGE_REPLAYED
    assert (
        backend.once(lambda f: f.accept_non_replayable_id(ctx, mt, last - 6)) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    )
    assert backend.once(lambda f: f.accept_non_replayable_id(ctx, mt, last + 1)) is None


def test_threads_accept_each_id_once_and_renew_once(backend: Backend) -> None:
    ctx = context()
    mt = backend.once(lambda f: issue(f, ctx, "device"))
    accepted: list[int] = []
    renewals: list[str] = []
    lock = threading.Lock()

    async def race(factory: TokenFactory) -> None:
        for n in range(1, 51):
            if await factory.accept_non_replayable_id(ctx, mt, n) is None:
                with lock:
                    accepted.append(n)
        try:
            await renew(factory, ctx, mt)
            outcome = "renewed"
        except MslException as exc:
            outcome = exc.error.name
        with lock:
            renewals.append(outcome)

    run_threads(THREADS, lambda _: backend.once(race))
    assert len(accepted) == len(set(accepted))
    assert 50 in accepted
    assert renewals.count("renewed") == 1
    assert renewals.count(MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC.name) == THREADS - 1


@sync
async def test_coroutines_accept_an_id_once_and_renew_once(backend: Backend) -> None:
    """Many requests in flight on one event loop (one connection pool)."""
    factory = backend.new()
    ctx = context()
    mt = await issue(factory, ctx, "device")
    outcomes = await asyncio.gather(*(factory.accept_non_replayable_id(ctx, mt, 7) for _ in range(40)))
    assert outcomes.count(None) == 1
    assert set(outcomes) == {None, MslError.MESSAGE_REPLAYED}
    renewed = [factory.renew_master_token(ctx, mt, KE2, KH2) for _ in range(20)]
    recorded = await asyncio.gather(*(factory.record_issued(mt, r) for r in renewed), return_exceptions=True)
    assert recorded.count(None) == 1
    errors = {r.error for r in recorded if isinstance(r, MslException)}
    assert errors == {MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC}
    assert len([r for r in recorded if r is not None]) == 19


def _race_in_child(
    kind: str,
    location: str,
    prefix: str,
    mt: MasterToken,
    barrier: Any,
    queue: multiprocessing.Queue[tuple[list[int], str]],
) -> None:
    """A server process: opens the store, waits for the others, then accepts IDs 1 … 100
    of ``mt`` and renews ``mt`` once."""

    async def main() -> tuple[list[int], str]:
        ctx = context()
        factory = TokenFactory(open_state(kind, location, prefix), state_timeout=RELAXED_TIMEOUT_S)
        try:
            await factory.is_master_token_revoked(ctx, mt)  # connected and ready
            await asyncio.to_thread(barrier.wait, 60)
            accepted = [n for n in range(1, 101) if await factory.accept_non_replayable_id(ctx, mt, n) is None]
            try:
                await renew(factory, ctx, mt)
                outcome = "renewed"
            except MslException as exc:
                outcome = exc.error.name
            return accepted, outcome
        finally:
            await factory.aclose()

    queue.put(asyncio.run(main()))


def test_processes_accept_each_id_once_and_renew_once(shared_backend: Backend) -> None:
    """Pre-forked server processes sharing one store: every ID (in particular ID 1, which
    every process tries first) is accepted by exactly one of them, and exactly one of
    the racing renewals of one master token is recorded."""
    backend = shared_backend
    ctx = context()
    mt = backend.once(lambda f: issue(f, ctx, "device"))
    mp = multiprocessing.get_context("fork")
    barrier = mp.Barrier(PROCESSES)
    queue: multiprocessing.Queue[tuple[list[int], str]] = mp.Queue()
    procs = [
        mp.Process(target=_race_in_child, args=(backend.kind, backend.location, backend.prefix, mt, barrier, queue))
        for _ in range(PROCESSES)
    ]
    results = results_of(procs, queue)
    accepted = [n for ids, _ in results for n in ids]
    assert accepted.count(1) == 1
    assert len(accepted) == len(set(accepted))
    assert 100 in accepted
    outcomes = [outcome for _, outcome in results]
    assert outcomes.count("renewed") == 1
    assert outcomes.count(MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC.name) == PROCESSES - 1
    assert backend.once(lambda f: f.accept_non_replayable_id(ctx, mt, 100)) is MslError.MESSAGE_REPLAYED
    assert (
        backend.once(lambda f: f.is_master_token_renewable(ctx, mt)) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    )


# -- Redis specifics -------------------------------------------------------------------------------------


@sync
async def test_redis_key_layout(redis_backend: Backend) -> None:
    """One hash per identity, hash-tagged by the identity's hex; a new master token
    drops its predecessor's fields."""
    factory = redis_backend.new()
    state = factory.state
    assert isinstance(state, RedisTokenState)
    ctx = context()
    identity = "dévice {1}"  # braces and non-ASCII cannot escape the hash tag
    key = identity_key(redis_backend.prefix, identity)
    first = await issue(factory, ctx, identity)
    renewed = await renew(factory, ctx, first)
    assert await factory.accept_non_replayable_id(ctx, renewed, 3) is None
    fields = {k.decode(): v.decode() for k, v in (await state.client.hgetall(key)).items()}
    serial = first.serial_number
    assert fields == {"newest": str(serial), f"seq:{serial}": "1", f"nr:{serial}": "3"}
    second = await issue(factory, ctx, identity)
    fields = {k.decode(): v.decode() for k, v in (await state.client.hgetall(key)).items()}
    assert fields == {"newest": str(second.serial_number), f"seq:{second.serial_number}": "0"}
    # The serial index follows the newest token: the superseded serial's entry is gone.
    serial_index = f"{redis_backend.prefix}{{mt:{second.serial_number}}}"
    assert await state.client.smembers(serial_index) == {identity.encode()}
    assert not await state.client.exists(f"{redis_backend.prefix}{{mt:{serial}}}")
    # Revocations of master tokens are flags in the identity's own hash.
    await factory.revoke_master_token(second.serial_number)
    await factory.revoke_identity(identity)
    fields = {k.decode(): v.decode() for k, v in (await state.client.hgetall(key)).items()}
    assert fields == {
        "newest": str(second.serial_number),
        f"seq:{second.serial_number}": "0",
        f"revoked:{second.serial_number}": "1",
        "revoked": "1",
    }
    revoked_serials = f"{redis_backend.prefix}{{revoked}}:serials"
    assert await state.client.smembers(revoked_serials) == {str(second.serial_number).encode()}
    # A newer token drops the flag of the serial it supersedes, not the identity's.
    third = await issue(factory, ctx, identity)
    fields = {k.decode(): v.decode() for k, v in (await state.client.hgetall(key)).items()}
    assert fields == {"newest": str(third.serial_number), f"seq:{third.serial_number}": "0", "revoked": "1"}
    assert state.describe() == f"{redis_backend.kind.replace('-', ' ')} {redis_backend.location}"


@sync
async def test_redis_identities_spread_over_cluster_slots(redis_cluster_url: str, redis_prefix: str) -> None:
    """Each identity's hash lives in the slot of its own hash tag, so a cluster spreads
    identities over its masters while every script touches one slot."""
    from redis.crc import key_slot

    state = RedisTokenState(redis_cluster_url, cluster=True, prefix=redis_prefix)
    factory = TokenFactory(state, state_timeout=RELAXED_TIMEOUT_S)
    try:
        ctx = context()
        identities = [f"device-{i}" for i in range(12)]
        slots = {key_slot(identity_key(redis_prefix, i).encode()) for i in identities}
        assert len(slots) > 1
        for identity in identities:
            mt = await issue(factory, ctx, identity)
            assert await factory.accept_non_replayable_id(ctx, mt, 1) is None
            assert await factory.accept_non_replayable_id(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
        # The client knows the cluster's slot map once it has talked to it.
        nodes = {state.client.get_node_from_key(identity_key(redis_prefix, i)).name for i in identities}
        assert len(nodes) > 1
    finally:
        await factory.aclose()


@sync
async def test_redis_client_instance_is_not_closed(redis_url: str, redis_prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        factory = TokenFactory(RedisTokenState(client=client, prefix=redis_prefix))
        ctx = context()
        mt = await issue(factory, ctx, "device")
        renewed = await renew(factory, ctx, mt)
        assert await factory.is_master_token_revoked(ctx, renewed) is None
        assert await factory.accept_non_replayable_id(ctx, renewed, 3) is None
        assert await factory.accept_non_replayable_id(ctx, renewed, 3) is MslError.MESSAGE_REPLAYED
        await factory.aclose()
        assert await client.ping()  # still usable: the caller owns it
        keys = [key async for key in client.scan_iter(f"{redis_prefix}*")]
        assert keys and all(key.startswith(redis_prefix) for key in keys)
    finally:
        await client.aclose()


async def connected_clients(client: redis.asyncio.Redis) -> int:
    return int((await client.info("clients"))["connected_clients"])


@sync
async def test_redis_aclose_disconnects(tmp_path: Path, redis_prefix: str) -> None:
    proc, url = start_redis(tmp_path)
    probe = redis.asyncio.Redis.from_url(url)
    try:
        baseline = await connected_clients(probe)
        state = RedisTokenState(url, prefix=redis_prefix)
        await asyncio.gather(*(state.master_token_state("device", 1) for _ in range(4)))
        assert await connected_clients(probe) > baseline
        await state.aclose()
        deadline = time.monotonic() + 5
        while await connected_clients(probe) > baseline and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert await connected_clients(probe) == baseline
    finally:
        await probe.aclose()
        stop_redis(proc)


def test_redis_state_arguments() -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisTokenState("redis://127.0.0.1:1/0", prefix="a{b}:")
    with pytest.raises(ValueError, match="exactly one"):
        RedisTokenState()
    state = RedisTokenState("redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in state.describe() and "127.0.0.1:1" in state.describe()
    asyncio.run(state.aclose())


# -- failures: unreachable, hung and locked stores ----------------------------------------------------


def assert_transient(exc: MslException) -> None:
    assert exc.error is MslError.INTERNAL_EXCEPTION
    assert exc.response_code is ResponseCode.TRANSIENT_FAILURE


async def all_calls_fail(factory: TokenFactory, *, port: int | None = None) -> list[MslException]:
    """Every state-backed call of ``factory`` raises INTERNAL_EXCEPTION; returns them."""
    ctx = context()
    mt = bare_token()
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: factory.is_master_token_revoked(ctx, mt),
        lambda: factory.is_master_token_renewable(ctx, mt),
        lambda: factory.accept_non_replayable_id(ctx, mt, 1),
        lambda: factory.is_user_id_token_revoked(ctx, mt, uit),
        lambda: factory.record_issued(None, mt),
        lambda: factory.record_issued(mt, factory.renew_master_token(ctx, mt, KE2, KH2)),
        lambda: factory.revoke_identity("x"),
        lambda: factory.revoke_master_token(1),
        lambda: factory.revoke_user("x"),
        lambda: factory.revoke_user_id_token(1),
        lambda: factory.state.forget_master_token("x", 1),
    ]
    failures = []
    for call in calls:
        with pytest.raises(MslException) as exc:
            await call()
        assert_transient(exc.value)
        if port is not None:
            assert str(port) not in str(exc.value)
        failures.append(exc.value)
    return failures


@sync
async def test_unreachable_redis_never_accepts() -> None:
    port = free_port()  # nothing listens there
    factory = TokenFactory(RedisTokenState(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5))
    try:
        for failure in await all_calls_fail(factory, port=port):
            assert isinstance(failure.__cause__, redis.RedisError)
    finally:
        await factory.aclose()


@sync
async def test_unreachable_redis_cluster_never_accepts() -> None:
    port = free_port()
    factory = TokenFactory(RedisTokenState(f"redis://127.0.0.1:{port}", cluster=True, socket_timeout=0.5))
    try:
        await all_calls_fail(factory, port=port)
    finally:
        await factory.aclose()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port whose connections are accepted (the kernel completes the TCP
    handshake) but never answered: a store that hangs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


async def fails_within_bound_while_loop_runs(call: Awaitable[object], bound: float) -> MslException:
    """``call`` raises INTERNAL_EXCEPTION within ``bound`` (plus a margin for a loaded
    machine), and the event loop runs other coroutines meanwhile."""
    pending = asyncio.ensure_future(call)
    ticks_while_pending = 0
    start = time.monotonic()
    while not pending.done():
        await asyncio.sleep(0.01)
        ticks_while_pending += 1
    elapsed = time.monotonic() - start
    failure = pending.exception()
    assert isinstance(failure, MslException), failure
    assert_transient(failure)
    assert ticks_while_pending >= 3, "the event loop was blocked while the store hung"
    assert elapsed < bound + MARGIN_S
    return failure


@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "redis-cluster"])
@sync
async def test_silent_redis_fails_within_the_bound(cluster: bool) -> None:
    with silent_server() as port:
        factory = TokenFactory(RedisTokenState(f"redis://127.0.0.1:{port}", cluster=cluster), state_timeout=0.3)
        try:
            ctx = context()
            mt = bare_token()
            failure = await fails_within_bound_while_loop_runs(factory.accept_non_replayable_id(ctx, mt, 1), 0.3)
            assert "0.3 s" in str(failure)
            await fails_within_bound_while_loop_runs(factory.is_master_token_revoked(ctx, mt), 0.3)
            await fails_within_bound_while_loop_runs(factory.record_issued(None, mt), 0.3)
        finally:
            await factory.aclose()


@sync
async def test_stopped_redis_fails_within_the_bound_then_recovers(tmp_path: Path) -> None:
    """A SIGSTOPped redis-server (a hung store) fails each call within the bound; once it
    runs again, answers come back right: no reply of an abandoned call is handed to a
    later one."""
    proc, url = start_redis(tmp_path)
    factory = TokenFactory(RedisTokenState(url), state_timeout=0.3)
    try:
        ctx = context()
        mt = await issue(factory, ctx, "device")
        other = await issue(factory, ctx, "other")
        assert await factory.accept_non_replayable_id(ctx, mt, 1) is None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            await fails_within_bound_while_loop_runs(factory.accept_non_replayable_id(ctx, mt, 2), 0.3)
            await fails_within_bound_while_loop_runs(factory.is_master_token_revoked(ctx, other), 0.3)
            await fails_within_bound_while_loop_runs(factory.revoke_identity("other"), 0.3)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        await factory.revoke_user("alice")
        alice = factory.create_user_id_token(ctx, MslUser("alice"), mt)
        bob = factory.create_user_id_token(ctx, MslUser("bob"), mt)
        for n in range(10, 13):
            assert await factory.is_user_id_token_revoked(ctx, mt, alice) is MslError.USERIDTOKEN_REVOKED
            assert await factory.is_master_token_revoked(ctx, mt) is None
            assert await factory.is_user_id_token_revoked(ctx, mt, bob) is None
            assert await factory.accept_non_replayable_id(ctx, mt, n) is None
            assert await factory.accept_non_replayable_id(ctx, mt, n) is MslError.MESSAGE_REPLAYED
    finally:
        await factory.aclose()
        stop_redis(proc)


#: A second process that takes SQLite's write lock and keeps it until its stdin closes.
HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


@sync
async def test_sqlite_lock_held_by_another_process_fails_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    factory = TokenFactory(SqliteTokenState(path), state_timeout=0.3)  # busy timeout 5 s: the bound comes first
    try:
        ctx = context()
        mt = await issue(factory, ctx, "device")
        with subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as holder:
            assert holder.stdin is not None and holder.stdout is not None
            try:
                assert await asyncio.to_thread(holder.stdout.readline) == b"locked\n"
                await fails_within_bound_while_loop_runs(factory.accept_non_replayable_id(ctx, mt, 1), 0.3)
                other = factory.create_master_token(ctx, "other", KE1, KH1)
                await fails_within_bound_while_loop_runs(factory.record_issued(None, other), 0.3)
            finally:
                holder.stdin.close()
                holder.wait(timeout=30)
        # The lock is free again: the store answers.
        assert await factory.accept_non_replayable_id(ctx, mt, 5) is None
        assert await factory.accept_non_replayable_id(ctx, mt, 5) is MslError.MESSAGE_REPLAYED
    finally:
        await factory.aclose()


@sync
async def test_sqlite_busy_timeout_is_a_transient_failure(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    factory = TokenFactory(SqliteTokenState(path, busy_timeout_ms=50), state_timeout=RELAXED_TIMEOUT_S)
    try:
        ctx = context()
        mt = await issue(factory, ctx, "device")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(MslException) as exc:
                await factory.accept_non_replayable_id(ctx, mt, 1)
            assert_transient(exc.value)
            assert isinstance(exc.value.__cause__, sqlite3.OperationalError)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await factory.accept_non_replayable_id(ctx, mt, 1) is None
    finally:
        await factory.aclose()


def test_sqlite_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    old_umask = os.umask(0)  # the most permissive umask: the file must still be 0600
    try:
        state = SqliteTokenState(path)
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for sidecar in (tmp_path / "state.db-wal", tmp_path / "state.db-shm"):
            if sidecar.exists():
                assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0, sidecar
    finally:
        state.close()
    lax = tmp_path / "lax.db"
    lax.touch()
    lax.chmod(0o644)
    SqliteTokenState(lax).close()
    assert stat.S_IMODE(lax.stat().st_mode) == 0o600


# -- opening a state by name ------------------------------------------------------------------------------


def test_open_token_state(tmp_path: Path) -> None:
    assert isinstance(open_token_state(":memory:"), MemoryTokenState)
    assert isinstance(open_token_state(MEMORY), MemoryTokenState)
    for location in (tmp_path / "a.db", str(tmp_path / "b.db")):
        sqlite_state = open_token_state(location)
        assert isinstance(sqlite_state, SqliteTokenState)
        assert sqlite_state.path == str(location)
        assert sqlite_state.shared and sqlite_state.durable
        sqlite_state.close()
    opened: list[TokenState] = []
    for url in ("redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///tmp/missile-none.sock"):
        state = open_token_state(url)
        assert isinstance(state, RedisTokenState) and not state.cluster
        assert isinstance(state.client, redis.asyncio.Redis)
        opened.append(state)
    cluster = open_token_state("redis://127.0.0.1:1", cluster=True)
    assert isinstance(cluster, RedisTokenState) and cluster.cluster
    assert isinstance(cluster.client, redis.asyncio.RedisCluster)
    assert cluster.describe().startswith("redis cluster")
    opened.append(cluster)

    async def close_all() -> None:
        for state in opened:
            await state.aclose()

    asyncio.run(close_all())


@pytest.mark.parametrize(
    ("location", "cluster"),
    [
        ("http://127.0.0.1:6379", False),
        ("memcached://127.0.0.1:11211", False),
        ("redis-cluster://127.0.0.1:7000", False),
        (":memory:", True),
        ("state.db", True),
    ],
)
def test_open_token_state_refuses(location: str, cluster: bool) -> None:
    with pytest.raises(ValueError):
        open_token_state(location, cluster=cluster)


def test_sqlite_state_durability_setting(tmp_path: Path) -> None:
    """The issuer's state commits without an fsync (NORMAL: survives restarts, like
    Redis's default persistence); FULL is there for power-loss durability; a client
    store keeps FULL."""
    from missile.stores.sqlite import SqliteStore

    def synchronous(db: object) -> int:
        value: int = db._connection().execute("PRAGMA synchronous").fetchone()[0]  # type: ignore[attr-defined]
        return value

    normal = SqliteTokenState(tmp_path / "a.db")
    full = SqliteTokenState(tmp_path / "b.db", synchronous="FULL")
    store = SqliteStore(tmp_path / "client.db")
    try:
        assert synchronous(normal._db) == 1 and synchronous(full._db) == 2
        assert synchronous(store._db) == 2
        with pytest.raises(ValueError):
            SqliteTokenState(tmp_path / "c.db", synchronous="OFF")
    finally:
        normal.close()
        full.close()
        store.close()
