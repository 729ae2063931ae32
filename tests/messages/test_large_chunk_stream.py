"""Large payload chunks are encoded as a stream of slices (payload._encode_large): the
bytes must be exactly those of the general path, which joins every layer."""

from __future__ import annotations

import os

import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode
from missile.encoding.base64 import b64encode_stream, b64encoded_size
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException, MslInternalException
from missile.messages import payload
from missile.messages.payload import PayloadChunk, encode_chunk


class FixedRandom:
    """Deterministic IVs, so two contexts encrypt to the same bytes."""

    def __init__(self, seed: int) -> None:
        self._counter = seed

    def random_bytes(self, n: int) -> bytes:
        self._counter += 1
        return bytes((self._counter + i) & 0xFF for i in range(n))


KE, KH = bytes(range(16)), bytes(range(32))


class _GeneralPath(SymmetricCryptoContext):
    """Same crypto, but not the stock class: encode_chunk takes the general path."""


def _pair(seed: int) -> tuple[SymmetricCryptoContext, SymmetricCryptoContext]:
    fast = SymmetricCryptoContext("k", KE, KH, random=FixedRandom(seed))
    general = _GeneralPath("k", KE, KH, random=FixedRandom(seed))
    return fast, general


def _parse(wire: bytes, crypto: SymmetricCryptoContext) -> PayloadChunk:
    return PayloadChunk.parse(decode(wire), crypto, max_deflate_ratio=200)


SLICE = payload._SLICE
T = payload._STREAM_THRESHOLD
SIZES = sorted({T + 1, T + 2, T + SLICE - 1, T + SLICE, T + SLICE + 1, T + 2 * SLICE + 2, T + 5 * SLICE + 16, 600_001})


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("end", [False, True])
def test_streamed_chunk_is_byte_identical(size: int, end: bool) -> None:
    data = os.urandom(size)
    fast, general = _pair(size)
    streamed = encode_chunk(fast, 7, 42, data, end_of_message=end)
    joined = encode_chunk(general, 7, 42, data, end_of_message=end)
    assert streamed == joined
    chunk = _parse(streamed, fast)
    assert chunk.data == data and chunk.end_of_message is end


def test_streamed_chunk_from_memoryview_and_compressed() -> None:
    # Half the entropy of random bytes: compresses to about half, still over the threshold.
    data = bytes(b & 0x0F for b in os.urandom(3 * payload._STREAM_THRESHOLD))
    fast, general = _pair(1)

    streamed = encode_chunk(fast, 1, 2, memoryview(data), compression=CompressionAlgorithm.GZIP)
    joined = encode_chunk(general, 1, 2, data, compression=CompressionAlgorithm.GZIP)
    assert streamed == joined
    chunk = _parse(streamed, fast)
    assert chunk.data == data and chunk.compression_algo is CompressionAlgorithm.GZIP


def test_streamed_chunk_is_tamper_evident() -> None:
    fast, _ = _pair(3)
    wire = bytearray(encode_chunk(fast, 1, 1, os.urandom(payload._STREAM_THRESHOLD + 50_000)))
    wire[len(wire) // 2] ^= 0x01  # inside the base64 of the envelope
    with pytest.raises(MslException) as err:
        _parse(bytes(wire), fast)
    assert err.value.error in (MslError.PAYLOAD_VERIFICATION_FAILED, MslError.MSL_PARSE_ERROR)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_b64_stream_equals_whole(pieces: list[bytes]) -> None:
    out = b"".join(b64encode_stream(pieces))
    assert out == pybase64.b64encode(b"".join(pieces))
    assert len(out) == b64encoded_size(sum(map(len, pieces)))


def test_encrypt_stream_matches_encrypt() -> None:
    for size in (0, 1, 15, 16, 17, 1000):
        data = os.urandom(size)
        a = SymmetricCryptoContext("k", KE, KH, random=FixedRandom(size))
        b = SymmetricCryptoContext("k", KE, KH, random=FixedRandom(size))
        pieces = [data[i : i + 7] for i in range(0, size, 7)]
        assert b"".join(a.encrypt_stream(pieces, size)) == b.encrypt(data)


def test_encrypt_stream_refuses_a_wrong_size() -> None:
    ctx = SymmetricCryptoContext("k", KE, KH)
    with pytest.raises(MslInternalException):
        b"".join(ctx.encrypt_stream([b"x" * 40], 41))


def test_signer_matches_sign() -> None:
    ctx = SymmetricCryptoContext("k", KE, KH)
    mac = ctx.signer()
    mac.update(b"abc")
    mac.update(b"def")
    assert ctx.verify(b"abcdef", mac.finalize())


@pytest.mark.parametrize("size", [1, 15, 16, 17, 32, 5000])
def test_decrypt_padded_is_decrypt_in_place(size: int) -> None:
    ctx = SymmetricCryptoContext("k", KE, KH)
    data = os.urandom(size)
    padded, n = ctx.decrypt_padded(ctx.encrypt(data))
    assert n == size and padded[:n] == data
    assert ctx.decrypt(ctx.encrypt(data)) == data


def test_decrypt_padded_checks_the_padding() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from missile.crypto.envelopes import encode_v1

    iv = bytes(16)
    encryptor = Cipher(algorithms.AES(KE), modes.CBC(iv)).encryptor()
    bad = encryptor.update(b"x" * 15 + b"\x05") + encryptor.finalize()  # 0x05 but one byte of it
    ctx = SymmetricCryptoContext("k", KE, KH)
    with pytest.raises(MslException) as err:
        ctx.decrypt_padded(encode_v1("k", iv, bad))
    assert err.value.error is MslError.CIPHERTEXT_BAD_PADDING


@pytest.mark.parametrize("size", [3 * 16 * 1000, payload._STREAM_THRESHOLD + 1, payload._STREAM_THRESHOLD + 100_003])
def test_large_chunk_parses_in_place(size: int) -> None:
    ctx = SymmetricCryptoContext("k", KE, KH)
    data = os.urandom(size)
    for end in (False, True):
        chunk = _parse(encode_chunk(ctx, 3, 9, data, end_of_message=end), ctx)
        assert (chunk.sequence_number, chunk.message_id, chunk.end_of_message, chunk.data) == (3, 9, end, data)


def test_a_context_overriding_decrypt_is_honoured_on_receive() -> None:
    calls: list[int] = []

    class Counting(SymmetricCryptoContext):
        def decrypt(self, data: bytes) -> bytes:
            calls.append(len(data))
            return super().decrypt(data)

    ctx = Counting("k", KE, KH)
    data = os.urandom(10_000)
    assert _parse(encode_chunk(ctx, 1, 1, data), ctx).data == data
    assert len(calls) == 1
