"""SymmetricCryptoContext / SessionCryptoContext and AES key wrap (crypto.md §5, §11, §12)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.crypto import (
    CipherSpec,
    CiphertextEnvelope,
    SessionCryptoContext,
    SignatureAlgo,
    SymmetricCryptoContext,
    aes_key_unwrap,
    aes_key_wrap,
    session_crypto_context,
)
from missile.encoding import b64encode, decode, encode
from missile.errors import MslCryptoException, MslError

from .vectors import FixedRandom, b64, load, wire_objects

KE = bytes(range(16))
KH = bytes(range(32, 64))
KW = bytes(range(100, 116))


def ctx(**kw: object) -> SymmetricCryptoContext:
    return SymmetricCryptoContext("ESN_7", KE, KH, KW, random=FixedRandom(), **kw)  # type: ignore[arg-type]


def err(exc: pytest.ExceptionInfo[MslCryptoException]) -> MslError:
    return exc.value.error


# -- RFC 3394 ---------------------------------------------------------------------------

KEK128 = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
KEK192 = bytes.fromhex("000102030405060708090A0B0C0D0E0F1011121314151617")
KEK256 = bytes.fromhex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
DATA128 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
DATA192 = bytes.fromhex("00112233445566778899AABBCCDDEEFF0001020304050607")
DATA256 = bytes.fromhex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")

RFC3394 = [
    ("4.1", KEK128, DATA128, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
    ("4.2", KEK192, DATA128, "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"),
    ("4.3", KEK256, DATA128, "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
    ("4.4", KEK192, DATA192, "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"),
    ("4.5", KEK256, DATA192, "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"),
    (
        "4.6",
        KEK256,
        DATA256,
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
    ),
]


@pytest.mark.parametrize(("section", "kek", "data", "expected"), RFC3394, ids=[v[0] for v in RFC3394])
def test_rfc3394_vectors(section: str, kek: bytes, data: bytes, expected: str) -> None:
    context = SymmetricCryptoContext("kw", wrap_key=kek)
    wrapped = context.wrap(data)
    assert wrapped == bytes.fromhex(expected)
    assert len(wrapped) == len(data) + 8
    assert context.unwrap(wrapped) == data


def test_key_wrap_errors() -> None:
    with pytest.raises(MslCryptoException) as e:
        aes_key_wrap(KEK128, b"\x00" * 17)
    assert err(e) is MslError.PLAINTEXT_ILLEGAL_BLOCK_SIZE
    with pytest.raises(MslCryptoException) as e:
        aes_key_wrap(KEK128, b"")
    assert err(e) is MslError.PLAINTEXT_ILLEGAL_BLOCK_SIZE
    wrapped = aes_key_wrap(KEK128, DATA128)
    with pytest.raises(MslCryptoException) as e:
        aes_key_unwrap(KEK128, wrapped[:-1])
    assert err(e) is MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE
    tampered = bytearray(wrapped)
    tampered[5] ^= 1
    with pytest.raises(MslCryptoException) as e:
        aes_key_unwrap(KEK128, bytes(tampered))
    assert err(e) is MslError.UNWRAP_ERROR
    with pytest.raises(MslCryptoException) as e:
        aes_key_unwrap(KEK256, wrapped)  # wrong key
    assert err(e) is MslError.UNWRAP_ERROR
    with pytest.raises(MslCryptoException) as e:
        aes_key_unwrap(KEK128, wrapped[:16])
    assert err(e) is MslError.INVALID_WRAP_CIPHERTEXT


# -- encryption -------------------------------------------------------------------------


def test_envelope_shape() -> None:
    out = ctx().encrypt(b"hello")
    raw = json.loads(out)
    assert set(raw) == {"keyid", "iv", "ciphertext", "sha256"}
    assert raw["keyid"] == "ESN_7"
    assert raw["sha256"] == "AA=="
    assert len(b64(raw["iv"])) == 16
    assert len(b64(raw["ciphertext"])) == 16
    assert out[:1] == b"{" and b" " not in out


def test_fresh_iv_from_random_source() -> None:
    context = ctx()
    a = CiphertextEnvelope.parse(context.encrypt(b"x"))
    b = CiphertextEnvelope.parse(context.encrypt(b"x"))
    assert a.iv != b.iv
    assert a.ciphertext != b.ciphertext


def test_empty_plaintext() -> None:
    context = ctx()
    env = CiphertextEnvelope.parse(context.encrypt(b""))
    assert env.ciphertext == b""
    assert env.iv is not None and len(env.iv) == 16
    assert context.decrypt(context.encrypt(b"")) == b""


@settings(max_examples=60)
@given(st.binary(max_size=200), st.text(max_size=10))
def test_round_trip(data: bytes, key_id: str) -> None:
    context = SymmetricCryptoContext(key_id, KE, KH)
    envelope = context.encrypt(data)
    assert context.decrypt(envelope) == data
    assert CiphertextEnvelope.parse(envelope).key_id == key_id


def test_large_round_trip() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    context = ctx()
    assert context.decrypt(context.encrypt(data)) == data


def test_key_id_not_checked_on_decrypt() -> None:
    other = SymmetricCryptoContext("other", KE, KH)
    assert other.decrypt(ctx().encrypt(b"abc")) == b"abc"


def _envelope(iv: bytes | None, ciphertext: bytes) -> bytes:
    return encode({"keyid": "k", "iv": iv, "ciphertext": ciphertext, "sha256": b"\x00"})


def test_decrypt_failures() -> None:
    context = ctx()
    env = CiphertextEnvelope.parse(context.encrypt(b"some plaintext that spans blocks"))
    assert env.iv is not None

    # Wrong key: padding check fails (or, rarely, garbage); never the plaintext.
    wrong = SymmetricCryptoContext("k", bytes(16), KH)
    try:
        assert wrong.decrypt(_envelope(env.iv, env.ciphertext)) != b"some plaintext that spans blocks"
    except MslCryptoException as e:
        assert e.error is MslError.CIPHERTEXT_BAD_PADDING

    with pytest.raises(MslCryptoException) as e:
        context.decrypt(_envelope(env.iv, env.ciphertext[:-1]))  # truncated
    assert err(e) is MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE

    with pytest.raises(MslCryptoException) as e:
        context.decrypt(_envelope(env.iv[:8], env.ciphertext))
    assert err(e) is MslError.INVALID_ALGORITHM_PARAMS

    with pytest.raises(MslCryptoException) as e:
        context.decrypt(_envelope(None, env.ciphertext))
    assert err(e) is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR

    with pytest.raises(MslCryptoException) as e:
        context.decrypt(b"not json")
    assert err(e) is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR

    with pytest.raises(MslCryptoException) as e:
        context.decrypt(encode({"keyid": "k", "iv": env.iv, "ciphertext": env.ciphertext}))  # no sha256
    assert err(e) is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR

    # A V2 envelope is rejected like the reference's forced-V1 parse (crypto.md §3).
    v2 = CiphertextEnvelope.v2(CipherSpec.AES_CBC_PKCS5, env.iv, env.ciphertext)
    with pytest.raises(MslCryptoException) as e:
        context.decrypt(v2.encode())
    assert err(e) is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR


def test_bad_padding() -> None:
    # Encrypt a block whose last byte is 0x00 without padding: invalid PKCS#5.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = bytes(16)
    enc = Cipher(algorithms.AES(KE), modes.CBC(iv)).encryptor()
    ct = enc.update(b"A" * 15 + b"\x00") + enc.finalize()
    with pytest.raises(MslCryptoException) as e:
        ctx().decrypt(_envelope(iv, ct))
    assert err(e) is MslError.CIPHERTEXT_BAD_PADDING
    enc = Cipher(algorithms.AES(KE), modes.CBC(iv)).encryptor()
    ct = enc.update(b"A" * 14 + b"\x03\x02") + enc.finalize()
    with pytest.raises(MslCryptoException) as e:
        ctx().decrypt(_envelope(iv, ct))
    assert err(e) is MslError.CIPHERTEXT_BAD_PADDING


def test_tampered_ciphertext_detected_by_mac() -> None:
    context = ctx()
    envelope = context.encrypt(b"payload")
    tag = context.sign(envelope)
    raw = json.loads(envelope)
    ct = bytearray(b64(raw["ciphertext"]))
    ct[0] ^= 0x80
    raw["ciphertext"] = b64encode(bytes(ct))
    tampered = json.dumps(raw).encode()
    assert not context.verify(tampered, tag)


# -- signatures -------------------------------------------------------------------------


def test_hmac_rfc4231_case2() -> None:
    context = SymmetricCryptoContext("k", signature_key=b"Jefe")
    tag = context.sign(b"what do ya want for nothing?")
    assert tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert context.verify(b"what do ya want for nothing?", tag)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", "bb1d6929e95937287fa37d129b756746"),
        ("6bc1bee22e409f96e93d7e117393172a", "070a16b46b4d4144f79bdd9dd04a287c"),
    ],
)
def test_cmac_rfc4493(message: str, expected: str) -> None:
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    context = SymmetricCryptoContext("k", signature_key=key, signature_algorithm="AESCmac")
    assert context.signature_algorithm is SignatureAlgo.AES_CMAC
    tag = context.sign(bytes.fromhex(message))
    assert tag.hex() == expected
    assert context.verify(bytes.fromhex(message), tag)


@settings(max_examples=40)
@given(st.binary(max_size=300), st.sampled_from(["HmacSHA256", "AESCmac"]))
def test_sign_verify_property(data: bytes, algo: str) -> None:
    key = KH if algo == "HmacSHA256" else KE
    context = SymmetricCryptoContext("k", signature_key=key, signature_algorithm=algo)
    tag = context.sign(data)
    assert len(tag) == (32 if algo == "HmacSHA256" else 16)
    assert context.verify(data, tag)
    assert not context.verify(data + b"x", tag)
    assert not context.verify(data, tag[:-1])
    assert not context.verify(data, b"")
    flipped = bytes([tag[0] ^ 1]) + tag[1:]
    assert not context.verify(data, flipped)


def test_verify_wrong_key_and_v2_envelope() -> None:
    context = ctx()
    tag = context.sign(b"data")
    assert not SymmetricCryptoContext("k", signature_key=bytes(32)).verify(b"data", tag)
    v2 = encode({"version": 2, "algorithm": "HmacSHA256", "signature": tag})
    assert context.verify(b"data", v2)


# -- configuration ----------------------------------------------------------------------


def test_missing_keys_raise_not_supported() -> None:
    empty = SymmetricCryptoContext("k")
    for op, code in [
        (lambda: empty.encrypt(b"x"), MslError.ENCRYPT_NOT_SUPPORTED),
        (lambda: empty.decrypt(b"{}"), MslError.DECRYPT_NOT_SUPPORTED),
        (lambda: empty.sign(b"x"), MslError.SIGN_NOT_SUPPORTED),
        (lambda: empty.verify(b"x", b"y"), MslError.VERIFY_NOT_SUPPORTED),
        (lambda: empty.wrap(DATA128), MslError.WRAP_NOT_SUPPORTED),
        (lambda: empty.unwrap(DATA128 + bytes(8)), MslError.UNWRAP_NOT_SUPPORTED),
    ]:
        with pytest.raises(MslCryptoException) as e:
            op()
        assert err(e) is code


def test_invalid_keys_rejected() -> None:
    with pytest.raises(MslCryptoException) as e:
        SymmetricCryptoContext("k", encryption_key=bytes(15))
    assert err(e) is MslError.INVALID_ENCRYPTION_KEY
    with pytest.raises(MslCryptoException) as e:
        SymmetricCryptoContext("k", signature_key=b"")
    assert err(e) is MslError.INVALID_HMAC_KEY
    with pytest.raises(MslCryptoException) as e:
        SymmetricCryptoContext("k", signature_key=bytes(32), signature_algorithm="SHA256withRSA")
    assert err(e) is MslError.INVALID_HMAC_KEY
    with pytest.raises(MslCryptoException) as e:
        SymmetricCryptoContext("k", signature_key=bytes(32), signature_algorithm="MD5")
    assert err(e) is MslError.UNIDENTIFIED_ALGORITHM
    with pytest.raises(MslCryptoException) as e:
        SymmetricCryptoContext("k", wrap_key=bytes(8))
    assert err(e) is MslError.INVALID_WRAPPING_KEY


def test_repr_hides_keys() -> None:
    assert KE.hex() not in repr(ctx()) and "ESN_7" in repr(ctx())


def test_session_context() -> None:
    session = session_crypto_context("client1", 7, KE, KH, random=FixedRandom())
    assert isinstance(session, SessionCryptoContext)
    assert session.key_id == "client1_7"
    assert session_crypto_context(None, 0, KE, KH).key_id == "0"
    assert session.decrypt(session.encrypt(b"abc")) == b"abc"
    assert session.verify(b"abc", session.sign(b"abc"))
    with pytest.raises(MslCryptoException) as e:
        session.wrap(DATA128)
    assert err(e) is MslError.WRAP_NOT_SUPPORTED
    with pytest.raises(MslCryptoException) as e:
        session.unwrap(DATA128 + bytes(8))
    assert err(e) is MslError.UNWRAP_NOT_SUPPORTED
    cmac_session = SessionCryptoContext("x", 1, KE, KE, "AESCmac")
    assert len(cmac_session.sign(b"abc")) == 16


# -- interop: wire vector 01 (crypto.md §12) --------------------------------------------


def test_vector_01_psk_request() -> None:
    vector = load("01_a_psk_request_encrypted.json")
    psk = vector["keys"]["psk"][0]
    context = SymmetricCryptoContext("client1", b64(psk["encryption_b64"]), b64(psk["hmac_b64"]))
    header, chunk = wire_objects(vector)

    headerdata = b64(header["headerdata"])
    assert len(headerdata) == 383
    assert context.verify(headerdata, b64(header["signature"]))
    assert context.sign(headerdata) == b64(header["signature"])
    envelope = CiphertextEnvelope.parse(headerdata)
    assert envelope.key_id == "client1"
    assert envelope.iv is not None and envelope.iv.hex() == "371459ec83cf65b741b01aee9c8e54ca"
    plaintext = context.decrypt(headerdata)
    assert len(plaintext) == 210
    assert decode(plaintext).get_int("messageid") == 3188690489837010
    assert json.loads(plaintext) == vector["expected"]["header"]["headerdata_plaintext"]

    payload = b64(chunk["payload"])
    assert context.verify(payload, b64(chunk["signature"]))
    assert not context.verify(headerdata, b64(chunk["signature"]))
    chunk_plain = json.loads(context.decrypt(payload))
    assert b64(chunk_plain["data"]).startswith(b"Hello from client1")
