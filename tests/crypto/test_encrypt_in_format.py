"""CryptoContext.encrypt_in_format: the symmetric contexts' direct envelope writer gives
the default path's bytes (encrypt to JSON, then envelope_in_format), in both formats."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.crypto import (
    CiphertextEnvelope,
    CryptoContext,
    EnvelopeVersion,
    NullCryptoContext,
    SymmetricCryptoContext,
    session_crypto_context,
)
from missile.crypto.envelopes import envelope_in_format
from missile.encoding import EncoderFormat
from missile.errors import MslCryptoException, MslError

from .vectors import FixedRandom

KE = bytes(range(16))
KH = bytes(range(32, 64))
FORMATS = list(EncoderFormat)


def _default(context: CryptoContext, data: bytes, fmt: EncoderFormat) -> bytes:
    """The base class's path, whatever the context overrides."""
    return CryptoContext.encrypt_in_format(context, data, fmt)


def _pair(key_id: str, seed: int, key: bytes) -> tuple[SymmetricCryptoContext, SymmetricCryptoContext]:
    """Two contexts under the same keys drawing the same IVs."""
    return (
        SymmetricCryptoContext(key_id, key, KH, random=FixedRandom(seed)),
        SymmetricCryptoContext(key_id, key, KH, random=FixedRandom(seed)),
    )


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=5000),
    fmt=st.sampled_from(FORMATS),
    key_id=st.text(max_size=40),
    seed=st.integers(0, 255),
    key=st.sampled_from([KE, bytes(range(24)), bytes(range(32))]),
)
def test_direct_envelope_is_the_default_paths_bytes(
    data: bytes, fmt: EncoderFormat, key_id: str, seed: int, key: bytes
) -> None:
    direct, default = _pair(key_id, seed, key)
    for _ in range(2):  # the second call runs with the key's encryptor already chained
        envelope = direct.encrypt_in_format(data, fmt)
        assert envelope == _default(default, data, fmt)
        assert envelope[0] == fmt.identifier
        assert direct.decrypt(envelope) == data


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), fmt=st.sampled_from(FORMATS))
def test_fresh_ivs_decrypt_to_the_same_plaintext_with_the_same_structure(data: bytes, fmt: EncoderFormat) -> None:
    """With system randomness the IVs differ; the envelopes still mean the same."""
    context = session_crypto_context("client1", 7, KE, KH)
    direct = context.encrypt_in_format(data, fmt)
    default = _default(context, data, fmt)
    assert direct != default
    assert context.decrypt(direct) == context.decrypt(default) == data
    ours, theirs = (CiphertextEnvelope.parse(e, EnvelopeVersion.V1) for e in (direct, default))
    assert (ours.version, ours.key_id, len(ours.iv or b""), len(ours.ciphertext)) == (
        theirs.version,
        theirs.key_id,
        len(theirs.iv or b""),
        len(theirs.ciphertext),
    )
    assert len(direct) == len(default)


@pytest.mark.parametrize("fmt", FORMATS)
def test_json_is_what_encrypt_writes(fmt: EncoderFormat) -> None:
    direct, plain = _pair("ESN_7", 3, KE)
    expected = envelope_in_format(plain.encrypt(b"hello"), fmt)
    assert direct.encrypt_in_format(b"hello", fmt) == expected
    if fmt is EncoderFormat.JSON:
        assert expected.startswith(b'{"ciphertext":"')


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_encryption_key_is_encrypt_not_supported(fmt: EncoderFormat) -> None:
    context = SymmetricCryptoContext("ESN_7", None, KH)
    with pytest.raises(MslCryptoException) as exc:
        context.encrypt_in_format(b"data", fmt)
    assert exc.value.error is MslError.ENCRYPT_NOT_SUPPORTED


class _Tagging(SymmetricCryptoContext):
    """Overrides encrypt: encrypt_in_format must go through the override."""

    calls = 0

    def encrypt(self, data: bytes) -> bytes:
        type(self).calls += 1
        return super().encrypt(data)


class _Declared(_Tagging):
    """Declares that its encrypt override keeps the stock bytes."""

    writes_envelopes = True


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_subclass_overriding_encrypt_gets_the_default_path(fmt: EncoderFormat) -> None:
    assert not _Tagging.writes_envelopes and SymmetricCryptoContext.writes_envelopes
    context = _Tagging("ESN_7", KE, KH, random=FixedRandom(5))
    reference = SymmetricCryptoContext("ESN_7", KE, KH, random=FixedRandom(5))
    before = _Tagging.calls
    assert context.encrypt_in_format(b"abc", fmt) == reference.encrypt_in_format(b"abc", fmt)
    assert _Tagging.calls == before + 1
    declared = _Declared("ESN_7", KE, KH, random=FixedRandom(5))
    before = _Tagging.calls
    assert declared.encrypt_in_format(b"abc", fmt) == SymmetricCryptoContext(
        "ESN_7", KE, KH, random=FixedRandom(5)
    ).encrypt_in_format(b"abc", fmt)
    assert _Tagging.calls == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_pass_through_contexts_return_the_data(fmt: EncoderFormat) -> None:
    assert NullCryptoContext().encrypt_in_format(b'{"not":"an envelope"}', fmt) == b'{"not":"an envelope"}'
    assert NullCryptoContext().encrypt_in_format(b"", fmt) == b""
