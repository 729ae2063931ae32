"""MslContext: session crypto contexts for master tokens and the entity auth data provider."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import pytest

from missile.authutils import ConfigurableAuthenticationUtils
from missile.clock import FixedClock, system_clock
from missile.context import CONTEXT_OPTIONS, INSECURE_SCHEMES, MslConfiguration, MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.null import NullCryptoContext
from missile.crypto.symmetric import SessionCryptoContext, SymmetricCryptoContext
from missile.encoding import MslObject, decode, encode
from missile.entityauth.base import EntityAuthData
from missile.errors import MslError, MslMasterTokenException, ResponseCode
from missile.tokens import MasterToken

MSL = SymmetricCryptoContext("msl", bytes(range(16)), bytes(range(32, 64)))
OTHER = SymmetricCryptoContext("other", bytes(range(1, 17)), bytes(range(2, 34)))
KE = bytes(range(50, 66))
KH = bytes(range(70, 102))


def master_token(seq: int = 3, serial: int = 42, identity: str = "device-1") -> MasterToken:
    return MasterToken.create(
        MSL,
        renewal_window_ms=1_000_000,
        expiration_ms=2_000_000,
        sequence_number=seq,
        serial_number=serial,
        identity=identity,
        encryption_key=KE,
        signature_key=KH,
    )


class FakeStore:
    def __init__(self, contexts: dict[tuple[int, int, int], CryptoContext]) -> None:
        self.contexts = contexts
        self.asked: list[MasterToken] = []

    def get_crypto_context(self, master_token: MasterToken) -> CryptoContext | None:
        self.asked.append(master_token)
        return self.contexts.get(master_token.key)


class FakeAuth(EntityAuthData):
    scheme = "FAKE"
    encrypts = False
    protects_integrity = False

    def __init__(self, identity: str) -> None:
        self._identity = identity

    @property
    def identity(self) -> str:
        return self._identity

    def authdata(self) -> Mapping[str, Any]:
        return {"identity": self._identity}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> FakeAuth:
        return cls(authdata.get_string("identity"))


# -- master_token_crypto_context ---------------------------------------------------------------


def test_decrypted_token_gives_session_context() -> None:
    ctx = MslContext(msl_crypto=MSL)
    token = master_token()
    session = ctx.master_token_crypto_context(token)
    assert isinstance(session, SessionCryptoContext)
    assert session.key_id == "device-1_3"
    assert session.encryption_key == KE and session.signature_key == KH
    # Interoperates with an independently built session context over the same keys.
    peer = SessionCryptoContext("device-1", 3, KE, KH)
    assert peer.decrypt(session.encrypt(b"hello")) == b"hello"
    assert peer.verify(b"data", session.sign(b"data"))


def test_session_context_cached() -> None:
    ctx = MslContext(msl_crypto=MSL)
    token = master_token()
    first = ctx.master_token_crypto_context(token)
    assert ctx.master_token_crypto_context(token) is first
    # An equal token (same serial, sequence, expiration, identity) shares the entry.
    parsed = MasterToken.parse(decode(encode(token)), MSL)
    assert ctx.master_token_crypto_context(parsed) is first
    # A renewed token gets its own context.
    assert ctx.master_token_crypto_context(master_token(seq=4)) is not first
    # Contexts are not shared between MslContexts.
    assert MslContext(msl_crypto=MSL).master_token_crypto_context(token) is not first


def test_session_context_honours_aes_cmac() -> None:
    token = MasterToken.create(
        MSL,
        renewal_window_ms=1,
        expiration_ms=2,
        sequence_number=0,
        serial_number=1,
        identity="e",
        encryption_key=KE,
        signature_key=bytes(16),
        signature_algorithm="AESCmac",
    )
    session = MslContext(msl_crypto=MSL).master_token_crypto_context(token)
    assert len(session.sign(b"x")) == 16


def test_session_cache_is_bounded_lru() -> None:
    from missile import context as context_module

    ctx = MslContext(msl_crypto=MSL)
    size = context_module._SESSION_CACHE_SIZE

    def token(serial: int) -> MasterToken:
        return MasterToken(
            renewal_window=1,
            expiration=2,
            sequence_number=0,
            serial_number=serial,
            tokendata=b"",
            signature=b"",
            verified=True,
            identity="e",
            encryption_key=KE,
            signature_key=KH,
        )

    first = ctx.session_crypto_context(token(0))
    second = ctx.session_crypto_context(token(1))
    for serial in range(2, size + 1):
        if serial == size // 2:
            assert ctx.session_crypto_context(token(0)) is first  # refresh: most recently used
        ctx.session_crypto_context(token(serial))
    assert ctx.session_crypto_context(token(0)) is first
    assert ctx.session_crypto_context(token(1)) is not second


def test_store_context_wins() -> None:
    token = master_token()
    stored = NullCryptoContext()
    store = FakeStore({token.key: stored})
    ctx = MslContext(msl_crypto=MSL, store=store)  # type: ignore[arg-type]
    assert ctx.master_token_crypto_context(token) is stored
    assert store.asked == [token]


def test_store_context_used_for_undecrypted_token() -> None:
    token = MasterToken.parse(decode(encode(master_token())), OTHER)
    assert not token.decrypted
    stored = NullCryptoContext()
    ctx = MslContext(msl_crypto=OTHER, store=FakeStore({token.key: stored}))  # type: ignore[arg-type]
    assert ctx.master_token_crypto_context(token) is stored


def test_store_miss_falls_back_to_session_context() -> None:
    token = master_token()
    ctx = MslContext(msl_crypto=MSL, store=FakeStore({}))  # type: ignore[arg-type]
    assert isinstance(ctx.master_token_crypto_context(token), SessionCryptoContext)


@pytest.mark.parametrize("with_store", [False, True])
def test_undecrypted_token_is_untrusted(with_store: bool) -> None:
    token = MasterToken.parse(decode(encode(master_token())), OTHER)
    store = FakeStore({}) if with_store else None
    ctx = MslContext(msl_crypto=OTHER, store=store)  # type: ignore[arg-type]
    with pytest.raises(MslMasterTokenException) as exc:
        ctx.master_token_crypto_context(token)
    assert exc.value.error is MslError.MASTERTOKEN_UNTRUSTED
    assert exc.value.master_token is token


# -- entity auth data -----------------------------------------------------------------------------


def test_entity_auth_data_without_provider() -> None:
    ctx = MslContext(msl_crypto=MSL)
    assert ctx.get_entity_auth_data() is None
    assert ctx.identity == ""
    data = FakeAuth("client-1")
    ctx.entity_auth_data = data
    assert ctx.get_entity_auth_data() is data
    assert ctx.get_entity_auth_data(ResponseCode.ENTITYDATA_REAUTH) is data
    assert ctx.identity == "client-1"


def test_entity_auth_data_provider() -> None:
    calls: list[ResponseCode | None] = []
    replies: list[EntityAuthData | None] = [FakeAuth("first"), FakeAuth("second"), None]

    def provider(code: ResponseCode | None) -> EntityAuthData | None:
        calls.append(code)
        return replies.pop(0)

    ctx = MslContext(msl_crypto=MSL, entity_auth_data=FakeAuth("static"), entity_auth_data_provider=provider)
    first = ctx.get_entity_auth_data()
    assert isinstance(first, FakeAuth) and first.identity == "first"
    assert ctx.entity_auth_data is first
    second = ctx.get_entity_auth_data(ResponseCode.ENTITYDATA_REAUTH)
    assert second is not None and second.identity == "second"
    assert calls == [None, ResponseCode.ENTITYDATA_REAUTH]
    # A provider returning nothing leaves the last data in place but reports None.
    assert ctx.get_entity_auth_data() is None
    assert ctx.entity_auth_data is second


def test_identity_asks_provider() -> None:
    ctx = MslContext(msl_crypto=MSL, entity_auth_data_provider=lambda code: FakeAuth("dyn"))
    assert ctx.identity == "dyn"


# -- factory lookups ---------------------------------------------------------------------------------


def test_factory_lookups() -> None:
    class Keyx:
        def __init__(self, scheme: str) -> None:
            self.scheme = scheme

    a, b, b2 = Keyx("A"), Keyx("B"), Keyx("B")
    entity = object()
    user = object()
    ctx = MslContext(
        msl_crypto=MSL,
        key_exchange_factories=[a, b, b2],  # type: ignore[list-item]
        entity_auth_factories={"PSK": entity},  # type: ignore[dict-item]
        user_auth_factories={"EMAIL_PASSWORD": user},  # type: ignore[dict-item]
    )
    assert ctx.key_exchange_factory("B") is b
    assert ctx.key_exchange_factory("C") is None
    assert ctx.entity_auth_factory("PSK") is entity and ctx.entity_auth_factory("RSA") is None
    assert ctx.user_auth_factory("EMAIL_PASSWORD") is user and ctx.user_auth_factory("X") is None


def test_only_verified_master_tokens_are_cached() -> None:
    """Anyone can send tokens our keys cannot verify: those must not fill the cache."""
    import os as _os

    from missile.crypto.null import ClientMslCryptoContext
    from missile.crypto.symmetric import SymmetricCryptoContext
    from missile.encoding import decode, encode
    from missile.tokens import MasterToken

    issuer = SymmetricCryptoContext("k", _os.urandom(16), _os.urandom(32), _os.urandom(16))
    token = MasterToken.create(
        issuer,
        renewal_window_ms=10_000,
        expiration_ms=20_000,
        sequence_number=1,
        serial_number=2,
        identity="e",
        encryption_key=_os.urandom(16),
        signature_key=_os.urandom(32),
    )
    obj = decode(encode(token))
    server = MslContext(msl_crypto=issuer)
    assert server.parse_master_token(obj) is server.parse_master_token(obj)
    # Another issuer's token: the server cannot verify it and does not cache it.
    other = MslContext(msl_crypto=SymmetricCryptoContext("o", _os.urandom(16), _os.urandom(32)))
    first, second = other.parse_master_token(obj), other.parse_master_token(obj)
    assert not first.verified and first == second and first is not second
    # A client verifies no token at all: it caches what its servers send.
    client = MslContext(msl_crypto=ClientMslCryptoContext())
    first = client.parse_master_token(obj)
    assert not first.verified and client.parse_master_token(obj) is first


# -- configuration and runtime state ------------------------------------------------------------------

CONFIG_MEMBERS = [f.name for f in dataclasses.fields(MslConfiguration)]


def test_keyword_construction_builds_a_configuration() -> None:
    clock = FixedClock(5)
    utils = ConfigurableAuthenticationUtils()
    store = FakeStore({})
    ctx = MslContext(
        msl_crypto=MSL,
        entity_auth_data=FakeAuth("e"),
        clock=clock,
        auth_utils=utils,
        peer_to_peer=True,
        max_deflate_ratio=7,
        allowed_insecure_schemes=frozenset({"NONE"}),
        store=store,  # type: ignore[arg-type]
    )
    config = ctx.config
    assert isinstance(config, MslConfiguration)
    assert config.msl_crypto is MSL and config.clock is clock and config.auth_utils is utils
    assert config.peer_to_peer and config.max_deflate_ratio == 7 and config.allowed_insecure_schemes == {"NONE"}
    # Every configuration member reads through the context.
    for name in CONFIG_MEMBERS:
        assert getattr(ctx, name) is getattr(config, name), name
    assert ctx.store is store and ctx.wrap_repository is None
    keywords = set(inspect.signature(MslContext).parameters)
    assert keywords == {*CONFIG_MEMBERS, "store", "wrap_repository"} == CONTEXT_OPTIONS


def test_keyword_defaults_match_the_configuration_defaults() -> None:
    """The two ways in start from the same defaults (the signature repeats them)."""
    by_keywords, by_config = MslContext(MSL).config, MslConfiguration(MSL)
    for name in CONFIG_MEMBERS:
        assert getattr(by_keywords, name) == getattr(by_config, name), name
    assert by_config.clock is system_clock and by_config.allowed_insecure_schemes == frozenset()


def test_from_config_gives_independent_runtime_state() -> None:
    config = MslConfiguration(MSL, entity_auth_data=FakeAuth("e"))
    store = FakeStore({})
    one = MslContext.from_config(config, store=store)  # type: ignore[arg-type]
    two = MslContext.from_config(config)
    assert one.config is config and two.config is config
    assert one.store is store and two.store is None
    token = master_token()
    one.master_tokens_in_use[token] = 1
    assert two.master_tokens_in_use == {}
    assert one.session_crypto_context(token) is not two.session_crypto_context(token)
    assert one.renewal_lock is not two.renewal_lock


@pytest.mark.parametrize("name", CONFIG_MEMBERS)
def test_configuration_cannot_be_assigned(name: str) -> None:
    ctx = MslContext(msl_crypto=MSL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(ctx.config, name, None)
    if name != "entity_auth_data":  # the context's current data is runtime state
        with pytest.raises(AttributeError):
            setattr(ctx, name, None)
    with pytest.raises(AttributeError):
        ctx.config = MslConfiguration(OTHER)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ctx.unknown_member = 1  # type: ignore[attr-defined]


def test_factory_collections_are_read_only_copies() -> None:
    class Keyx:
        scheme = "K"

    entity: dict[str, Any] = {"PSK": object()}
    keyx: list[Any] = [Keyx()]
    ctx = MslContext(msl_crypto=MSL, entity_auth_factories=entity, key_exchange_factories=keyx)
    entity["RSA"] = object()
    keyx.clear()
    assert set(ctx.entity_auth_factories) == {"PSK"} and len(ctx.key_exchange_factories) == 1
    with pytest.raises(TypeError):
        ctx.entity_auth_factories["RSA"] = object()  # type: ignore[index]
    with pytest.raises(TypeError):
        ctx.user_auth_factories["X"] = object()  # type: ignore[index]
    assert isinstance(ctx.key_exchange_factories, tuple)


def test_replace_builds_a_changed_copy() -> None:
    config = MslConfiguration(MSL, entity_auth_factories={"PSK": object()})  # type: ignore[dict-item]
    changed = dataclasses.replace(config, msl_crypto=OTHER, peer_to_peer=True)
    assert changed.msl_crypto is OTHER and changed.peer_to_peer
    assert config.msl_crypto is MSL and not config.peer_to_peer
    assert dict(changed.entity_auth_factories) == dict(config.entity_auth_factories)
    with pytest.raises(ValueError, match="not insecure"):
        dataclasses.replace(config, allowed_insecure_schemes=frozenset({"PSK"}))


def test_unknown_insecure_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="not insecure schemes"):
        MslContext(msl_crypto=MSL, allowed_insecure_schemes=frozenset({"PSK"}))
    ctx = MslContext(msl_crypto=MSL, allowed_insecure_schemes=INSECURE_SCHEMES)
    assert all(ctx.allows_insecure(scheme) for scheme in [*INSECURE_SCHEMES, "PSK"])
    assert not MslContext(msl_crypto=MSL).allows_insecure("NONE")


def test_provider_data_is_runtime_state() -> None:
    """New data from the provider replaces the context's, never the configuration's."""
    start = FakeAuth("start")
    ctx = MslContext(msl_crypto=MSL, entity_auth_data=start, entity_auth_data_provider=lambda code: FakeAuth("new"))
    assert ctx.identity == "new"
    assert ctx.entity_auth_data is not start and ctx.config.entity_auth_data is start
    fresh = MslContext.from_config(ctx.config)
    assert fresh.entity_auth_data is start


def test_store_and_wrap_repository_are_runtime_state() -> None:
    ctx = MslContext(msl_crypto=MSL)
    store = FakeStore({})
    ctx.store = store  # type: ignore[assignment]
    assert ctx.store is store
    ctx.store = None
    assert ctx.store is None


def test_repr_names_the_entity_not_its_keys() -> None:
    text = repr(MslContext(msl_crypto=MSL, entity_auth_data=FakeAuth("e1")))
    assert text.startswith("MslContext(identity='e1', config=MslConfiguration(")
    assert bytes(range(16)).hex() not in text and KE.hex() not in text
