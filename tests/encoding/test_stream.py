"""Tests for missile.encoding.stream.ObjectStreamDecoder (encoding.md §4, interop.md A.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.encoding.codec import encode
from missile.encoding.mslobject import MslObject
from missile.encoding.stream import DEFAULT_MAX_OBJECT_SIZE, ObjectStreamDecoder
from missile.errors import MslEncodingException, MslError


def drain(dec: ObjectStreamDecoder) -> list[bytes]:
    out = []
    while (raw := dec.next_raw()) is not None:
        out.append(raw)
    return out


def feed_in_pieces(dec: ObjectStreamDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    got: list[bytes] = []
    prev = 0
    for cut in [*sorted(cuts), len(data)]:
        dec.feed(data[prev:cut])
        prev = cut
        got.extend(drain(dec))
    return got


def parse_error(dec: ObjectStreamDecoder) -> MslEncodingException:
    with pytest.raises(MslEncodingException) as info:
        dec.next_raw()
    assert info.value.error is MslError.MSL_PARSE_ERROR
    return info.value


# --- basics ---------------------------------------------------------------------


def test_defaults() -> None:
    assert DEFAULT_MAX_OBJECT_SIZE == 16 * 1024 * 1024
    dec = ObjectStreamDecoder()
    assert dec.max_object_size == DEFAULT_MAX_OBJECT_SIZE
    assert dec.buffered == 0
    assert not dec.has_pending_data()
    assert dec.next_raw() is None
    assert dec.next_object() is None
    assert dec.take_remaining() == b""


@pytest.mark.parametrize("size", [1, 0, -5])
def test_max_object_size_must_be_at_least_two(size: int) -> None:
    with pytest.raises(ValueError):
        ObjectStreamDecoder(max_object_size=size)


def test_single_object() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":1}')
    assert dec.next_raw() == b'{"a":1}'
    assert dec.next_raw() is None
    assert dec.buffered == 0
    assert not dec.has_pending_data()


def test_concatenated_objects() -> None:
    objs = [b'{"a":1}', b"{}", b'{"b":{"c":[1,{"d":2}]}}', b'{"e":"f"}']
    dec = ObjectStreamDecoder()
    dec.feed(b"".join(objs))
    assert drain(dec) == objs


def test_whitespace_between_objects_is_skipped_and_not_returned() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b' \r\n{"a":1}\n\t {"b":2}  ')
    assert dec.next_raw() == b'{"a":1}'
    assert dec.next_raw() == b'{"b":2}'
    assert dec.next_raw() is None
    assert not dec.has_pending_data()
    # Whitespace between objects is dropped as it is scanned: it is never buffered.
    assert dec.take_remaining() == b""


def test_inner_whitespace_is_preserved_exactly() -> None:
    raw = b'{ "a" : [ 1 , 2 ] ,\n "b" : { } }'
    dec = ObjectStreamDecoder()
    dec.feed(raw + raw)
    assert drain(dec) == [raw, raw]


def test_next_object_decodes() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":1}{"b":"AAEC"}')
    first = dec.next_object()
    assert first is not None
    raw, obj = first
    assert raw == b'{"a":1}'
    assert isinstance(obj, MslObject)
    assert obj.get_int("a") == 1
    second = dec.next_object()
    assert second is not None
    assert second[1].get_bytes("b") == b"\x00\x01\x02"
    assert dec.next_object() is None


def test_next_object_validates_json() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":null}{"b":1}')
    with pytest.raises(MslEncodingException) as info:
        dec.next_object()
    assert info.value.error is MslError.MSL_PARSE_ERROR
    # The framing itself is intact: the next object is still available.
    nxt = dec.next_object()
    assert nxt is not None and nxt[1].get_int("b") == 1


def test_next_object_rejects_structurally_balanced_but_invalid_json() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":}')
    with pytest.raises(MslEncodingException):
        dec.next_object()


# --- strings ----------------------------------------------------------------------

TRICKY = [
    b'{"s":"}"}',
    b'{"s":"{"}',
    b'{"s":"{{{{"}',
    b'{"s":"}}}}{"}',
    b'{"s":"\\""}',
    b'{"s":"\\\\"}',
    b'{"s":"\\\\\\""}',
    b'{"s":"a\\\\\\\\"}',
    b'{"s":"\\\\","t":"}"}',
    b'{"s":"\\"}\\"{"}',
    b'{"s":"\\u007d\\u007b"}',
    b'{"}":"{","{":["}",{"x":"\\"}"}]}',
    '{"s":"日本語 } ü {"}'.encode(),
]


@pytest.mark.parametrize("raw", TRICKY)
def test_strings_with_braces_quotes_and_backslashes(raw: bytes) -> None:
    dec = ObjectStreamDecoder()
    dec.feed(raw + raw)
    assert drain(dec) == [raw, raw]


@pytest.mark.parametrize("raw", TRICKY)
def test_tricky_strings_at_every_chunk_boundary(raw: bytes) -> None:
    stream = raw + b'{"z":0}'
    for cut in range(len(stream) + 1):
        dec = ObjectStreamDecoder()
        assert feed_in_pieces(dec, stream, [cut]) == [raw, b'{"z":0}'], cut


@pytest.mark.parametrize("raw", TRICKY)
def test_tricky_strings_at_every_pair_of_boundaries(raw: bytes) -> None:
    n = len(raw)
    for a in range(n + 1):
        for b in range(a, n + 1):
            dec = ObjectStreamDecoder()
            assert feed_in_pieces(dec, raw, [a, b]) == [raw], (a, b)


def test_backslash_as_last_byte_of_chunk() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"s":"\\')
    assert dec.next_raw() is None
    dec.feed(b'"}')
    assert dec.next_raw() is None  # the quote was escaped; the string is still open
    dec.feed(b'"}')
    assert dec.next_raw() == b'{"s":"\\"}"}'


def test_one_byte_at_a_time() -> None:
    objs = [encode({"a": 1, "s": 'x"}{\\', "b": b"\x00" * 40}), b"{}", encode({"n": {"m": ["}"]}})]
    stream = b"\n".join(objs)
    dec = ObjectStreamDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        dec.feed(stream[i : i + 1])
        got.extend(drain(dec))
    assert got == objs
    assert dec.take_remaining() == b""


def test_feed_accepts_bytearray_and_memoryview_and_empty() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b"")
    dec.feed(bytearray(b'{"a"'))
    dec.feed(memoryview(b":1}"))
    dec.feed(bytearray())
    assert dec.next_raw() == b'{"a":1}'


# --- never consume past an object ----------------------------------------------


def test_take_remaining_returns_exactly_the_rest() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":1}{"b":2}NEXT MESSAGE \x00\xff')
    assert dec.next_raw() == b'{"a":1}'
    assert dec.buffered == len(b'{"b":2}NEXT MESSAGE \x00\xff')
    assert dec.take_remaining() == b'{"b":2}NEXT MESSAGE \x00\xff'
    assert dec.buffered == 0
    assert dec.next_raw() is None


def test_take_remaining_includes_whitespace_and_partial_object() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":1}  \n{"b":"par')
    assert dec.next_raw() == b'{"a":1}'
    assert dec.next_raw() is None  # scanning has started on the partial object
    assert dec.take_remaining() == b'  \n{"b":"par'


def test_reuse_after_take_remaining() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":"{')  # leaves the scanner inside a string of an unfinished object
    assert dec.next_raw() is None
    assert dec.take_remaining() == b'{"a":"{'
    dec.feed(b'{"b":1}')
    assert dec.next_raw() == b'{"b":1}'


def test_garbage_after_object_is_not_touched_until_asked() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":1}garbage')
    assert dec.next_raw() == b'{"a":1}'
    assert dec.has_pending_data()
    parse_error(dec)


# --- failures -------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"[]", b"x", b'"{}"', b"1", b"\xef\xbb\xbf{}", b"null", b"}", b"  \n]", b"\x00{}"])
def test_non_object_first_byte(data: bytes) -> None:
    dec = ObjectStreamDecoder()
    dec.feed(data)
    parse_error(dec)


def test_non_object_between_objects() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b'{"a":1},{"b":2}')
    assert dec.next_raw() == b'{"a":1}'
    parse_error(dec)


def test_whitespace_only_needs_more_data() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b" \t\r\n")
    assert dec.next_raw() is None
    assert not dec.has_pending_data()
    # Whitespace-only input is discarded rather than accumulated (bounded memory).
    assert dec.buffered == 0


def test_other_whitespace_is_not_skipped() -> None:
    dec = ObjectStreamDecoder()
    dec.feed(b"\x0b{}")
    parse_error(dec)
    dec2 = ObjectStreamDecoder()
    dec2.feed(b"\x0c{}")
    parse_error(dec2)


def test_max_object_size_incomplete_object() -> None:
    dec = ObjectStreamDecoder(max_object_size=10)
    dec.feed(b'{"a":"12')  # 8 bytes: still fine
    assert dec.next_raw() is None
    dec.feed(b"345")  # 11 bytes, still incomplete
    exc = parse_error(dec)
    assert "10" in (exc.detail or "")


def test_max_object_size_complete_oversized_object() -> None:
    dec = ObjectStreamDecoder(max_object_size=10)
    dec.feed(b'{"a":"123456789"}')
    parse_error(dec)


def test_max_object_size_boundary() -> None:
    exact = b'{"a":"12"}'
    assert len(exact) == 10
    dec = ObjectStreamDecoder(max_object_size=10)
    dec.feed(exact + exact)
    assert drain(dec) == [exact, exact]

    dec = ObjectStreamDecoder(max_object_size=9)
    dec.feed(exact)
    parse_error(dec)


def test_max_object_size_incomplete_fed_bytewise() -> None:
    dec = ObjectStreamDecoder(max_object_size=64)
    dec.feed(b"{")
    with pytest.raises(MslEncodingException) as info:
        for _ in range(200):
            assert dec.next_raw() is None
            dec.feed(b"[")
    assert info.value.error is MslError.MSL_PARSE_ERROR
    assert dec.buffered <= 66


def test_max_object_size_is_per_object_and_excludes_leading_whitespace() -> None:
    obj = b'{"a":"12"}'
    dec = ObjectStreamDecoder(max_object_size=len(obj))
    dec.feed((b"    " + obj) * 50)
    assert drain(dec) == [obj] * 50


def test_has_pending_data() -> None:
    dec = ObjectStreamDecoder()
    assert not dec.has_pending_data()
    dec.feed(b"  ")
    assert not dec.has_pending_data()
    dec.feed(b'{"a"')
    assert dec.has_pending_data()
    assert dec.next_raw() is None
    assert dec.has_pending_data()
    dec.feed(b":1}\r\n")
    assert dec.next_raw() == b'{"a":1}'
    assert not dec.has_pending_data()
    assert dec.buffered == 2
    dec.feed(b"{")
    assert dec.has_pending_data()


# --- large data -----------------------------------------------------------------


def test_large_object_fed_in_64k_pieces() -> None:
    big = encode({"payload": "A" * (5 * 1024 * 1024), "n": 1})
    trailer = encode({"endofmsg": True})
    stream = big + trailer
    dec = ObjectStreamDecoder()
    got: list[bytes] = []
    step = 64 * 1024
    for i in range(0, len(stream), step):
        dec.feed(stream[i : i + step])
        got.extend(drain(dec))
    assert len(got) == 2
    assert got[0] == big
    assert got[1] == trailer
    assert dec.buffered == 0


def test_many_objects_fed_at_once_compaction_keeps_results_exact() -> None:
    objs = [encode({"i": i, "pad": "x" * (i % 300), "q": '"}{\\'}) for i in range(2000)]
    stream = b"".join(objs)
    assert len(stream) > 3 * 65536
    dec = ObjectStreamDecoder()
    dec.feed(stream[: len(stream) // 2])
    got = drain(dec)
    dec.feed(stream[len(stream) // 2 :])
    got.extend(drain(dec))
    assert got == objs
    assert dec.buffered == 0


def test_compaction_then_take_remaining() -> None:
    objs = [encode({"i": i, "pad": "y" * 500}) for i in range(400)]
    tail = b'{"partial":"'
    dec = ObjectStreamDecoder()
    dec.feed(b"".join(objs) + tail)
    assert drain(dec) == objs
    assert dec.take_remaining() == tail


# --- hypothesis -----------------------------------------------------------------

_text = st.text(st.one_of(st.sampled_from('{}[]"\\:, \n'), st.characters(blacklist_categories=("Cs",))), max_size=12)
_values = st.recursive(
    st.one_of(st.integers(min_value=0, max_value=2**53), st.booleans(), _text, st.binary(max_size=12)),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_text, c, max_size=3)),
    max_leaves=10,
)
_encoded = st.dictionaries(_text, _values, max_size=4).map(encode)
_ws = st.text(alphabet=" \t\r\n", max_size=3)


@settings(max_examples=300)
@given(st.lists(st.tuples(_ws, _encoded), min_size=1, max_size=6), _ws, st.data())
def test_arbitrary_splits_yield_identical_objects(
    parts: list[tuple[str, bytes]], trailing_ws: str, data: st.DataObject
) -> None:
    objs = [raw for _, raw in parts]
    stream = b"".join(ws.encode() + raw for ws, raw in parts) + trailing_ws.encode()
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=10))
    dec = ObjectStreamDecoder()
    got = feed_in_pieces(dec, stream, cuts)
    assert got == objs
    assert not dec.has_pending_data()
    assert dec.take_remaining() == b""


@settings(max_examples=200)
@given(st.lists(_encoded, min_size=1, max_size=5), st.binary(max_size=20), st.data())
def test_never_consumes_past_requested_objects(objs: list[bytes], rest: bytes, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=len(objs)))
    stream = b"".join(objs) + rest
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=5))
    dec = ObjectStreamDecoder()
    prev = 0
    got: list[bytes] = []
    for cut in [*sorted(cuts), len(stream)]:
        dec.feed(stream[prev:cut])
        prev = cut
        while len(got) < k and (raw := dec.next_raw()) is not None:
            got.append(raw)
    assert got == objs[:k]
    assert dec.take_remaining() == b"".join(objs[k:]) + rest
