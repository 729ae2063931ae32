"""Binary-format objects in a stream are framed by decoding them where they lie (a header)
or by their shape (a payload chunk); the objects, the bytes consumed and any error must
be those of the framing path (``next_raw``, then decoding the framed bytes), on whole,
cut and edited streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.encoding import ObjectStreamDecoder, cbor
from missile.encoding.codec import encode_binary
from missile.encoding.mslobject import BinaryMslObject, MslObject
from missile.encoding.stream import _decoded
from missile.errors import MslError, MslException
from mutation_helpers import edited, edits

ID = bytes((cbor.IDENTIFIER,))


def _chunk(payload: bytes, signature: bytes) -> bytes:
    return encode_binary({"payload": payload, "signature": signature})


def _outcome(obj: MslObject) -> object:
    try:
        return obj.to_dict()
    except MslException as exc:  # a lazy chunk is decoded when read
        return ("error", exc.error)


def _drain(dec: ObjectStreamDecoder) -> list[object]:
    out: list[object] = []
    while True:
        try:
            item = dec.next_object()
        except MslException as exc:
            out.append(("error", exc.error))
            return out
        if item is None:
            out.append(("rest", dec.buffered))
            return out
        raw, obj = item
        assert isinstance(obj, BinaryMslObject) and obj.encoded == raw
        out.append((raw, _outcome(obj)))


def _framed(data: bytes, max_size: int) -> list[object]:
    """The reference: each object framed by ``next_raw``, then decoded as the stream
    always did (a chunk-shaped object lazily, read when its values are)."""
    dec = ObjectStreamDecoder(max_object_size=max_size)
    dec.feed(data)
    out: list[object] = []
    while True:
        try:
            raw = dec.next_raw()
            if raw is None:
                out.append(("rest", dec.buffered))
                return out
            obj = _decoded(raw)
        except MslException as exc:
            out.append(("error", exc.error))
            return out
        out.append((raw, _outcome(obj)))


def _direct(data: bytes, max_size: int) -> list[object]:
    dec = ObjectStreamDecoder(max_object_size=max_size)
    dec.feed(data)
    return _drain(dec)


def _fed_in_pieces(data: bytes, cuts: list[int], max_size: int) -> list[object]:
    """The stream fed in pieces, objects taken as they complete."""
    dec = ObjectStreamDecoder(max_object_size=max_size)
    out: list[object] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        dec.feed(data[last:cut])
        last = cut
        drained = _drain(dec)
        out.extend(drained[:-1])
        if drained[-1][0] == "error":
            out.append(drained[-1])
            return out
    out.append(("rest", dec.buffered))
    return out


def _agree(data: bytes, max_size: int = 1 << 20) -> None:
    assert _direct(data, max_size) == _framed(data, max_size)


HEADER = encode_binary({"headerdata": b"h" * 40, "signature": b"s" * 32, "mastertoken": {"tokendata": b"t" * 30}})
TOKEN_HEADER = encode_binary(
    {"headerdata": b"h" * 300, "signature": b"s" * 32, "mastertoken": {"tokendata": b"t" * 30, "signature": b"u" * 32}}
)
CHUNK = _chunk(b"p" * 100, b"s" * 32)
CASES = [
    HEADER,
    HEADER + CHUNK,
    CHUNK,
    CHUNK + CHUNK,
    HEADER[:-1],
    CHUNK[:-1],
    HEADER + CHUNK[:20],
    ID + b"\xa1\x61a\x01" + ID + b"\xa1\x61a\x01\x00",  # trailing byte after the second
    ID + b"\xa2\x61b\x01\x61a\x02",  # keys out of order
    ID + b"\xa2\x61a\x01\x61a\x02",  # duplicate key
    ID + b"\xa1\x61a\x18\x01",  # non-minimal integer
    ID + b"\xa1\x61a\xc1\x01",  # tag
    ID + b"\xa1\x61a\xf6",  # null
    ID + b"\xbf\x61a\x01\xff",  # indefinite map
    ID + b"\xa1\x61a\x5f\x41x\xff",  # indefinite byte string
    ID + b"\xa1\x61a\x62\xff\xfe",  # invalid UTF-8
    ID + b"\x81\x01",  # not a map
    ID + b"\xa2\x67payload\x41x\x69signature\x61x",  # chunk shape but a text signature
    ID + b"\xa2\x67payload\x58\x01x\x69signature\x41x",  # chunk shape, non-minimal head
    ID + b"\xa1" + b"\x61a\xa1" * 70 + b"\x61a\x01",  # nested too deep (and cut)
    b" \n" + HEADER,  # whitespace before the object
    TOKEN_HEADER,  # the shape the writer gives a header
    TOKEN_HEADER + CHUNK,
    TOKEN_HEADER[:-1],
    TOKEN_HEADER[:-33] + b"\x78\x20" + TOKEN_HEADER[-32:],  # a text token signature
    TOKEN_HEADER.replace(b"\x58\x1e", b"\x59\x00\x1e"),  # non-minimal head of the token data
    TOKEN_HEADER + b"\x00",
]


@pytest.mark.parametrize("data", CASES, ids=range(len(CASES)))
def test_direct_binary_framing_agrees_with_the_framing_path(data: bytes) -> None:
    _agree(data)


def test_the_size_limit_applies_to_shaped_and_decoded_objects() -> None:
    for data in (HEADER, CHUNK):
        assert _direct(data, len(data) - 1) == _framed(data, len(data) - 1)
        assert _direct(data, len(data) - 1)[0] == ("error", MslError.MSL_PARSE_ERROR)
        assert _direct(data, len(data))[0][0] == data


def test_a_chunk_completed_after_a_pause_leaves_no_stale_need() -> None:
    """An object framed by its shape after the framing path waited for it must not leave
    the wait behind for the next object."""
    small = ID + b"\xa1\x61a\x01"  # shorter than what the framing path waited for
    wire = CHUNK + small
    whole = _framed(wire, 1 << 20)
    assert [x[0] for x in whole] == [CHUNK, small, "rest"]
    assert _fed_in_pieces(wire, [5], 1 << 20) == whole
    assert _fed_in_pieces(wire, [30, len(CHUNK) + 3], 1 << 20) == whole


_values = st.recursive(
    st.integers(0, 2**64 - 1)
    | st.integers(-(2**63), -1)
    | st.booleans()
    | st.text(max_size=8)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_objects = (
    st.dictionaries(st.text(max_size=6), _values, max_size=4)
    | st.builds(lambda p, s: {"payload": p, "signature": s}, st.binary(max_size=300), st.binary(max_size=40))
    # A header under a master token, as the writer gives it.
    | st.builds(
        lambda h, s, t, ts: {"headerdata": h, "signature": s, "mastertoken": {"tokendata": t, "signature": ts}},
        st.binary(max_size=300),
        st.binary(max_size=40),
        st.binary(max_size=300),
        st.binary(max_size=40) | st.text(max_size=4),
    )
)
_EDIT = edits()


@settings(max_examples=400, deadline=None)
@given(st.lists(_objects, min_size=1, max_size=3), st.lists(_EDIT, max_size=2), st.data())
def test_direct_binary_framing_agrees_on_generated_streams(
    objects: list[dict[str, object]], edits: list[tuple[int, str, bytes]], data: st.DataObject
) -> None:
    wire = edited(b"".join(encode_binary(o) for o in objects), edits)
    if data.draw(st.booleans()):
        wire = wire[: data.draw(st.integers(0, len(wire)))]
    _agree(wire)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=3))
    assert _fed_in_pieces(wire, cuts, 1 << 20) == _direct(wire, 1 << 20)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=12), st.integers(0, 12), st.integers(0, 7))
def test_minimal_head_reads_as_the_decoder(data: bytes, pos: int, major: int) -> None:
    """``minimal_head`` gives a head exactly when ``read_head`` reads one of that type."""
    try:
        found, n, after = cbor.read_head(data, pos)
        expected = (n, after) if found == major else None
    except MslException:
        expected = None
    assert cbor.minimal_head(data, pos, major) == expected
