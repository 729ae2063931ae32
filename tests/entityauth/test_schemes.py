"""Entity authentication schemes: round trips, end-to-end protection, every failure (entityauth.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from missile.authutils import ConfigurableAuthenticationUtils
from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.derivation import derive_wrapping_key
from missile.crypto.null import ClientMslCryptoContext, NullCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject, decode, encode
from missile.entityauth import (
    ENTITY_AUTH_SCHEMES,
    EccEntityAuthData,
    EccEntityAuthFactory,
    EntityAuthData,
    EntityAuthFactory,
    InMemoryEccStore,
    InMemoryIdentityProvisioningService,
    InMemoryKeySetStore,
    InMemoryRsaStore,
    InMemoryX509Store,
    KeySet,
    MtProtectedEntityAuthData,
    MtProtectedEntityAuthFactory,
    NoneEntityAuthData,
    NoneEntityAuthFactory,
    NoneSuffixedEntityAuthData,
    NoneSuffixedEntityAuthFactory,
    ProvisionedEntityAuthData,
    ProvisionedEntityAuthFactory,
    PskEntityAuthData,
    PskEntityAuthFactory,
    PskProfileEntityAuthData,
    PskProfileEntityAuthFactory,
    RsaEntityAuthData,
    RsaEntityAuthFactory,
    X509EntityAuthFactory,
    entity_auth_from_keyfile,
    parse_entity_auth_data,
)
from missile.errors import MslEntityAuthException, MslError, MslException, MslInternalException
from missile.keyfile import KeyFile
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken

NOW_MS = 1_735_689_600_000
KPE = bytes(range(16))
KPH = bytes(range(32, 64))
MSL_KEYS = SymmetricCryptoContext("issuer", bytes(range(100, 116)), bytes(range(116, 148)))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ecc_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ctx(factories: list[EntityAuthFactory], **kw: Any) -> MslContext:
    kw.setdefault("msl_crypto", MSL_KEYS)
    return MslContext(
        entity_auth_factories={f.scheme: f for f in factories},
        auth_utils=ConfigurableAuthenticationUtils(),
        clock=FixedClock(NOW_MS),
        token_factory=TokenFactory(),
        allowed_insecure_schemes=INSECURE_SCHEMES,
        **kw,
    )


def utils(ctx: MslContext) -> ConfigurableAuthenticationUtils:
    assert isinstance(ctx.auth_utils, ConfigurableAuthenticationUtils)
    return ctx.auth_utils


def wire(data: EntityAuthData, ctx: MslContext) -> EntityAuthData:
    """Encode to bytes, decode and parse back through the registry."""
    parsed = parse_entity_auth_data(decode(encode(data.to_msl())), ctx)
    assert type(parsed) is type(data)
    assert parsed == data
    assert parsed.identity == data.identity
    return parsed


def raises(error: MslError) -> Any:
    class _Matcher:
        def __enter__(self) -> None:
            self._cm = pytest.raises(MslException)
            self._info = self._cm.__enter__()

        def __exit__(self, *exc: Any) -> bool:
            handled = self._cm.__exit__(*exc)
            assert self._info.value.error is error, f"{self._info.value.error} != {error}"
            return bool(handled)

    return _Matcher()


def psk_store() -> InMemoryKeySetStore:
    store = InMemoryKeySetStore()
    store.add("client1", KPE, KPH)
    return store


# -- registry and common parsing -----------------------------------------------------------


SCHEME_FLAGS = {
    "NONE": (False, False),
    "NONE_SUFFIXED": (False, False),
    "PSK": (True, True),
    "PSK_PROFILE": (True, True),
    "X509": (False, True),
    "RSA": (False, True),
    "ECC": (False, True),
    "MT_PROTECTED": (False, False),
    "PROVISIONED": (False, False),
}


@pytest.mark.parametrize("scheme", sorted(SCHEME_FLAGS))
def test_builtin_schemes_registered_with_spec_flags(scheme: str) -> None:
    cls = ENTITY_AUTH_SCHEMES.get(scheme)
    assert cls.scheme == scheme
    assert (cls.encrypts, cls.protects_integrity) == SCHEME_FLAGS[scheme]


def test_unknown_scheme() -> None:
    ctx = make_ctx([NoneEntityAuthFactory()])
    obj = MslObject({"scheme": "BOGUS", "authdata": {"identity": "x"}})
    with pytest.raises(MslEntityAuthException) as info:
        parse_entity_auth_data(obj, ctx)
    assert info.value.error is MslError.UNIDENTIFIED_ENTITYAUTH_SCHEME


def test_known_scheme_without_factory() -> None:
    ctx = make_ctx([NoneEntityAuthFactory()])
    with raises(MslError.ENTITYAUTH_FACTORY_NOT_FOUND):
        parse_entity_auth_data(MslObject({"scheme": "PSK", "authdata": {"identity": "x"}}), ctx)


@pytest.mark.parametrize(
    ("scheme", "authdata"),
    [
        ("NONE", {}),
        ("NONE", {"identity": 5}),
        ("NONE_SUFFIXED", {"root": "r"}),
        ("PSK", {"identity": True}),
        ("PSK_PROFILE", {"pskid": "p"}),
        ("RSA", {"identity": "x"}),
        ("ECC", {"pubkeyid": "k"}),
        ("X509", {}),
        ("MT_PROTECTED", {"authdata": "AAAA", "signature": "AAAA"}),
    ],
)
def test_missing_or_mistyped_fields(scheme: str, authdata: dict[str, Any]) -> None:
    store = psk_store()
    ctx = make_ctx(
        [
            NoneEntityAuthFactory(),
            NoneSuffixedEntityAuthFactory(),
            PskEntityAuthFactory(store),
            PskProfileEntityAuthFactory(store),
            RsaEntityAuthFactory(InMemoryRsaStore()),
            EccEntityAuthFactory(InMemoryEccStore()),
            MtProtectedEntityAuthFactory(),
            X509EntityAuthFactory(InMemoryX509Store()),
        ]
    )
    with raises(MslError.MSL_PARSE_ERROR):
        parse_entity_auth_data(MslObject({"scheme": scheme, "authdata": authdata}), ctx)


def test_authdata_must_be_an_object() -> None:
    ctx = make_ctx([NoneEntityAuthFactory()])
    with raises(MslError.MSL_PARSE_ERROR):
        parse_entity_auth_data(MslObject({"scheme": "NONE", "authdata": '{"identity":"x"}'}), ctx)


def test_factory_rejects_other_schemes_data() -> None:
    ctx = make_ctx([NoneEntityAuthFactory()])
    with pytest.raises(MslInternalException):
        NoneEntityAuthFactory().crypto_context(ctx, PskEntityAuthData("x"))


# -- NONE and NONE_SUFFIXED ----------------------------------------------------------------


def test_none_round_trip_and_null_context() -> None:
    ctx = make_ctx([NoneEntityAuthFactory()])
    data = wire(NoneEntityAuthData("anon-1"), ctx)
    assert data.to_msl() == {"scheme": "NONE", "authdata": {"identity": "anon-1"}}
    context = ctx.entity_auth_factories["NONE"].crypto_context(ctx, data)
    assert isinstance(context, NullCryptoContext)
    assert context.encrypt(b'{"a":1}') == b'{"a":1}'
    assert context.sign(b"x") == b""
    assert context.verify(b"x", b"")


def test_none_revoked_and_not_permitted() -> None:
    ctx = make_ctx([NoneEntityAuthFactory()])
    factory = ctx.entity_auth_factories["NONE"]
    utils(ctx).deny("anon-1", "NONE")
    with raises(MslError.INCORRECT_ENTITYAUTH_DATA):
        factory.crypto_context(ctx, NoneEntityAuthData("anon-1"))
    utils(ctx).revoke("anon-1")
    with pytest.raises(MslEntityAuthException) as info:
        factory.crypto_context(ctx, NoneEntityAuthData("anon-1"))
    assert info.value.error is MslError.ENTITY_REVOKED
    assert info.value.entity_auth_data == NoneEntityAuthData("anon-1")


def test_none_suffixed_identity_and_root_checks() -> None:
    ctx = make_ctx([NoneSuffixedEntityAuthFactory()])
    data = wire(NoneSuffixedEntityAuthData("anon-root", "42"), ctx)
    assert data.identity == "anon-root.42"
    factory = ctx.entity_auth_factories["NONE_SUFFIXED"]
    # Checks use the root: revoking the full identity has no effect.
    utils(ctx).revoke("anon-root.42")
    utils(ctx).deny("anon-root.42", "NONE_SUFFIXED")
    assert isinstance(factory.crypto_context(ctx, data), NullCryptoContext)
    utils(ctx).deny("anon-root", "NONE_SUFFIXED")
    with raises(MslError.INCORRECT_ENTITYAUTH_DATA):
        factory.crypto_context(ctx, data)
    utils(ctx).revoke("anon-root")
    with raises(MslError.ENTITY_REVOKED):
        factory.crypto_context(ctx, data)


# -- PSK and PSK_PROFILE -------------------------------------------------------------------


def test_keyset_derives_wrap_key_and_hides_keys() -> None:
    keys = KeySet(KPE, KPH)
    assert keys.wrap_key == derive_wrapping_key(KPE, KPH)
    assert KeySet(KPE, KPH, b"\x01" * 16).wrap_key == b"\x01" * 16
    assert KPE.hex() not in repr(keys) and str(list(KPE)) not in repr(keys)


def test_psk_end_to_end() -> None:
    ctx = make_ctx([PskEntityAuthFactory(psk_store())])
    data = wire(PskEntityAuthData("client1"), ctx)
    receiver = ctx.entity_auth_factories["PSK"].crypto_context(ctx, data)
    assert isinstance(receiver, SymmetricCryptoContext)
    assert receiver.key_id == "client1"
    sender = SymmetricCryptoContext("client1", KPE, KPH, derive_wrapping_key(KPE, KPH))
    ciphertext = sender.encrypt(b"header data")
    signature = sender.sign(ciphertext)
    assert receiver.verify(ciphertext, signature)
    assert receiver.decrypt(ciphertext) == b"header data"
    assert not receiver.verify(ciphertext + b"x", signature)
    # And the other way round, including the wrap key.
    assert sender.decrypt(receiver.encrypt(b"reply")) == b"reply"
    assert sender.unwrap(receiver.wrap(bytes(16))) == bytes(16)


def test_psk_wrap_contexts() -> None:
    store = psk_store()
    factory = PskEntityAuthFactory(store)
    ctx = make_ctx([factory])
    wrapped = factory.wrap_crypto_context(ctx, "client1").wrap(bytes(range(16)))
    lookup = store.wrap_crypto_context("client1")
    assert lookup is not None
    assert lookup.unwrap(wrapped) == bytes(range(16))
    assert store.wrap_crypto_context("nobody") is None
    with raises(MslError.ENTITY_NOT_FOUND):
        factory.wrap_crypto_context(ctx, "nobody")


def test_psk_failures() -> None:
    ctx = make_ctx([PskEntityAuthFactory(psk_store())])
    factory = ctx.entity_auth_factories["PSK"]
    with raises(MslError.ENTITY_NOT_FOUND):
        factory.crypto_context(ctx, PskEntityAuthData("unknown"))
    utils(ctx).deny("client1", "PSK")
    with raises(MslError.INCORRECT_ENTITYAUTH_DATA):
        factory.crypto_context(ctx, PskEntityAuthData("client1"))
    utils(ctx).revoke("client1")
    with raises(MslError.ENTITY_REVOKED):
        factory.crypto_context(ctx, PskEntityAuthData("client1"))


def test_psk_profile_uses_pskid_keys_and_full_identity() -> None:
    ctx = make_ctx([PskProfileEntityAuthFactory(psk_store())])
    data = wire(PskProfileEntityAuthData("client1", "tv"), ctx)
    assert data.identity == "client1-tv"
    receiver = ctx.entity_auth_factories["PSK_PROFILE"].crypto_context(ctx, data)
    assert isinstance(receiver, SymmetricCryptoContext)
    assert receiver.key_id == "client1-tv"
    sender = SymmetricCryptoContext("client1-tv", KPE, KPH)
    ciphertext = sender.encrypt(b"profiled")
    assert receiver.verify(ciphertext, sender.sign(ciphertext))
    assert receiver.decrypt(ciphertext) == b"profiled"


def test_psk_profile_failures_use_pskid() -> None:
    ctx = make_ctx([PskProfileEntityAuthFactory(psk_store())])
    factory = ctx.entity_auth_factories["PSK_PROFILE"]
    with raises(MslError.ENTITY_NOT_FOUND):
        factory.crypto_context(ctx, PskProfileEntityAuthData("client2", "tv"))
    utils(ctx).revoke("client1-tv")  # not what is checked
    factory.crypto_context(ctx, PskProfileEntityAuthData("client1", "tv"))
    utils(ctx).deny("client1", "PSK_PROFILE")
    with raises(MslError.INCORRECT_ENTITYAUTH_DATA):
        factory.crypto_context(ctx, PskProfileEntityAuthData("client1", "tv"))
    utils(ctx).revoke("client1")
    with raises(MslError.ENTITY_REVOKED):
        factory.crypto_context(ctx, PskProfileEntityAuthData("client1", "tv"))


# -- RSA and ECC ---------------------------------------------------------------------------


def test_rsa_sign_locally_verify_remotely(rsa_key: rsa.RSAPrivateKey) -> None:
    local_store = InMemoryRsaStore()
    local_store.add("devkey", private_key=rsa_key)
    local = make_ctx([RsaEntityAuthFactory(local_store, "devkey")])
    remote_store = InMemoryRsaStore()
    remote_store.add("devkey", public_key=rsa_key.public_key())
    remote = make_ctx([RsaEntityAuthFactory(remote_store)])

    data = RsaEntityAuthData("device1", "devkey")
    signer = local.entity_auth_factories["RSA"].crypto_context(local, data)
    parsed = wire(data, remote)
    verifier = remote.entity_auth_factories["RSA"].crypto_context(remote, parsed)
    signature = signer.sign(b"headerdata")
    assert verifier.verify(b"headerdata", signature)
    assert not verifier.verify(b"headerdatX", signature)
    assert verifier.encrypt(b"plain") == b"plain"  # RSA does not encrypt headers
    with raises(MslError.SIGN_NOT_SUPPORTED):
        verifier.sign(b"x")


def test_rsa_key_not_found(rsa_key: rsa.RSAPrivateKey) -> None:
    store = InMemoryRsaStore()
    store.add("local", public_key=rsa_key.public_key())  # public only, yet local
    ctx = make_ctx([RsaEntityAuthFactory(store, "local")])
    factory = ctx.entity_auth_factories["RSA"]
    with raises(MslError.RSA_PRIVATEKEY_NOT_FOUND):
        factory.crypto_context(ctx, RsaEntityAuthData("me", "local"))
    with raises(MslError.RSA_PUBLICKEY_NOT_FOUND):
        factory.crypto_context(ctx, RsaEntityAuthData("peer", "unknown"))
    utils(ctx).deny("peer", "RSA")
    with raises(MslError.INCORRECT_ENTITYAUTH_DATA):
        factory.crypto_context(ctx, RsaEntityAuthData("peer", "local"))
    utils(ctx).revoke("peer")
    with raises(MslError.ENTITY_REVOKED):
        factory.crypto_context(ctx, RsaEntityAuthData("peer", "local"))


def test_rsa_store_rejects_wrong_key_types(ecc_key: ec.EllipticCurvePrivateKey) -> None:
    with raises(MslError.INVALID_PRIVATE_KEY):
        InMemoryRsaStore().add("k", private_key=ecc_key)  # type: ignore[arg-type]
    with raises(MslError.INVALID_PUBLIC_KEY):
        InMemoryRsaStore().add_der("k", b"\x30\x00")


def test_ecc_sign_locally_verify_remotely(ecc_key: ec.EllipticCurvePrivateKey) -> None:
    local_store = InMemoryEccStore()
    local_store.add("eckey", private_key=ecc_key)
    local = make_ctx([EccEntityAuthFactory(local_store, "eckey")])
    remote_store = InMemoryEccStore()
    remote_store.add("eckey", public_key=ecc_key.public_key())
    remote = make_ctx([EccEntityAuthFactory(remote_store)])

    data = EccEntityAuthData("ecdevice", "eckey")
    signature = local.entity_auth_factories["ECC"].crypto_context(local, data).sign(b"headerdata")
    assert signature[0] == 0x30  # ASN.1 DER SEQUENCE (crypto.md §8)
    verifier = remote.entity_auth_factories["ECC"].crypto_context(remote, wire(data, remote))
    assert verifier.verify(b"headerdata", signature)
    assert not verifier.verify(b"other", signature)


def test_ecc_key_not_found(ecc_key: ec.EllipticCurvePrivateKey) -> None:
    store = InMemoryEccStore()
    store.add("local", public_key=ecc_key.public_key())
    ctx = make_ctx([EccEntityAuthFactory(store, "local")])
    factory = ctx.entity_auth_factories["ECC"]
    with raises(MslError.ECC_PRIVATEKEY_NOT_FOUND):
        factory.crypto_context(ctx, EccEntityAuthData("me", "local"))
    with raises(MslError.ECC_PUBLICKEY_NOT_FOUND):
        factory.crypto_context(ctx, EccEntityAuthData("peer", "unknown"))
    utils(ctx).revoke("peer")
    with raises(MslError.ENTITY_REVOKED):
        factory.crypto_context(ctx, EccEntityAuthData("peer", "local"))


# -- MT_PROTECTED --------------------------------------------------------------------------


def issue_master_token(ctx: MslContext, identity: str = "client1") -> MasterToken:
    assert ctx.token_factory is not None
    return ctx.token_factory.create_master_token(ctx, identity, bytes(range(50, 66)), bytes(range(66, 98)))


def mt_ctx() -> MslContext:
    return make_ctx([MtProtectedEntityAuthFactory(), PskEntityAuthFactory(psk_store()), NoneEntityAuthFactory()])


def test_mt_protected_round_trip() -> None:
    ctx = mt_ctx()
    master_token = issue_master_token(ctx)
    data = MtProtectedEntityAuthData.create(ctx, master_token, PskEntityAuthData("client1"))
    obj = decode(encode(data.to_msl()))
    authdata = obj.get_object("authdata")
    assert set(authdata.keys()) == {"mastertoken", "authdata", "signature"}
    assert b"PSK" not in authdata.get_bytes("authdata")  # the inner data is encrypted
    parsed = parse_entity_auth_data(obj, ctx)
    assert isinstance(parsed, MtProtectedEntityAuthData)
    assert parsed == data
    assert parsed.identity == "client1"
    assert parsed.inner == PskEntityAuthData("client1")
    receiver = ctx.entity_auth_factories["MT_PROTECTED"].crypto_context(ctx, parsed)
    assert isinstance(receiver, SymmetricCryptoContext) and receiver.key_id == "client1"
    sender = SymmetricCryptoContext("client1", KPE, KPH)
    ciphertext = sender.encrypt(b"hello")
    assert receiver.verify(ciphertext, sender.sign(ciphertext))
    assert receiver.decrypt(ciphertext) == b"hello"


class _Store:
    """Just enough of an MslStore: one stored crypto context."""

    def __init__(self, master_token: MasterToken, context: CryptoContext) -> None:
        self.master_token = master_token
        self.context = context

    def get_crypto_context(self, master_token: MasterToken) -> CryptoContext | None:
        return self.context if master_token == self.master_token else None


def test_mt_protected_uses_the_stored_context_on_a_client() -> None:
    issuer = mt_ctx()
    master_token = issue_master_token(issuer)
    data = MtProtectedEntityAuthData.create(issuer, master_token, NoneEntityAuthData("inner-id"))
    # A client cannot open the token; with the session keys in its store it can parse.
    session = issuer.master_token_crypto_context(master_token)
    client = make_ctx([MtProtectedEntityAuthFactory(), NoneEntityAuthFactory()], msl_crypto=ClientMslCryptoContext())
    obj = decode(encode(data.to_msl()))
    with raises(MslError.ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED):
        parse_entity_auth_data(obj, client)
    client.store = _Store(master_token, session)  # type: ignore[assignment]
    parsed = parse_entity_auth_data(obj, client)
    assert parsed.identity == "inner-id"
    # Creation needs the context as well.
    client.store = None
    unverified = MasterToken.parse(decode(encode(master_token.to_msl())), client.msl_crypto)
    with raises(MslError.ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED):
        MtProtectedEntityAuthData.create(client, unverified, NoneEntityAuthData("x"))


def _mt_object(ctx: MslContext) -> dict[str, Any]:
    data = MtProtectedEntityAuthData.create(ctx, issue_master_token(ctx), PskEntityAuthData("client1"))
    value: dict[str, Any] = decode(encode(data.to_msl())).to_dict()
    return value


def test_mt_protected_bad_signature() -> None:
    ctx = mt_ctx()
    obj = _mt_object(ctx)
    other = _mt_object(ctx)
    obj["authdata"]["signature"] = other["authdata"]["signature"]
    with raises(MslError.ENTITYAUTH_VERIFICATION_FAILED):
        parse_entity_auth_data(MslObject(obj), ctx)


def test_mt_protected_invalid_master_token() -> None:
    ctx = mt_ctx()
    obj = _mt_object(ctx)
    obj["authdata"]["mastertoken"] = {"tokendata": "eyJhIjoxfQ==", "signature": "AAAA"}
    with raises(MslError.ENTITYAUTH_MASTERTOKEN_INVALID):
        parse_entity_auth_data(MslObject(obj), ctx)
    obj["authdata"]["mastertoken"] = "not an object"
    with raises(MslError.MSL_PARSE_ERROR):
        parse_entity_auth_data(MslObject(obj), ctx)


def test_mt_protected_checks_and_missing_inner_factory() -> None:
    ctx = mt_ctx()
    parsed = parse_entity_auth_data(MslObject(_mt_object(ctx)), ctx)
    factory = ctx.entity_auth_factories["MT_PROTECTED"]
    utils(ctx).deny("client1", "MT_PROTECTED")
    with raises(MslError.INCORRECT_ENTITYAUTH_DATA):
        factory.crypto_context(ctx, parsed)
    utils(ctx).revoke("client1")
    with raises(MslError.ENTITY_REVOKED):
        factory.crypto_context(ctx, parsed)
    ctx = mt_ctx()
    obj = _mt_object(ctx)
    without_psk = {scheme: f for scheme, f in ctx.entity_auth_factories.items() if scheme != "PSK"}
    ctx = MslContext.from_config(dataclasses.replace(ctx.config, entity_auth_factories=without_psk))
    with raises(MslError.ENTITYAUTH_FACTORY_NOT_FOUND):
        parse_entity_auth_data(MslObject(obj), ctx)
    with raises(MslError.ENTITYAUTH_FACTORY_NOT_FOUND):
        factory.crypto_context(ctx, parsed)


# -- PROVISIONED ---------------------------------------------------------------------------


def test_provisioned_assigns_identity() -> None:
    service = InMemoryIdentityProvisioningService(prefix="dev-")
    ctx = make_ctx([ProvisionedEntityAuthFactory(service)])
    data = wire(ProvisionedEntityAuthData(), ctx)
    assert data.to_msl() == {"scheme": "PROVISIONED", "authdata": {}}
    assert data.identity == ""
    context = ctx.entity_auth_factories["PROVISIONED"].crypto_context(ctx, data)
    assert isinstance(context, NullCryptoContext)
    assert data.identity.startswith("dev-1-") and len(data.identity) == len("dev-1-") + 16
    other = ProvisionedEntityAuthData()
    ctx.entity_auth_factories["PROVISIONED"].crypto_context(ctx, other)
    assert other.identity.startswith("dev-2-") and other.identity != data.identity
    assert other == data and hash(other) == hash(data)  # equality ignores the identity


# -- extensibility -------------------------------------------------------------------------


class CustomEntityAuthData(EntityAuthData):
    """A test scheme: ``{"device": string, "serial": int}``."""

    scheme: ClassVar[str] = "TEST_CUSTOM"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = False

    def __init__(self, device: str, serial: int) -> None:
        self.device = device
        self.serial = serial

    @property
    def identity(self) -> str:
        return f"{self.device}#{self.serial}"

    def authdata(self) -> Mapping[str, Any]:
        return {"device": self.device, "serial": self.serial}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string("device"), authdata.get_int("serial"))


class CustomFactory(EntityAuthFactory):
    scheme: ClassVar[str] = "TEST_CUSTOM"

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> CryptoContext:
        self.check_entity(ctx, data.identity, self.scheme)
        return NullCryptoContext()


@pytest.fixture
def custom_scheme() -> Iterator[None]:
    ENTITY_AUTH_SCHEMES.register(CustomEntityAuthData)
    try:
        yield
    finally:
        ENTITY_AUTH_SCHEMES.unregister(CustomEntityAuthData.scheme)


def test_custom_scheme_parses_through_the_registry(custom_scheme: None) -> None:
    ctx = make_ctx([CustomFactory()])
    parsed = wire(CustomEntityAuthData("tv", 7), ctx)
    assert parsed.identity == "tv#7"
    assert isinstance(ctx.entity_auth_factories["TEST_CUSTOM"].crypto_context(ctx, parsed), NullCryptoContext)
    utils(ctx).revoke("tv#7")
    with raises(MslError.ENTITY_REVOKED):
        ctx.entity_auth_factories["TEST_CUSTOM"].crypto_context(ctx, parsed)


def test_custom_scheme_unknown_after_unregister() -> None:
    ctx = make_ctx([CustomFactory()])
    with raises(MslError.UNIDENTIFIED_ENTITYAUTH_SCHEME):
        parse_entity_auth_data(MslObject({"scheme": "TEST_CUSTOM", "authdata": {"device": "a", "serial": 1}}), ctx)


# -- key file configuration ----------------------------------------------------------------


def test_entity_auth_from_keyfile_psk_client() -> None:
    keys = KeyFile.from_dict(
        {
            "role": "client",
            "identity": "client1",
            "entity_auth": {"scheme": "PSK", "identity": "client1"},
            "psk": [{"identity": "client1", "encryption_b64": "AAECAwQFBgcICQoLDA0ODw==", "hmac_b64": "A" * 43 + "="}],
        }
    )
    data, factories = entity_auth_from_keyfile(keys)
    assert data == PskEntityAuthData("client1")
    assert {"NONE", "NONE_SUFFIXED", "MT_PROTECTED", "PSK", "PSK_PROFILE"} <= set(factories)
    assert "RSA" not in factories
    ctx = make_ctx(list(factories.values()))
    context = factories["PSK"].crypto_context(ctx, data)
    assert isinstance(context, SymmetricCryptoContext)
    assert context.wrap_key == derive_wrapping_key(bytes(range(16)), bytes(32))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"scheme": "NONE", "identity": "a"}, NoneEntityAuthData("a")),
        ({"scheme": "NONE_SUFFIXED", "root": "r", "suffix": "s"}, NoneSuffixedEntityAuthData("r", "s")),
        ({"scheme": "PSK_PROFILE", "pskid": "p", "profile": "q"}, PskProfileEntityAuthData("p", "q")),
        ({"scheme": "RSA", "identity": "srv", "keypairid": "k"}, RsaEntityAuthData("srv", "k")),
        ({"scheme": "PROVISIONED"}, ProvisionedEntityAuthData()),
    ],
)
def test_entity_auth_from_keyfile_schemes(entry: dict[str, Any], expected: EntityAuthData) -> None:
    data, factories = entity_auth_from_keyfile(KeyFile.from_dict({"role": "client", "entity_auth": entry}))
    assert data == expected
    if entry["scheme"] == "RSA":
        factory = factories["RSA"]
        assert isinstance(factory, RsaEntityAuthFactory) and factory.local_key_pair_id == "k"


def test_entity_auth_from_keyfile_without_or_with_unknown_scheme() -> None:
    data, factories = entity_auth_from_keyfile(KeyFile.from_dict({"role": "server"}))
    assert data is None and "NONE" in factories
    with raises(MslError.UNIDENTIFIED_ENTITYAUTH_SCHEME):
        entity_auth_from_keyfile(KeyFile.from_dict({"role": "client", "entity_auth": {"scheme": "NOPE"}}))
