"""Encoding failures of envelopes and key derivation inputs."""

from __future__ import annotations

import pytest

from missile.crypto.derivation import derive_wrapping_key
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, SignatureEnvelope
from missile.errors import MslError, MslException


def test_v2_ciphertext_envelope_without_cipher_spec_cannot_be_encoded() -> None:
    envelope = CiphertextEnvelope(EnvelopeVersion.V2, b"ct", iv=b"\x00" * 16)
    with pytest.raises(MslException) as info:
        envelope.encode()
    assert info.value.error is MslError.CIPHERTEXT_ENVELOPE_ENCODE_ERROR


def test_v2_signature_envelope_without_algorithm_cannot_be_encoded() -> None:
    with pytest.raises(MslException) as info:
        SignatureEnvelope(b"sig", version=EnvelopeVersion.V2).encode()
    assert info.value.error is MslError.SIGNATURE_ENVELOPE_ENCODE_ERROR


@pytest.mark.parametrize(("ke", "kh"), [(b"", b"k" * 32), (b"k" * 16, b"")])
def test_wrap_key_derivation_needs_both_keys(ke: bytes, kh: bytes) -> None:
    with pytest.raises(MslException) as info:
        derive_wrapping_key(ke, kh)
    assert info.value.error is MslError.DERIVEKEY_ERROR
