"""SqliteTokenFactory and RedisTokenFactory: InMemoryTokenFactory behaviour, shared state,
atomicity and failure handling (control.md §2.2, §7; tokens.md §1.3)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.errors import MslError, MslException, MslMasterTokenException, ResponseCode
from missile.stores.redis_state import RedisTokenFactory
from missile.stores.sqlite_state import SqliteTokenFactory
from missile.tokens import MasterToken, MslUser
from missile.tokens.factory import (
    DAY_MS,
    NON_REPLAYABLE_WINDOW,
    BaseTokenFactory,
    InMemoryTokenFactory,
    TokenFactory,
)
from redis_helpers import free_port

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
KE1, KH1 = bytes(range(16)), bytes(range(32))
KE2, KH2 = bytes(range(16, 32)), bytes(range(32, 64))
NOW = 1_700_000_000_123
W = NON_REPLAYABLE_WINDOW


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


Factory = Callable[[], BaseTokenFactory]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Builds factories of one kind; sqlite/redis factories of one test share state (like servers)."""
    if request.param == "memory":
        shared = InMemoryTokenFactory()
        return lambda: shared
    if request.param == "sqlite":
        return lambda: SqliteTokenFactory(tmp_path / "state.db")
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return lambda: RedisTokenFactory(url, prefix=prefix)


@pytest.fixture
def factory(make_factory: Factory) -> BaseTokenFactory:
    return make_factory()


def seed_largest(factory: BaseTokenFactory, mt: MasterToken, value: int) -> None:
    """Put the largest accepted ID close to 2^53 (unreachable through the API in a test)."""
    assert mt.identity is not None
    if isinstance(factory, InMemoryTokenFactory):
        factory._largest_nonreplayable[(mt.identity, mt.serial_number)] = value
    elif isinstance(factory, SqliteTokenFactory):
        with sqlite3.connect(factory.path) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO non_replayable (identity, serial, largest) VALUES (?, ?, ?)",
                (mt.identity, mt.serial_number, value),
            )
    else:
        assert isinstance(factory, RedisTokenFactory)
        factory.client.hset(f"{factory.prefix}nonreplayable", f"{mt.serial_number}:{mt.identity}", str(value))


# -- the InMemoryTokenFactory behaviour on every backend ------------------------------------------


def test_create_master_token(factory: BaseTokenFactory) -> None:
    ctx = context()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"x": 1})
    assert token.sequence_number == 0 and token.serial_number == 1
    assert token.renewal_window == (NOW + DAY_MS) // 1000
    assert token.expiration == (NOW + 7 * DAY_MS) // 1000
    assert token.identity == "device-1" and token.issuer_data == {"x": 1}
    assert MasterToken.parse(decode(encode(token)), MSL).decrypted
    assert factory.is_master_token_revoked(ctx, token) is None
    assert factory.is_master_token_renewable(ctx, token) is None


def test_new_master_token_invalidates_earlier_tokens(factory: BaseTokenFactory) -> None:
    ctx = context()
    first = factory.create_master_token(ctx, "device-1", KE1, KH1)
    second = factory.create_master_token(ctx, "device-1", KE2, KH2)
    assert factory.is_master_token_revoked(ctx, second) is None
    assert factory.is_master_token_revoked(ctx, first) is MslError.MASTERTOKEN_IDENTITY_REVOKED


def test_renew(factory: BaseTokenFactory) -> None:
    clock = FixedClock(NOW)
    ctx = context(clock)
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"a": 1, "b": 1})
    clock.advance(3 * DAY_MS)
    renewed = factory.renew_master_token(ctx, token, KE2, KH2, {"b": 2})
    assert (renewed.serial_number, renewed.sequence_number) == (token.serial_number, 1)
    assert renewed.issuer_data == {"a": 1, "b": 2}
    assert renewed.renewal_window == (NOW + 4 * DAY_MS) // 1000
    assert factory.is_master_token_revoked(ctx, renewed) is None
    assert factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    with pytest.raises(MslMasterTokenException) as exc:
        factory.renew_master_token(ctx, token, KE2, KH2)
    assert exc.value.error is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert factory.is_master_token_revoked(ctx, renewed) is None
    factory.forget_master_token(token.serial_number)
    assert factory.is_master_token_revoked(ctx, token) is None


def test_renew_wraps_sequence_number(factory: BaseTokenFactory) -> None:
    ctx = context()
    token = MasterToken.create(
        MSL,
        renewal_window_ms=NOW,
        expiration_ms=NOW + 1000,
        sequence_number=MAX_LONG_VALUE,
        serial_number=12345,
        identity="device-1",
        encryption_key=KE1,
        signature_key=KH1,
    )
    renewed = factory.renew_master_token(ctx, token, KE2, KH2)
    assert renewed.sequence_number == 0
    assert factory.is_master_token_revoked(ctx, renewed) is None
    assert factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC


def test_revocations(factory: BaseTokenFactory) -> None:
    ctx = context()
    bad = factory.create_master_token(ctx, "bad", KE1, KH1)
    good = factory.create_master_token(ctx, "good", KE1, KH1)
    other = factory.create_master_token(ctx, "other", KE1, KH1)
    factory.revoke_identity("bad")
    factory.revoke_master_token(other.serial_number)
    assert factory.is_master_token_revoked(ctx, bad) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert factory.is_master_token_renewable(ctx, bad) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert factory.is_master_token_revoked(ctx, other) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert factory.is_master_token_revoked(ctx, good) is None
    with pytest.raises(MslMasterTokenException) as exc:
        factory.renew_master_token(ctx, bad, KE2, KH2)
    assert exc.value.error is MslError.MASTERTOKEN_IDENTITY_REVOKED

    alice = factory.create_user_id_token(ctx, MslUser("alice"), good)
    bob = factory.create_user_id_token(ctx, MslUser("bob"), good)
    assert factory.is_user_id_token_revoked(ctx, good, alice) is None
    factory.revoke_user("alice")
    factory.revoke_user_id_token(bob.serial_number)
    assert factory.is_user_id_token_revoked(ctx, good, alice) is MslError.USERIDTOKEN_REVOKED
    assert factory.is_user_id_token_revoked(ctx, good, bob) is MslError.USERIDTOKEN_REVOKED
    carol = factory.create_user_id_token(ctx, MslUser("carol"), good)
    assert factory.is_user_id_token_revoked(ctx, good, carol) is None
    renewed = factory.renew_user_id_token(ctx, carol, good)
    assert renewed.serial_number == carol.serial_number and renewed.user == MslUser("carol")


def test_accept_non_replayable_id_sequence(factory: BaseTokenFactory) -> None:
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    accept = factory.accept_non_replayable_id
    assert accept(ctx, mt, 0) is MslError.MESSAGE_REPLAYED
    assert accept(ctx, mt, 1) is None
    assert accept(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
    assert accept(ctx, mt, 10) is None
    assert accept(ctx, mt, 9) is MslError.MESSAGE_REPLAYED
    assert accept(ctx, mt, 4) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert accept(ctx, mt, 10 + W + 1) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert accept(ctx, mt, 11 + W - 1) is None
    # Renewal keeps the serial number and so the replay state; other tokens are separate.
    renewed = factory.renew_master_token(ctx, mt, KE2, KH2)
    assert accept(ctx, renewed, 10 + W) is MslError.MESSAGE_REPLAYED
    other = factory.create_master_token(ctx, "f", KE1, KH1)
    assert accept(ctx, other, 1) is None


def test_accept_wraps_around(factory: BaseTokenFactory) -> None:
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    seed_largest(factory, mt, MAX_LONG_VALUE - 2)
    for value in (MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2):
        assert factory.accept_non_replayable_id(ctx, mt, value) is None, value
    assert factory.accept_non_replayable_id(ctx, mt, MAX_LONG_VALUE) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert factory.accept_non_replayable_id(ctx, mt, 0) is MslError.MESSAGE_REPLAYED


# -- two servers sharing state --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def make_shared(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "sqlite":
        return lambda: SqliteTokenFactory(tmp_path / "state.db")
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return lambda: RedisTokenFactory(url, prefix=prefix)


def test_two_servers_share_replay_windows(make_shared: Factory) -> None:
    a, b = make_shared(), make_shared()
    ctx = context()
    mt = a.create_master_token(ctx, "device", KE1, KH1)
    assert a.accept_non_replayable_id(ctx, mt, 1) is None
    assert b.accept_non_replayable_id(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
    assert b.accept_non_replayable_id(ctx, mt, 2) is None
    assert a.accept_non_replayable_id(ctx, mt, 2) is MslError.MESSAGE_REPLAYED


def test_two_servers_share_revocation_and_sequence(make_shared: Factory) -> None:
    a, b = make_shared(), make_shared()
    ctx = context()
    mt = a.create_master_token(ctx, "device", KE1, KH1)
    assert b.is_master_token_revoked(ctx, mt) is None
    renewed = b.renew_master_token(ctx, mt, KE2, KH2)
    assert a.is_master_token_renewable(ctx, mt) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert a.is_master_token_revoked(ctx, renewed) is None
    a.revoke_master_token(renewed.serial_number)
    assert b.is_master_token_revoked(ctx, renewed) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    fresh = b.create_master_token(ctx, "device2", KE1, KH1)
    newer = a.create_master_token(ctx, "device2", KE2, KH2)
    assert b.is_master_token_revoked(ctx, fresh) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert b.is_master_token_revoked(ctx, newer) is None
    uit = a.create_user_id_token(ctx, MslUser("alice"), newer)
    b.revoke_user("alice")
    assert a.is_user_id_token_revoked(ctx, newer, uit) is MslError.USERIDTOKEN_REVOKED


def test_state_survives_restart(tmp_path: Path) -> None:
    ctx = context()
    first = SqliteTokenFactory(tmp_path / "state.db")
    mt = first.create_master_token(ctx, "device", KE1, KH1)
    renewed = first.renew_master_token(ctx, mt, KE2, KH2)
    assert first.accept_non_replayable_id(ctx, renewed, 5) is None
    first.revoke_identity("evil")
    first.close()
    second = SqliteTokenFactory(tmp_path / "state.db")
    assert second.is_master_token_renewable(ctx, mt) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert second.accept_non_replayable_id(ctx, renewed, 5) is MslError.MESSAGE_REPLAYED
    evil = second.create_master_token(ctx, "evil", KE1, KH1)
    assert second.is_master_token_revoked(ctx, evil) is MslError.MASTERTOKEN_IDENTITY_REVOKED


def test_concurrent_distinct_ids_lose_no_update(make_shared: Factory) -> None:
    servers = [make_shared() for _ in range(2)]
    ctx = context()
    mt = servers[0].create_master_token(ctx, "device", KE1, KH1)
    accepted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        server = servers[t % 2]
        barrier.wait()
        for i in range(100):
            candidate = i * 8 + t + 1  # 1 … 800, interleaved across threads
            if server.accept_non_replayable_id(ctx, mt, candidate) is None:
                with lock:
                    accepted.append(candidate)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert len(accepted) == len(set(accepted))
    assert 800 in accepted
    # The stored largest is the maximum: a lost update would have moved it back.
    assert servers[1].accept_non_replayable_id(ctx, mt, 800) is MslError.MESSAGE_REPLAYED
    assert servers[1].accept_non_replayable_id(ctx, mt, 795) is MslError.MESSAGE_REPLAYED
    assert servers[1].accept_non_replayable_id(ctx, mt, 794) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert servers[0].accept_non_replayable_id(ctx, mt, 801) is None


def test_concurrent_same_ids_accepted_once(make_shared: Factory) -> None:
    servers = [make_shared() for _ in range(2)]
    ctx = context()
    mt = servers[0].create_master_token(ctx, "device", KE1, KH1)
    accepted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        server = servers[t % 2]
        barrier.wait()
        for n in range(1, 101):
            if server.accept_non_replayable_id(ctx, mt, n) is None:
                with lock:
                    accepted.append(n)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert len(accepted) == len(set(accepted))
    assert 100 in accepted


def test_concurrent_renewals_one_wins(make_shared: Factory) -> None:
    servers = [make_shared() for _ in range(2)]
    ctx = context()
    mt = servers[0].create_master_token(ctx, "device", KE1, KH1)
    outcomes: list[int | MslError] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        barrier.wait()
        try:
            result: int | MslError = servers[t % 2].renew_master_token(ctx, mt, KE2, KH2).sequence_number
        except MslException as exc:
            result = exc.error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert outcomes.count(1) == 1
    assert outcomes.count(MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC) == 7


def _accept_range(path: str, mt_json: bytes, queue: multiprocessing.Queue[list[int]]) -> None:
    factory = SqliteTokenFactory(path)
    ctx = context()
    mt = MasterToken.parse(decode(mt_json), MSL)
    queue.put([n for n in range(1, 301) if factory.accept_non_replayable_id(ctx, mt, n) is None])


def test_sqlite_replay_window_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    factory = SqliteTokenFactory(path)
    ctx = context()
    mt = factory.create_master_token(ctx, "device", KE1, KH1)
    mp = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[int]] = mp.Queue()
    procs = [mp.Process(target=_accept_range, args=(path, encode(mt), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    combined = results[0] + results[1]
    assert len(combined) == len(set(combined))
    assert 300 in combined
    assert factory.accept_non_replayable_id(ctx, mt, 300) is MslError.MESSAGE_REPLAYED


# -- failures -----------------------------------------------------------------------------------------


def test_unreachable_redis_never_accepts() -> None:
    port = free_port()  # nothing listens there
    factory = RedisTokenFactory(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    ctx = context()
    mt = MasterToken.create(
        MSL,
        renewal_window_ms=NOW,
        expiration_ms=NOW + 1000,
        sequence_number=0,
        serial_number=1,
        identity="device",
        encryption_key=KE1,
        signature_key=KH1,
    )
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    calls: list[Callable[[], object]] = [
        lambda: factory.is_master_token_revoked(ctx, mt),
        lambda: factory.is_master_token_renewable(ctx, mt),
        lambda: factory.accept_non_replayable_id(ctx, mt, 1),
        lambda: factory.create_master_token(ctx, "device", KE1, KH1),
        lambda: factory.renew_master_token(ctx, mt, KE2, KH2),
        lambda: factory.is_user_id_token_revoked(ctx, mt, uit),
        lambda: factory.revoke_identity("x"),
        lambda: factory.revoke_master_token(1),
        lambda: factory.revoke_user("x"),
        lambda: factory.revoke_user_id_token(1),
        lambda: factory.forget_master_token(1),
    ]
    for call in calls:
        with pytest.raises(MslException) as exc:
            call()
        assert exc.value.error is MslError.INTERNAL_EXCEPTION
        assert exc.value.response_code is ResponseCode.TRANSIENT_FAILURE
        assert isinstance(exc.value.__cause__, redis.RedisError)
        assert str(port) not in str(exc.value)
    factory.close()


def test_redis_client_instance_and_decoded_responses(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    factory = RedisTokenFactory(client, prefix=redis_prefix)
    ctx = context()
    mt = factory.create_master_token(ctx, "device", KE1, KH1)
    renewed = factory.renew_master_token(ctx, mt, KE2, KH2)
    assert factory.is_master_token_revoked(ctx, renewed) is None
    assert factory.accept_non_replayable_id(ctx, renewed, 3) is None
    assert factory.accept_non_replayable_id(ctx, renewed, 3) is MslError.MESSAGE_REPLAYED
    # Issuing a new token for the identity discards the old serial's replay window.
    factory.create_master_token(ctx, "device", KE1, KH1)
    assert client.hget(f"{redis_prefix}nonreplayable", f"{mt.serial_number}:device") is None
    assert all(str(key).startswith(redis_prefix) for key in client.keys(f"{redis_prefix}*"))
    client.close()


def test_sqlite_busy_database_is_a_transient_failure(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    factory = SqliteTokenFactory(path, busy_timeout_ms=50)
    ctx = context()
    mt = factory.create_master_token(ctx, "device", KE1, KH1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(MslException) as exc:
            factory.accept_non_replayable_id(ctx, mt, 1)
        assert exc.value.error is MslError.INTERNAL_EXCEPTION
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert factory.accept_non_replayable_id(ctx, mt, 1) is None


def test_factories_satisfy_the_protocol(tmp_path: Path) -> None:
    factory: TokenFactory = SqliteTokenFactory(tmp_path / "state.db")
    ctx = MslContext(msl_crypto=MSL, token_factory=factory)
    assert ctx.token_factory is factory
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o600
    redis_factory: TokenFactory = RedisTokenFactory("redis://127.0.0.1:1/0")
    assert redis_factory is not None
