"""Ciphertext and signature envelopes (crypto.md §3, §4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from missile.crypto import CipherSpec, CiphertextEnvelope, EnvelopeVersion, SignatureAlgo, SignatureEnvelope
from missile.encoding import encode
from missile.errors import MslCryptoException, MslError


def test_v1_encode_and_parse() -> None:
    env = CiphertextEnvelope.v1('ESN "7"', b"\x01" * 16, b"\xff" * 32)
    data = env.encode()
    raw = json.loads(data)
    assert raw["keyid"] == 'ESN "7"' and raw["sha256"] == "AA==" and "version" not in raw
    assert CiphertextEnvelope.parse(data) == env
    assert CiphertextEnvelope.parse(data, EnvelopeVersion.V1) == env


def test_v1_without_iv() -> None:
    env = CiphertextEnvelope.v1("rsa", None, b"ct")
    assert "iv" not in json.loads(env.encode())
    assert CiphertextEnvelope.parse(env.encode()).iv is None


@given(st.text(), st.binary(max_size=64), st.binary(max_size=64))
def test_v1_round_trip(key_id: str, iv: bytes, ct: bytes) -> None:
    env = CiphertextEnvelope.v1(key_id, iv, ct)
    assert CiphertextEnvelope.parse(env.encode()) == env


def test_sha256_value_ignored() -> None:
    data = encode({"keyid": "k", "iv": b"i", "ciphertext": b"c", "sha256": b"whatever"})
    assert CiphertextEnvelope.parse(data).ciphertext == b"c"


def test_v2_parse() -> None:
    data = encode({"version": 2, "cipherspec": "AES/CBC/PKCS5Padding", "iv": b"\x02" * 16, "ciphertext": b"x"})
    env = CiphertextEnvelope.parse(data)
    assert env.version is EnvelopeVersion.V2
    assert env.cipher_spec is CipherSpec.AES_CBC_PKCS5
    assert env.key_id is None and env.iv == b"\x02" * 16 and env.ciphertext == b"x"
    assert CiphertextEnvelope.parse(CiphertextEnvelope.v2(CipherSpec.AES_WRAP, None, b"y").encode()).cipher_spec is (
        CipherSpec.AES_WRAP
    )
    # Forced V1 (the reference contexts' mode) rejects it.
    with pytest.raises(MslCryptoException) as e:
        CiphertextEnvelope.parse(data, EnvelopeVersion.V1)
    assert e.value.error is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR


def test_v2_unknown_cipherspec() -> None:
    data = encode({"version": 2, "cipherspec": "DES", "ciphertext": b"x"})
    with pytest.raises(MslCryptoException) as e:
        CiphertextEnvelope.parse(data)
    assert e.value.error is MslError.UNIDENTIFIED_CIPHERSPEC


def test_unknown_version() -> None:
    data = encode({"version": 3, "keyid": "k", "ciphertext": b"x", "sha256": b"\x00"})
    with pytest.raises(MslCryptoException) as e:
        CiphertextEnvelope.parse(data)
    assert e.value.error is MslError.UNIDENTIFIED_CIPHERTEXT_ENVELOPE


def test_non_integer_version_means_v1() -> None:
    data = encode({"version": "two", "keyid": "k", "ciphertext": b"x", "sha256": b"\x00"})
    assert CiphertextEnvelope.parse(data).version is EnvelopeVersion.V1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"{bad json",
        encode({"iv": b"i", "ciphertext": b"c", "sha256": b"\x00"}),
        encode({"keyid": 5, "ciphertext": b"c", "sha256": b"\x00"}),
        encode({"keyid": "k", "sha256": b"\x00"}),
        encode({"keyid": "k", "ciphertext": "not base64!", "sha256": b"\x00"}),
        encode({"version": 2, "ciphertext": b"c"}),
    ],
)
def test_malformed_envelopes(data: bytes) -> None:
    with pytest.raises(MslCryptoException) as e:
        CiphertextEnvelope.parse(data)
    assert e.value.error is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR


def test_signature_envelope_v1_is_raw() -> None:
    assert SignatureEnvelope(b"\x01\x02").encode() == b"\x01\x02"
    assert SignatureEnvelope.parse(b"\x01\x02") == SignatureEnvelope(b"\x01\x02")
    assert SignatureEnvelope.parse(b"").signature == b""


def test_signature_envelope_v2_detection() -> None:
    v2 = SignatureEnvelope(b"tag", EnvelopeVersion.V2, SignatureAlgo.AES_CMAC)
    parsed = SignatureEnvelope.parse(v2.encode())
    assert parsed == v2
    # Things that look like objects but are not usable V2 envelopes stay raw V1.
    for data in [
        b"{not json",
        encode({"algorithm": "HmacSHA256", "signature": b"x"}),
        encode({"version": 1, "algorithm": "HmacSHA256", "signature": b"x"}),
        encode({"version": 2, "algorithm": "MD5", "signature": b"x"}),
        encode({"version": 2, "algorithm": "HmacSHA256"}),
        encode({"version": "2", "algorithm": "HmacSHA256", "signature": b"x"}),
    ]:
        assert SignatureEnvelope.parse(data) == SignatureEnvelope(data)


@given(st.binary(max_size=80))
def test_signature_parse_never_raises(data: bytes) -> None:
    SignatureEnvelope.parse(data)
