"""TokenFactory over the in-memory state, its time bound, and the non-replayable ID rule
(control.md §2.2, §7; tokens.md §1.3, §2.2).

Issuance is pure; every check and record is a coroutine the engine awaits, so the tests
that touch the state run a coroutine with :func:`asyncio.run` from a plain test function
(:func:`sync`). The same behaviour on SQLite, Redis and Redis Cluster is tested in
tests/stores/test_token_factories.py.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec

import pytest

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.errors import MslError, MslException, MslMasterTokenException, ResponseCode
from missile.tokens import MasterToken, MslUser, UserIdToken
from missile.tokens.factory import (
    DAY_MS,
    DEFAULT_STATE_TIMEOUT,
    NON_REPLAYABLE_CATCHUP,
    NON_REPLAYABLE_WINDOW,
    TokenFactory,
    check_non_replayable_id,
)
from missile.tokens.state import MasterTokenState, MemoryTokenState

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
OTHER = SymmetricCryptoContext("other", bytes(range(1, 17)), bytes(range(2, 34)))
KE1, KH1 = bytes(range(16)), bytes(range(32))
KE2, KH2 = bytes(range(16, 32)), bytes(range(32, 64))
NOW = 1_700_000_000_123
W = NON_REPLAYABLE_WINDOW

#: Seconds a test allows beyond a state call's bound before calling it "not bounded": a
#: loaded 2-core CI machine may delay a timer by that much, a missing bound never ends.
MARGIN_S = 2.0

_P = ParamSpec("_P")


def sync(test: Callable[_P, Coroutine[Any, Any, None]]) -> Callable[_P, None]:
    """Run an ``async def`` test on a fresh event loop (pytest-asyncio is not used)."""

    @functools.wraps(test)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


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
        self.lock = threading.Lock()

    def random_bytes(self, n: int) -> bytes:
        with self.lock:
            self.n += 1
            return self.n.to_bytes(n, "big")


def context(random: object | None = None, clock: FixedClock | None = None) -> MslContext:
    return MslContext(msl_crypto=MSL, clock=clock or FixedClock(NOW), random=random or CountingRandom())  # type: ignore[arg-type]


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


def test_constants() -> None:
    assert W == 65536
    assert NON_REPLAYABLE_CATCHUP == 6
    assert DEFAULT_STATE_TIMEOUT == 1.0


def test_memory_state_flags() -> None:
    state = MemoryTokenState()
    assert (state.shared, state.durable, state.may_block) == (False, False, False)
    assert "memory" in state.describe()
    factory = TokenFactory()
    assert isinstance(factory.state, MemoryTokenState)
    assert factory.state_timeout == DEFAULT_STATE_TIMEOUT


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_state_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="state_timeout"):
        TokenFactory(state_timeout=timeout)


# -- master token creation (pure) --------------------------------------------------------------


@sync
async def test_create_master_token() -> None:
    ctx = context(ScriptedRandom(bytes.fromhex("ff00112233445566")))
    factory = TokenFactory()
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
    await factory.record_issued(None, token)
    assert await factory.is_master_token_revoked(ctx, token) is None
    assert await factory.is_master_token_renewable(ctx, token) is None


def test_create_master_token_lifetimes_configurable() -> None:
    factory = TokenFactory(master_token_renewal_ms=10_000, master_token_expiration_ms=20_000)
    token = factory.create_master_token(context(), "e", KE1, KH1)
    assert token.renewal_window == (NOW + 10_000) // 1000
    assert token.expiration == (NOW + 20_000) // 1000
    assert token.issuer_data is None


def test_serial_numbers_come_from_ctx_random() -> None:
    factory = TokenFactory()
    ctx = context(ScriptedRandom(bytes(7) + b"\x05", b"\xff" * 8))
    assert factory.create_master_token(ctx, "a", KE1, KH1).serial_number == 5
    assert factory.create_master_token(ctx, "b", KE1, KH1).serial_number == MAX_LONG_VALUE - 1


@sync
async def test_creation_records_nothing_until_record_issued() -> None:
    """Creating a token is pure: the identity's earlier token stays valid until the engine
    records the new one (after building the response, before sending it)."""
    state = MemoryTokenState()
    factory = TokenFactory(state)
    ctx = context()
    first = await issue(factory, ctx, "device-1")
    second = factory.create_master_token(ctx, "device-1", KE2, KH2)
    assert await factory.is_master_token_revoked(ctx, first) is None
    assert state._newest_serial == {"device-1": first.serial_number}
    await factory.record_issued(None, second)
    assert await factory.is_master_token_revoked(ctx, first) is MslError.MASTERTOKEN_IDENTITY_REVOKED


@sync
async def test_new_master_token_invalidates_earlier_tokens_of_identity() -> None:
    # control.md §2.2: createMasterToken "invalidates earlier tokens of that identity";
    # tokens.md §1.3: a new master token invalidates the entity's previous master tokens.
    factory = TokenFactory()
    ctx = context()
    first = await issue(factory, ctx, "device-1")
    second = await issue(factory, ctx, "device-1", KE2, KH2)
    other = await issue(factory, ctx, "device-2")
    assert first.serial_number != second.serial_number
    assert await factory.is_master_token_revoked(ctx, second) is None
    assert await factory.is_master_token_revoked(ctx, first) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_renewable(ctx, first) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_revoked(ctx, other) is None


@sync
async def test_new_master_token_discards_the_previous_replay_window() -> None:
    state = MemoryTokenState()
    factory = TokenFactory(state)
    ctx = context()
    first = await issue(factory, ctx, "device-1")
    assert await factory.accept_non_replayable_id(ctx, first, 1) is None
    second = await issue(factory, ctx, "device-1")
    assert ("device-1", first.serial_number) not in state._largest
    assert first.serial_number not in state._sequence
    assert state._sequence[second.serial_number] == 0


# -- renewal --------------------------------------------------------------------------------------


@sync
async def test_renew_master_token() -> None:
    clock = FixedClock(NOW)
    ctx = context(clock=clock)
    factory = TokenFactory()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"a": 1, "b": 1})
    await factory.record_issued(None, token)
    clock.advance(3 * DAY_MS)
    renewed = factory.renew_master_token(ctx, token, KE2, KH2, {"b": 2, "c": 3})
    await factory.record_issued(token, renewed)
    assert renewed.serial_number == token.serial_number
    assert renewed.sequence_number == 1
    assert renewed.identity == "device-1"
    assert (renewed.encryption_key, renewed.signature_key) == (KE2, KH2)
    assert renewed.issuer_data == {"a": 1, "b": 2, "c": 3}
    assert renewed.renewal_window == (NOW + 4 * DAY_MS) // 1000
    assert renewed.expiration == (NOW + 10 * DAY_MS) // 1000
    assert renewed.is_newer_than(token)
    assert await factory.is_master_token_revoked(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, renewed) is None


def test_renew_without_issuer_data() -> None:
    factory = TokenFactory()
    ctx = context()
    renewed = factory.renew_master_token(ctx, factory.create_master_token(ctx, "e", KE1, KH1), KE2, KH2)
    assert renewed.issuer_data is None
    again = factory.renew_master_token(ctx, renewed, KE1, KH1, {"k": "v"})
    assert again.issuer_data == {"k": "v"} and again.sequence_number == 2


def test_renew_parsed_token() -> None:
    factory = TokenFactory()
    ctx = context()
    token = factory.create_master_token(ctx, "device-1", KE1, KH1, {"a": 1})
    parsed = MasterToken.parse(decode(encode(token)), MSL)
    renewed = factory.renew_master_token(ctx, parsed, KE2, KH2)
    assert renewed.sequence_number == 1 and renewed.issuer_data == {"a": 1}


@sync
async def test_renew_wraps_sequence_number() -> None:
    factory = TokenFactory()
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
    renewed = await renew(factory, ctx, token)
    assert renewed.sequence_number == 0
    assert renewed.serial_number == 12345
    assert renewed.is_newer_than(token)
    assert await factory.is_master_token_revoked(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert (await renew(factory, ctx, renewed)).sequence_number == 1


def test_renewing_undecrypted_token_is_untrusted() -> None:
    factory = TokenFactory()
    ctx = context()
    foreign = MasterToken.parse(decode(encode(factory.create_master_token(ctx, "e", KE1, KH1))), OTHER)
    assert not foreign.decrypted
    with pytest.raises(MslMasterTokenException) as exc:
        factory.renew_master_token(ctx, foreign, KE2, KH2)
    assert exc.value.error is MslError.MASTERTOKEN_UNTRUSTED
    assert exc.value.master_token is foreign


@sync
async def test_old_sequence_number_refused_after_renewal() -> None:
    factory = TokenFactory()
    ctx = context()
    token = await issue(factory, ctx, "e")
    renewed = await renew(factory, ctx, token)
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    # Renewing is pure; recording a second renewal of the same token is refused.
    again = factory.renew_master_token(ctx, token, KE2, KH2)
    with pytest.raises(MslMasterTokenException) as exc:
        await factory.record_issued(token, again)
    assert exc.value.error is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    assert exc.value.response_code is ResponseCode.ENTITY_REAUTH
    assert exc.value.master_token is token
    # The refused renewal did not disturb the newest token.
    assert await factory.is_master_token_revoked(ctx, renewed) is None
    assert await factory.is_master_token_renewable(ctx, renewed) is None


@sync
async def test_unknown_token_accepted_and_forget() -> None:
    factory = TokenFactory()
    ctx = context()
    token = await issue(factory, ctx, "e")
    await renew(factory, ctx, token)
    # The superseded sequence number is still usable but can no longer be renewed.
    assert await factory.is_master_token_revoked(ctx, token) is None
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    await factory.state.forget_master_token("e", token.serial_number)
    assert await factory.is_master_token_renewable(ctx, token) is None
    # A fresh factory (e.g. after a restart) accepts a token on its signature alone.
    assert await TokenFactory().is_master_token_revoked(ctx, token) is None
    assert await TokenFactory().is_master_token_renewable(ctx, token) is None


# -- revocation -----------------------------------------------------------------------------------


@sync
async def test_revoke_identity() -> None:
    factory = TokenFactory()
    ctx = context()
    token = await issue(factory, ctx, "bad")
    other = await issue(factory, ctx, "good")
    await factory.revoke_identity("bad")
    assert await factory.is_master_token_revoked(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_revoked(ctx, other) is None
    # Even a token the state never saw (unknown serial) is refused by identity.
    unseen = factory.create_master_token(ctx, "bad", KE1, KH1)
    assert await factory.is_master_token_revoked(ctx, unseen) is MslError.MASTERTOKEN_IDENTITY_REVOKED


@sync
async def test_revoke_serial() -> None:
    factory = TokenFactory()
    ctx = context()
    token = await issue(factory, ctx, "e")
    other = await issue(factory, ctx, "e2")
    await factory.revoke_master_token(token.serial_number)
    assert await factory.is_master_token_revoked(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_renewable(ctx, token) is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert await factory.is_master_token_revoked(ctx, other) is None


@sync
async def test_revoke_user_and_user_id_token() -> None:
    factory = TokenFactory()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    alice = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    bob = factory.create_user_id_token(ctx, MslUser("bob"), mt)
    assert await factory.is_user_id_token_revoked(ctx, mt, alice) is None
    await factory.revoke_user("alice")
    assert await factory.is_user_id_token_revoked(ctx, mt, alice) is MslError.USERIDTOKEN_REVOKED
    assert await factory.is_user_id_token_revoked(ctx, mt, bob) is None
    await factory.revoke_user_id_token(bob.serial_number)
    assert await factory.is_user_id_token_revoked(ctx, mt, bob) is MslError.USERIDTOKEN_REVOKED
    # A renewed user ID token keeps its serial number, and so its revocation.
    assert await factory.is_user_id_token_revoked(ctx, mt, factory.renew_user_id_token(ctx, bob, mt)) is not None


# -- user ID tokens --------------------------------------------------------------------------------


def test_create_user_id_token() -> None:
    ctx = context(ScriptedRandom(bytes(8), bytes(7) + b"\x09"))
    factory = TokenFactory(user_id_token_renewal_ms=1000, user_id_token_expiration_ms=5000)
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
    factory = TokenFactory()
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
    factory = TokenFactory()
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
    factory = TokenFactory()
    ctx = context()
    mt = factory.create_master_token(ctx, "e", KE1, KH1)
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    opaque = UserIdToken.parse(decode(encode(uit)), OTHER, mt)
    with pytest.raises(MslException) as exc:
        factory.renew_user_id_token(ctx, opaque, mt)
    assert exc.value.error is MslError.USERIDTOKEN_NOT_DECRYPTED


def test_create_user() -> None:
    assert TokenFactory().create_user(context(), "alice") == MslUser("alice")


# -- the time bound on state calls ----------------------------------------------------------------


class HungState(MemoryTokenState):
    """A state whose every call waits forever (a store that accepted the connection and
    never answers); the in-memory state underneath is never reached."""

    may_block = True

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.cancelled = 0

    async def _hang(self) -> Any:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        return await self._hang()  # type: ignore[no-any-return]

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        return await self._hang()  # type: ignore[no-any-return]

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        await self._hang()

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        return await self._hang()  # type: ignore[no-any-return]

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        return await self._hang()  # type: ignore[no-any-return]

    async def revoke_identity(self, identity: str) -> None:
        await self._hang()

    async def revoke_master_token(self, serial_number: int) -> None:
        await self._hang()

    async def revoke_user(self, user: str) -> None:
        await self._hang()

    async def revoke_user_id_token(self, serial_number: int) -> None:
        await self._hang()


def every_call(factory: TokenFactory, ctx: MslContext, mt: MasterToken) -> list[Callable[[], Awaitable[object]]]:
    """Every state-backed call of the factory (what the engine and operators await)."""
    uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
    renewed = factory.renew_master_token(ctx, mt, KE2, KH2)
    return [
        lambda: factory.is_master_token_revoked(ctx, mt),
        lambda: factory.is_master_token_renewable(ctx, mt),
        lambda: factory.accept_non_replayable_id(ctx, mt, 1),
        lambda: factory.is_user_id_token_revoked(ctx, mt, uit),
        lambda: factory.record_issued(None, mt),
        lambda: factory.record_issued(mt, renewed),
        lambda: factory.revoke_identity("x"),
        lambda: factory.revoke_master_token(1),
        lambda: factory.revoke_user("x"),
        lambda: factory.revoke_user_id_token(1),
    ]


@sync
async def test_every_state_call_is_bounded() -> None:
    state = HungState()
    factory = TokenFactory(state, state_timeout=0.05)
    ctx = context()
    mt = factory.create_master_token(ctx, "device", KE1, KH1)
    calls = every_call(factory, ctx, mt)
    for call in calls:
        with pytest.raises(MslException) as exc:
            await call()
        assert exc.value.error is MslError.INTERNAL_EXCEPTION
        assert exc.value.response_code is ResponseCode.TRANSIENT_FAILURE
        assert "0.05 s" in str(exc.value)
    # Each hung call was cancelled, not left running.
    assert state.started == state.cancelled == len(calls)


@sync
async def test_hung_state_fails_within_the_bound_and_the_loop_keeps_running() -> None:
    factory = TokenFactory(HungState(), state_timeout=0.3)
    ctx = context()
    mt = factory.create_master_token(ctx, "device", KE1, KH1)
    pending = asyncio.ensure_future(factory.accept_non_replayable_id(ctx, mt, 1))
    ticks_while_pending = 0
    start = time.monotonic()
    while not pending.done():
        await asyncio.sleep(0.01)
        ticks_while_pending += 1
    elapsed = time.monotonic() - start
    with pytest.raises(MslException) as exc:
        pending.result()
    assert exc.value.error is MslError.INTERNAL_EXCEPTION
    assert ticks_while_pending >= 3  # other coroutines ran while the state hung
    assert elapsed < 0.3 + MARGIN_S


@sync
async def test_non_blocking_state_is_not_timed() -> None:
    """MemoryTokenState never waits, so no timer is armed (and a tiny bound cannot fail it)."""
    factory = TokenFactory(state_timeout=1e-9)
    ctx = context()
    mt = await issue(factory, ctx, "device")
    assert await factory.accept_non_replayable_id(ctx, mt, 1) is None
    assert await factory.is_master_token_renewable(ctx, mt) is None


# -- the in-memory state refuses forked processes -----------------------------------------------


def _use_in_child(factory: TokenFactory, mt: MasterToken, queue: multiprocessing.Queue[list[str]]) -> None:
    async def attempts() -> list[str]:
        ctx = context()
        uit = factory.create_user_id_token(ctx, MslUser("alice"), mt)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: factory.is_master_token_revoked(ctx, mt),
            lambda: factory.accept_non_replayable_id(ctx, mt, 2),
            lambda: factory.is_user_id_token_revoked(ctx, mt, uit),
            lambda: factory.record_issued(None, mt),
            lambda: factory.record_issued(mt, factory.renew_master_token(ctx, mt, KE2, KH2)),
        ]
        outcomes: list[str] = []
        for call in calls:
            try:
                await call()
                outcomes.append("accepted")
            except MslException as exc:
                outcomes.append(exc.error.name)
        return outcomes

    queue.put(asyncio.run(attempts()))


def in_forked_child(target: Callable[..., None], *args: object) -> list[str]:
    """Run ``target(*args, queue)`` in a forked child (forked outside any event loop, as
    a pre-forking server forks its workers); returns what it put in the queue."""
    mp = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = mp.Queue()
    child = mp.Process(target=target, args=(*args, queue))
    child.start()
    try:
        outcomes = queue.get(timeout=60)
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0
    return outcomes


def test_memory_state_refuses_a_forked_child() -> None:
    """Each forked worker would keep its own replay window and accept a message once per
    worker: the in-memory state refuses to be used there (TRANSIENT_FAILURE)."""
    factory = TokenFactory()
    ctx = context()
    mt = asyncio.run(issue(factory, ctx, "device"))
    assert asyncio.run(factory.accept_non_replayable_id(ctx, mt, 1)) is None
    outcomes = in_forked_child(_use_in_child, factory, mt)
    assert outcomes == [MslError.INTERNAL_EXCEPTION.name] * 5
    # The parent is unaffected.
    assert asyncio.run(factory.accept_non_replayable_id(ctx, mt, 2)) is None


def _revoke_in_child(factory: TokenFactory, queue: multiprocessing.Queue[list[str]]) -> None:
    async def attempts() -> list[str]:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: factory.revoke_identity("x"),
            lambda: factory.revoke_master_token(1),
            lambda: factory.revoke_user("x"),
            lambda: factory.revoke_user_id_token(1),
            lambda: factory.state.forget_master_token("x", 1),
        ]
        outcomes: list[str] = []
        for call in calls:
            try:
                await call()
                outcomes.append("accepted")
            except MslException as exc:
                outcomes.append(exc.error.name)
        return outcomes

    queue.put(asyncio.run(attempts()))


def test_memory_state_refuses_revocation_in_a_forked_child() -> None:
    assert in_forked_child(_revoke_in_child, TokenFactory()) == [MslError.INTERNAL_EXCEPTION.name] * 5


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


@sync
async def test_accept_non_replayable_id_sequence() -> None:
    factory = TokenFactory()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    accept = factory.accept_non_replayable_id
    assert await accept(ctx, mt, 1) is None
    assert await accept(ctx, mt, 1) is MslError.MESSAGE_REPLAYED
    assert await accept(ctx, mt, 2) is None
    assert await accept(ctx, mt, 10) is None  # gaps are fine
    assert await accept(ctx, mt, 9) is MslError.MESSAGE_REPLAYED  # within catch-up window
    assert await accept(ctx, mt, 4) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert await accept(ctx, mt, 10 + W + 1) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    # Refusals do not move the largest accepted ID.
    assert await accept(ctx, mt, 11) is None
    assert await accept(ctx, mt, 11 + W) is None
    assert await accept(ctx, mt, 11) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE


@sync
async def test_first_id_zero_is_replayed() -> None:
    factory = TokenFactory()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    assert await factory.accept_non_replayable_id(ctx, mt, 0) is MslError.MESSAGE_REPLAYED


def test_check_chain_across_wraparound() -> None:
    largest = MAX_LONG_VALUE - 3
    for value in (MAX_LONG_VALUE - 2, MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2):
        assert check_non_replayable_id(largest, value) is None, value
        largest = value
    assert check_non_replayable_id(largest, MAX_LONG_VALUE) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert check_non_replayable_id(largest, 0) is MslError.MESSAGE_REPLAYED


@sync
async def test_accept_wraps_around() -> None:
    state = MemoryTokenState()
    factory = TokenFactory(state)
    ctx = context()
    mt = await issue(factory, ctx, "e")
    accept = factory.accept_non_replayable_id
    # Reaching 2^53 through the API takes 2^37 calls; start the counter close to it.
    state._largest[("e", mt.serial_number)] = MAX_LONG_VALUE - 2
    for value in (MAX_LONG_VALUE - 1, MAX_LONG_VALUE, 0, 1, 2):
        assert await accept(ctx, mt, value) is None, value
    assert await accept(ctx, mt, MAX_LONG_VALUE) is MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    assert await accept(ctx, mt, 0) is MslError.MESSAGE_REPLAYED
    assert await accept(ctx, mt, 3) is None


@sync
async def test_replay_state_per_master_token() -> None:
    factory = TokenFactory()
    ctx = context()
    a = await issue(factory, ctx, "a")
    b = await issue(factory, ctx, "b")
    assert await factory.accept_non_replayable_id(ctx, a, 1) is None
    assert await factory.accept_non_replayable_id(ctx, b, 1) is None
    assert await factory.accept_non_replayable_id(ctx, a, 1) is MslError.MESSAGE_REPLAYED
    # Renewal keeps the serial number and so the replay state.
    renewed = await renew(factory, ctx, a)
    assert await factory.accept_non_replayable_id(ctx, renewed, 1) is MslError.MESSAGE_REPLAYED
    assert await factory.accept_non_replayable_id(ctx, renewed, 2) is None


# -- concurrency ------------------------------------------------------------------------------------


def test_concurrent_accepts_never_lose_updates() -> None:
    """Threads (each with its own event loop, as the blocking facade runs one per thread)
    share one in-memory state."""
    factory = TokenFactory()
    ctx = context()
    tokens = [asyncio.run(issue(factory, ctx, f"entity-{i}")) for i in range(8)]
    assert len({t.serial_number for t in tokens}) == 8
    results: dict[int, list[MslError | None]] = {i: [] for i in range(8)}
    barrier = threading.Barrier(8)

    async def accept_all(i: int) -> None:
        for n in range(1, 201):
            results[i].append(await factory.accept_non_replayable_id(ctx, tokens[i], n))

    def worker(i: int) -> None:
        barrier.wait(timeout=60)
        asyncio.run(accept_all(i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    for i in range(8):
        assert results[i] == [None] * 200
        assert asyncio.run(factory.accept_non_replayable_id(ctx, tokens[i], 200)) is MslError.MESSAGE_REPLAYED
        assert asyncio.run(factory.accept_non_replayable_id(ctx, tokens[i], 201)) is None


def test_concurrent_accepts_on_one_token_accept_each_id_once() -> None:
    factory = TokenFactory()
    ctx = context()
    mt = asyncio.run(issue(factory, ctx, "e"))
    accepted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    async def accept_all() -> None:
        for n in range(1, 201):
            if await factory.accept_non_replayable_id(ctx, mt, n) is None:
                with lock:
                    accepted.append(n)

    def worker() -> None:
        barrier.wait(timeout=60)
        asyncio.run(accept_all())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(not t.is_alive() for t in threads)
    # Every ID is accepted at most once, and the final state is the largest ID.
    assert len(accepted) == len(set(accepted))
    assert 200 in accepted
    assert asyncio.run(factory.accept_non_replayable_id(ctx, mt, 200)) is MslError.MESSAGE_REPLAYED


@sync
async def test_concurrent_coroutines_accept_an_id_once_and_renew_once() -> None:
    factory = TokenFactory()
    ctx = context()
    mt = await issue(factory, ctx, "e")
    outcomes = await asyncio.gather(*(factory.accept_non_replayable_id(ctx, mt, 7) for _ in range(50)))
    assert outcomes.count(None) == 1
    renewals = [factory.renew_master_token(ctx, mt, KE2, KH2) for _ in range(20)]
    recorded = await asyncio.gather(*(factory.record_issued(mt, r) for r in renewals), return_exceptions=True)
    assert recorded.count(None) == 1
    errors = [r for r in recorded if r is not None]
    assert all(isinstance(e, MslMasterTokenException) for e in errors)
    assert {e.error for e in errors if isinstance(e, MslException)} == {
        MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
    }
