"""JWE draft-08 wrap/unwrap (crypto.md §6) including the Java vectors."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.crypto import (
    AesKwCekContext,
    JsonWebKey,
    JweCryptoContext,
    JweEncryption,
    JweFormat,
    JwkAlgorithm,
    JwkUsage,
    RsaOaepCekContext,
    SymmetricCryptoContext,
    aes_key_unwrap,
)
from missile.encoding import b64url_decode, b64url_encode
from missile.errors import MslCryptoException, MslError

from .vectors import FixedRandom, b64, keydata, load

KEK = bytes(range(16))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def kw_context(fmt: JweFormat, enc: JweEncryption = JweEncryption.A128GCM, key: bytes = KEK) -> JweCryptoContext:
    return JweCryptoContext(AesKwCekContext(key), enc, fmt, random=FixedRandom())


@pytest.mark.parametrize("fmt", list(JweFormat))
@pytest.mark.parametrize("enc", list(JweEncryption))
@pytest.mark.parametrize("alg", ["RSA-OAEP", "A128KW"])
def test_round_trip(rsa_key: rsa.RSAPrivateKey, fmt: JweFormat, enc: JweEncryption, alg: str) -> None:
    cek = RsaOaepCekContext(rsa_key, rsa_key.public_key()) if alg == "RSA-OAEP" else AesKwCekContext(KEK)
    context = JweCryptoContext(cek, enc, fmt)
    wrapped = context.wrap(b'{"kty":"oct","k":"AAAA"}')
    assert context.unwrap(wrapped) == b'{"kty":"oct","k":"AAAA"}'
    if fmt is JweFormat.JWE_CS:
        parts = wrapped.decode("ascii").split(".")
        assert len(parts) == 5
        header, ecek, iv, ciphertext, tag = parts
    else:
        obj = json.loads(wrapped)
        assert set(obj) == {"recipients", "initialization_vector", "ciphertext"}
        (recipient,) = obj["recipients"]
        assert set(recipient) == {"header", "encrypted_key", "integrity_value"}
        header, ecek, iv, tag = (recipient["header"], recipient["encrypted_key"],
                                 obj["initialization_vector"], recipient["integrity_value"])  # fmt: skip
        ciphertext = obj["ciphertext"]
    assert json.loads(b64url_decode(header)) == {"alg": alg, "enc": enc.value}
    assert len(b64url_decode(iv)) == 12 and len(b64url_decode(tag)) == 16
    for part in (header, ecek, iv, ciphertext, tag):
        assert "=" not in part and "+" not in part and "/" not in part
    if alg == "A128KW":
        assert len(b64url_decode(ecek)) == enc.key_length + 8
        # Independent check of the draft-08 AAD (header.ecek.iv).
        cek_bytes = aes_key_unwrap(KEK, b64url_decode(ecek))
        aad = f"{header}.{ecek}.{iv}".encode()
        plain = AESGCM(cek_bytes).decrypt(b64url_decode(iv), b64url_decode(ciphertext) + b64url_decode(tag), aad)
        assert plain == b'{"kty":"oct","k":"AAAA"}'


@settings(max_examples=25)
@given(st.binary(min_size=1, max_size=200), st.sampled_from(list(JweFormat)))
def test_round_trip_property(data: bytes, fmt: JweFormat) -> None:
    context = kw_context(fmt)
    assert context.unwrap(context.wrap(data)) == data


def _compact_parts() -> list[str]:
    return kw_context(JweFormat.JWE_CS).wrap(b"secret key").decode().split(".")


def _unwrap_error(data: bytes, context: JweCryptoContext | None = None) -> MslError:
    with pytest.raises(MslCryptoException) as e:
        (context or kw_context(JweFormat.JWE_CS)).unwrap(data)
    return e.value.error


def test_tampered_tag_and_ciphertext() -> None:
    parts = _compact_parts()
    tag = bytearray(b64url_decode(parts[4]))
    tag[0] ^= 1
    assert _unwrap_error(".".join([*parts[:4], b64url_encode(bytes(tag))]).encode()) is MslError.UNWRAP_ERROR
    ct = bytearray(b64url_decode(parts[3]))
    ct[-1] ^= 1
    assert _unwrap_error(".".join([*parts[:3], b64url_encode(bytes(ct)), parts[4]]).encode()) is MslError.UNWRAP_ERROR
    # The IV is part of the AAD, so changing it fails authentication too.
    iv = bytearray(b64url_decode(parts[2]))
    iv[0] ^= 1
    assert _unwrap_error(".".join([*parts[:2], b64url_encode(bytes(iv)), *parts[3:]]).encode()) is (
        MslError.UNWRAP_ERROR
    )
    # A short tag is rejected before decryption.
    assert _unwrap_error(".".join([*parts[:4], b64url_encode(bytes(tag[:12]))]).encode()) is (
        MslError.INVALID_ALGORITHM_PARAMS
    )


def test_wrong_key() -> None:
    wrapped = kw_context(JweFormat.JWE_JS).wrap(b"data")
    assert _unwrap_error(wrapped, kw_context(JweFormat.JWE_JS, key=bytes(16))) is MslError.UNWRAP_ERROR


def test_algorithm_mismatch(rsa_key: rsa.RSAPrivateKey) -> None:
    wrapped = kw_context(JweFormat.JWE_CS).wrap(b"data")
    assert _unwrap_error(wrapped, kw_context(JweFormat.JWE_CS, JweEncryption.A256GCM)) is (
        MslError.JWE_ALGORITHM_MISMATCH
    )
    rsa_context = JweCryptoContext(RsaOaepCekContext(rsa_key, None), JweEncryption.A128GCM, JweFormat.JWE_CS)
    assert _unwrap_error(wrapped, rsa_context) is MslError.JWE_ALGORITHM_MISMATCH
    # Unknown names in the header are parse errors.
    parts = _compact_parts()
    for header in ({"alg": "dir", "enc": "A128GCM"}, {"alg": "A128KW", "enc": "A128CBC-HS256"}, {"alg": "A128KW"}):
        bad = ".".join([b64url_encode(json.dumps(header).encode()), *parts[1:]]).encode()
        assert _unwrap_error(bad) is MslError.JWE_PARSE_ERROR


def test_cek_length_checked() -> None:
    parts = _compact_parts()
    # A 24-byte (wrapped 16-byte) CEK announced as A256GCM.
    header = b64url_encode(b'{"alg":"A128KW","enc":"A256GCM"}')
    bad = ".".join([header, *parts[1:]]).encode()
    assert _unwrap_error(bad, kw_context(JweFormat.JWE_CS, JweEncryption.A256GCM)) is MslError.INVALID_SYMMETRIC_KEY


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: ".".join(p[:4]),  # four parts
        lambda p: ".".join([*p, "x"]),  # six parts
        lambda p: ".".join(["", *p[1:]]),  # empty header
        lambda p: ".".join([*p[:3], "", p[4]]),  # empty ciphertext
        lambda p: ".".join([*p[:4], ""]),  # empty tag
        lambda p: ".".join([p[0], "", *p[2:]]),  # empty encrypted key
        lambda p: ".".join([p[0], p[1], "", *p[3:]]),  # empty IV
        lambda p: ".".join([p[0], "a+b/", *p[2:]]),  # not base64url
        lambda p: ".".join([b64url_encode(b"not json"), *p[1:]]),
        lambda p: "\u00e9" + ".".join(p),
    ],
)
def test_malformed_compact(mutate: object) -> None:
    data = mutate(_compact_parts()).encode("utf-8")  # type: ignore[operator]
    assert _unwrap_error(data) is MslError.JWE_PARSE_ERROR


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("recipients"),
        lambda o: o.update(recipients=[]),
        lambda o: o.pop("initialization_vector"),
        lambda o: o.update(ciphertext=5),
        lambda o: o["recipients"][0].pop("integrity_value"),
        lambda o: o["recipients"][0].pop("header"),
        lambda o: o.update(recipients=["x"]),
    ],
)
def test_malformed_json(mutate: object) -> None:
    obj = json.loads(kw_context(JweFormat.JWE_JS).wrap(b"data"))
    mutate(obj)  # type: ignore[operator]
    assert _unwrap_error(json.dumps(obj).encode(), kw_context(JweFormat.JWE_JS)) is MslError.JWE_PARSE_ERROR
    assert _unwrap_error(b"{broken", kw_context(JweFormat.JWE_JS)) is MslError.JWE_PARSE_ERROR


def test_unsupported_operations() -> None:
    context = kw_context(JweFormat.JWE_CS)
    for op, code in [
        (lambda: context.encrypt(b"x"), MslError.ENCRYPT_NOT_SUPPORTED),
        (lambda: context.decrypt(b"x"), MslError.DECRYPT_NOT_SUPPORTED),
        (lambda: context.sign(b"x"), MslError.SIGN_NOT_SUPPORTED),
        (lambda: context.verify(b"x", b"y"), MslError.VERIFY_NOT_SUPPORTED),
    ]:
        with pytest.raises(MslCryptoException) as e:
            op()
        assert e.value.error is code


def test_delegating_aes_kw_cek() -> None:
    psk = SymmetricCryptoContext("client1", wrap_key=KEK)
    delegating = JweCryptoContext(AesKwCekContext(psk), JweEncryption.A128GCM, JweFormat.JWE_JS)
    assert kw_context(JweFormat.JWE_JS).unwrap(delegating.wrap(b"jwk")) == b"jwk"


# -- interop with the Java vectors --------------------------------------------------------


def test_vector_jwe_ladder_psk() -> None:
    """Vector 17: wrapkey under Kpw, session keys under the new wrapping key (keyx.md §5)."""
    response = load("17_c_response_jwe_ladder_psk.json")
    kpw = b64(response["keys"]["psk"][0]["wrap_b64"])
    psk = SymmetricCryptoContext("client1", wrap_key=kpw)
    old = JweCryptoContext(AesKwCekContext(psk), JweEncryption.A128GCM, JweFormat.JWE_JS)
    data = keydata(response)
    wrap_jwk = JsonWebKey.parse(old.unwrap(b64(data["wrapkey"])))
    assert wrap_jwk.use is JwkUsage.WRAP and wrap_jwk.alg is JwkAlgorithm.A128KW
    assert wrap_jwk.kid is not None and int(wrap_jwk.kid) < 2**63
    new_wrap_key = wrap_jwk.secret_key()
    assert new_wrap_key == b64(response["inputs"]["wrap_key_b64"])

    new = JweCryptoContext(AesKwCekContext(new_wrap_key), JweEncryption.A128GCM, JweFormat.JWE_JS)
    enc_jwk = JsonWebKey.parse(new.unwrap(b64(data["encryptionkey"])))
    mac_jwk = JsonWebKey.parse(new.unwrap(b64(data["hmackey"])))
    assert (enc_jwk.use, enc_jwk.alg) == (JwkUsage.ENC, JwkAlgorithm.A128CBC)
    assert (mac_jwk.use, mac_jwk.alg) == (JwkUsage.SIG, JwkAlgorithm.HS256)
    assert enc_jwk.secret_key() == b64(response["inputs"]["new_session_keys"]["encryption_b64"])
    assert mac_jwk.secret_key() == b64(response["inputs"]["new_session_keys"]["hmac_b64"])
    # The old wrapping key cannot open what the new one protects.
    with pytest.raises(MslCryptoException):
        old.unwrap(b64(data["encryptionkey"]))


@pytest.mark.parametrize(
    ("request_name", "response_name", "fmt"),
    [
        ("04_b_psk_keyx_asymmetric_wrapped_jwe_rsa.json", "05_c_response_asymmetric_wrapped_jwe_rsa.json",
         JweFormat.JWE_CS),
        ("06_b_psk_keyx_asymmetric_wrapped_jwejs_rsa.json", "07_c_response_asymmetric_wrapped_jwejs_rsa.json",
         JweFormat.JWE_JS),
    ],
)  # fmt: skip
def test_vector_jwe_rsa(request_name: str, response_name: str, fmt: JweFormat) -> None:
    entry = load(request_name)["inputs"]["key_request_data"][0]
    private = serialization.load_der_private_key(b64(entry["private_b64"]), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    context = JweCryptoContext(RsaOaepCekContext(private, None), JweEncryption.A128GCM, fmt)
    response = load(response_name)
    data = keydata(response)
    enc_jwk = JsonWebKey.parse(context.unwrap(b64(data["encryptionkey"])))
    mac_jwk = JsonWebKey.parse(context.unwrap(b64(data["hmackey"])))
    assert enc_jwk.secret_key() == b64(response["inputs"]["new_session_keys"]["encryption_b64"])
    assert mac_jwk.secret_key() == b64(response["inputs"]["new_session_keys"]["hmac_b64"])
    assert enc_jwk.extractable is False
