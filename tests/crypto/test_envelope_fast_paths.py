"""The ciphertext envelopes a symmetric context reads in place (the binary and JSON V1
envelopes exactly as missile writes them) read as the general parser reads them: the
same IV and ciphertext, and through ``decrypt`` the same plaintext or the same error,
on envelopes as written and edited."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.crypto import cbc
from missile.crypto.envelopes import (
    CiphertextEnvelope,
    EnvelopeVersion,
    encode_v1,
    encode_v1_binary,
    read_v1_binary,
    read_v1_json,
)
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.errors import MslException
from mutation_helpers import edited, edits

KE, KH = bytes(range(16)), bytes(range(32))
_KEY_IDS = st.sampled_from(["k", "client1_7", 'a"b\\c', "clé", "x" * 30, "y" * 300, ""]) | st.text(max_size=12)
_EDIT = edits([b'"', b"\\", b"=", b"A", b" ", b"\x1c", b"\xa3", b"\x50", b"\x58", b"\x78", b"\xff"])


def _general(data: bytes) -> object:
    """What decrypt gives through the general parser: the plaintext, or the error."""
    try:
        envelope = CiphertextEnvelope.parse(data, EnvelopeVersion.V1)
        plain, size = cbc.decrypt(algorithms.AES(KE), envelope.iv, envelope.ciphertext)
    except MslException as exc:
        return exc.error
    return bytes(plain[:size])


def _decrypted(ctx: SymmetricCryptoContext, data: bytes) -> object:
    try:
        return ctx.decrypt(data)
    except MslException as exc:
        return exc.error


@pytest.mark.parametrize("binary", [False, True])
@settings(max_examples=300, deadline=None)
@given(
    key_id=_KEY_IDS,
    plaintext=st.binary(max_size=70),
    iv=st.binary(min_size=16, max_size=16) | st.binary(max_size=20),
    edits=st.lists(_EDIT, max_size=3),
)
def test_envelopes_read_in_place_read_as_the_general_parser(
    binary: bool, key_id: str, plaintext: bytes, iv: bytes, edits: list[tuple[int, str, bytes]]
) -> None:
    ciphertext = cbc.encrypt(algorithms.AES(KE), iv, plaintext) if plaintext and len(iv) == 16 else plaintext
    written = encode_v1_binary(key_id, iv, ciphertext) if binary else encode_v1(key_id, iv, ciphertext)
    data = edited(written, edits)
    fast = read_v1_binary(data, 0, len(data)) if binary else read_v1_json(data)
    if fast is not None:
        general = CiphertextEnvelope.parse(data, EnvelopeVersion.V1)
        if binary:
            fast_iv, at = fast
            assert (fast_iv, data[at:]) == (general.iv, general.ciphertext)
        else:
            assert fast == (general.iv, general.ciphertext)
    ctx = SymmetricCryptoContext(key_id, KE, KH)
    assert _decrypted(ctx, data) == _general(data)


def test_the_usual_envelopes_are_read_in_place() -> None:
    """Guard against the fast paths silently never applying."""
    iv = bytes(16)
    ciphertext = cbc.encrypt(algorithms.AES(KE), iv, b"hello")
    binary = encode_v1_binary("client1_7", iv, ciphertext)
    assert read_v1_binary(binary, 0, len(binary)) == (iv, len(binary) - len(ciphertext))
    assert read_v1_json(encode_v1("client1_7", iv, ciphertext)) == (iv, ciphertext)
    # A key ID that needs escaping in JSON, or other shapes, go to the general parser.
    assert read_v1_json(encode_v1('a"b', iv, ciphertext)) is None
    assert read_v1_json(encode_v1("k", iv, ciphertext) + b" ") is None
    assert read_v1_binary(encode_v1_binary("k", None, ciphertext), 0, 30) is None


def test_a_binary_envelope_inside_other_bytes_is_read_between_its_bounds() -> None:
    iv = bytes(range(16))
    ciphertext = cbc.encrypt(algorithms.AES(KE), iv, b"x" * 40)
    envelope = encode_v1_binary("k", iv, ciphertext)
    data = b"before" + envelope + b"after"
    assert read_v1_binary(data, 6, 6 + len(envelope)) == (iv, 6 + len(envelope) - len(ciphertext))
    assert read_v1_binary(data, 6, 5 + len(envelope)) is None
    assert read_v1_binary(data, 6, len(data)) is None
