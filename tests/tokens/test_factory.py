"""InMemoryTokenFactory and the non-replayable ID rule (control.md §2.2, §7; tokens.md §1.3, §2.2)."""

from __future__ import annotations

import threading

import pytest

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.errors import MslError, MslException, MslMasterTokenException
from missile.tokens import MasterToken, MslUser, UserIdToken
from missile.tokens.factory import (
    DAY_MS,
    NON_REPLAYABLE_WINDOW,
    InMemoryTokenFactory,
    check_non_replayable_id,
)

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
OTHER = SymmetricCryptoContext("other", bytes(range(1, 17)), bytes(range(2, 34)))
KE1, KH1 = bytes(range(16)), bytes(range(32))
KE2, KH2 = bytes(range(16, 32)), bytes(range(32, 64))
NOW = 1_700_000_000_123
W = NON_REPLAYABLE_WINDOW


class ScriptedRandom:
    """Returns queued byte strings (then zeros): predictable serial numbers."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def random_bytes(self, n: int) -> bytes:
        if self.chunks:
            chunk = self.chunks.pop(0)
            assert len(chunk) == n
            return chunk
        return bytes(n)


class CountingRandom:
    def __init__(self) -> None:
        self.n = 0

    def random_bytes(self, n: int) -> bytes:
        self.n += 1
        return self.n.to_bytes(n, "big")


def context(random: object | None = None, clock: FixedClock | None = None) -> MslContext:
    return MslContext(msl_crypto=MSL, clock=clock or FixedClock(NOW), random=random or CountingRandom())  # type: ignore[arg-type]


def test_check_non_replayable_id_constants() -> None:
    assert W == 65536


# -- master token creation --------------------------------------------------------------------


def test_create_master_token() -> None:
    ctx = context(ScriptedRandom(bytes.fromhex("ff00112233445566")))
    factory = InMemoryTokenFactory()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"x": 1})
    assert token.sequence_number == 0
    assert token.serial_number == 0xFF00112233445566 & (MAX_LONG_VALUE - 1)
    assert token.renewal_window == (NOW + DAY_MS) // 1000
    assert token.expiration == (NOW + 7 * DAY_MS) // 1000
    assert token.identity == "device-1"
    assert (token.encryption_key, token.signature_key) == (KE1, KH1)
    assert token.issuer_data == {"x": 1}
    assert token.verified and token.decrypted
    assert token.clock is ctx.clock
    # Issued under the context's MSL keys.
    assert MasterToken.parse(decode(encode(token)), MSL).decrypted
    assert factory.is_master_token_revoked(ctx, token) is None
    assert factory.is_master_token_renewable(ctx, token) is None


def test_create_master_token_lifetimes_configurable() -> None:
    factory = InMemoryTokenFactory(master_token_renewal_ms=10_000, master_token_expiration_ms=20_000)
    token = factory.create_master_token(context(), "e", KE1, KH1)
    assert token.renewal_window == (NOW + 10_000) // 1000
    assert token.expiration == (NOW + 20_000) // 1000
    assert token.issuer_data is None


def test_serial_numbers_come_from_ctx_random() -> None:
    factory = InMemoryTokenFactory()
    ctx = context(ScriptedRandom(bytes(7) + b"\x05", b"\xff" * 8))
    assert factory.create_master_token(ctx, "a", KE1, KH1).serial_number == 5
    assert factory.create_master_token(ctx, "b", KE1, KH1).serial_number == MAX_LONG_VALUE - 1


def test_new_master_token_invalidates_earlier_tokens_of_identity() -> None:
    # control.md §2.2: createMasterToken "invalidates earlier tokens of that identity";
    # tokens.md §1.3: a new master token invalidates the entity's previous master tokens.
    factory = InMemoryTokenFactory()
    ctx = context()
    first = factory.create_master_token(ctx, "device-1", KE1, KH1)
    second = factory.create_master_token(ctx, "device-1", KE2, KH2)
    assert first.serial_number != second.serial_number
    assert factory.is_master_token_revoked(ctx, second) is None
    assert factory.is_master_token_revoked(ctx, first) is not None


# -- renewal ------------------------------------------------------------------------------------


def test_renew_master_token() -> None:
    clock = FixedClock(NOW)
    ctx = context(clock=clock)
    factory = InMemoryTokenFactory()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"a": 1, "b": 1})
    clock.advance(3 * DAY_MS)
    renewed = factory.renew_master_token(ctx, token, KE2, KH2, {"b": 2, "c": 3})
    assert renewed.serial_number == token.serial_number
    assert renewed.sequence_number == 1
    assert renewed.identity == "device-1"
    assert (renewed.encryption_key, renewed.signature_key) == (KE2, KH2)
    assert renewed.issuer_data == {"a": 1, "b": 2, "c": 3}
    assert renewed.renewal_window == (NOW + 4 * DAY_MS) // 1000
    assert renewed.expiration == (NOW + 10 * DAY_MS) // 1000
    assert renewed.is_newer_than(token)
    assert factory.is_master_token_revoked(ctx, renewed) is None


def test_renew_without_issuer_data() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    renewed = factory.renew_master_token(ctx, factory.create_master_token(ctx, "e", KE1, KH1), KE2, KH2)
    assert renewed.issuer_data is None
    again = factory.renew_master_token(ctx, renewed, KE1, KH1, {"k": "v"})
    assert again.issuer_data == {"k": "v"} and again.sequence_number == 2


def test_renew_parsed_token() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"a": 1})
    parsed = MasterToken.parse(decode(encode(token)), MSL)
    renewed = factory.renew_master_token(ctx, parsed, KE2, KH2)
    assert renewed.sequence_number == 1 and renewed.issuer_data == {"a": 1}


def test_renew_wraps_sequence_number() -> None:
    factory = InMemoryTokenFactory()
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
    assert renewed.serial_number == 12345
    assert renewed.is_newer_than(token)
    assert factory.is_master_token_revoked(ctx, renewed) is None
    assert factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC


def test_renewing_undecrypted_token_is_untrusted() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    foreign = MasterToken.parse(decode(encode(factory.create_master_token(ctx, "e", KE1, KH1))), OTHER)
    assert not foreign.decrypted
    with pytest.raises(MslMasterTokenException) as exc:
        factory.renew_master_token(ctx, foreign, KE2, KH2)
    assert exc.value.error is MslError.MASTERTOKEN_UNTRUSTED
    assert exc.value.master_token is foreign


def test_old_sequence_number_refused_after_renewal() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    token = factory.create_master_token(ctx, "e", KE1, KH1)
    renewed = factory.renew_master_token(ctx, token, KE2, KH2)
    assert factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    with pytest.raises(MslMasterTokenException) as exc:
        factory.renew_master_token(ctx, token, KE2, KH2)
    assert exc.value.error is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert exc.value.master_token is token
    # The refused renewal did not disturb the newest token.
    assert factory.is_master_token_revoked(ctx, renewed) is None


def test_unknown_token_accepted_and_forget() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    token = factory.create_master_token(ctx, "e", KE1, KH1)
    factory.renew_master_token(ctx, token, KE2, KH2)
    # The superseded sequence number is still usable but can no longer be renewed.
    assert factory.is_master_token_revoked(ctx, token) is None
    assert factory.is_master_token_renewable(ctx, token) is not None
    factory.forget_master_token(token.serial_number)
    assert factory.is_master_token_renewable(ctx, token) is None
    # A fresh factory (e.g. after a restart) accepts a token on its signature alone.
    assert InMemoryTokenFactory().is_master_token_revoked(ctx, token) is None


# -- revocation -----------------------------------------------------------------------------------


def test_revoke_identity() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    token = factory.create_master_token(ctx, "bad", KE1, KH1)
    other = factory.create_master_token(ctx, "good", KE1, KH1)
    factory.revoke_identity("bad")
    assert factory.is_master_token_revoked(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert factory.is_master_token_revoked(ctx, other) is None
    with pytest.raises(MslMasterTokenException) as exc:
        factory.renew_master_token(ctx, token, KE2, KH2)
    assert exc.value.error is MslError.MASTERTOKEN_IDENTITY_REVOKED


def test_revoke_serial() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    token = factory.create_master_token(ctx, "e", KE1, KH1)
    other = factory.create_master_token(ctx, "e2", KE1, KH1)
    factory.revoke_master_token(token.serial_number)
    assert factory.is_master_token_revoked(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert factory.is_master_token_revoked(ctx, other) is None


def test_revoke_user() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    alice = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    bob = factory.create_user_id_token(ctx, MslUser("bob"), mt)
    assert factory.is_user_id_token_revoked(ctx, mt, alice) is None
    factory.revoke_user("alice")
    assert factory.is_user_id_token_revoked(ctx, mt, alice) is MslError.USERIDTOKEN_REVOKED
    assert factory.is_user_id_token_revoked(ctx, mt, bob) is None
    factory.revoked_user_id_tokens.add(bob.serial_number)
    assert factory.is_user_id_token_revoked(ctx, mt, bob) is MslError.USERIDTOKEN_REVOKED


# -- user ID tokens --------------------------------------------------------------------------------


def test_create_user_id_token() -> None:
    ctx = context(ScriptedRandom(bytes(8), bytes(7) + b"\x09"))
    factory = InMemoryTokenFactory(user_id_token_renewal_ms=1000, user_id_token_expiration_ms=5000)
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    assert uit.serial_number == 9
    assert uit.mt_serial_number == mt.serial_number and uit.is_bound_to(mt)
    assert uit.user == MslUser("alice")
    assert uit.renewal_window == (NOW + 1000) // 1000
    assert uit.expiration == (NOW + 5000) // 1000
    parsed = UserIdToken.parse(decode(encode(uit)), MSL, mt)
    assert parsed.user == MslUser("alice")


def test_renew_user_id_token_rebinds() -> None:
    clock = FixedClock(NOW)
    ctx = context(clock=clock)
    factory = InMemoryTokenFactory()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    new_mt = factory.create_master_token(ctx, "e", KE2, KH2)
    assert new_mt.serial_number != mt.serial_number
    clock.advance(DAY_MS)
    renewed = factory.renew_user_id_token(ctx, uit, new_mt)
    assert renewed.serial_number == uit.serial_number
    assert renewed.user == uit.user
    assert renewed.mt_serial_number == new_mt.serial_number
    assert renewed.is_bound_to(new_mt) and not renewed.is_bound_to(mt)
    assert renewed.renewal_window == (NOW + 2 * DAY_MS) // 1000
    assert UserIdToken.parse(decode(encode(renewed)), MSL, new_mt).user == MslUser("alice")


def test_renew_user_id_token_keeps_issuer_data() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    uit = UserIdToken.create(
        MSL,
        renewal_window_ms=NOW,
        expiration_ms=NOW,
        master_token=mt,
        serial_number=5,
        user=MslUser("alice"),
        issuer_data={"k": 1},
    )
    assert factory.renew_user_id_token(ctx, uit, mt).issuer_data == {"k": 1}


def test_renew_undecrypted_user_id_token_refused() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    opaque = UserIdToken.parse(decode(encode(uit)), OTHER, mt)
    with pytest.raises(MslException) as exc:
        factory.renew_user_id_token(ctx, opaque, mt)
    assert exc.value.error is MslError.USERIDTOKEN_NOT_DECRYPTED


def test_create_user() -> None:
    assert InMemoryTokenFactory().create_user(context(), "alice") == MslUser("alice")


# -- non-replayable IDs (control.md §7) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("largest", "candidate", "expected"),
    [
        (0, 1, None),
        (0, 0, MslError.MESSAGE_REPLAYED),
        (1, 1, MslError.MESSAGE_REPLAYED),
        (100, 100, MslError.MESSAGE_REPLAYED),
        (100, 95, MslError.MESSAGE_REPLAYED),  # L - 5: inside the catch-up window
        (100, 94, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),  # L - 6: outside it
        (100, 1, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (100, 101, None),
        (0, W, None),
        (0, W + 1, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (100, 100 + W, None),
        (100, 101 + W, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (5, 0, MslError.MESSAGE_REPLAYED),
        (6, 0, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        # Wraparound: just past 2^53 the small IDs are accepted, up to W steps ahead.
        (MAX_LONG_VALUE, 0, None),
        (MAX_LONG_VALUE, W - 1, None),
        (MAX_LONG_VALUE, W, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (MAX_LONG_VALUE - 10, 5, None),
        (MAX_LONG_VALUE - 10, W - 11, None),
        (MAX_LONG_VALUE - 10, W - 10, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        (MAX_LONG_VALUE - 1, MAX_LONG_VALUE, None),
        (MAX_LONG_VALUE, MAX_LONG_VALUE, MslError.MESSAGE_REPLAYED),
        (MAX_LONG_VALUE, MAX_LONG_VALUE - 5, MslError.MESSAGE_REPLAYED),
        (MAX_LONG_VALUE, MAX_LONG_VALUE - 6, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
        # Just after a wrap, an ID from before the wrap is a far jump forward.
        (1, MAX_LONG_VALUE, MslError.MESSAGE_REPLAYED_UNRECOVERABLE),
    ],
)
def test_check_non_replayable_id(largest: int, candidate: int, expected: MslError | None) -> None:
    assert check_non_replayable_id(largest, candidate) is expected


def test_accept_non_replayable_id_sequence() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    accept = factory.accept_non_replayable_id
    assert accept(ctx, mt, 1) is None
    assert accept(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
    assert accept(ctx, mt, 2) is None
    assert accept(ctx, mt, 10) is None  # gaps are fine
    assert accept(ctx, mt, 9) is MslError.MESSAGE_REPLAYED  # within catch-up window
    assert accept(ctx, mt, 4) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert accept(ctx, mt, 10 + W + 1) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    # Refusals do not move the largest accepted ID.
    assert accept(ctx, mt, 11) is None
    assert accept(ctx, mt, 11 + W) is None
    assert accept(ctx, mt, 11) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE


def test_first_id_zero_is_replayed() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    assert factory.accept_non_replayable_id(ctx, mt, 0) is MslError.MESSAGE_REPLAYED


def test_check_chain_across_wraparound() -> None:
    largest = MAX_LONG_VALUE - 3
    for value in (MAX_LONG_VALUE - 2, MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2):
        assert check_non_replayable_id(largest, value) is None, value
        largest = value
    assert check_non_replayable_id(largest, MAX_LONG_VALUE) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert check_non_replayable_id(largest, 0) is MslError.MESSAGE_REPLAYED


def test_accept_wraps_around() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    accept = factory.accept_non_replayable_id
    # Reaching 2^53 through the API takes 2^37 calls; start the counter close to it.
    factory._largest_nonreplayable[("e", mt.serial_number)] = MAX_LONG_VALUE - 2
    for value in (MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2):
        assert accept(ctx, mt, value) is None, value
    assert accept(ctx, mt, MAX_LONG_VALUE) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert accept(ctx, mt, 0) is MslError.MESSAGE_REPLAYED
    assert accept(ctx, mt, 3) is None


def test_replay_state_per_master_token() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    a = factory.create_master_token(ctx, "a", KE1, KH1)
    b = factory.create_master_token(ctx, "b", KE1, KH1)
    assert factory.accept_non_replayable_id(ctx, a, 1) is None
    assert factory.accept_non_replayable_id(ctx, b, 1) is None
    assert factory.accept_non_replayable_id(ctx, a, 1) is MslError.MESSAGE_REPLAYED
    # Renewal keeps the serial number and so the replay state.
    renewed = factory.renew_master_token(ctx, a, KE2, KH2)
    assert factory.accept_non_replayable_id(ctx, renewed, 1) is MslError.MESSAGE_REPLAYED
    assert factory.accept_non_replayable_id(ctx, renewed, 2) is None


def test_concurrent_accepts_never_lose_updates() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    tokens = [factory.create_master_token(ctx, f"entity-{i}", KE1, KH1) for i in range(8)]
    assert len({t.serial_number for t in tokens}) == 8
    results: dict[int, list[MslError | None]] = {i: [] for i in range(8)}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for n in range(1, 201):
            results[i].append(factory.accept_non_replayable_id(ctx, tokens[i], n))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    for i in range(8):
        assert results[i] == [None] * 200
        assert factory.accept_non_replayable_id(ctx, tokens[i], 200) is MslError.MESSAGE_REPLAYED
        assert factory.accept_non_replayable_id(ctx, tokens[i], 201) is None


def test_concurrent_accepts_on_one_token_accept_each_id_once() -> None:
    factory = InMemoryTokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    accepted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for n in range(1, 201):
            if factory.accept_non_replayable_id(ctx, mt, n) is None:
                with lock:
                    accepted.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Every ID is accepted at most once, and the final state is the largest ID.
    assert len(accepted) == len(set(accepted))
    assert 200 in accepted
    assert factory.accept_non_replayable_id(ctx, mt, 200) is MslError.MESSAGE_REPLAYED
