"""Large payload chunks stream through their layers in slices (messages.large_chunks):
the bytes sent, and the results and errors on receipt, must be exactly those of the
general path, which handles every layer whole."""

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
from missile.messages import large_chunks, payload
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


SLICE = large_chunks.SLICE
T = large_chunks.STREAM_THRESHOLD
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
    data = bytes(b & 0x0F for b in os.urandom(3 * large_chunks.STREAM_THRESHOLD))
    fast, general = _pair(1)

    streamed = encode_chunk(fast, 1, 2, memoryview(data), compression=CompressionAlgorithm.GZIP)
    joined = encode_chunk(general, 1, 2, data, compression=CompressionAlgorithm.GZIP)
    assert streamed == joined
    chunk = _parse(streamed, fast)
    assert chunk.data == data and chunk.compression_algo is CompressionAlgorithm.GZIP


def test_streamed_chunk_is_tamper_evident() -> None:
    fast, _ = _pair(3)
    wire = bytearray(encode_chunk(fast, 1, 1, os.urandom(large_chunks.STREAM_THRESHOLD + 50_000)))
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


@pytest.mark.parametrize("size", [3 * 16 * 1000, T + 1, T + 100_003])
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


# -- receiving ----------------------------------------------------------------------------

BIG = 2 * large_chunks.STREAM_THRESHOLD  # data size whose chunks are streamed on receipt


def _outcome(wire: bytes, crypto: SymmetricCryptoContext, *, streamed: bool) -> object:
    original = payload.open_large
    if not streamed:
        payload.open_large = lambda *_args: None  # type: ignore[assignment]
    try:
        chunk = _parse(wire, crypto)
    except MslException as exc:
        return exc.error
    finally:
        payload.open_large = original
    return (chunk.sequence_number, chunk.message_id, chunk.end_of_message, chunk.compression_algo, chunk.data)


def _encrypt(plaintext: bytes, iv: bytes = bytes(range(16))) -> bytes:
    """AES-CBC of ``plaintext``, which must already be a whole number of blocks."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    encryptor = Cipher(algorithms.AES(KE), modes.CBC(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def _padded(plaintext: bytes) -> bytes:
    n = 16 - len(plaintext) % 16
    return plaintext + bytes((n,)) * n


def _envelope(ciphertext: bytes, iv: bytes = bytes(range(16)), *, layout: str = "canonical") -> bytes:
    ct, iv_text = pybase64.b64encode(ciphertext), pybase64.b64encode(iv)
    if layout == "reordered":
        return b'{"iv":"' + iv_text + b'","keyid":"k","ciphertext":"' + ct + b'","sha256":"AA=="}'
    sha = b"AB==" if layout == "other sha256" else b"AA=="
    return b'{"keyid":"k","iv":"' + iv_text + b'","ciphertext":"' + ct + b'","sha256":"' + sha + b'"}'


def _sealed(envelope: bytes) -> bytes:
    """A chunk around ``envelope``, correctly signed."""
    signature = SymmetricCryptoContext("k", KE, KH).sign(envelope)
    return b'{"payload":"' + pybase64.b64encode(envelope) + b'","signature":"' + pybase64.b64encode(signature) + b'"}'


def _plaintext(data_text: bytes, head: bytes = b'"sequencenumber":1,"messageid":2') -> bytes:
    return b"{" + head + b',"data":"' + data_text + b'"}'


def _chunk(plaintext: bytes) -> bytes:
    return _sealed(_envelope(_encrypt(_padded(plaintext))))


DATA = os.urandom(BIG + 12_345)
DATA_TEXT = pybase64.b64encode(DATA)
RANDOM_BLOCKS = os.urandom(BIG // 16 * 16)
BAD_PADDING = _plaintext(DATA_TEXT) + b"\x05" * (16 - len(_plaintext(DATA_TEXT)) % 16)

RECEIVE_CASES = {
    "canonical": _chunk(_plaintext(DATA_TEXT)),
    "end of message": _chunk(_plaintext(DATA_TEXT, b'"sequencenumber":3,"messageid":2,"endofmsg":true')),
    "reordered plaintext": _chunk(b'{"messageid":2,"sequencenumber":1,"data":"' + DATA_TEXT + b'"}'),
    "escaped slash in data": _chunk(_plaintext(DATA_TEXT.replace(b"/", b"\\/"))),
    "quote in data": _chunk(_plaintext(DATA_TEXT[:1000] + b'"' + DATA_TEXT[1001:])),
    "bad base64 data": _chunk(_plaintext(DATA_TEXT[:-8] + b"A=AA====")),
    "padding mid data": _chunk(_plaintext(pybase64.b64encode(b"x") + DATA_TEXT)),
    "truncated data": _chunk(_plaintext(DATA_TEXT[:-1])),
    "bad padding": _sealed(_envelope(_encrypt(BAD_PADDING))),
    "not whole blocks": _sealed(_envelope(RANDOM_BLOCKS + b"1234567")),
    "short iv": _sealed(_envelope(RANDOM_BLOCKS, bytes(8))),
    "other envelope key order": _sealed(_envelope(_encrypt(_padded(_plaintext(DATA_TEXT))), layout="reordered")),
    "other sha256": _sealed(_envelope(_encrypt(_padded(_plaintext(DATA_TEXT))), layout="other sha256")),
    "random plaintext": _sealed(_envelope(RANDOM_BLOCKS)),
}


@pytest.mark.parametrize("name", list(RECEIVE_CASES))
def test_streamed_receipt_agrees_with_the_general_path(name: str) -> None:
    crypto = SymmetricCryptoContext("k", KE, KH)
    wire = RECEIVE_CASES[name]
    assert _outcome(wire, crypto, streamed=True) == _outcome(wire, crypto, streamed=False)


def test_streamed_receipt_reads_the_canonical_case_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    original = large_chunks._decrypt

    def spy(*args: object) -> object:
        result = original(*args)  # type: ignore[arg-type]
        calls.append(result)
        return result

    monkeypatch.setattr(large_chunks, "_decrypt", spy)
    crypto = SymmetricCryptoContext("k", KE, KH)
    outcome = _outcome(RECEIVE_CASES["canonical"], crypto, streamed=True)
    assert outcome == (1, 2, False, None, DATA) and len(calls) == 1


@pytest.mark.parametrize("where", [10, 300_000, -40])
def test_streamed_receipt_refuses_a_tampered_chunk(where: int) -> None:
    crypto = SymmetricCryptoContext("k", KE, KH)
    wire = bytearray(encode_chunk(crypto, 1, 1, os.urandom(BIG + 1000)))
    wire[where] = ord("A") if wire[where] != ord("A") else ord("B")
    outcome = _outcome(bytes(wire), crypto, streamed=True)
    assert outcome == _outcome(bytes(wire), crypto, streamed=False)
    assert outcome in (MslError.PAYLOAD_VERIFICATION_FAILED, MslError.MSL_PARSE_ERROR)


def test_streamed_receipt_takes_whitespace_like_the_general_path() -> None:
    crypto = SymmetricCryptoContext("k", KE, KH)
    wire = encode_chunk(crypto, 1, 1, os.urandom(BIG + 5))
    cut = 200_000
    spaced = wire[:cut] + b"\\n" + wire[cut:]  # an escaped newline inside the payload's base64
    assert _outcome(spaced, crypto, streamed=True) == _outcome(spaced, crypto, streamed=False)


@settings(max_examples=25, deadline=None)
@given(st.integers(BIG, BIG + 3 * large_chunks.TEXT_SLICE), st.booleans())
def test_streamed_receipt_of_any_size(size: int, end: bool) -> None:
    crypto = SymmetricCryptoContext("k", KE, KH)
    data = os.urandom(size)
    wire = encode_chunk(crypto, 5, 6, data, end_of_message=end)
    assert _outcome(wire, crypto, streamed=True) == (5, 6, end, None, data)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 3000), st.lists(st.integers(0, 3100), max_size=5))
def test_decrypt_stream_any_split_equals_decrypt(size: int, cuts: list[int]) -> None:
    from missile.crypto.envelopes import CiphertextEnvelope

    ctx = SymmetricCryptoContext("k", KE, KH)
    data = os.urandom(size)
    envelope = CiphertextEnvelope.parse(ctx.encrypt(data))
    ct = envelope.ciphertext
    points = sorted({min(c, len(ct)) for c in cuts})
    pieces = [ct[a:b] for a, b in zip([0, *points], [*points, len(ct)], strict=True)]
    assert envelope.iv is not None
    assert b"".join(ctx.decrypt_stream(envelope.iv, pieces)) == data


@pytest.mark.parametrize(
    ("iv", "ciphertext", "error"),
    [
        (bytes(8), bytes(32), MslError.INVALID_ALGORITHM_PARAMS),
        (bytes(16), b"", MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE),
        (bytes(16), bytes(33), MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE),
        (bytes(16), _encrypt(b"x" * 15 + b"\x05", bytes(16)), MslError.CIPHERTEXT_BAD_PADDING),
    ],
)
def test_decrypt_stream_errors(iv: bytes, ciphertext: bytes, error: MslError) -> None:
    ctx = SymmetricCryptoContext("k", KE, KH)
    with pytest.raises(MslException) as err:
        b"".join(ctx.decrypt_stream(iv, [ciphertext[:5], ciphertext[5:]]))
    assert err.value.error is error


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_MUTATION = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(0, 10**9),
    # Mostly base64 characters, so that many edits keep the canonical form.
    st.binary(min_size=1, max_size=3)
    | st.text(_B64_CHARS, min_size=1, max_size=4).map(str.encode)
    | st.text(_B64_CHARS, min_size=1, max_size=4).map(str.encode),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, bytes]], near: list[int]) -> bytes:
    """Apply edits at positions near the given offsets (heads, middles and tails)."""
    out = bytearray(data)
    for kind, where, blob in mutations:
        anchor = near[where % len(near)]
        pos = max(0, min(len(out) - 1, anchor + (where // len(near)) % 64 - 32))
        if kind == "replace":
            out[pos : pos + len(blob)] = blob
        elif kind == "insert":
            out[pos:pos] = blob
        else:
            del out[pos : pos + len(blob)]
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(_MUTATION, min_size=1, max_size=3), st.booleans())
def test_streamed_receipt_agrees_on_mutated_plaintexts(mutations: list[tuple[str, int, bytes]], end: bool) -> None:
    """Edits near the start and end of the plaintext (re-encrypted and re-signed, so the
    MAC passes) give the same result or error on both paths."""
    head = b'"sequencenumber":1,"messageid":2' + (b',"endofmsg":true' if end else b"")
    plaintext = _plaintext(DATA_TEXT, head)
    n = len(plaintext)
    mutated = _mutate(plaintext, mutations, [0, 20, 45, n // 3, n // 2, n - 3, n - 1])
    wire = _chunk(mutated)
    crypto = SymmetricCryptoContext("k", KE, KH)
    assert _outcome(wire, crypto, streamed=True) == _outcome(wire, crypto, streamed=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(_MUTATION, min_size=1, max_size=3))
def test_streamed_receipt_agrees_on_mutated_envelopes(mutations: list[tuple[str, int, bytes]]) -> None:
    """Edits to the envelope's head and tail (re-signed, so the MAC passes)."""
    envelope = _envelope(_encrypt(_padded(_plaintext(DATA_TEXT))))
    n = len(envelope)
    mutated = _mutate(envelope, mutations, [0, 10, 30, 45, n // 2, n - 20, n - 5])
    wire = _sealed(mutated)
    crypto = SymmetricCryptoContext("k", KE, KH)
    assert _outcome(wire, crypto, streamed=True) == _outcome(wire, crypto, streamed=False)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(DATA_TEXT)), st.text(_B64_CHARS[:-1], min_size=4, max_size=4))))
def test_streamed_receipt_reads_any_canonical_data(edits: list[tuple[int, str]]) -> None:
    """Any data text that stays valid base64 is read by the streamed path itself, with
    the general path's result."""
    text = bytearray(DATA_TEXT)
    for where, chars in edits:
        where -= where % 4  # whole quadruplets, the padded last one untouched
        if where + 4 <= len(text) - 4:
            text[where : where + 4] = chars.encode()
    wire = _chunk(_plaintext(bytes(text)))
    crypto = SymmetricCryptoContext("k", KE, KH)
    assert large_chunks.open_large(decode(wire), crypto, payload._CANONICAL_HEAD) is not None
    assert _outcome(wire, crypto, streamed=True) == _outcome(wire, crypto, streamed=False)
