"""JSON Web Keys (crypto.md §7) and the JWK_LADDER AES-KW context (keyx.md §6)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from missile.crypto import (
    AesKwJwkCryptoContext,
    JsonWebKey,
    JwkAlgorithm,
    JwkKeyOp,
    JwkType,
    JwkUsage,
    SymmetricCryptoContext,
    jwe_ladder_wrapping_jwk,
    jwk_ladder_wrapping_jwk,
    pad_jwk,
    session_encryption_jwk,
    session_hmac_jwk,
)
from missile.encoding import b64url_encode
from missile.errors import MslCryptoException, MslEncodingException, MslError

from .vectors import b64, keydata, load

KEY16 = bytes(range(16))
KEY32 = bytes(range(32))


def test_exchange_jwks_exact_members() -> None:
    k16 = b64url_encode(KEY16)
    k32 = b64url_encode(KEY32)
    assert json.loads(session_encryption_jwk(KEY16).encode()) == {
        "kty": "oct", "use": "enc", "alg": "A128CBC", "extractable": False, "k": k16}  # fmt: skip
    assert json.loads(session_hmac_jwk(KEY32).encode()) == {
        "kty": "oct", "use": "sig", "alg": "HS256", "extractable": False, "k": k32}  # fmt: skip
    enc_ops = json.loads(session_encryption_jwk(KEY16, with_key_ops=True).encode())
    assert set(enc_ops.pop("key_ops")) == {"encrypt", "decrypt"}
    assert enc_ops == {"kty": "oct", "alg": "A128CBC", "extractable": False, "k": k16}
    mac_ops = json.loads(session_hmac_jwk(KEY32, with_key_ops=True).encode())
    assert set(mac_ops.pop("key_ops")) == {"sign", "verify"}
    assert mac_ops == {"kty": "oct", "alg": "HS256", "extractable": False, "k": k32}
    assert json.loads(jwe_ladder_wrapping_jwk(KEY16, "-42").encode()) == {
        "kty": "oct", "use": "wrap", "alg": "A128KW", "extractable": False, "kid": "-42", "k": k16}  # fmt: skip
    ladder = json.loads(jwk_ladder_wrapping_jwk(KEY16).encode())
    assert set(ladder.pop("key_ops")) == {"wrapKey", "unwrapKey"}
    assert ladder == {"kty": "oct", "alg": "A128KW", "extractable": False, "kid": "wrapKeyId", "k": k16}
    # Java writes the HMAC key_ops JWK in 125 bytes (keyx.md §2); compact JSON matches.
    assert len(session_hmac_jwk(KEY32, with_key_ops=True).encode()) == 125
    assert len(session_encryption_jwk(KEY16, with_key_ops=True).encode()) == 110


@given(st.binary(min_size=1, max_size=64), st.booleans(), st.none() | st.text(max_size=8))
def test_oct_round_trip(key: bytes, extractable: bool, kid: str | None) -> None:
    jwk = JsonWebKey.symmetric(key, key_ops=[JwkKeyOp.SIGN], alg=JwkAlgorithm.HS256, extractable=extractable, kid=kid)
    encoded = jwk.encode()
    assert "=" not in json.loads(encoded)["k"]
    assert JsonWebKey.parse(encoded) == jwk


def test_parse_java_style_and_defaults() -> None:
    jwk = JsonWebKey.parse(b'{"k":"AAECAw","key_ops":["verify","sign"],"kty":"oct"}')
    assert jwk.kty is JwkType.OCT and jwk.key == b"\x00\x01\x02\x03"
    assert jwk.key_ops == {JwkKeyOp.SIGN, JwkKeyOp.VERIFY}
    assert jwk.extractable is False and jwk.alg is None and jwk.use is None and jwk.kid is None
    assert "AAECAw" not in repr(jwk)


def test_rsa_round_trip() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public_jwk = JsonWebKey.rsa(private.public_key(), alg=JwkAlgorithm.RSA_OAEP, use=JwkUsage.ENC)
    raw = json.loads(public_jwk.encode())
    assert raw["kty"] == "rsa" and raw["e"] == "AQAB" and "d" not in raw
    parsed = JsonWebKey.parse(public_jwk.encode())
    assert parsed.rsa_public_key().public_numbers() == private.public_key().public_numbers()
    full = JsonWebKey.rsa(private.public_key(), private)
    recovered = JsonWebKey.parse(full.encode()).rsa_private_key()
    assert recovered.private_numbers().d == private.private_numbers().d
    with pytest.raises(MslCryptoException):
        parsed.rsa_private_key()
    with pytest.raises(MslCryptoException):
        parsed.secret_key()


@pytest.mark.parametrize(
    ("member", "value", "error"),
    [
        ("kty", "EC", MslError.UNIDENTIFIED_JWK_TYPE),
        ("kty", "OCT", MslError.UNIDENTIFIED_JWK_TYPE),
        ("use", "encrypt", MslError.UNIDENTIFIED_JWK_USAGE),
        ("key_ops", ["sign", "frobnicate"], MslError.UNIDENTIFIED_JWK_KEYOP),
        ("alg", "A256KW", MslError.UNIDENTIFIED_JWK_ALGORITHM),
        ("k", "", MslError.INVALID_JWK_KEYDATA),
        ("k", "a+b/", MslError.INVALID_JWK_KEYDATA),
    ],
)
def test_parse_value_errors(member: str, value: object, error: MslError) -> None:
    obj = {"kty": "oct", "k": "AAECAw"}
    obj[member] = value  # type: ignore[assignment]
    with pytest.raises(MslCryptoException) as e:
        JsonWebKey.parse(json.dumps(obj).encode())
    assert e.value.error is error


@pytest.mark.parametrize(
    "data",
    [
        b'{"k":"AAECAw"}',
        b'{"kty":"oct"}',
        b'{"kty":5,"k":"AAECAw"}',
        b'{"kty":"oct","k":"AAECAw","extractable":"no"}',
        b'{"kty":"oct","k":"AAECAw","key_ops":"sign"}',
        b'{"kty":"rsa","n":"AQAB"}',
        b"not json",
    ],
)
def test_parse_structure_errors(data: bytes) -> None:
    with pytest.raises(MslEncodingException) as e:
        JsonWebKey.parse(data)
    assert e.value.error is MslError.MSL_PARSE_ERROR


def test_rsa_empty_keydata() -> None:
    with pytest.raises(MslCryptoException) as e:
        JsonWebKey.parse(b'{"kty":"rsa","n":"","e":"AQAB"}')
    assert e.value.error is MslError.INVALID_JWK_KEYDATA
    with pytest.raises(MslCryptoException) as e:
        JsonWebKey.symmetric(b"")
    assert e.value.error is MslError.INVALID_JWK_KEYDATA


# -- JWK_LADDER padding ---------------------------------------------------------------------


@pytest.mark.parametrize("length", range(2, 26))
def test_pad_jwk(length: int) -> None:
    data = b"{" + b"x" * (length - 2) + b"}"
    padded = pad_jwk(data)
    assert len(padded) % 8 == 0
    count = len(padded) - len(data)
    assert count == (8 - length % 8) % 8
    assert padded == b"{" + b" " * count + data[1:]


def test_aes_kw_jwk_context_round_trip() -> None:
    jwk = session_hmac_jwk(KEY32, with_key_ops=True)
    context = AesKwJwkCryptoContext(KEY16)
    wrapped = context.wrap(jwk.encode())
    assert len(wrapped) == 128 + 8  # 125 bytes padded to 128
    unwrapped = context.unwrap(wrapped)
    assert unwrapped.startswith(b"{   ") and unwrapped.endswith(b"}")
    assert JsonWebKey.parse(unwrapped) == jwk
    # Delegating to a symmetric context with the same wrap key gives the same bytes (RFC 3394 is deterministic).
    assert AesKwJwkCryptoContext(SymmetricCryptoContext("psk", wrap_key=KEY16)).wrap(jwk.encode()) == wrapped
    with pytest.raises(MslCryptoException) as e:
        AesKwJwkCryptoContext(bytes(16)).unwrap(wrapped)
    assert e.value.error is MslError.UNWRAP_ERROR
    for op, code in [
        (lambda: context.encrypt(b"x"), MslError.ENCRYPT_NOT_SUPPORTED),
        (lambda: context.decrypt(b"x"), MslError.DECRYPT_NOT_SUPPORTED),
        (lambda: context.sign(b"x"), MslError.SIGN_NOT_SUPPORTED),
        (lambda: context.verify(b"x", b"y"), MslError.VERIFY_NOT_SUPPORTED),
    ]:
        with pytest.raises(MslCryptoException) as e:
            op()
        assert e.value.error is code


def test_vector_jwk_ladder_psk() -> None:
    """Vector 19: the Java JWK ladder response opens with Kpw, then with the new key."""
    response = load("19_c_response_jwk_ladder_psk.json")
    kpw = b64(response["keys"]["psk"][0]["wrap_b64"])
    old = AesKwJwkCryptoContext(SymmetricCryptoContext("client1", wrap_key=kpw))
    data = keydata(response)
    padded = old.unwrap(b64(data["wrapkey"]))
    assert len(padded) % 8 == 0 and padded[:1] == b"{"
    wrap_jwk = JsonWebKey.parse(padded)
    assert wrap_jwk.kid == "wrapKeyId" and wrap_jwk.key_ops == {JwkKeyOp.WRAP_KEY, JwkKeyOp.UNWRAP_KEY}
    assert wrap_jwk.secret_key() == b64(response["inputs"]["wrap_key_b64"])
    new = AesKwJwkCryptoContext(wrap_jwk.secret_key())
    enc = JsonWebKey.parse(new.unwrap(b64(data["encryptionkey"])))
    mac = JsonWebKey.parse(new.unwrap(b64(data["hmackey"])))
    assert enc.alg is JwkAlgorithm.A128CBC and mac.alg is JwkAlgorithm.HS256
    assert enc.secret_key() == b64(response["inputs"]["new_session_keys"]["encryption_b64"])
    assert mac.secret_key() == b64(response["inputs"]["new_session_keys"]["hmac_b64"])
