"""SqliteStore: InMemoryStore semantics, persistence, file mode, processes (control.md §2.1, §7, §11)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from missile.clock import FixedClock
from missile.crypto.context import CryptoContext
from missile.crypto.null import ClientMslCryptoContext, NullCryptoContext
from missile.crypto.symmetric import SessionCryptoContext, SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException
from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.stores.sqlite import SqliteStore
from missile.tokens import MasterToken, MslUser, ServiceToken, UserIdToken

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
SERVICE = SymmetricCryptoContext("svc", bytes(range(100, 116)), bytes(range(100, 132)))
KE, KH = bytes(range(16)), bytes(range(32))
NOW = 1_700_000_000_000
CLIENT = ClientMslCryptoContext()


class CountingRandom:
    """Deterministic randomness: equal instances produce equal IVs."""

    def __init__(self) -> None:
        self.n = 0

    def random_bytes(self, n: int) -> bytes:
        self.n += 1
        return self.n.to_bytes(n, "big")


def issued(serial: int, sequence: int = 0, expiration_ms: int = NOW + 3_600_000) -> MasterToken:
    """A master token as its issuer holds it (verified and decrypted)."""
    return MasterToken.create(
        MSL,
        renewal_window_ms=NOW,
        expiration_ms=expiration_ms,
        sequence_number=sequence,
        serial_number=serial,
        identity="client-1",
        encryption_key=KE,
        signature_key=KH,
        issuer_data={"tier": "gold", "n": 3},
    )


def held(serial: int, sequence: int = 0, expiration_ms: int = NOW + 3_600_000) -> MasterToken:
    """The same token as a trusted-network client holds it (opaque)."""
    return MasterToken.parse(decode(encode(issued(serial, sequence, expiration_ms))), CLIENT)


def session(mt: MasterToken, identity: str | None = "client-1") -> SessionCryptoContext:
    return SessionCryptoContext(identity, mt.sequence_number, KE, KH, random=CountingRandom())


def uit_for(mt: MasterToken, serial: int, user: str = "alice") -> UserIdToken:
    token = UserIdToken.create(
        MSL,
        renewal_window_ms=NOW,
        expiration_ms=NOW + 1000,
        master_token=mt,
        serial_number=serial,
        user=MslUser(user),
        issuer_data={"k": "v"},
    )
    return UserIdToken.parse(decode(encode(token)), CLIENT, mt)


def st(name: str, data: bytes = b"data", mt: MasterToken | None = None, uit: UserIdToken | None = None) -> ServiceToken:
    return ServiceToken.create(name, data, SERVICE, master_token=mt, user_id_token=uit)


StoreFactory = Callable[[], MslStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds stores of one kind; SQLite stores built by one test share one file."""
    if request.param == "memory":
        shared = InMemoryStore()
        return lambda: shared
    return lambda: SqliteStore(tmp_path / "store.db")


@pytest.fixture
def store(make_store: StoreFactory) -> MslStore:
    return make_store()


def keys(tokens: list[ServiceToken]) -> list[tuple[str, int | None, int | None]]:
    return [t.key for t in tokens]


# -- shared semantics (InMemoryStore is the reference) -------------------------------------------


def test_empty(store: MslStore) -> None:
    assert store.get_master_token() is None
    assert store.get_crypto_context(held(1)) is None
    assert store.get_user_id_token("alice") is None
    assert store.get_service_tokens(None, None) == []


def test_newest_master_token(store: MslStore) -> None:
    a, b, c = held(1, 5), held(2, 7), held(3, 6)
    for token in (a, b, c):
        store.set_crypto_context(token, session(token))
    assert store.get_master_token() == b
    # Same sequence number: the later expiration is newer.
    d = held(4, 7, NOW + 7_200_000)
    store.set_crypto_context(d, session(d))
    assert store.get_master_token() == d
    # Wraparound (tokens.md §1.6): 0 is newer than 2^53.
    e, f = held(5, MAX_LONG_VALUE), held(6, 0, NOW + 3_600_000)
    store.clear_crypto_contexts()
    store.set_crypto_context(e, session(e))
    store.set_crypto_context(f, session(f))
    assert store.get_master_token() == f


def test_set_none_removes(store: MslStore) -> None:
    mt = held(1)
    store.set_crypto_context(mt, session(mt))
    store.set_crypto_context(mt, None)
    assert store.get_master_token() is None
    assert store.get_crypto_context(mt) is None


def test_lookup_by_token_equality(store: MslStore) -> None:
    mt = held(1, 3)
    store.set_crypto_context(mt, session(mt))
    assert store.get_crypto_context(held(1, 3)) is not None
    assert store.get_crypto_context(held(1, 4)) is None
    assert store.get_crypto_context(held(1, 3, NOW + 1)) is None


def test_non_replayable_ids(store: MslStore) -> None:
    a, b = held(1), held(2)
    assert [store.get_non_replayable_id(a) for _ in range(3)] == [1, 2, 3]
    assert store.get_non_replayable_id(b) == 1
    # Per serial number: a renewed token continues the counter.
    assert store.get_non_replayable_id(held(1, 1)) == 4


def test_removal_cascades(store: MslStore) -> None:
    mt, other = held(1), held(2)
    store.set_crypto_context(mt, session(mt))
    store.set_crypto_context(other, session(other))
    alice, bob = uit_for(mt, 10), uit_for(other, 20, "bob")
    store.add_user_id_token("alice", alice)
    store.add_user_id_token("bob", bob)
    store.add_service_tokens([st("u"), st("m", mt=mt), st("a", mt=mt, uit=alice), st("b", mt=other, uit=bob)])
    assert store.get_non_replayable_id(mt) == 1
    store.remove_crypto_context(mt)
    assert store.get_user_id_token("alice") is None
    assert store.get_user_id_token("bob") == bob
    assert keys(store.get_service_tokens(other, bob)) == [("u", None, None), ("b", 2, 20)]
    assert store.get_non_replayable_id(mt) == 1


def test_removal_keeps_state_while_serial_still_stored(store: MslStore) -> None:
    mt, renewed = held(1, 0), held(1, 1)
    store.set_crypto_context(mt, session(mt))
    store.set_crypto_context(renewed, session(renewed))
    alice = uit_for(mt, 10)
    store.add_user_id_token("alice", alice)
    store.add_service_tokens([st("m", mt=mt)])
    store.get_non_replayable_id(mt)
    store.remove_crypto_context(mt)
    assert store.get_master_token() == renewed
    assert store.get_user_id_token("alice") == alice
    assert keys(store.get_service_tokens(renewed, None)) == [("m", 1, None)]
    assert store.get_non_replayable_id(renewed) == 2


def test_clear_crypto_contexts(store: MslStore) -> None:
    mt = held(1)
    store.set_crypto_context(mt, session(mt))
    store.add_user_id_token("alice", uit_for(mt, 10))
    store.add_service_tokens([st("u"), st("m", mt=mt)])
    store.get_non_replayable_id(mt)
    store.clear_crypto_contexts()
    assert store.get_master_token() is None
    assert store.get_user_id_token("alice") is None
    assert store.get_service_tokens(None, None) == []
    assert store.get_non_replayable_id(mt) == 1


def test_user_id_tokens(store: MslStore) -> None:
    mt = held(1)
    with pytest.raises(MslException) as exc:
        store.add_user_id_token("alice", uit_for(mt, 10))
    assert exc.value.error is MslError.USERIDTOKEN_MASTERTOKEN_NOT_FOUND
    store.set_crypto_context(mt, session(mt))
    first, second = uit_for(mt, 10), uit_for(mt, 11)
    store.add_user_id_token("alice", first)
    store.add_user_id_token("alice", second)
    assert store.get_user_id_token("alice") == second
    store.add_user_id_token("bob", uit_for(mt, 12, "bob"))
    store.add_service_tokens([st("s", mt=mt, uit=second), st("t", mt=mt, uit=uit_for(mt, 12))])
    store.remove_user_id_token(second)
    assert store.get_user_id_token("alice") is None
    assert store.get_user_id_token("bob") is not None
    assert keys(store.get_service_tokens(mt, uit_for(mt, 12))) == [("t", 1, 12)]
    store.clear_user_id_tokens()
    assert store.get_user_id_token("bob") is None
    assert store.get_service_tokens(mt, uit_for(mt, 12)) == []
    assert store.get_master_token() == mt


def test_add_service_tokens_all_or_nothing(store: MslStore) -> None:
    mt = held(1)
    store.set_crypto_context(mt, session(mt))
    uit = uit_for(mt, 10)
    with pytest.raises(MslException) as exc:
        store.add_service_tokens([st("ok"), st("bad", mt=held(9))])
    assert exc.value.error is MslError.SERVICETOKEN_MASTERTOKEN_NOT_FOUND
    with pytest.raises(MslException) as exc:
        store.add_service_tokens([st("ok"), st("bad", mt=mt, uit=uit)])
    assert exc.value.error is MslError.SERVICETOKEN_USERIDTOKEN_NOT_FOUND
    assert store.get_service_tokens(None, None) == []


def test_service_token_selection_and_replacement(store: MslStore) -> None:
    mt, other = held(1), held(2)
    for token in (mt, other):
        store.set_crypto_context(token, session(token))
    uit = uit_for(mt, 10)
    store.add_user_id_token("alice", uit)
    store.add_service_tokens(
        [st("u"), st("m", mt=mt), st("o", mt=other), st("a", mt=mt, uit=uit), st("x", b"old", mt=mt)]
    )
    assert keys(store.get_service_tokens(None, None)) == [("u", None, None)]
    assert keys(store.get_service_tokens(mt, None)) == [("u", None, None), ("m", 1, None), ("x", 1, None)]
    assert keys(store.get_service_tokens(mt, uit)) == [
        ("u", None, None),
        ("m", 1, None),
        ("a", 1, 10),
        ("x", 1, None),
    ]
    # Newest data wins; the token keeps its place.
    store.add_service_tokens([st("x", b"new", mt=mt)])
    tokens = store.get_service_tokens(mt, None)
    assert keys(tokens) == [("u", None, None), ("m", 1, None), ("x", 1, None)]
    assert tokens[2].data == b"new"
    with pytest.raises(MslException) as exc:
        store.get_service_tokens(None, uit)
    assert exc.value.error is MslError.USERIDTOKEN_MASTERTOKEN_NULL
    with pytest.raises(MslException) as exc:
        store.get_service_tokens(other, uit)
    assert exc.value.error is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH


def test_remove_service_tokens(store: MslStore) -> None:
    mt = held(1)
    store.set_crypto_context(mt, session(mt))
    uit = uit_for(mt, 10)
    store.add_user_id_token("alice", uit)
    store.add_service_tokens(
        [st("n"), st("n", mt=mt), st("n", mt=mt, uit=uit), st("p"), st("p", mt=mt), st("q", mt=mt, uit=uit)]
    )
    store.remove_service_tokens("n", None, None)
    assert keys(store.get_service_tokens(mt, uit)) == [
        ("n", 1, None),
        ("n", 1, 10),
        ("p", None, None),
        ("p", 1, None),
        ("q", 1, 10),
    ]
    store.remove_service_tokens("q", mt, uit)
    store.remove_service_tokens("n", mt, None)  # both mt-bound "n" tokens
    assert keys(store.get_service_tokens(mt, uit)) == [("p", None, None), ("p", 1, None)]
    store.remove_service_tokens(None, mt, None)
    assert keys(store.get_service_tokens(mt, uit)) == [("p", None, None)]
    store.remove_service_tokens(None, None, None)
    assert store.get_service_tokens(mt, uit) == []
    with pytest.raises(MslException) as exc:
        store.remove_service_tokens(None, held(2), uit)
    assert exc.value.error is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH


def test_concurrent_non_replayable_ids_from_threads(store: MslStore) -> None:
    mt = held(1)
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            value = store.get_non_replayable_id(mt)
            with lock:
                results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(1, 401))


# -- persistence ------------------------------------------------------------------------------------


def test_restart_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "client.db"
    clock = FixedClock(NOW)
    first = SqliteStore(path, clock=clock)
    mt = held(7, 3)
    ctx = session(mt)
    first.set_crypto_context(mt, ctx)
    uit = uit_for(mt, 70)
    first.add_user_id_token("alice", uit)
    compressed = ServiceToken.create("big", b"x" * 500, SERVICE, master_token=mt, compression=CompressionAlgorithm.GZIP)
    opaque = ServiceToken.parse(decode(encode(st("opaque", mt=mt, uit=uit))), {}, mt, uit)
    deletion = ServiceToken.create("gone", b"", SERVICE, encrypted=False)
    first.add_service_tokens([st("u"), compressed, opaque, deletion])
    assert [first.get_non_replayable_id(mt) for _ in range(3)] == [1, 2, 3]
    first.close()

    second = SqliteStore(path, clock=clock, random=CountingRandom())
    loaded = second.get_master_token()
    assert loaded == mt
    assert loaded is not None
    assert (loaded.tokendata, loaded.signature) == (mt.tokendata, mt.signature)
    assert encode(loaded) == encode(mt)
    assert not loaded.verified and not loaded.decrypted
    assert loaded.clock is clock
    assert (loaded.renewal_window, loaded.expiration) == (mt.renewal_window, mt.expiration)

    restored = second.get_crypto_context(mt)
    assert isinstance(restored, SessionCryptoContext)
    assert restored.key_id == ctx.key_id == "client-1_3"
    # Same keys, same key ID: identical output under identical randomness.
    reference = session(mt)
    assert restored.encrypt(b"payload") == reference.encrypt(b"payload")
    assert ctx.decrypt(restored.encrypt(b"hello")) == b"hello"
    assert restored.decrypt(ctx.encrypt(b"hello")) == b"hello"
    assert restored.sign(b"m") == ctx.sign(b"m")
    assert restored.verify(b"m", ctx.sign(b"m"))

    loaded_uit = second.get_user_id_token("alice")
    assert loaded_uit == uit and loaded_uit is not None
    assert encode(loaded_uit) == encode(uit)
    assert loaded_uit.is_bound_to(loaded) and not loaded_uit.verified and loaded_uit.user is None

    tokens = {t.name: t for t in second.get_service_tokens(loaded, loaded_uit)}
    assert set(tokens) == {"u", "big", "opaque", "gone"}
    assert tokens["big"].data == b"x" * 500 and tokens["big"].verified
    assert tokens["big"].compression_algo is CompressionAlgorithm.GZIP
    assert tokens["opaque"].data is None and not tokens["opaque"].verified
    assert tokens["gone"].deleted and tokens["gone"].data == b""
    for name, original in (("u", None), ("big", compressed), ("opaque", opaque), ("gone", deletion)):
        if original is not None:
            assert encode(tokens[name]) == encode(original)
            assert tokens[name].encrypted == original.encrypted
    assert second.get_non_replayable_id(mt) == 4


def test_restart_keeps_decrypted_tokens(tmp_path: Path) -> None:
    # A peer (or a client sharing the issuer's keys) holds verified, decrypted tokens.
    path = tmp_path / "peer.db"
    mt = issued(5, 2)
    uit = UserIdToken.create(
        MSL, renewal_window_ms=NOW, expiration_ms=NOW, master_token=mt, serial_number=9, user=MslUser("bob")
    )
    store = SqliteStore(path)
    store.set_crypto_context(mt, SymmetricCryptoContext("kid", KE, KH, bytes(16)))
    store.add_user_id_token("bob", uit)
    loaded = SqliteStore(path).get_master_token()
    assert loaded is not None and loaded.verified and loaded.decrypted
    assert (loaded.identity, loaded.encryption_key, loaded.signature_key) == ("client-1", KE, KH)
    assert loaded.issuer_data == {"tier": "gold", "n": 3}
    assert loaded.signature_algorithm == "HmacSHA256"
    context = SqliteStore(path).get_crypto_context(mt)
    assert type(context) is SymmetricCryptoContext
    assert (context.key_id, context.wrap_key) == ("kid", bytes(16))
    loaded_uit = SqliteStore(path, user_factory=lambda s: MslUser(s.upper())).get_user_id_token("bob")
    assert loaded_uit is not None and loaded_uit.verified and loaded_uit.user == MslUser("BOB")


def test_session_context_without_identity(tmp_path: Path) -> None:
    mt = held(1, 42)
    store = SqliteStore(tmp_path / "s.db")
    store.set_crypto_context(mt, session(mt, identity=None))
    restored = SqliteStore(tmp_path / "s.db").get_crypto_context(mt)
    assert isinstance(restored, SessionCryptoContext) and restored.key_id == "42"
    store.set_crypto_context(mt, session(mt, identity="a_b_7"))
    restored = SqliteStore(tmp_path / "s.db").get_crypto_context(mt)
    assert isinstance(restored, SessionCryptoContext) and restored.key_id == "a_b_7_42"


class OtherContext(SymmetricCryptoContext):
    pass


@pytest.mark.parametrize("context", [NullCryptoContext(), OtherContext("k", KE, KH)])
def test_only_symmetric_contexts_persist(tmp_path: Path, context: CryptoContext) -> None:
    store = SqliteStore(tmp_path / "s.db")
    with pytest.raises(TypeError, match="can only persist"):
        store.set_crypto_context(held(1), context)
    assert store.get_master_token() is None


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_file_is_owner_only(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "secret.db"
    old = os.umask(umask)
    try:
        store = SqliteStore(path)
        mt = held(1)
        store.set_crypto_context(mt, session(mt))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0
    assert SqliteStore(path).get_master_token() == mt


def test_existing_file_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SqliteStore(path).get_non_replayable_id(held(1))
    assert SqliteStore(path).get_non_replayable_id(held(1)) == 2


# -- two processes ------------------------------------------------------------------------------------


def _draw_ids(path: str, count: int, queue: multiprocessing.Queue[list[int]]) -> None:
    store = SqliteStore(path)
    mt = held(1)
    queue.put([store.get_non_replayable_id(mt) for _ in range(count)])


def test_non_replayable_ids_atomic_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SqliteStore(path)  # create the schema first
    mp = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[int]] = mp.Queue()
    procs = [mp.Process(target=_draw_ids, args=(path, 500, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(results[0] + results[1]) == list(range(1, 1001))
    assert SqliteStore(path).get_non_replayable_id(held(1)) == 1001


def _writer(path: str, serial: int) -> None:
    store = SqliteStore(path)
    mt = held(serial)
    store.set_crypto_context(mt, session(mt))
    store.add_user_id_token(f"user-{serial}", uit_for(mt, serial + 1000))
    store.add_service_tokens([st(f"s{i}", mt=mt) for i in range(20)])


def test_two_processes_share_state(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    parent = SqliteStore(path)
    mp = multiprocessing.get_context("fork")
    procs = [mp.Process(target=_writer, args=(path, serial)) for serial in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # The parent's open store sees what the children wrote.
    for serial in (1, 2):
        mt = held(serial)
        assert parent.get_crypto_context(mt) is not None
        assert parent.get_user_id_token(f"user-{serial}") == uit_for(mt, serial + 1000)
        assert len(parent.get_service_tokens(mt, None)) == 20


def test_existing_lax_file_is_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "lax.db"
    path.touch()
    os.chmod(path, 0o644)
    SqliteStore(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
