"""Crypto context failure cases the reference probes (SymmetricCryptoContextTest,
SessionCryptoContextTest, RsaCryptoContextSuite, JsonWebEncryptionCryptoContextSuite,
JsonWebKeyTest, MslCiphertextEnvelopeSuite) beyond tests/crypto: the session context's
decryption failures, RSA with mismatched keys, and replaced JWE content keys and IVs in
both serializations with both key-encryption algorithms.

Where missile reports a different internal error than the reference for the same
failure (every one of them answers FAIL), the test names the reference's error in its
docstring and asserts missile's."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from missile.crypto import (
    AesKwCekContext,
    JsonWebKey,
    JweCryptoContext,
    JweEncryption,
    JweFormat,
    JwkAlgorithm,
    RsaOaepCekContext,
    SessionCryptoContext,
    SymmetricCryptoContext,
    aes_key_wrap,
)
from missile.crypto.asymmetric import RsaCryptoContext, RsaMode, rsa_encrypt
from missile.crypto.envelopes import CiphertextEnvelope
from missile.encoding import b64url_encode, encode
from missile.errors import MslCryptoException, MslError

from ._helpers import raises

KE = bytes(range(16))
KH = bytes(range(32, 64))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- symmetric and session contexts ------------------------------------------------------------

CONTEXTS: dict[str, Callable[[bytes], SymmetricCryptoContext]] = {
    "symmetric": lambda ke: SymmetricCryptoContext("k", ke, KH),
    "session": lambda ke: SessionCryptoContext("client1", 3, ke, KH),
}


def _envelope(iv: bytes | None, ciphertext: bytes) -> bytes:
    return encode({"keyid": "k", "iv": iv, "ciphertext": ciphertext, "sha256": b"\x00"})


@pytest.mark.parametrize("kind", list(CONTEXTS))
def test_decrypt_failures(kind: str) -> None:
    """invalidCiphertext, insufficientCiphertext, notEnvelope, corruptEnvelope,
    encryptDecryptKeysMismatch (SessionCryptoContextTest and SymmetricCryptoContextTest)."""
    context = CONTEXTS[kind](KE)
    env = CiphertextEnvelope.parse(context.encrypt(b"sixteen byte msg" * 2))
    assert env.iv is not None
    # A garbled last block fails the padding check.
    garbled = env.ciphertext[:-16] + bytes(16)
    try:
        context.decrypt(_envelope(env.iv, garbled))
    except MslCryptoException as exc:
        assert exc.error is MslError.CIPHERTEXT_BAD_PADDING
    raises(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, context.decrypt, _envelope(env.iv, env.ciphertext[:7]))
    raises(MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR, context.decrypt, b"not an envelope")
    raises(MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR, context.decrypt, b'{"keyid":"k","iv":5}')
    other = CONTEXTS[kind](bytes(16))
    try:
        assert other.decrypt(context.encrypt(b"plaintext")) != b"plaintext"
    except MslCryptoException as exc:
        assert exc.error is MslError.CIPHERTEXT_BAD_PADDING


@pytest.mark.parametrize("kind", list(CONTEXTS))
def test_signature_from_other_key_is_refused(kind: str) -> None:
    context = CONTEXTS[kind](KE)
    other = SymmetricCryptoContext("k", KE, bytes(32))
    assert not context.verify(b"data", other.sign(b"data"))


# -- RSA ------------------------------------------------------------------------------------------


def test_rsa_encrypt_decrypt_keys_mismatch(rsa_key: rsa.RSAPrivateKey) -> None:
    """encryptDecryptKeysMismatch (RSA OAEP)."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sender = RsaCryptoContext("r", None, other.public_key(), RsaMode.ENCRYPT_DECRYPT_OAEP)
    receiver = RsaCryptoContext("r", rsa_key, rsa_key.public_key(), RsaMode.ENCRYPT_DECRYPT_OAEP)
    raises(MslError.CIPHERTEXT_BAD_PADDING, receiver.decrypt, sender.encrypt(b"secret"))


@pytest.mark.parametrize("mode", list(RsaMode))
def test_rsa_contexts_never_wrap(rsa_key: rsa.RSAPrivateKey, mode: RsaMode) -> None:
    """wrapUnwrapOneBlock / BlockAligned / BlockUnaligned / unwrapUnalignedData."""
    context = RsaCryptoContext("r", rsa_key, rsa_key.public_key(), mode)
    for size in (8, 16, 17):
        raises(MslError.WRAP_NOT_SUPPORTED, context.wrap, bytes(size))
    raises(MslError.UNWRAP_NOT_SUPPORTED, context.unwrap, bytes(23))


# -- JWE ------------------------------------------------------------------------------------------


def _jwe(alg: str, fmt: JweFormat, rsa_key: rsa.RSAPrivateKey) -> JweCryptoContext:
    cek = RsaOaepCekContext(rsa_key, rsa_key.public_key()) if alg == "RSA-OAEP" else AesKwCekContext(KE)
    return JweCryptoContext(cek, JweEncryption.A128GCM, fmt)


def _replace(wrapped: bytes, fmt: JweFormat, *, ecek: bytes | None = None, iv: bytes | None = None) -> bytes:
    if fmt is JweFormat.JWE_CS:
        parts = wrapped.decode().split(".")
        if ecek is not None:
            parts[1] = b64url_encode(ecek)
        if iv is not None:
            parts[2] = b64url_encode(iv)
        return ".".join(parts).encode()
    obj = json.loads(wrapped)
    if ecek is not None:
        obj["recipients"][0]["encrypted_key"] = b64url_encode(ecek)
    if iv is not None:
        obj["initialization_vector"] = b64url_encode(iv)
    return json.dumps(obj).encode()


def _other_cek(alg: str, rsa_key: rsa.RSAPrivateKey) -> bytes:
    """A different, correctly protected 16-byte content encryption key."""
    if alg == "RSA-OAEP":
        return rsa_encrypt(rsa_key.public_key(), os.urandom(16), oaep=True)
    return aes_key_wrap(KE, os.urandom(16))


ALGS = ["RSA-OAEP", "A128KW"]


@pytest.mark.parametrize("fmt", list(JweFormat))
@pytest.mark.parametrize("alg", ALGS)
def test_jwe_invalid_cek(rsa_key: rsa.RSAPrivateKey, alg: str, fmt: JweFormat) -> None:
    """invalidCek: a one-byte encrypted key. The reference reports CIPHERTEXT_BAD_PADDING
    (RSA) and INVALID_SYMMETRIC_KEY (AES key wrap); missile CIPHERTEXT_ILLEGAL_BLOCK_SIZE:
    the length is refused before any decryption."""
    context = _jwe(alg, fmt, rsa_key)
    bad = _replace(context.wrap(b"data"), fmt, ecek=b"x")
    raises(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, context.unwrap, bad)


@pytest.mark.parametrize("fmt", list(JweFormat))
@pytest.mark.parametrize("alg", ALGS)
def test_jwe_bad_cek(rsa_key: rsa.RSAPrivateKey, alg: str, fmt: JweFormat) -> None:
    """badCek: 137 random bytes as the encrypted key (any MslCryptoException in the
    reference for RSA, INVALID_SYMMETRIC_KEY for AES key wrap)."""
    context = _jwe(alg, fmt, rsa_key)
    bad = _replace(context.wrap(b"data"), fmt, ecek=os.urandom(137))
    with pytest.raises(MslCryptoException) as info:
        context.unwrap(bad)
    assert info.value.error in (MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, MslError.CIPHERTEXT_BAD_PADDING)


@pytest.mark.parametrize("fmt", list(JweFormat))
@pytest.mark.parametrize("alg", ALGS)
def test_jwe_wrong_cek(rsa_key: rsa.RSAPrivateKey, alg: str, fmt: JweFormat) -> None:
    """wrongCek: another content key, correctly protected for this recipient: GCM
    authentication fails (UNWRAP_ERROR, as in the reference)."""
    context = _jwe(alg, fmt, rsa_key)
    wrong = _replace(context.wrap(b"data"), fmt, ecek=_other_cek(alg, rsa_key))
    raises(MslError.UNWRAP_ERROR, context.unwrap, wrong)


@pytest.mark.parametrize("fmt", list(JweFormat))
def test_jwe_cek_for_another_recipient(rsa_key: rsa.RSAPrivateKey, fmt: JweFormat) -> None:
    """A content key protected for someone else: RSA padding fails (CIPHERTEXT_BAD_PADDING);
    the AES key wrap integrity check fails (UNWRAP_ERROR; the reference reports
    INVALID_SYMMETRIC_KEY)."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    context = _jwe("RSA-OAEP", fmt, rsa_key)
    foreign = rsa_encrypt(other.public_key(), os.urandom(16), oaep=True)
    raises(MslError.CIPHERTEXT_BAD_PADDING, context.unwrap, _replace(context.wrap(b"data"), fmt, ecek=foreign))
    context = _jwe("A128KW", fmt, rsa_key)
    foreign = aes_key_wrap(bytes(16), os.urandom(16))
    raises(MslError.UNWRAP_ERROR, context.unwrap, _replace(context.wrap(b"data"), fmt, ecek=foreign))


@pytest.mark.parametrize("fmt", list(JweFormat))
@pytest.mark.parametrize("alg", ALGS)
def test_jwe_bad_iv(rsa_key: rsa.RSAPrivateKey, alg: str, fmt: JweFormat) -> None:
    """badIv: a 31-byte random IV; invalidIv: a one-byte IV (the reference reports
    UNWRAP_ERROR, missile INVALID_ALGORITHM_PARAMS: GCM here needs an IV of 8+ bytes)."""
    context = _jwe(alg, fmt, rsa_key)
    raises(MslError.UNWRAP_ERROR, context.unwrap, _replace(context.wrap(b"data"), fmt, iv=os.urandom(31)))
    raises(MslError.INVALID_ALGORITHM_PARAMS, context.unwrap, _replace(context.wrap(b"data"), fmt, iv=b"x"))


# -- JWK ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'{"kty":"rsa","e":"AQAB"}',  # missingModulus
        b'{"kty":"rsa","n":"AQAB"}',  # missingExponents
        b'{"kty":"oct"}',  # missingKey
        b'{"use":"sig","k":"AQAB"}',  # missingType
        b'{"kty":"oct","k":"AQAB","extractable":"yes"}',  # invalidExtractable
    ],
)
def test_jwk_structure_errors(data: bytes) -> None:
    raises(MslError.MSL_PARSE_ERROR, JsonWebKey.parse, data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"kty":"rsa","n":"","e":"AQAB"}',  # emptyModulus
        b'{"kty":"rsa","n":"AQAB","e":""}',  # emptyPublicExponent
        b'{"kty":"rsa","n":"AQAB","e":"a+b/"}',  # invalidPublicExponent
        b'{"kty":"rsa","n":"AQAB","d":""}',  # emptyPrivateExponent
        b'{"kty":"rsa","n":"AQAB","d":"a+b/"}',  # invalidPrivateExponent
        b'{"kty":"oct","k":""}',  # emptyKey
    ],
)
def test_jwk_keydata_errors(data: bytes) -> None:
    raises(MslError.INVALID_JWK_KEYDATA, JsonWebKey.parse, data)


def test_jwk_constructor_misuse(rsa_key: rsa.RSAPrivateKey) -> None:
    """rsaCtorNullKeys / rsaCtorMismatchedAlgorithm / octCtorMismatchedAlgo: programming
    errors (ValueError in missile, MslInternalException in the reference)."""
    with pytest.raises(ValueError):
        JsonWebKey.rsa()
    with pytest.raises(ValueError):
        JsonWebKey.rsa(rsa_key.public_key(), alg=JwkAlgorithm.A128KW)
    with pytest.raises(ValueError):
        JsonWebKey.symmetric(KE, alg=JwkAlgorithm.RSA_OAEP)


def test_jwk_of_the_wrong_type_gives_no_key(rsa_key: rsa.RSAPrivateKey) -> None:
    raises(MslError.INVALID_SYMMETRIC_KEY, JsonWebKey.rsa(rsa_key.public_key()).secret_key)
    raises(MslError.INVALID_PUBLIC_KEY, JsonWebKey.symmetric(KE).rsa_public_key)
    raises(MslError.INVALID_PRIVATE_KEY, JsonWebKey.rsa(rsa_key.public_key()).rsa_private_key)


@pytest.mark.parametrize("fmt", list(JweFormat))
@pytest.mark.parametrize(
    "header",
    [{"enc": "A128GCM"}, {"alg": 5, "enc": "A128GCM"}, {"alg": "A128KW", "enc": 5}],
    ids=["missingAlgorithm", "mistypedAlgorithm", "mistypedEncryption"],
)
def test_jwe_header_algorithm_fields(rsa_key: rsa.RSAPrivateKey, fmt: JweFormat, header: dict[str, object]) -> None:
    """missingAlgorithm (tests/crypto covers invalid names and a missing ``enc``)."""
    context = _jwe("A128KW", fmt, rsa_key)
    wrapped = context.wrap(b"data")
    encoded = b64url_encode(json.dumps(header).encode())
    if fmt is JweFormat.JWE_CS:
        bad = ".".join([encoded, *wrapped.decode().split(".")[1:]]).encode()
    else:
        obj = json.loads(wrapped)
        obj["recipients"][0]["header"] = encoded
        bad = json.dumps(obj).encode()
    raises(MslError.JWE_PARSE_ERROR, context.unwrap, bad)
