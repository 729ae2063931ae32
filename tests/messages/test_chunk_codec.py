"""The symmetric contexts' streaming chunk codec equals the general codec, byte for byte
on sealing and result for result (or error for error) on opening, in both encoder
formats: small and streamed sizes around the thresholds, compression, any key ID, and
tampered input. Also which codec a context offers."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.crypto.algorithms import SignatureAlgo
from missile.crypto.chunks import ChunkHead, GeneralChunkCodec, chunk_object
from missile.crypto.envelopes import envelope_in_format
from missile.crypto.symmetric import SessionCryptoContext, SymmetricCryptoContext
from missile.crypto.symmetric_chunks import SLICE, STREAM_THRESHOLD, SymmetricChunkCodec
from missile.encoding import EncoderFormat, encode
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException
from missile.messages.payload import PayloadChunk, encode_chunk
from mutation_helpers import apply_edit

FORMATS = [EncoderFormat.JSON, EncoderFormat.MISSILE_CBOR]
KE, KH = bytes(range(16)), bytes(range(32))
T = STREAM_THRESHOLD
#: Data sizes whose JSON chunks are written (data > T) or read (payload text > 2 T,
#: about 162 KiB of data) a slice at a time, and their neighbours.
EDGE_SIZES = sorted({0, 1, 2, 3, 15, 16, 17, 100, 162_000, 163_000, 165_900, 166_000, T - 1, T, T + 1, T + SLICE + 1})


class FixedRandom:
    """Deterministic IVs, so two contexts encrypt to the same bytes."""

    def __init__(self, seed: int) -> None:
        self._counter = seed

    def random_bytes(self, n: int) -> bytes:
        self._counter += 1
        return bytes((self._counter + i) & 0xFF for i in range(n))


def _contexts(
    seed: int, key_id: str = "k", algo: SignatureAlgo = SignatureAlgo.HMAC_SHA256
) -> tuple[SymmetricCryptoContext, SymmetricCryptoContext]:
    key = KH if algo is SignatureAlgo.HMAC_SHA256 else KH[:16]
    fast = SymmetricCryptoContext(key_id, KE, key, signature_algorithm=algo, random=FixedRandom(seed))
    general = SymmetricCryptoContext(key_id, KE, key, signature_algorithm=algo, random=FixedRandom(seed))
    return fast, general


def _codecs(seed: int, fmt: EncoderFormat, key_id: str = "k") -> tuple[SymmetricChunkCodec, GeneralChunkCodec]:
    fast, general = _contexts(seed, key_id)
    codec = fast.chunk_codec(fmt)
    assert isinstance(codec, SymmetricChunkCodec)
    return codec, GeneralChunkCodec(general, fmt)


def _outcome(codec: object, chunk: bytes) -> object:
    try:
        head, data = codec.open(chunk)  # type: ignore[attr-defined]
    except MslException as exc:
        return exc.error
    return head, data


def _agree(fast: SymmetricChunkCodec, general: GeneralChunkCodec, chunk: bytes) -> object:
    outcome = _outcome(fast, chunk)
    assert outcome == _outcome(general, chunk)
    return outcome


_HEADS = st.builds(
    ChunkHead,
    st.integers(0, 2**53),
    st.integers(0, 2**53),
    st.booleans(),
    st.sampled_from([None, "GZIP", "LZW", "ZSTD"]),
)
_KEY_IDS = st.sampled_from(["k", "client1_7", 'a"b\\c', "clé", "x" * 400]) | st.text(max_size=20)


# -- sealing ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=_HEADS, data=st.binary(max_size=600), key_id=_KEY_IDS, seed=st.integers(0, 255))
def test_small_chunks_seal_and_open_as_the_general_codec(
    fmt: EncoderFormat, head: ChunkHead, data: bytes, key_id: str, seed: int
) -> None:
    fast, general = _codecs(seed, fmt, key_id)
    chunk = fast.seal(head, data)
    assert chunk == general.seal(head, data)
    assert _agree(fast, general, chunk) == (head, data)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", EDGE_SIZES)
def test_sizes_around_the_stream_threshold(fmt: EncoderFormat, size: int) -> None:
    data = os.urandom(size)
    for end in (False, True):
        head = ChunkHead(7, 42, end, None)
        fast, general = _codecs(size, fmt, "client1_3")
        chunk = fast.seal(head, memoryview(data))
        assert chunk == general.seal(head, data)
        assert _agree(fast, general, chunk) == (head, data)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(T - 2 * SLICE, T + 2 * SLICE), end=st.booleans(), key_id=_KEY_IDS)
def test_any_size_near_the_threshold(fmt: EncoderFormat, size: int, end: bool, key_id: str) -> None:
    data = os.urandom(size)
    head = ChunkHead(1, 2, end, "GZIP")
    fast, general = _codecs(size, fmt, key_id)
    chunk = fast.seal(head, data)
    assert chunk == general.seal(head, data)
    assert _agree(fast, general, chunk) == (head, data)


@pytest.mark.parametrize("algo", [SignatureAlgo.HMAC_SHA256, SignatureAlgo.AES_CMAC])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("compression", [None, CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW])
@pytest.mark.parametrize("size", [10, 5000, 3 * T])
def test_encode_chunk_equals_the_general_path_with_compression(
    algo: SignatureAlgo, fmt: EncoderFormat, compression: CompressionAlgorithm | None, size: int
) -> None:
    fast, general = _contexts(size, "k", algo)
    assert isinstance(fast.chunk_codec(fmt), SymmetricChunkCodec)
    data = bytes(b & 0x0F for b in os.urandom(size))  # compressible
    chunk = encode_chunk(fast, 3, 9, data, end_of_message=True, compression=compression, encoder_format=fmt)
    via_general = GeneralChunkCodec(general, fmt)
    head, raw = via_general.open(chunk)
    assert head.compression_algo == (compression.value if compression and size > 128 else None)
    assert via_general.seal(head, raw) == chunk
    opened = PayloadChunk.open(chunk, fast, max_deflate_ratio=200)
    assert (opened.sequence_number, opened.message_id, opened.end_of_message, opened.data) == (3, 9, True, data)


# -- opening what the general codec would read differently or refuse ----------------------


def _by_plaintext(ctx: SymmetricCryptoContext, plaintext: bytes, fmt: EncoderFormat) -> bytes:
    """A chunk, signed as it should be, around any plaintext."""
    return _by_envelope(ctx, envelope_in_format(ctx.encrypt(plaintext), fmt), fmt)


def _by_envelope(ctx: SymmetricCryptoContext, envelope: bytes, fmt: EncoderFormat) -> bytes:
    return encode(chunk_object(envelope, ctx.sign(envelope)), fmt)


_MUTATION = st.tuples(
    st.sampled_from(["replace", "insert", "delete"]),
    st.integers(0, 10**9),
    st.binary(min_size=1, max_size=3)
    | st.text("ABCabc019+/=", min_size=1, max_size=4).map(str.encode)
    | st.sampled_from([b'"', b"\\", b",", b"}", b" ", b"\x1c", b"\xa4", b"\x40", b'",', b"true", b"0"]),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    """Edits near the start, the middle and the end (where the structure is)."""
    n = len(data)
    near = [0, 3, 10, 16, 30, n // 2, n - 40, n - 20, n - 8, n - 2]
    out = bytearray(data)
    for kind, where, blob in mutations:
        anchor = near[where % len(near)]
        apply_edit(out, max(0, min(len(out) - 1, anchor + (where // len(near)) % 24 - 12)), kind, blob)
    return bytes(out)


_SIZES = st.sampled_from([0, 5, 300, 166_000])


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3), size=_SIZES, head=_HEADS)
def test_tampered_chunks_are_refused_alike(
    fmt: EncoderFormat, mutations: list[tuple[str, int, bytes]], size: int, head: ChunkHead
) -> None:
    """Edits to the chunk itself: both codecs refuse with the same error (or, rarely, both
    read the same thing, e.g. base64 of the signature edited to the same bytes)."""
    fast, general = _codecs(size, fmt)
    chunk = _mutate(fast.seal(head, os.urandom(size)), mutations)
    outcome = _agree(fast, general, chunk)
    assert isinstance(outcome, MslError) or outcome[0] == head  # type: ignore[index]


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3), size=_SIZES, head=_HEADS)
def test_edited_plaintexts_read_alike(
    fmt: EncoderFormat, mutations: list[tuple[str, int, bytes]], size: int, head: ChunkHead
) -> None:
    """Edits to the plaintext, re-encrypted and re-signed (so the MAC passes): the same
    result or error on both codecs."""
    fast, general = _codecs(size, fmt)
    ctx = SymmetricCryptoContext("k", KE, KH)
    plaintext = _mutate(encode({"data": os.urandom(size), **_fields(head)}, fmt), mutations)
    _agree(fast, general, _by_plaintext(ctx, plaintext, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3), size=_SIZES)
def test_edited_envelopes_read_alike(fmt: EncoderFormat, mutations: list[tuple[str, int, bytes]], size: int) -> None:
    """Edits to the ciphertext envelope, re-signed: the same result or error."""
    fast, general = _codecs(size, fmt)
    ctx = SymmetricCryptoContext("k", KE, KH)
    plaintext = encode({"data": os.urandom(size), "sequencenumber": 1, "messageid": 2}, fmt)
    envelope = _mutate(envelope_in_format(ctx.encrypt(plaintext), fmt), mutations)
    _agree(fast, general, _by_envelope(ctx, envelope, fmt))


def _fields(head: ChunkHead) -> dict[str, object]:
    return {
        "sequencenumber": head.sequence_number,
        "messageid": head.message_id,
        "endofmsg": head.end_of_message or None,
        "compressionalgo": head.compression_algo,
    }


PLAINTEXTS = {
    "reference order": b'{"data":"AAEC","messageid":5,"endofmsg":true,"sequencenumber":1}',
    "older missile order": b'{"sequencenumber":1,"messageid":5,"data":"AAEC"}',
    "endofmsg false": b'{"data":"AAEC","messageid":5,"endofmsg":false,"sequencenumber":1}',
    "escaped slash in data": b'{"data":"AA\\/C","messageid":5,"sequencenumber":1}',
    "space in data": b'{"data":"AA EC","messageid":5,"sequencenumber":1}',
    "newline in data": b'{"data":"AA\nEC","messageid":5,"sequencenumber":1}',
    "trailing comma": b'{"data":"AAEC",}',
    "data twice": b'{"data":"AAEC","data":"AAEC","messageid":5,"sequencenumber":1}',
    "nothing but data": b'{"data":"AAEC"}',
    "space after data": b'{"data":"AAEC" ,"messageid":5,"sequencenumber":1}',
    "whitespace after object": b'{"data":"AAEC","messageid":5,"sequencenumber":1}  ',
    "string sequence number": b'{"data":"AAEC","messageid":5,"sequencenumber":"1"}',
    "float message id": b'{"data":"AAEC","messageid":5.7,"sequencenumber":1}',
    "null member": b'{"data":"AAEC","messageid":5,"sequencenumber":1,"x":null}',
    "nested": b'{"data":"AAEC","messageid":5,"sequencenumber":1,"x":{"y":[1,2]}}',
    "not JSON": b"plain",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(PLAINTEXTS))
def test_hand_written_plaintexts_read_alike(name: str) -> None:
    fast, general = _codecs(1, EncoderFormat.JSON)
    ctx = SymmetricCryptoContext("k", KE, KH)
    _agree(fast, general, _by_plaintext(ctx, PLAINTEXTS[name], EncoderFormat.JSON))


def test_a_wrong_signature_is_payload_verification_failed_on_both() -> None:
    for fmt in FORMATS:
        fast, general = _codecs(1, fmt)
        other = SymmetricCryptoContext("k", KE, bytes(32)).chunk_codec(fmt)
        chunk = other.seal(ChunkHead(1, 1), b"data")
        assert _agree(fast, general, chunk) is MslError.PAYLOAD_VERIFICATION_FAILED


# -- which codec a context offers ----------------------------------------------------------


class _Plain(SymmetricCryptoContext):
    """No override: keeps the streaming codec."""


class _OwnEncrypt(SymmetricCryptoContext):
    def encrypt(self, data: bytes) -> bytes:
        return super().encrypt(data[::-1])

    def decrypt(self, data: bytes) -> bytes:
        return super().decrypt(data)[::-1]


class _OwnSign(SessionCryptoContext):
    def sign(self, data: bytes) -> bytes:
        return super().sign(data + b"!")

    def verify(self, data: bytes, signature: bytes) -> bool:
        return super().verify(data + b"!", signature)


class _GrandChild(_OwnEncrypt):
    """Inherits an override: still the general codec."""


class _Declared(_OwnSign):
    """Declares that its overrides keep the stock bytes (here they do not, which the
    test below shows the declaration is trusted for)."""

    streams_chunks = True


@pytest.mark.parametrize("fmt", FORMATS)
def test_which_codec_each_context_offers(fmt: EncoderFormat) -> None:
    session = SessionCryptoContext("client1", 3, KE, KH)
    assert isinstance(session.chunk_codec(fmt), SymmetricChunkCodec)
    assert isinstance(_Plain("k", KE, KH).chunk_codec(fmt), SymmetricChunkCodec)
    assert type(_OwnEncrypt("k", KE, KH).chunk_codec(fmt)) is GeneralChunkCodec
    assert type(_OwnSign("c", 1, KE, KH).chunk_codec(fmt)) is GeneralChunkCodec
    assert type(_GrandChild("k", KE, KH).chunk_codec(fmt)) is GeneralChunkCodec
    assert isinstance(_Declared("c", 1, KE, KH).chunk_codec(fmt), SymmetricChunkCodec)
    assert type(SymmetricCryptoContext("k", None, KH).chunk_codec(fmt)) is GeneralChunkCodec
    assert type(SymmetricCryptoContext("k", KE, None).chunk_codec(fmt)) is GeneralChunkCodec


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [10, 3 * T])
def test_an_overriding_subclass_gets_its_own_operations_on_chunks(fmt: EncoderFormat, size: int) -> None:
    data = os.urandom(size)
    for ctx in (_OwnEncrypt("k", KE, KH), _OwnSign("c", 1, KE, KH), _GrandChild("k", KE, KH)):
        chunk = encode_chunk(ctx, 1, 2, data, encoder_format=fmt)
        assert PayloadChunk.open(chunk, ctx, max_deflate_ratio=200).data == data
        with pytest.raises(MslException):  # the stock context cannot read it
            PayloadChunk.open(chunk, SymmetricCryptoContext("k", KE, KH), max_deflate_ratio=200)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_keys_raise_the_general_errors(fmt: EncoderFormat) -> None:
    with pytest.raises(MslException) as caught:
        encode_chunk(SymmetricCryptoContext("k", None, KH), 1, 1, b"x", encoder_format=fmt)
    assert caught.value.error is MslError.ENCRYPT_NOT_SUPPORTED
    with pytest.raises(MslException) as caught:
        encode_chunk(SymmetricCryptoContext("k", KE, None), 1, 1, b"x", encoder_format=fmt)
    assert caught.value.error is MslError.SIGN_NOT_SUPPORTED


def test_keys_stay_out_of_reprs() -> None:
    codec = SymmetricCryptoContext("k", KE, KH).chunk_codec(EncoderFormat.JSON)
    assert isinstance(codec, SymmetricChunkCodec)
    assert KE.hex() not in repr(codec._keys) and "k" in repr(codec._keys)


class _Refusing(GeneralChunkCodec):
    def open(self, chunk: bytes) -> tuple[ChunkHead, bytes]:
        raise AssertionError("handed over")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [*EDGE_SIZES, 3 * T])
def test_the_streaming_codec_reads_what_it_writes_by_itself(
    fmt: EncoderFormat, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hand-over for the form both codecs write, the reference's (data first), with
    any key ID the JSON envelope writes without escapes."""
    fast, _ = _codecs(size, fmt, "client1_7")
    monkeypatch.setattr(fast, "_general", _Refusing(SymmetricCryptoContext("k", KE, KH), fmt))
    data = os.urandom(size)
    for head in (ChunkHead(1, 2), ChunkHead(2**53, 0, True, "GZIP")):
        assert fast.open(fast.seal(head, data)) == (head, data)


# -- large JSON chunks: per-thread buffers and the data's end -------------------------------

STREAMED = 3 * T  # a JSON chunk read a slice at a time


@pytest.mark.parametrize(
    "plaintext",
    [
        b'{"data":"' + b"A" * STREAMED + b'","messageid":5,"x":"' + b"y" * 5000 + b'","sequencenumber":1}',
        b'{"data":"' + b"A" * (STREAMED // 2) + b'"' + b"A" * (STREAMED // 2) + b'","messageid":5,"sequencenumber":1}',
        b'{"data":"' + b"A" * STREAMED + b'","messageid":5,"sequencenumber":1}' + b" " * 5000,
        b'{"data":"' + b"A" * STREAMED + b"=A" + b'","messageid":5,"sequencenumber":1}',
    ],
    ids=["long member after the data", "quote inside the data", "long whitespace after", "padding inside"],
)
def test_large_plaintexts_of_other_shapes_read_alike(plaintext: bytes) -> None:
    """The large-chunk reader looks for the data's end only near the plaintext's end;
    anything else is read (or refused) as the general codec does."""
    fast, general = _codecs(1, EncoderFormat.JSON)
    ctx = SymmetricCryptoContext("k", KE, KH)
    _agree(fast, general, _by_plaintext(ctx, plaintext, EncoderFormat.JSON))


def test_buffers_kept_between_chunks_of_any_size_hold_no_stale_bytes() -> None:
    """Large chunks opened in turn, larger then smaller (the kept buffers are then longer
    than the chunk), each give their own data and head."""
    fast, general = _codecs(3, EncoderFormat.JSON)
    for i, size in enumerate([4 * T, STREAMED, 2 * T + 1, 4 * T, STREAMED + 7]):
        data = os.urandom(size)
        head = ChunkHead(i, 100 + i, i % 2 == 0)
        assert _agree(fast, general, fast.seal(head, data)) == (head, data)


def test_large_chunks_open_right_in_several_threads_at_once() -> None:
    import threading

    fast, _ = _codecs(4, EncoderFormat.JSON)
    sealed = [
        (ChunkHead(i, i), data, fast.seal(ChunkHead(i, i), data))
        for i in range(4)
        for data in [os.urandom(STREAMED + i)]
    ]
    failures: list[object] = []

    def work(head: ChunkHead, data: bytes, chunk: bytes) -> None:
        for _ in range(6):
            if fast.open(chunk) != (head, data):
                failures.append(head)

    threads = [threading.Thread(target=work, args=case) for case in sealed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures and not any(t.is_alive() for t in threads)


def test_a_chunk_above_the_kept_buffers_limit_opens_and_is_not_kept() -> None:
    """A chunk whose envelope exceeds SCRATCH_LIMIT is read through buffers of its own
    (not kept: a thread never holds more than the limit), then a small one again through
    the kept ones; a tampered one is refused as by the general codec."""
    from missile.crypto import symmetric_chunks

    fast, general = _codecs(5, EncoderFormat.JSON)
    small = os.urandom(STREAMED)
    assert _agree(fast, general, fast.seal(ChunkHead(1, 1), small)) == (ChunkHead(1, 1), small)
    kept = symmetric_chunks._buffers.envelope
    big = os.urandom(symmetric_chunks.SCRATCH_LIMIT)  # its envelope is about 1.8 times that
    chunk = fast.seal(ChunkHead(2, 1, True), big)
    assert _agree(fast, general, chunk) == (ChunkHead(2, 1, True), big)
    assert symmetric_chunks._buffers.envelope is kept
    assert len(kept) <= symmetric_chunks.SCRATCH_LIMIT
    tampered = bytearray(chunk)
    middle = len(tampered) // 2  # a base64 character of the payload, now another valid one
    tampered[middle] = ord("B") if tampered[middle] == ord("A") else ord("A")
    assert _agree(fast, general, bytes(tampered)) is MslError.PAYLOAD_VERIFICATION_FAILED
    assert _agree(fast, general, fast.seal(ChunkHead(3, 1), small)) == (ChunkHead(3, 1), small)
