"""X509 entity authentication and the trust store, with a self-made CA (entityauth.md §2.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from missile.authutils import ConfigurableAuthenticationUtils
from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject, b64encode, decode, encode
from missile.entityauth import InMemoryX509Store, X509EntityAuthData, X509EntityAuthFactory, parse_entity_auth_data
from missile.entityauth.stores import rfc2253_name
from missile.errors import MslError, MslException

NOW = datetime(2025, 1, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def name(cn: str, org: str = "Example") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_cert(
    subject: x509.Name,
    key: Key,
    issuer: x509.Name,
    issuer_key: Key,
    *,
    ca: bool = False,
    path_length: int | None = None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    keys = {n: rsa.generate_private_key(public_exponent=65537, key_size=2048) for n in ("ca", "leaf", "rogue", "int")}
    ca = make_cert(name("Root CA"), keys["ca"], name("Root CA"), keys["ca"], ca=True, path_length=1)
    rogue_ca = make_cert(name("Rogue CA"), keys["rogue"], name("Rogue CA"), keys["rogue"], ca=True, path_length=1)
    return {"keys": keys, "ca": ca, "rogue_ca": rogue_ca}


def make_ctx(store: InMemoryX509Store) -> MslContext:
    return MslContext(
        msl_crypto=SymmetricCryptoContext("issuer", bytes(16), bytes(32)),
        entity_auth_factories={"X509": X509EntityAuthFactory(store)},
        auth_utils=ConfigurableAuthenticationUtils(),
        clock=FixedClock(NOW_MS),
    )


def trusting(ca: x509.Certificate) -> InMemoryX509Store:
    store = InMemoryX509Store()
    store.add_trusted(ca, NOW_MS)
    return store


def expect(error: MslError, fn: Any, *args: Any) -> MslException:
    with pytest.raises(MslException) as info:
        fn(*args)
    assert info.value.error is error, info.value.error
    return info.value


def wire(cert: x509.Certificate, ctx: MslContext) -> X509EntityAuthData:
    data = parse_entity_auth_data(decode(encode(X509EntityAuthData(cert).to_msl())), ctx)
    assert isinstance(data, X509EntityAuthData)
    return data


def test_rfc2253_identity_order_and_escaping() -> None:
    assert rfc2253_name(name("device123")) == "CN=device123,O=Example,C=US"
    tricky = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex, Inc"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
            x509.NameAttribute(NameOID.COMMON_NAME, " #dev+1 "),
        ]
    )
    # Non-RFC 2253 keywords become OID=#hexBER (IA5String 0x16, length 5), as Java emits them.
    assert rfc2253_name(tricky) == "CN=\\ #dev\\+1\\ ,1.2.840.113549.1.9.1=#16056140622e63,O=Ex\\, Inc"
    assert rfc2253_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "#x;y")])) == "CN=\\#x\\;y"


def test_x509_sign_locally_verify_remotely(pki: dict[str, Any]) -> None:
    leaf_key = pki["keys"]["leaf"]
    leaf = make_cert(name("device123"), leaf_key, name("Root CA"), pki["keys"]["ca"])
    local_store = trusting(pki["ca"])
    local_store.set_private_key(leaf, leaf_key)
    local = make_ctx(local_store)
    remote = make_ctx(trusting(pki["ca"]))

    data = wire(leaf, remote)
    assert data.identity == "CN=device123,O=Example,C=US"
    assert data == X509EntityAuthData(leaf)
    signature = local.entity_auth_factories["X509"].crypto_context(local, X509EntityAuthData(leaf)).sign(b"hdr")
    verifier = remote.entity_auth_factories["X509"].crypto_context(remote, data)
    assert verifier.verify(b"hdr", signature)
    assert not verifier.verify(b"hdr!", signature)
    assert verifier.encrypt(b"plain") == b"plain"  # X509 does not encrypt
    expect(MslError.SIGN_NOT_SUPPORTED, verifier.sign, b"x")


@pytest.mark.parametrize(
    ("not_before", "not_after", "error"),
    [
        (NOW - timedelta(days=30), NOW - timedelta(days=1), MslError.X509CERT_EXPIRED),
        (NOW + timedelta(days=1), NOW + timedelta(days=30), MslError.X509CERT_NOT_YET_VALID),
    ],
)
def test_x509_validity(pki: dict[str, Any], not_before: datetime, not_after: datetime, error: MslError) -> None:
    leaf = make_cert(
        name("dev"), pki["keys"]["leaf"], name("Root CA"), pki["keys"]["ca"], not_before=not_before, not_after=not_after
    )
    ctx = make_ctx(trusting(pki["ca"]))
    exc = expect(error, ctx.entity_auth_factories["X509"].crypto_context, ctx, wire(leaf, ctx))
    assert exc.response_code.name == "ENTITYDATA_REAUTH"
    assert isinstance(exc.entity_auth_data, X509EntityAuthData)


def test_x509_untrusted_issuer(pki: dict[str, Any]) -> None:
    ctx = make_ctx(trusting(pki["ca"]))
    factory = ctx.entity_auth_factories["X509"]
    by_rogue = make_cert(name("dev"), pki["keys"]["leaf"], name("Rogue CA"), pki["keys"]["rogue"])
    expect(MslError.X509CERT_VERIFICATION_FAILED, factory.crypto_context, ctx, wire(by_rogue, ctx))
    # Claims the trusted issuer's name but is signed by another key.
    forged = make_cert(name("dev"), pki["keys"]["leaf"], name("Root CA"), pki["keys"]["rogue"])
    expect(MslError.X509CERT_VERIFICATION_FAILED, factory.crypto_context, ctx, wire(forged, ctx))


def test_x509_non_rsa_certificate(pki: dict[str, Any]) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_cert(name("ecdev"), ec_key, name("Root CA"), pki["keys"]["ca"])
    ctx = make_ctx(trusting(pki["ca"]))
    expect(MslError.INVALID_PUBLIC_KEY, ctx.entity_auth_factories["X509"].crypto_context, ctx, wire(leaf, ctx))


def test_x509_revoked_and_not_permitted(pki: dict[str, Any]) -> None:
    leaf = make_cert(name("dev"), pki["keys"]["leaf"], name("Root CA"), pki["keys"]["ca"])
    ctx = make_ctx(trusting(pki["ca"]))
    factory = ctx.entity_auth_factories["X509"]
    auth = ctx.auth_utils
    assert isinstance(auth, ConfigurableAuthenticationUtils)
    auth.deny("CN=dev,O=Example,C=US", "X509")
    expect(MslError.INCORRECT_ENTITYAUTH_DATA, factory.crypto_context, ctx, wire(leaf, ctx))
    auth.revoke("CN=dev,O=Example,C=US")
    expect(MslError.ENTITY_REVOKED, factory.crypto_context, ctx, wire(leaf, ctx))


def test_x509_bad_encodings(pki: dict[str, Any]) -> None:
    ctx = make_ctx(trusting(pki["ca"]))

    def parse(value: str) -> None:
        parse_entity_auth_data(MslObject({"scheme": "X509", "authdata": {"x509certificate": value}}), ctx)

    expect(MslError.X509CERT_INVALID, parse, "not base64!")
    expect(MslError.X509CERT_PARSE_ERROR, parse, b64encode(b"\x30\x03\x02\x01\x00"))
    # Whitespace inside the base64 is tolerated.
    leaf = make_cert(name("dev"), pki["keys"]["leaf"], name("Root CA"), pki["keys"]["ca"])
    text = X509EntityAuthData(leaf).authdata()["x509certificate"]
    parse("\n".join(text[i : i + 64] for i in range(0, len(text), 64)))


def test_trust_store_chain_rules(pki: dict[str, Any]) -> None:
    keys = pki["keys"]
    store = trusting(pki["ca"])
    # Not a CA.
    leaf = make_cert(name("dev"), keys["leaf"], name("Root CA"), keys["ca"])
    expect(MslError.X509CERT_VERIFICATION_FAILED, store.add_trusted, leaf, NOW_MS)
    # Subordinate CA not issued by a trusted certificate.
    orphan = make_cert(name("Sub CA"), keys["int"], name("Rogue CA"), keys["rogue"], ca=True, path_length=0)
    expect(MslError.X509CERT_VERIFICATION_FAILED, store.add_trusted, orphan, NOW_MS)
    # Path length not smaller than the root's (1).
    too_long = make_cert(name("Sub CA"), keys["int"], name("Root CA"), keys["ca"], ca=True, path_length=1)
    expect(MslError.X509CERT_VERIFICATION_FAILED, store.add_trusted, too_long, NOW_MS)
    # Expired and not-yet-valid CAs.
    old = make_cert(
        name("Old CA"), keys["int"], name("Old CA"), keys["int"], ca=True, not_after=NOW - timedelta(seconds=1)
    )
    expect(MslError.X509CERT_EXPIRED, store.add_trusted, old, NOW_MS)
    future = make_cert(
        name("New CA"), keys["int"], name("New CA"), keys["int"], ca=True, not_before=NOW + timedelta(days=1)
    )
    expect(MslError.X509CERT_NOT_YET_VALID, store.add_trusted, future, NOW_MS)
    # A proper subordinate CA; then a leaf it issued is accepted (one issuer level).
    sub = make_cert(name("Sub CA"), keys["int"], name("Root CA"), keys["ca"], ca=True, path_length=0)
    store.add_trusted(sub, NOW_MS)
    by_sub = make_cert(name("dev2"), keys["leaf"], name("Sub CA"), keys["int"])
    assert store.is_trusted(by_sub, NOW_MS)
    # A sub-CA below a path-length-0 CA is refused.
    sub_sub = make_cert(name("Sub Sub CA"), keys["leaf"], name("Sub CA"), keys["int"], ca=True)
    expect(MslError.X509CERT_VERIFICATION_FAILED, store.add_trusted, sub_sub, NOW_MS)


def test_trust_store_chain_and_self_signature(pki: dict[str, Any]) -> None:
    keys = pki["keys"]
    store = InMemoryX509Store()
    sub = make_cert(name("Sub CA"), keys["int"], name("Root CA"), keys["ca"], ca=True, path_length=0)
    expect(MslError.X509CERT_VERIFICATION_FAILED, store.add_trusted_chain, [sub, pki["ca"]], NOW_MS)
    store.add_trusted_chain([pki["ca"], sub], NOW_MS)
    assert store.is_trusted(make_cert(name("d"), keys["leaf"], name("Sub CA"), keys["int"]), NOW_MS)
    # "Self-signed" by name but signed with another key.
    bad_root = make_cert(name("Fake Root"), keys["int"], name("Fake Root"), keys["rogue"], ca=True)
    expect(MslError.X509CERT_VERIFICATION_FAILED, store.add_trusted, bad_root, NOW_MS)
