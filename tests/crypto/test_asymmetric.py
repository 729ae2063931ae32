"""RSA, ECC, RSA wrapping and null contexts (crypto.md §1, §8)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from missile.crypto import (
    CiphertextEnvelope,
    ClientMslCryptoContext,
    EccCryptoContext,
    NullCryptoContext,
    RsaCryptoContext,
    RsaMode,
    RsaWrapMode,
    RsaWrappingCryptoContext,
    rsa_oaep_padding,
)
from missile.errors import MslCryptoException, MslError, MslInternalException

from .vectors import b64, keydata, load, wire_objects


def _assert_rejected(op: Callable[[], bytes], original: bytes, *, pkcs1: bool) -> None:
    """OAEP must fail with CIPHERTEXT_BAD_PADDING; PKCS#1 v1.5 either fails or returns other bytes."""
    try:
        result = op()
    except MslCryptoException as e:
        assert e.error is MslError.CIPHERTEXT_BAD_PADDING
        return
    assert pkcs1, "OAEP decryption of tampered data must fail"
    assert result != original


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_rsa_sign_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    context = RsaCryptoContext("rsa", rsa_key, rsa_key.public_key())
    sig = context.sign(b"data")
    assert len(sig) == 256
    # It is plain RSASSA-PKCS1-v1_5 with SHA-256.
    rsa_key.public_key().verify(sig, b"data", padding.PKCS1v15(), hashes.SHA256())
    assert context.verify(b"data", sig)
    assert not context.verify(b"datA", sig)
    assert not context.verify(b"data", sig[:-1])
    assert not context.verify(b"data", b"")
    # SIGN_VERIFY: encryption is pass-through, wrapping unsupported.
    assert context.encrypt(b"plain") == b"plain"
    assert context.decrypt(b"plain") == b"plain"
    for op, code in [
        (lambda: context.wrap(b"k" * 16), MslError.WRAP_NOT_SUPPORTED),
        (lambda: context.unwrap(b"k" * 16), MslError.UNWRAP_NOT_SUPPORTED),
    ]:
        with pytest.raises(MslCryptoException) as e:
            op()
        assert e.value.error is code


def test_rsa_sign_only_verify_only(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = RsaCryptoContext("rsa", private_key=rsa_key)
    verifier = RsaCryptoContext("rsa", public_key=rsa_key.public_key())
    sig = signer.sign(b"m")
    assert verifier.verify(b"m", sig)
    with pytest.raises(MslCryptoException) as e:
        verifier.sign(b"m")
    assert e.value.error is MslError.SIGN_NOT_SUPPORTED
    with pytest.raises(MslCryptoException) as e:
        signer.verify(b"m", sig)
    assert e.value.error is MslError.VERIFY_NOT_SUPPORTED


def test_rsa_wrong_key_type(ec_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(MslCryptoException) as e:
        RsaCryptoContext("x", public_key=ec_key.public_key())  # type: ignore[arg-type]
    assert e.value.error is MslError.INVALID_PUBLIC_KEY


@pytest.mark.parametrize("mode", [RsaMode.ENCRYPT_DECRYPT_OAEP, RsaMode.ENCRYPT_DECRYPT_PKCS1])
def test_rsa_encrypt_decrypt(rsa_key: rsa.RSAPrivateKey, mode: RsaMode) -> None:
    context = RsaCryptoContext("rsa1", rsa_key, rsa_key.public_key(), mode)
    envelope = context.encrypt(b"secret")
    raw = json.loads(envelope)
    assert set(raw) == {"keyid", "ciphertext", "sha256"}  # no IV
    assert raw["keyid"] == "rsa1"
    assert context.decrypt(envelope) == b"secret"
    ct = CiphertextEnvelope.parse(envelope).ciphertext
    if mode is RsaMode.ENCRYPT_DECRYPT_OAEP:
        assert rsa_key.decrypt(ct, rsa_oaep_padding()) == b"secret"
    else:
        assert rsa_key.decrypt(ct, padding.PKCS1v15()) == b"secret"
    # Signatures are pass-through in encryption modes.
    assert context.sign(b"x") == b""
    assert context.verify(b"x", b"whatever")
    # Tampering breaks the padding (PKCS#1 v1.5 may instead yield OpenSSL's implicit-rejection garbage).
    bad = CiphertextEnvelope.v1("rsa1", None, bytes([ct[0] ^ 1]) + ct[1:]).encode()
    _assert_rejected(lambda: context.decrypt(bad), b"secret", pkcs1=mode is RsaMode.ENCRYPT_DECRYPT_PKCS1)
    truncated = CiphertextEnvelope.v1("rsa1", None, ct[:-1]).encode()
    with pytest.raises(MslCryptoException) as e:
        context.decrypt(truncated)
    assert e.value.error is MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE
    with pytest.raises(MslCryptoException) as e:
        context.encrypt(b"x" * 300)
    assert e.value.error is MslError.PLAINTEXT_ILLEGAL_BLOCK_SIZE
    with pytest.raises(MslCryptoException) as e:
        RsaCryptoContext("r", rsa_key, None, mode).encrypt(b"x")
    assert e.value.error is MslError.ENCRYPT_NOT_SUPPORTED
    with pytest.raises(MslCryptoException) as e:
        RsaCryptoContext("r", None, rsa_key.public_key(), mode).decrypt(envelope)
    assert e.value.error is MslError.DECRYPT_NOT_SUPPORTED


@pytest.mark.parametrize("mode", list(RsaWrapMode))
def test_rsa_wrapping_context(rsa_key: rsa.RSAPrivateKey, mode: RsaWrapMode) -> None:
    context = RsaWrappingCryptoContext("kp", rsa_key, rsa_key.public_key(), mode)
    wrapped = context.wrap(b"k" * 16)
    assert len(wrapped) == 256  # raw, no envelope
    assert context.unwrap(wrapped) == b"k" * 16
    assert context.encrypt(b"x") == b"x" and context.decrypt(b"x") == b"x"
    assert context.sign(b"x") == b"" and context.verify(b"x", b"")
    with pytest.raises(MslCryptoException) as e:
        RsaWrappingCryptoContext("kp", None, None, mode).wrap(b"x")
    assert e.value.error is MslError.WRAP_NOT_SUPPORTED
    with pytest.raises(MslCryptoException) as e:
        RsaWrappingCryptoContext("kp", None, rsa_key.public_key(), mode).unwrap(wrapped)
    assert e.value.error is MslError.UNWRAP_NOT_SUPPORTED
    tampered = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    _assert_rejected(lambda: context.unwrap(tampered), b"k" * 16, pkcs1=mode is RsaWrapMode.WRAP_UNWRAP_PKCS1)


def test_ecc_sign_verify(ec_key: ec.EllipticCurvePrivateKey) -> None:
    context = EccCryptoContext("ecc", ec_key, ec_key.public_key())
    sig = context.sign(b"data")
    utils.decode_dss_signature(sig)  # DER SEQUENCE{r, s}, not raw r||s
    assert context.verify(b"data", sig)
    assert not context.verify(b"other", sig)
    assert not context.verify(b"data", b"\x30\x00")
    assert context.encrypt(b"p") == b"p" and context.decrypt(b"p") == b"p"
    with pytest.raises(MslCryptoException) as e:
        context.wrap(b"x")
    assert e.value.error is MslError.WRAP_NOT_SUPPORTED
    with pytest.raises(MslCryptoException) as e:
        EccCryptoContext("ecc", public_key=ec_key.public_key()).sign(b"x")
    assert e.value.error is MslError.SIGN_NOT_SUPPORTED
    with pytest.raises(MslCryptoException) as e:
        EccCryptoContext("ecc", private_key=ec_key).verify(b"x", sig)
    assert e.value.error is MslError.VERIFY_NOT_SUPPORTED


def test_null_context() -> None:
    null = NullCryptoContext()
    for op in (null.encrypt, null.decrypt, null.wrap, null.unwrap):
        assert op(b"abc") == b"abc"
    assert null.sign(b"abc") == b""
    assert null.verify(b"abc", b"") and null.verify(b"abc", b"junk")


def test_client_msl_context() -> None:
    client = ClientMslCryptoContext()
    assert client.encrypt(b"abc") == b"abc" and client.decrypt(b"abc") == b"abc"
    assert client.sign(b"abc") == b""
    assert not client.verify(b"abc", b"")
    with pytest.raises(MslInternalException):
        client.wrap(b"abc")
    with pytest.raises(MslInternalException):
        client.unwrap(b"abc")


# -- interop with the Java vectors --------------------------------------------------------


def test_vector_rsa_header_signature() -> None:
    """The server's SHA256withRSA header signature in vector 17 verifies."""
    vector = load("17_c_response_jwe_ladder_psk.json")
    public = serialization.load_der_public_key(b64(vector["keys"]["rsa"][0]["public_b64"]))
    assert isinstance(public, rsa.RSAPublicKey)
    context = RsaCryptoContext("rsakeyid1", public_key=public)
    header = wire_objects(vector)[0]
    headerdata = b64(header["headerdata"])
    assert context.verify(headerdata, b64(header["signature"]))
    assert not context.verify(headerdata + b" ", b64(header["signature"]))


def _ephemeral_private(request: str) -> rsa.RSAPrivateKey:
    entry = load(request)["inputs"]["key_request_data"][0]
    key = serialization.load_der_private_key(b64(entry["private_b64"]), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.mark.parametrize(
    ("request_name", "response_name", "mode", "is_jwk"),
    [
        ("02_b_psk_keyx_asymmetric_wrapped_rsa.json", "03_c_response_asymmetric_wrapped_rsa.json",
         RsaWrapMode.WRAP_UNWRAP_OAEP, False),
        ("08_b_psk_keyx_asymmetric_wrapped_jwk_rsa.json", "09_c_response_asymmetric_wrapped_jwk_rsa.json",
         RsaWrapMode.WRAP_UNWRAP_OAEP, True),
        ("10_b_psk_keyx_asymmetric_wrapped_jwk_rsaes.json", "11_c_response_asymmetric_wrapped_jwk_rsaes.json",
         RsaWrapMode.WRAP_UNWRAP_PKCS1, True),
    ],
)  # fmt: skip
def test_vector_asymmetric_wrapped(request_name: str, response_name: str, mode: RsaWrapMode, is_jwk: bool) -> None:
    from missile.crypto import JsonWebKey, JwkKeyOp

    context = RsaWrappingCryptoContext("kp", _ephemeral_private(request_name), None, mode)
    response = load(response_name)
    data = keydata(response)
    expected = response["inputs"]["new_session_keys"]
    enc = context.unwrap(b64(data["encryptionkey"]))
    mac = context.unwrap(b64(data["hmackey"]))
    if is_jwk:
        enc_jwk, mac_jwk = JsonWebKey.parse(enc), JsonWebKey.parse(mac)
        assert enc_jwk.key_ops == {JwkKeyOp.ENCRYPT, JwkKeyOp.DECRYPT}
        assert mac_jwk.key_ops == {JwkKeyOp.SIGN, JwkKeyOp.VERIFY}
        enc, mac = enc_jwk.secret_key(), mac_jwk.secret_key()
    assert enc == b64(expected["encryption_b64"])
    assert mac == b64(expected["hmac_b64"])
