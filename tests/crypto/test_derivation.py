"""Key derivations (crypto.md §9) and Diffie-Hellman integers (keyx.md §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from missile.crypto import (
    SymmetricCryptoContext,
    derive_dh_session_keys,
    derive_wrapping_key,
    dh_int_from_bytes,
    dh_int_to_bytes,
)

from .vectors import b64, load


def test_kpw_vector() -> None:
    ke = bytes(range(0x00, 0x10))
    kh = bytes(range(0x20, 0x40))
    assert derive_wrapping_key(ke, kh).hex() == "7b7b0dbfb638b34fa3ba594791955351"


def test_kpw_matches_vector_keys() -> None:
    psk = load("01_a_psk_request_encrypted.json")["keys"]["psk"][0]
    kpw = derive_wrapping_key(b64(psk["encryption_b64"]), b64(psk["hmac_b64"]))
    assert kpw == b64(psk["wrap_b64"])


def test_symmetric_wrapped_psk_vector() -> None:
    """Vector 13: SYMMETRIC_WRAPPED/PSK session keys are AES-KW under the derived Kpw."""
    response = load("13_c_response_symmetric_wrapped_psk.json")
    psk = response["keys"]["psk"][0]
    kpw = derive_wrapping_key(b64(psk["encryption_b64"]), b64(psk["hmac_b64"]))
    context = SymmetricCryptoContext("client1", wrap_key=kpw)
    data = response["expected"]["header"]["keyresponsedata"]["keydata"]
    assert context.unwrap(b64(data["encryptionkey"])) == b64(response["inputs"]["new_session_keys"]["encryption_b64"])
    assert context.unwrap(b64(data["hmackey"])) == b64(response["inputs"]["new_session_keys"]["hmac_b64"])


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (1, "0001"), (0x7F, "007f"), (0x80, "0080"), (0x0100, "000100"), (0xFFFF, "00ffff")],
)
def test_dh_int_encoding(value: int, encoded: str) -> None:
    assert dh_int_to_bytes(value).hex() == encoded
    assert dh_int_from_bytes(bytes.fromhex(encoded)) == value


def test_dh_int_negative_rejected() -> None:
    with pytest.raises(ValueError):
        dh_int_to_bytes(-1)


@given(st.integers(min_value=0, max_value=2**600), st.integers(min_value=0, max_value=3))
def test_dh_int_leading_zeros_accepted(value: int, zeros: int) -> None:
    minimal = value.to_bytes((value.bit_length() + 7) // 8, "big")
    assert dh_int_from_bytes(b"\x00" * zeros + minimal) == value
    assert dh_int_to_bytes(value) == b"\x00" + minimal


def test_dh_session_keys_vector() -> None:
    """Vector 15: the client's DH private value and the server's public value give the session keys."""
    request = load("14_b_psk_keyx_diffie_hellman.json")["inputs"]["key_request_data"][0]
    response = load("15_c_response_diffie_hellman.json")
    p = int(request["p_hex"], 16)
    x = int(request["private_x_hex"], 16)
    server_public = dh_int_from_bytes(b64(response["expected"]["header"]["keyresponsedata"]["keydata"]["publickey"]))
    z = pow(server_public, x, p)
    keys = derive_dh_session_keys(z)
    assert keys.encryption_key == b64(response["inputs"]["new_session_keys"]["encryption_b64"])
    assert keys.hmac_key == b64(response["inputs"]["new_session_keys"]["hmac_b64"])
    # The same secret as fixed-length (zero-padded) bytes derives the same keys.
    assert derive_dh_session_keys(z.to_bytes(64, "big")) == keys
    assert len(keys.encryption_key) == 16 and len(keys.hmac_key) == 32
