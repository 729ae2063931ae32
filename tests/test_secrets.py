"""Secrets never leak, and secrets are compared in constant time (issue #8, part 4).

No key, password, session key or plaintext may appear in

* ``repr()`` / ``str()`` of any object holding one (crypto contexts, JWKs, key exchange
  data, entity and user authentication data, factories and stores, tokens, the key
  file and its entries, the context, message options, payload chunks, exceptions);
* the message, ``repr`` or formatted traceback of failures provoked with them;
* any log record of a full client/server exchange (``missile.*`` at DEBUG);
* the error message the server sends back for a failing request.

Each secret is searched in every textual form it could take: the text itself, the
``repr`` of the bytes, hex (both cases), base64 and base64url (padded or not), the
list of byte values, and for integers decimal and hex; plus the first half of every
long form, so an elided or truncated rendering is caught as well.

Every secret comparison goes through :func:`hmac.compare_digest`: the MAC check of
symmetric contexts (headers, payload chunks, tokens, error headers) and the in-memory
password store. The tests record the calls and pin the decision on them; a source scan
fails on any new ``==`` / ``!=`` / ``in`` over a secret-named value.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from engine.harness import CLIENT_VECTORS, SERVER_VECTOR, T0, Pair, keyfile, make_pair, run
from missile.cli.sending import SendSettings
from missile.context import MslContext
from missile.crypto.aeskw_jwk import AesKwJwkCryptoContext
from missile.crypto.algorithms import JweEncryption, JweFormat, JwkAlgorithm, JwkType, JwkUsage
from missile.crypto.asymmetric import EccCryptoContext, RsaCryptoContext, RsaMode, RsaWrappingCryptoContext
from missile.crypto.derivation import SessionKeys, derive_wrapping_key
from missile.crypto.envelopes import EnvelopeVersion, SignatureEnvelope
from missile.crypto.jwe import AesKwCekContext, JweCryptoContext, RsaOaepCekContext
from missile.crypto.jwk import (
    JsonWebKey,
    jwe_ladder_wrapping_jwk,
    jwk_ladder_wrapping_jwk,
    session_encryption_jwk,
    session_hmac_jwk,
)
from missile.crypto.null import ClientMslCryptoContext, NullCryptoContext
from missile.crypto.symmetric import (
    SessionCryptoContext,
    SymmetricCryptoContext,
    aes_key_unwrap,
    aes_key_wrap,
    session_crypto_context,
)
from missile.encoding import decode, encode
from missile.engine.client import Response
from missile.engine.errors import MslErrorResponse
from missile.engine.options import MessageOptions
from missile.engine.server import Reply, Request
from missile.entityauth.config import entity_auth_from_keyfile
from missile.entityauth.ecc import EccEntityAuthFactory
from missile.entityauth.psk import PskEntityAuthData, PskEntityAuthFactory
from missile.entityauth.psk_profile import PskProfileEntityAuthFactory
from missile.entityauth.rsa import RsaEntityAuthFactory
from missile.entityauth.stores import InMemoryEccStore, InMemoryKeySetStore, InMemoryRsaStore, InMemoryX509Store, KeySet
from missile.errors import (
    MslCryptoException,
    MslError,
    MslException,
    MslMasterTokenException,
    MslUserAuthException,
)
from missile.keyfile import KeyFile, PskKeySet, UserEntry
from missile.keyx.asymmetric_wrapped import AsymmetricWrappedRequest, AsymmetricWrappedResponse
from missile.keyx.base import KeyExchangeResult
from missile.keyx.config import key_exchange_from_keyfile, key_request_data_from_keyfile, wrap_repository_from_keyfile
from missile.keyx.diffie_hellman import (
    DhParameterSpec,
    DiffieHellmanRequest,
    DiffieHellmanResponse,
    public_value,
    shared_secret,
)
from missile.keyx.jwe_ladder import JweLadderExchange, JweLadderRequest, JweLadderResponse, jwe_ladder_key_context
from missile.keyx.jwk_ladder import JwkLadderRequest, jwk_ladder_key_context
from missile.keyx.psk_lookup import StaticPskWrapKeyLookup
from missile.keyx.repository import InMemoryWrapCryptoContextRepository
from missile.keyx.symmetric_wrapped import SymmetricWrappedExchange, SymmetricWrappedRequest, SymmetricWrappedResponse
from missile.messages.header import HeaderData
from missile.messages.payload import PayloadChunk
from missile.profiles import context_from_keyfile
from missile.stores.memory import InMemoryStore
from missile.stores.sqlite import SqliteStore
from missile.tokens._common import sign_token_data
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken
from missile.userauth.config import user_auth_from_keyfile
from missile.userauth.email_password import (
    EmailPasswordAuthData,
    EmailPasswordAuthFactory,
    InMemoryEmailPasswordStore,
)

SRC = Path(__file__).resolve().parent.parent / "src" / "missile"
DAY_MS = 24 * 3600 * 1000


def _key(label: str, n: int = 16) -> bytes:
    """A distinctive, reproducible key."""
    return hashlib.sha256(label.encode()).digest()[:n]


# -- the secrets ---------------------------------------------------------------------

KPE = _key("psk encryption key")
KPH = _key("psk hmac key", 32)
KPW = b"\x5a" * 16  # PSK wrapping key
MSL_E = _key("msl encryption key")
MSL_H = _key("msl hmac key", 32)
MSL_W = _key("msl wrap key")
SESSION_E = _key("session encryption key")
SESSION_H = _key("session hmac key", 32)
ST_E = _key("service token encryption key")
ST_H = _key("service token hmac key", 32)
BAD_KEY = _key("a key of a bad size", 15)
DH_X = int.from_bytes(_key("diffie-hellman private value", 32), "big")
EMAIL = "secret-user@example.com"
PASSWORD = "hunter2-SECRET-pw"
WRONG_PASSWORD = "wrong-hunter3-SECRET"
TOKEN_PLAINTEXT = b"service-token-PLAINTEXT-4f1c9e"
APP_PLAINTEXT = b"application-PLAINTEXT-88d1c7"


def _text_forms(data: bytes, text: str | None = None) -> set[str]:
    forms = {
        repr(data),
        repr(data)[2:-1],
        data.hex(),
        data.hex().upper(),
        base64.b64encode(data).decode(),
        base64.b64encode(data).decode().rstrip("="),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        str(list(data)),
    }
    if text is not None:
        forms |= {text, repr(text)}
    # A truncated or elided rendering still leaks: the first half of every long form too.
    forms |= {form[: len(form) // 2] for form in list(forms) if len(form) >= 16}
    return {form for form in forms if len(form) >= 8}


def _int_forms(value: int) -> set[str]:
    data = value.to_bytes((value.bit_length() + 7) // 8, "big")
    decimal, low, high = str(value), f"{value:x}", f"{value:X}"
    return _text_forms(data) | {decimal, low, high, decimal[: len(decimal) // 2], low[: len(low) // 2]}


class Secrets:
    """Every textual form of every registered secret, by form."""

    def __init__(self, base: Secrets | None = None) -> None:
        self._forms: dict[str, str] = dict(base._forms) if base is not None else {}

    def add(self, label: str, value: bytes | str | int) -> None:
        if isinstance(value, int):
            forms = _int_forms(value)
        elif isinstance(value, str):
            forms = _text_forms(value.encode("utf-8", "surrogatepass"), value)
        else:
            forms = _text_forms(value, value.decode("ascii") if value.isascii() else None)
        self.add_forms(label, forms)

    def add_forms(self, label: str, forms: Iterable[str]) -> None:
        for form in forms:
            self._forms.setdefault(form, label)

    def found_in(self, text: str) -> list[str]:
        return sorted({f"{label} (as {form!r})" for form, label in self._forms.items() if form in text})

    def check(self, text: str, where: str) -> None:
        leaks = self.found_in(text)
        assert not leaks, f"{where} leaks {leaks}:\n{text}"


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    der, pkcs8 = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
    return key.private_bytes(der, pkcs8, serialization.NoEncryption())


def _spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _add_private_key(secrets: Secrets, label: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    der = _pkcs8(key)
    secrets.add_forms(f"{label} PKCS#8", _text_forms(der))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    body = "".join(pem.decode().splitlines()[1:-1])
    secrets.add_forms(f"{label} PEM", [body[: len(body) // 2]])
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        for name in ("d", "p", "q", "dmp1", "dmq1", "iqmp"):
            secrets.add(f"{label} {name}", getattr(numbers, name))
    else:
        secrets.add(f"{label} private value", key.private_numbers().private_value)


@cache
def static_secrets() -> Secrets:
    secrets = Secrets()
    values: dict[str, bytes | str | int] = {
        "Kpe": KPE,
        "Kph": KPH,
        "Kpw": KPW,
        "MSL encryption key": MSL_E,
        "MSL HMAC key": MSL_H,
        "MSL wrap key": MSL_W,
        "session encryption key": SESSION_E,
        "session HMAC key": SESSION_H,
        "service token encryption key": ST_E,
        "service token HMAC key": ST_H,
        "bad-size key": BAD_KEY,
        "DH private value": DH_X,
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "service token plaintext": TOKEN_PLAINTEXT,
        "application plaintext": APP_PLAINTEXT,
    }
    for label, value in values.items():
        secrets.add(label, value)
    _add_private_key(secrets, "RSA key", rsa_key())
    _add_private_key(secrets, "other RSA key", other_rsa_key())
    _add_private_key(secrets, "EC key", ec_key())
    return secrets


def test_the_forms_catch_what_they_must() -> None:
    """The search itself: every rendering of a secret is found, harmless text is not."""
    secrets = static_secrets()
    for rendering in (
        repr(KPW),
        KPW.hex(),
        base64.b64encode(KPW).decode(),
        base64.urlsafe_b64encode(KPE).decode(),
        str(list(KPH)),
        f"password={PASSWORD!r}",
        repr(TOKEN_PLAINTEXT)[:20] + "...",
        str(rsa_key().private_numbers().d),
        f"{DH_X:x}",
    ):
        assert secrets.found_in(rendering), rendering
    assert not secrets.found_in(repr(SymmetricCryptoContext("kid", KPE, KPH, KPW)))
    assert not secrets.found_in("MasterToken(serial=42, seq=1, identity='client1')")


# -- the objects holding secrets -------------------------------------------------------


class _FixedRandom:
    def random_bytes(self, n: int) -> bytes:
        return bytes(range(1, n + 1))


FIXED_RANDOM = _FixedRandom()


def _psk_context() -> SymmetricCryptoContext:
    return SymmetricCryptoContext("client1", KPE, KPH, KPW, random=FIXED_RANDOM)


def _msl_context() -> SymmetricCryptoContext:
    return SymmetricCryptoContext("server1", MSL_E, MSL_H, MSL_W, random=FIXED_RANDOM)


def _st_context() -> SymmetricCryptoContext:
    return SymmetricCryptoContext("st", ST_E, ST_H)


def _master_token(encryption_key: bytes = SESSION_E) -> MasterToken:
    return MasterToken.create(
        _msl_context(),
        renewal_window_ms=T0 + DAY_MS,
        expiration_ms=T0 + 2 * DAY_MS,
        sequence_number=1,
        serial_number=42,
        identity="client1",
        encryption_key=encryption_key,
        signature_key=SESSION_H,
    )


def _user_id_token() -> UserIdToken:
    return UserIdToken.create(
        _msl_context(),
        renewal_window_ms=T0 + DAY_MS,
        expiration_ms=T0 + 2 * DAY_MS,
        master_token=_master_token(),
        serial_number=7,
        user=MslUser(EMAIL),
    )


def _dh_spec() -> DhParameterSpec:
    params = keyfile(SERVER_VECTOR).dh_parameters[0]
    return DhParameterSpec(params.p, params.g)


def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secrets-test")])
    now = datetime.fromtimestamp(T0 / 1000, UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _keyfile_dict() -> dict[str, Any]:
    """A key file using every secret-bearing member."""
    spec = _dh_spec()
    return {
        "role": "server",
        "identity": "server1",
        "entity_auth": {"scheme": "PSK", "identity": "client1"},
        "msl_token_keys": {
            "keyid": "server1",
            "encryption_b64": _b64(MSL_E),
            "hmac_b64": _b64(MSL_H),
            "wrap_b64": _b64(MSL_W),
        },
        "psk": [{"identity": "client1", "encryption_b64": _b64(KPE), "hmac_b64": _b64(KPH), "wrap_b64": _b64(KPW)}],
        "rsa": [{"keypairid": "rsakey", "public_b64": _b64(_spki(rsa_key())), "private_b64": _b64(_pkcs8(rsa_key()))}],
        "users": [{"email": EMAIL, "password": PASSWORD, "user": "alice"}],
        "dh_parameters": [{"id": "dh1", "p_hex": f"{spec.p:x}", "g_hex": f"{spec.g:x}"}],
        "service_token_keys": [{"name": "", "keyid": "st", "encryption_b64": _b64(ST_E), "hmac_b64": _b64(ST_H)}],
        "master_tokens": [
            {
                "mastertoken_b64": _b64(encode(_master_token().to_msl())),
                "identity": "client1",
                "encryption_b64": _b64(SESSION_E),
                "hmac_b64": _b64(SESSION_H),
            }
        ],
        "key_request_data": [
            {
                "scheme": "ASYMMETRIC_WRAPPED",
                "keypairid": "kp",
                "mechanism": "JWK_RSA",
                "public_b64": _b64(_spki(rsa_key())),
                "private_b64": _b64(_pkcs8(rsa_key())),
            },
            {
                "scheme": "DIFFIE_HELLMAN",
                "parametersid": "dh1",
                "p_hex": f"{spec.p:x}",
                "g_hex": f"{spec.g:x}",
                "public_hex": f"{public_value(spec, DH_X):x}",
                "private_x_hex": f"{DH_X:x}",
            },
        ],
        "wrap_keys": [{"scheme": "JWE_LADDER", "wrapdata_b64": _b64(b"opaque wrapdata"), "wrapkey_b64": _b64(KPW)}],
    }


def _crypto_contexts(_: Path) -> list[object]:
    key = rsa_key()
    return [
        _psk_context(),
        SymmetricCryptoContext("cmac", KPE, KPW, signature_algorithm="AESCmac"),
        SessionCryptoContext("client1", 3, SESSION_E, SESSION_H),
        session_crypto_context(None, 3, SESSION_E, SESSION_H),
        AesKwJwkCryptoContext(KPW),
        AesKwJwkCryptoContext(_psk_context()),
        AesKwCekContext(KPW),
        AesKwCekContext(_psk_context()),
        RsaOaepCekContext(key, key.public_key()),
        JweCryptoContext(AesKwCekContext(KPW), JweEncryption.A128GCM, JweFormat.JWE_JS),
        JweCryptoContext(RsaOaepCekContext(key, key.public_key()), JweEncryption.A128GCM, JweFormat.JWE_CS),
        jwe_ladder_key_context(KPW),
        jwk_ladder_key_context(KPW),
        RsaCryptoContext("rsa", key, key.public_key()),
        RsaCryptoContext("rsa", key, key.public_key(), RsaMode.ENCRYPT_DECRYPT_OAEP),
        RsaWrappingCryptoContext("rsa", key, key.public_key()),
        EccCryptoContext("ecc", ec_key(), ec_key().public_key()),
        NullCryptoContext(),
        ClientMslCryptoContext(),
    ]


def _keys(_: Path) -> list[object]:
    key = rsa_key()
    return [
        JsonWebKey.symmetric(KPE, use=JwkUsage.ENC, alg=JwkAlgorithm.A128CBC, kid="k1"),
        JsonWebKey.rsa(key.public_key(), key),
        JsonWebKey.parse(JsonWebKey.rsa(key.public_key(), key).encode()),
        JsonWebKey(JwkType.OCT, key=SESSION_H),
        session_encryption_jwk(SESSION_E),
        session_hmac_jwk(SESSION_H, with_key_ops=True),
        JsonWebKey.parse(session_hmac_jwk(SESSION_H).encode()),
        jwe_ladder_wrapping_jwk(KPW, "-42"),
        jwk_ladder_wrapping_jwk(KPW),
        SessionKeys(SESSION_E, SESSION_H),
        KeySet(KPE, KPH, KPW),
        KeySet(KPE, KPH),
    ]


def _entity_auth(_: Path) -> list[object]:
    key = rsa_key()
    psk_store = InMemoryKeySetStore()
    psk_store.add("client1", KPE, KPH, KPW)
    rsa_store = InMemoryRsaStore()
    rsa_store.add("rsakey", private_key=key)
    rsa_store.add_der("rsakey2", _spki(key), _pkcs8(key))
    ecc_store = InMemoryEccStore()
    ecc_store.add("ecckey", private_key=ec_key())
    x509_store = InMemoryX509Store()
    x509_store.set_private_key(_certificate(key), key)
    return [
        psk_store,
        psk_store.get_keys("client1"),
        psk_store.wrap_crypto_context("client1"),
        PskEntityAuthFactory(psk_store),
        PskProfileEntityAuthFactory(psk_store),
        rsa_store,
        RsaEntityAuthFactory(rsa_store, "rsakey"),
        ecc_store,
        EccEntityAuthFactory(ecc_store, "ecckey"),
        x509_store,
        PskEntityAuthData("client1"),
    ]


def _key_exchange(_: Path) -> list[object]:
    key = rsa_key()
    spec = _dh_spec()
    token = _master_token()
    repository = InMemoryWrapCryptoContextRepository()
    repository.add_crypto_context(b"opaque wrapdata", jwe_ladder_key_context(KPW))
    return [
        AsymmetricWrappedRequest("kp", "JWK_RSA", key.public_key(), key),
        AsymmetricWrappedResponse(token, "kp", b"wrapped-e", b"wrapped-h"),
        DiffieHellmanRequest("dh1", public_value(spec, DH_X), DH_X, spec),
        DiffieHellmanResponse(token, "dh1", public_value(spec, DH_X)),
        SymmetricWrappedRequest("PSK"),
        SymmetricWrappedResponse(token, "PSK", aes_key_wrap(KPW, SESSION_E), aes_key_wrap(KPW, SESSION_H)),
        JweLadderRequest("WRAP", b"opaque wrapdata"),
        JwkLadderRequest("PSK"),
        JweLadderResponse(token, b"wrapped-w", b"opaque wrapdata", b"wrapped-e", b"wrapped-h"),
        KeyExchangeResult(DiffieHellmanResponse(token, "dh1", 5), SessionCryptoContext(None, 1, SESSION_E, SESSION_H)),
        StaticPskWrapKeyLookup({"client1": KPW}),
        StaticPskWrapKeyLookup.from_key_sets([PskKeySet("client1", KPE, KPH)]),
        repository,
        SymmetricWrappedExchange(StaticPskWrapKeyLookup({"client1": KPW})),
        JweLadderExchange(StaticPskWrapKeyLookup({"client1": KPW}), repository),
    ]


def _tokens(_: Path) -> list[object]:
    msl = _msl_context()
    token = _master_token()
    uit = _user_id_token()
    st = ServiceToken.create("app-session", TOKEN_PLAINTEXT, _st_context(), master_token=token, user_id_token=uit)
    return [
        token,
        MasterToken.parse(decode(encode(token.to_msl())), msl),
        MasterToken.parse(decode(encode(token.to_msl())), ClientMslCryptoContext()),
        uit,
        UserIdToken.parse(decode(encode(uit.to_msl())), msl, token),
        st,
        ServiceToken.parse(decode(encode(st.to_msl())), {"": _st_context()}, token, uit),
        ServiceToken.create("plain", TOKEN_PLAINTEXT, _st_context(), encrypted=False),
        sign_token_data(msl, T0, T0, (1, 2), ("a", "b"), "sessiondata", TOKEN_PLAINTEXT + SESSION_E),
    ]


def _user_auth(_: Path) -> list[object]:
    store = InMemoryEmailPasswordStore()
    store.add(EMAIL, PASSWORD)
    data = EmailPasswordAuthData(EMAIL, PASSWORD)
    return [
        data,
        store,
        EmailPasswordAuthFactory(store),
        UserEntry(EMAIL, PASSWORD, "alice"),
        MessageOptions(user_id="alice", user_auth=data),
        MessageOptions(user_auth=lambda code: data, service_token_contexts={"": _st_context()}),
        HeaderData(message_id=1, user_auth_data=data, key_request_data=(JweLadderRequest("PSK"),)),
        SendSettings(url="http://localhost", keys_path="keys.json", user=EMAIL, password=PASSWORD),
        MslUserAuthException(MslError.EMAILPASSWORD_INCORRECT).set_user_auth_data(data),
    ]


def _key_file(_: Path) -> list[object]:
    keys = KeyFile.from_dict(_keyfile_dict())
    built = context_from_keyfile(keys)
    return [
        keys,
        keys.token_keys,
        *keys.psk,
        *keys.rsa,
        *keys.users,
        *keys.service_token_keys,
        *keys.master_tokens,
        keys.msl_crypto_context(),
        keys.service_token_crypto_contexts(),
        key_request_data_from_keyfile(keys),
        wrap_repository_from_keyfile(keys),
        entity_auth_from_keyfile(keys),
        user_auth_from_keyfile(keys),
        key_exchange_from_keyfile(keys),
        built,
        built.ctx,
        built.key_request_data,
    ]


def _context_and_stores(tmp_path: Path) -> list[object]:
    token = _master_token()
    session = SessionCryptoContext("client1", 1, SESSION_E, SESSION_H)
    memory = InMemoryStore()
    memory.set_crypto_context(token, session)
    sqlite = SqliteStore(tmp_path / "state.db")
    sqlite.set_crypto_context(token, session)
    psk_store = InMemoryKeySetStore()
    psk_store.add("client1", KPE, KPH, KPW)
    users = InMemoryEmailPasswordStore()
    users.add(EMAIL, PASSWORD)
    ctx = MslContext(
        msl_crypto=_msl_context(),
        entity_auth_data=PskEntityAuthData("client1"),
        entity_auth_factories={"PSK": PskEntityAuthFactory(psk_store)},
        user_auth_factories={"EMAIL_PASSWORD": EmailPasswordAuthFactory(users)},
        token_factory=TokenFactory(),
        store=memory,
    )
    return [
        memory,
        memory.get_crypto_context(token),
        sqlite,
        sqlite.get_crypto_context(token),
        sqlite.get_master_token(),
        ctx,
        ctx.session_crypto_context(token),
        PayloadChunk(1, 1, True, None, APP_PLAINTEXT),
        MslMasterTokenException(MslError.MASTERTOKEN_UNTRUSTED).set_master_token(token),
    ]


HOLDERS: dict[str, Callable[[Path], list[object]]] = {
    "crypto contexts": _crypto_contexts,
    "keys and key sets": _keys,
    "entity authentication": _entity_auth,
    "key exchange": _key_exchange,
    "tokens": _tokens,
    "user authentication": _user_auth,
    "key file": _key_file,
    "context and stores": _context_and_stores,
}


def _renderings(obj: object) -> Iterable[tuple[str, str]]:
    yield "repr", repr(obj)
    yield "str", str(obj)
    yield "format", f"{obj}"


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_repr_and_str_show_no_secret(holder: str, tmp_path: Path) -> None:
    secrets = static_secrets()
    objects = HOLDERS[holder](tmp_path)
    assert objects
    for obj in objects:
        for kind, text in _renderings(obj):
            secrets.check(text, f"{kind} of {type(obj).__name__}")


# -- failures provoked with the secrets ------------------------------------------------


def _decrypt_with_wrong_key() -> None:
    ciphertext = _psk_context().encrypt(TOKEN_PLAINTEXT)
    _msl_context().decrypt(ciphertext)


def _jwe_unwrap_with_wrong_key() -> None:
    wrapped = jwe_ladder_key_context(KPW).wrap(session_encryption_jwk(SESSION_E).encode())
    jwe_ladder_key_context(MSL_W).unwrap(wrapped)


def _jwe_rsa_unwrap_with_wrong_key() -> None:
    sender = JweCryptoContext(RsaOaepCekContext(None, rsa_key().public_key()), JweEncryption.A128GCM, JweFormat.JWE_CS)
    receiver = JweCryptoContext(RsaOaepCekContext(other_rsa_key(), None), JweEncryption.A128GCM, JweFormat.JWE_CS)
    receiver.unwrap(sender.wrap(session_hmac_jwk(SESSION_H).encode()))


def _jwk_ladder_unwrap_with_wrong_key() -> None:
    wrapped = AesKwJwkCryptoContext(KPW).wrap(session_hmac_jwk(SESSION_H).encode())
    AesKwJwkCryptoContext(MSL_W).unwrap(wrapped)


def _rsa_decrypt_with_wrong_key() -> None:
    ciphertext = RsaCryptoContext("k", None, rsa_key().public_key(), RsaMode.ENCRYPT_DECRYPT_OAEP).encrypt(SESSION_E)
    RsaCryptoContext("k", other_rsa_key(), None, RsaMode.ENCRYPT_DECRYPT_OAEP).decrypt(ciphertext)


def _rsa_unwrap_with_wrong_key() -> None:
    wrapped = RsaWrappingCryptoContext("k", None, rsa_key().public_key()).wrap(SESSION_H)
    RsaWrappingCryptoContext("k", other_rsa_key(), None).unwrap(wrapped)


def _jwk_with_unknown_algorithm() -> None:
    jwk = session_encryption_jwk(SESSION_E).to_dict()
    jwk["alg"] = "A999KW"
    JsonWebKey.parse(json.dumps(jwk).encode())


def _jwk_with_broken_rsa_private_key() -> None:
    numbers = rsa_key().private_numbers()
    JsonWebKey(JwkType.RSA, n=numbers.public_numbers.n, e=numbers.public_numbers.e, d=numbers.d + 2).rsa_private_key()


def _password_check(email: str, password: str) -> None:
    store = InMemoryEmailPasswordStore()
    store.add(EMAIL, PASSWORD)
    ctx = MslContext(msl_crypto=NullCryptoContext())
    EmailPasswordAuthFactory(store).authenticate(ctx, "client1", EmailPasswordAuthData(email, password), None)


def _master_token_with_bad_session_key() -> None:
    token = _master_token(encryption_key=BAD_KEY)
    MasterToken.parse(decode(encode(token.to_msl())), _msl_context())


def _master_token_under_other_keys() -> None:
    token = _master_token()
    other = SymmetricCryptoContext("server1", SESSION_E, MSL_H)  # verifies, cannot decrypt
    MasterToken.parse(decode(encode(token.to_msl())), other)


def _key_file_entry(**entry: Any) -> None:
    KeyFile.from_dict({"role": "client", "identity": "client1", "psk": [entry]})


def _key_file_not_json(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(_keyfile_dict())[:-40])
    KeyFile.load(path)


def _dh_key_request_with_bad_private_value() -> None:
    spec = _dh_spec()
    entry = {
        "scheme": "DIFFIE_HELLMAN",
        "parametersid": "dh1",
        "p_hex": f"{spec.p:x}",
        "g_hex": f"{spec.g:x}",
        "public_hex": f"{public_value(spec, DH_X):x}",
        "private_x_hex": f"{DH_X:x}-",
    }
    key_request_data_from_keyfile(KeyFile.from_dict({"role": "client", "identity": "c", "key_request_data": [entry]}))


def _asymmetric_request_with_truncated_private_key() -> None:
    AsymmetricWrappedRequest.from_der("kp", "JWK_RSA", _spki(rsa_key()), _pkcs8(rsa_key())[:-9])


def _rsa_store_with_truncated_private_key() -> None:
    InMemoryRsaStore().add_der("kp", None, _pkcs8(rsa_key())[:-9])


def _requester_context() -> MslContext:
    return MslContext(msl_crypto=ClientMslCryptoContext(), entity_auth_data=PskEntityAuthData("client1"))


def _symmetric_wrapped_with_wrong_psk() -> None:
    response = SymmetricWrappedResponse(
        _master_token(), "PSK", aes_key_wrap(KPW, SESSION_E), aes_key_wrap(KPW, SESSION_H)
    )
    exchange = SymmetricWrappedExchange(StaticPskWrapKeyLookup({"client1": MSL_W}))
    exchange.crypto_context(_requester_context(), SymmetricWrappedRequest("PSK"), response, None)


def _jwe_ladder_with_wrong_psk() -> None:
    wrap_key = jwe_ladder_key_context(KPW).wrap(jwe_ladder_wrapping_jwk(SESSION_E, "1").encode())
    response = JweLadderResponse(_master_token(), wrap_key, b"opaque wrapdata", b"e", b"h")
    exchange = JweLadderExchange(StaticPskWrapKeyLookup({"client1": MSL_W}), InMemoryWrapCryptoContextRepository())
    exchange.crypto_context(_requester_context(), JweLadderRequest("PSK"), response, None)


FAILURES: dict[str, Callable[[Path], object]] = {
    "AES key of a bad size": lambda _: SymmetricCryptoContext("k", BAD_KEY),
    "CMAC key of a bad size": lambda _: SymmetricCryptoContext("k", None, BAD_KEY, signature_algorithm="AESCmac"),
    "wrap key of a bad size": lambda _: SymmetricCryptoContext("k", wrap_key=BAD_KEY),
    "AES-KW JWK context key of a bad size": lambda _: AesKwJwkCryptoContext(BAD_KEY),
    "A128KW key of a bad size": lambda _: AesKwCekContext(BAD_KEY),
    "decrypt with the wrong key": lambda _: _decrypt_with_wrong_key(),
    "decrypt without a key": lambda _: SymmetricCryptoContext("k", signature_key=KPH).decrypt(b"{}"),
    "key wrap of a bad-size key": lambda _: aes_key_wrap(KPW, BAD_KEY),
    "key unwrap with the wrong key": lambda _: aes_key_unwrap(MSL_W, aes_key_wrap(KPW, SESSION_H)),
    "key unwrap under a bad-size key": lambda _: aes_key_unwrap(BAD_KEY, aes_key_wrap(KPW, SESSION_H)),
    "JWE unwrap with the wrong key": lambda _: _jwe_unwrap_with_wrong_key(),
    "JWE RSA unwrap with the wrong key": lambda _: _jwe_rsa_unwrap_with_wrong_key(),
    "JWK ladder unwrap with the wrong key": lambda _: _jwk_ladder_unwrap_with_wrong_key(),
    "RSA decrypt with the wrong key": lambda _: _rsa_decrypt_with_wrong_key(),
    "RSA unwrap with the wrong key": lambda _: _rsa_unwrap_with_wrong_key(),
    "RSA encrypt of too much plaintext": lambda _: RsaWrappingCryptoContext("k", None, rsa_key().public_key()).wrap(
        TOKEN_PLAINTEXT * 10
    ),
    "JWK with an unknown algorithm": lambda _: _jwk_with_unknown_algorithm(),
    "JWK with a broken RSA private key": lambda _: _jwk_with_broken_rsa_private_key(),
    "secret of an RSA JWK": lambda _: JsonWebKey.rsa(rsa_key().public_key(), rsa_key()).secret_key(),
    "wrapping key derivation without HMAC key": lambda _: derive_wrapping_key(KPE, b""),
    "wrong password": lambda _: _password_check(EMAIL, WRONG_PASSWORD),
    "unknown user": lambda _: _password_check("nobody@example.com", PASSWORD),
    "password with a lone surrogate": lambda _: _password_check(EMAIL, PASSWORD + "\ud800"),
    "master token with a bad session key": lambda _: _master_token_with_bad_session_key(),
    "master token under other keys": lambda _: _master_token_under_other_keys(),
    "key file: bad base64": lambda _: _key_file_entry(identity="c", encryption_b64=_b64(KPE), hmac_b64="!" + _b64(KPH)),
    "key file: entry without identity": lambda _: _key_file_entry(encryption_b64=_b64(KPE), hmac_b64=_b64(KPH)),
    "key file: not JSON": _key_file_not_json,
    "key file: bad DH private value": lambda _: _dh_key_request_with_bad_private_value(),
    "truncated private key in a key request": lambda _: _asymmetric_request_with_truncated_private_key(),
    "truncated private key in an RSA store": lambda _: _rsa_store_with_truncated_private_key(),
    "RSA key in an ECC store": lambda _: InMemoryEccStore().add("kp", private_key=rsa_key()),
    "DH peer value out of range": lambda _: shared_secret(_dh_spec(), DH_X, 1),
    "SYMMETRIC_WRAPPED with the wrong PSK": lambda _: _symmetric_wrapped_with_wrong_psk(),
    "JWE_LADDER with the wrong PSK": lambda _: _jwe_ladder_with_wrong_psk(),
}


def _exception_texts(exc: BaseException) -> Iterable[tuple[str, str]]:
    yield "str", str(exc)
    yield "repr", repr(exc)
    yield "traceback", "".join(traceback.format_exception(exc))
    if isinstance(exc, MslException):
        yield "detail", exc.detail or ""
        for name in ("master_token", "entity_auth_data", "user_id_token", "user_auth_data"):
            yield name, repr(getattr(exc, name))


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failures_show_no_secret(failure: str, tmp_path: Path) -> None:
    secrets = static_secrets()
    with pytest.raises(Exception) as info:
        FAILURES[failure](tmp_path)
    exc = info.value
    assert isinstance(exc, MslException | ValueError), repr(exc)
    for kind, text in _exception_texts(exc):
        secrets.check(text, f"{kind} of {failure!r}")


def test_password_failures_raise_the_user_auth_errors() -> None:
    for email, password in ((EMAIL, WRONG_PASSWORD), ("nobody@example.com", PASSWORD), (EMAIL, PASSWORD + "\ud800")):
        with pytest.raises(MslUserAuthException) as info:
            _password_check(email, password)
        assert info.value.error is MslError.EMAILPASSWORD_INCORRECT


# -- a full exchange: logs and the server's error messages -----------------------------

FAIL_INTERNAL = b"please fail: internal"
FAIL_CRYPTO = b"please fail: crypto"


def _exchange_secrets(pair: Pair) -> Secrets:
    """The static secrets plus the vector keys and this exchange's session keys."""
    extra = Secrets(static_secrets())
    server, client = keyfile(SERVER_VECTOR), keyfile(CLIENT_VECTORS["PSK"])
    for keys in (server, client):
        for psk in keys.psk:
            extra.add("vector PSK Kpe", psk.encryption_key)
            extra.add("vector PSK Kph", psk.hmac_key)
            if psk.wrap_key is not None:
                extra.add("vector PSK Kpw", psk.wrap_key)
        if keys.token_keys is not None:
            extra.add("vector MSL encryption key", keys.token_keys.encryption_key)
            extra.add("vector MSL HMAC key", keys.token_keys.hmac_key)
        for st in keys.service_token_keys:
            extra.add("vector service token key", st.encryption_key)
            extra.add("vector service token HMAC key", st.hmac_key)
        for pair_keys in keys.rsa:
            if pair_keys.private_der is not None:
                extra.add_forms(f"vector RSA private key {pair_keys.key_pair_id}", _text_forms(pair_keys.private_der))
        for user in keys.users:
            extra.add("vector user password", user.password)
    store = pair.store
    token = store.get_master_token()
    assert token is not None
    session = store.get_crypto_context(token)
    assert isinstance(session, SymmetricCryptoContext)
    assert session.encryption_key is not None and session.signature_key is not None
    extra.add("session encryption key", session.encryption_key)
    extra.add("session HMAC key", session.signature_key)
    return extra


def _make_exchange_pair(handler: Callable[[Request], Any]) -> Pair:
    pair = make_pair(
        "PSK", "SYMMETRIC_WRAPPED", handler=handler, server_kwargs={"service_token_contexts": {"": _st_context()}}
    )
    factory = pair.server_ctx.user_auth_factories["EMAIL_PASSWORD"]
    assert isinstance(factory, EmailPasswordAuthFactory)
    assert isinstance(factory.store, InMemoryEmailPasswordStore)
    factory.store.add(EMAIL, PASSWORD)
    return pair


async def _app(request: Request) -> Reply:
    if request.payload == FAIL_INTERNAL:
        raise RuntimeError("the backend is unavailable")
    if request.payload == FAIL_CRYPTO:
        _msl_context().decrypt(_psk_context().encrypt(TOKEN_PLAINTEXT))
    token = ServiceToken.create("app-session", TOKEN_PLAINTEXT, _st_context())
    return Reply(data=b"ok " + request.payload, service_tokens=[token])


def test_a_full_exchange_logs_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="missile")
    failures: list[MslException] = []

    async def go() -> tuple[Pair, tuple[Response, Response]]:
        pair = _make_exchange_pair(_app)
        with_password = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(EMAIL, PASSWORD))
        first = await pair.client.request(APP_PLAINTEXT, with_password)
        user = pair.handled[0].user
        assert user is not None and user.identity == EMAIL
        second = await pair.client.request(APP_PLAINTEXT, MessageOptions(user_id="alice"))
        assert second.payload == b"ok " + APP_PLAINTEXT
        # The service token came back and the server opened it: the plaintext went through.
        assert [st.data for st in pair.handled[-1].service_tokens] == [TOKEN_PLAINTEXT]
        for payload, options in (
            (APP_PLAINTEXT, MessageOptions(user_id="bob", user_auth=EmailPasswordAuthData(EMAIL, WRONG_PASSWORD))),
            (FAIL_INTERNAL, MessageOptions(user_id="alice")),
            (FAIL_CRYPTO, MessageOptions(user_id="alice")),
        ):
            with pytest.raises(MslErrorResponse) as info:
                await pair.client.request(payload, options)
            failures.append(info.value)
        return pair, (first, second)

    pair, responses = run(go())
    assert [f.error for f in failures] == [
        MslError.EMAILPASSWORD_INCORRECT,
        MslError.INTERNAL_EXCEPTION,
        MslError.CIPHERTEXT_BAD_PADDING,
    ]
    secrets = _exchange_secrets(pair)

    # Logs: the server did log (the failures), and no record carries a secret.
    records = [r for r in caplog.records if r.name.startswith("missile")]
    assert records and any(r.exc_info for r in records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        secrets.check(formatter.format(record), f"log record of {record.name}")

    # Everything the exchange left behind renders without secrets (application payloads
    # included, except in Request, whose payload is the handler's own input).
    store = pair.store
    token = store.get_master_token()
    uit = store.get_user_id_token("alice")
    held: list[object] = [
        pair.client_ctx,
        pair.server_ctx,
        pair.server,
        store,
        token,
        store.get_crypto_context(token),
        uit,
        *store.get_service_tokens(token, uit),
        *responses,
        *(r.header for r in responses),
        *(request.header for request in pair.handled),
        *(seen.request for seen in pair.seen),
    ]
    for exc in failures:
        held += [exc, exc.error_header]
    for obj in held:
        for kind, text in _renderings(obj):
            secrets.check(text, f"{kind} of {type(obj).__name__}")
    for exc in failures:
        for kind, text in _exception_texts(exc):
            secrets.check(text, f"{kind} of {exc.error.name}")


class _Leaky(Exception):
    pass


HANDLER_FAILURES: dict[str, Callable[[], BaseException]] = {
    "application exception": lambda: RuntimeError(f"database login {EMAIL}:{PASSWORD} refused"),
    "application exception with key bytes": lambda: _Leaky(repr(KPE), KPH.hex()),
    "crypto failure with key in the detail": lambda: MslCryptoException(MslError.DECRYPT_ERROR, f"key {KPE.hex()}"),
    "MSL failure with plaintext in the detail": lambda: MslException(
        MslError.INTERNAL_EXCEPTION, TOKEN_PLAINTEXT.decode()
    ),
    "user rejection with password in the detail": lambda: MslUserAuthException(
        MslError.USER_REJECTED_BY_APP, PASSWORD
    ).set_user_auth_data(EmailPasswordAuthData(EMAIL, PASSWORD)),
}


def _error_data_text(response_bytes: bytes) -> str:
    """The error data the server sent, as text (an RSA server's error data is not encrypted)."""
    outer = json.loads(response_bytes)
    return base64.b64decode(outer["errordata"]).decode("utf-8")


@pytest.mark.parametrize("failure", sorted(HANDLER_FAILURES))
def test_the_servers_error_message_carries_no_internal_detail(failure: str) -> None:
    async def handler(request: Request) -> Reply:
        raise HANDLER_FAILURES[failure]()

    async def go() -> tuple[Pair, MslErrorResponse]:
        pair = _make_exchange_pair(handler)
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(EMAIL, PASSWORD))
        with pytest.raises(MslErrorResponse) as info:
            await pair.client.request(APP_PLAINTEXT, options)
        return pair, info.value

    pair, exc = run(go())
    secrets = static_secrets()
    header = exc.error_header
    wire = _error_data_text(pair.seen[-1].response_bytes)
    for kind, text in (
        ("error data on the wire", wire),
        ("error message", header.error_message or ""),
        ("user message", header.user_message or ""),
        ("error header", repr(header)),
        *_exception_texts(exc),
    ):
        secrets.check(text, f"{kind} ({failure})")
    # The developer message is the error's fixed description, never the exception's text.
    assert header.error is not None
    assert header.error_message == header.error.message
    assert json.loads(wire)["errormsg"] == header.error_message


def test_a_wrong_password_is_not_echoed_on_the_wire() -> None:
    async def go() -> tuple[Pair, MslErrorResponse]:
        pair = _make_exchange_pair(_app)
        options = MessageOptions(user_id="bob", user_auth=EmailPasswordAuthData(EMAIL, WRONG_PASSWORD))
        with pytest.raises(MslErrorResponse) as info:
            await pair.client.request(APP_PLAINTEXT, options)
        return pair, info.value

    pair, exc = run(go())
    assert exc.error is MslError.EMAILPASSWORD_INCORRECT
    wire = _error_data_text(pair.seen[-1].response_bytes)
    static_secrets().check(wire, "error data on the wire")
    static_secrets().check(str(exc), "the client's exception")


# -- constant-time comparisons ---------------------------------------------------------


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Record every hmac.compare_digest call (the comparison still happens)."""
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((bytes(a), bytes(b)))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    return calls


MAC_CONTEXTS = {
    "HMAC-SHA256": lambda: SymmetricCryptoContext("k", KPE, KPH),
    "AES-CMAC": lambda: SymmetricCryptoContext("k", KPE, KPW, signature_algorithm="AESCmac"),
    "session": lambda: SessionCryptoContext("client1", 1, SESSION_E, SESSION_H),
}


@pytest.mark.parametrize("kind", sorted(MAC_CONTEXTS))
def test_mac_verification_compares_with_compare_digest(kind: str, compare_calls: list[tuple[bytes, bytes]]) -> None:
    ctx = MAC_CONTEXTS[kind]()
    data = b"header data"
    tag = ctx.sign(data)
    flipped = bytes([tag[0] ^ 1]) + tag[1:]
    v2 = SignatureEnvelope(tag, EnvelopeVersion.V2, ctx.signature_algorithm).encode()
    cases = [(tag, True), (v2, True), (flipped, False), (tag[:-1], False), (b"", False), (tag + b"\x00", False)]
    for signature, expected in cases:
        compare_calls.clear()
        assert ctx.verify(data, signature) is expected
        assert len(compare_calls) == 1
        computed, given = compare_calls[0]
        assert computed == tag
        assert given == SignatureEnvelope.parse(signature).signature


@pytest.mark.parametrize("kind", sorted(MAC_CONTEXTS))
def test_the_mac_decision_is_compare_digests(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only called: its answer is the answer (no other comparison decides)."""
    ctx = MAC_CONTEXTS[kind]()
    tag = ctx.sign(b"data")
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    assert ctx.verify(b"data", tag) is False
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: True)
    assert ctx.verify(b"data", b"\x00" * len(tag)) is True


def test_the_password_store_compares_with_compare_digest(
    compare_calls: list[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryEmailPasswordStore()
    store.add(EMAIL, PASSWORD, "alice")
    for email, password, expected in (
        (EMAIL, PASSWORD, MslUser("alice")),
        (EMAIL, WRONG_PASSWORD, None),
        (EMAIL, PASSWORD[:-1], None),
        (EMAIL, "", None),
        ("nobody@example.com", PASSWORD, None),
    ):
        compare_calls.clear()
        assert store.is_user(email, password) == expected
        # One comparison of fixed-size digests whatever the input: no length or
        # existence shows in the timing, and the password is never compared as is.
        assert len(compare_calls) == 1
        assert [len(a) for a in compare_calls[0]] == [32, 32]
        assert PASSWORD.encode() not in compare_calls[0]
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    assert store.is_user(EMAIL, PASSWORD) is None


def test_the_password_store_keeps_no_password() -> None:
    store = InMemoryEmailPasswordStore()
    store.add(EMAIL, PASSWORD)
    static_secrets().check(repr(vars(store)), "the password store's state")


def test_email_password_data_equality_is_constant_time(compare_calls: list[tuple[bytes, bytes]]) -> None:
    assert EmailPasswordAuthData(EMAIL, PASSWORD) == EmailPasswordAuthData(EMAIL, PASSWORD)
    assert EmailPasswordAuthData(EMAIL, PASSWORD) != EmailPasswordAuthData(EMAIL, WRONG_PASSWORD)
    assert (PASSWORD.encode(), PASSWORD.encode()) in compare_calls


def test_token_checks_go_through_compare_digest(compare_calls: list[tuple[bytes, bytes]]) -> None:
    token = _master_token()
    uit = _user_id_token()
    st = ServiceToken.create("app-session", TOKEN_PLAINTEXT, _st_context())
    for parse, signature in (
        (lambda: MasterToken.parse(decode(encode(token.to_msl())), _msl_context()), token.signature),
        (lambda: UserIdToken.parse(decode(encode(uit.to_msl())), _msl_context(), token), uit.signature),
        (lambda: ServiceToken.parse(decode(encode(st.to_msl())), {"": _st_context()}), st.signature),
    ):
        compare_calls.clear()
        assert parse().verified
        assert any(given == signature for _, given in compare_calls)


def test_every_mac_check_of_an_exchange_goes_through_compare_digest(
    compare_calls: list[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        pair = _make_exchange_pair(_app)
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(EMAIL, PASSWORD))
        await pair.client.request(APP_PLAINTEXT, options)
        assert compare_calls  # headers, payload chunks, tokens, the password
        assert any(len(a) == 32 and len(b) == 32 for a, b in compare_calls)
        # With every constant-time comparison failing, nothing under a session key verifies.
        monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
        with pytest.raises(MslException):
            await asyncio.wait_for(pair.client.request(b"again", MessageOptions(user_id="alice")), 30)

    run(go())


# -- the source scan -------------------------------------------------------------------

#: Names of values that are (or may be) secret: keys, MACs, passwords, plaintexts.
_SECRET_NAME = re.compile(
    r"(^|_)(signature|sig|tag|mac|hmac|password|passwd|secret|cek|plaintext|wrapdata|digest"
    r"|encryption_key|hmac_key|signature_key|wrap_key|private_key|private_value|session_key|kp[ehw])s?($|_)",
    re.IGNORECASE,
)
_NOT_SECRET = re.compile(r"(algo|algorithm)s?$|^[A-Z0-9_]+$")

#: Comparisons of secret-named values that are not secret comparisons, with the reason.
AUDITED = {
    ("cli/__init__.py", "(user is None) != (password is None)"): "presence check, not a value comparison",
    ("entityauth/stores.py", "tag == _BMP_STRING"): "ASN.1 string tag of a certificate name",
    ("entityauth/stores.py", "tag == _UNIVERSAL_STRING"): "ASN.1 string tag of a certificate name",
    ("keyx/_ladder.py", "req.wrapdata != resp.wrapdata"): "wrapdata is opaque, public ciphertext",
    ("keyx/repository.py", "bytes(wrapdata) in self._contexts"): "wrapdata is opaque, public ciphertext",
}


def _secret_names(node: ast.AST) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Call) and isinstance(current.func, ast.Name) and current.func.id == "len":
            continue  # lengths are public
        if isinstance(current, ast.Compare) and all(isinstance(op, ast.Is | ast.IsNot) for op in current.ops):
            continue  # None checks
        name = None
        if isinstance(current, ast.Name):
            name = current.id
        elif isinstance(current, ast.Attribute):
            name = current.attr  # what is compared is the attribute (``key.key_size`` is public)
        else:
            stack.extend(ast.iter_child_nodes(current))
        if name is not None and _SECRET_NAME.search(name) and not _NOT_SECRET.search(name):
            names.add(name)
    return names


def test_no_variable_time_comparison_of_secret_values() -> None:
    """``==``, ``!=``, ``in`` over secret-named values only where audited as not secret;
    secret values are compared with hmac.compare_digest."""
    found: dict[tuple[str, str], set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
                continue
            names = set().union(*(_secret_names(operand) for operand in (node.left, *node.comparators)))
            if names:
                found[(path.relative_to(SRC).as_posix(), ast.unparse(node))] = names
    unaudited = {key: names for key, names in found.items() if key not in AUDITED}
    assert not unaudited, f"variable-time comparisons of secret-named values: {unaudited}"
