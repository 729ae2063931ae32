"""The stream decoder hands out payload chunks undecoded (LazyMslObject): their keys are
known from their shape, their values decoded (strictly) only if read, and the exact
bytes are kept for the chunk codec."""

from __future__ import annotations

import pytest

from missile.crypto.chunks import ChunkHead
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import EncoderFormat, ObjectStreamDecoder, decode
from missile.encoding.mslobject import LazyBinaryMslObject, LazyMslObject, MslObject
from missile.errors import MslEncodingException, MslError

CTX = SymmetricCryptoContext("k", bytes(16), bytes(32))


def _next(raw: bytes) -> MslObject:
    decoder = ObjectStreamDecoder()
    decoder.feed(raw + b'{"next":1}')
    item = decoder.next_object()
    assert item is not None and item[0] == raw
    return item[1]


@pytest.mark.parametrize("fmt", [EncoderFormat.JSON, EncoderFormat.MISSILE_CBOR])
@pytest.mark.parametrize("size", [0, 10, 100_000])
def test_chunks_are_lazy_and_read_as_decoded(fmt: EncoderFormat, size: int) -> None:
    raw = CTX.chunk_codec(fmt).seal(ChunkHead(1, 1), bytes(size))
    obj = _next(raw)
    assert type(obj) is (LazyMslObject if fmt is EncoderFormat.JSON else LazyBinaryMslObject)
    assert isinstance(obj, LazyMslObject)
    assert "payload" in obj and "signature" in obj and "headerdata" not in obj and len(obj) == 2
    assert obj.keys() == ["payload", "signature"] and obj.encoded == raw
    assert obj.binary is (fmt is not EncoderFormat.JSON)
    eager = decode(raw)
    assert obj.get_bytes("payload") == eager.get_bytes("payload")
    assert obj.get_bytes("signature") == eager.get_bytes("signature") and obj == eager


@pytest.mark.parametrize(
    "raw",
    [
        b'{"payload":"AA\x01A","signature":"AA=="}',  # a raw control character
        b'{"payload":"AA\xffA","signature":"AA=="}',  # not UTF-8
        b'{"payload":"AA\\qA","signature":"AA=="}',  # a bad escape
    ],
)
def test_a_malformed_lazy_chunk_is_a_parse_error_when_read(raw: bytes) -> None:
    obj = _next(raw)
    assert isinstance(obj, LazyMslObject) and "payload" in obj
    with pytest.raises(MslEncodingException) as caught:
        obj.get_bytes("payload")
    assert caught.value.error is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize(
    "raw",
    [
        b'{"payload":"AA\\\\","signature":"AA=="}',  # a backslash before the quote
        b'{"payload":"AA","signature":"AA\\\\"}',
        b'{"payload":"AA","signature":"AA","x":"y"}',
        b'{"payload":"AA","signature":1}',
        b'{"payload":"AA", "signature":"AA"}',
    ],
)
def test_other_shapes_are_decoded_at_once(raw: bytes) -> None:
    obj = _next(raw)
    assert not isinstance(obj, LazyMslObject)
    assert obj == decode(raw)


def test_binary_chunk_shape_needs_exactly_two_byte_strings() -> None:
    raw = CTX.chunk_codec(EncoderFormat.MISSILE_CBOR).seal(ChunkHead(1, 1), b"x")
    assert isinstance(_next(raw), LazyBinaryMslObject)
    assert raw[-34:-32] == bytes((0x58, 32))
    text_signature = raw[:-34] + bytes((0x78, 32)) + b"a" * 32  # a text string, not bytes
    obj = _next(text_signature)
    assert not isinstance(obj, LazyMslObject) and obj.get_string("signature") == "a" * 32
