"""The binary encoder format's codec: deterministic encoding, strict decoding, framing
(docs/binary-format.md §3, §4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.encoding import EncoderFormat, ObjectStreamDecoder, decode, detect_format, encode
from missile.encoding.cbor import IDENTIFIER, MAX_DEPTH, decode_value, encode_value
from missile.encoding.mslobject import BinaryMslObject
from missile.errors import MslEncodingException, MslError

BIN = EncoderFormat.MISSILE_CBOR


def _b(hex_text: str) -> bytes:
    return bytes((IDENTIFIER,)) + bytes.fromhex(hex_text.replace(" ", ""))


def test_identifier_and_capability_name() -> None:
    assert ord("{") != IDENTIFIER
    assert BIN.identifier == IDENTIFIER and EncoderFormat.JSON.identifier == ord("{")
    assert BIN.value == "missile.cbor.v1"
    assert detect_format(encode({"a": 1}, BIN)) is BIN
    assert detect_format(encode({"a": 1})) is EncoderFormat.JSON


def test_deterministic_encoding_rfc8949_examples() -> None:
    # Shortest heads (RFC 8949 §4.2.1) at every boundary.
    for value, hex_text in [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (255, "18ff"),
        (256, "190100"),
        (65535, "19ffff"),
        (65536, "1a00010000"),
        (2**32, "1b0000000100000000"),
        (-1, "20"),
        (-25, "3818"),
        (2**53, "1b0020000000000000"),
        (True, "f5"),
        (False, "f4"),
        ("", "60"),
        (b"", "40"),
        (b"\x01\x02", "420102"),
        ("ü", "62c3bc"),
        ([], "80"),
    ]:
        assert encode_value(value).hex() == hex_text, value
    # Map keys sorted by their encoded bytes: shorter keys first, then bytewise.
    assert encode_value({"bb": 1, "a": 2, "c": 3}).hex() == "a3616102616303626262" + "01"


def test_round_trip_and_typed_access() -> None:
    value = {"s": "text", "b": b"\x00\xff", "i": -7, "t": True, "l": [1, "x", b"y"], "o": {"k": b"v"}}
    obj = decode(encode(value, BIN))
    assert isinstance(obj, BinaryMslObject) and obj.binary
    assert obj.get_bytes("b") == b"\x00\xff"
    assert obj.get_string("s") == "text"
    assert obj.get_int("i") == -7
    assert obj.get_bool("t") is True
    assert obj.get_object("o").get_bytes("k") == b"v"
    assert obj.get_array("l").get_bytes(2) == b"y"
    assert encode(obj, BIN) == encode(value, BIN)


@pytest.mark.parametrize(
    ("key", "accessor"),
    [("s", "get_bytes"), ("b", "get_string"), ("b", "get_int"), ("i", "get_bool"), ("s", "get_object")],
)
def test_wrong_types_are_parse_errors(key: str, accessor: str) -> None:
    obj = decode(encode({"s": "AAAA", "b": b"x", "i": 1}, BIN))
    with pytest.raises(MslEncodingException) as info:
        getattr(obj, accessor)(key)
    assert info.value.error is MslError.MSL_PARSE_ERROR


BAD = {
    "duplicate key": "a2 6161 01 6161 02",
    "keys out of order": "a2 6162 01 6161 02",
    "longer key first": "a2 626262 01 6161 02",
    "indefinite map": "bf 6161 01 ff",
    "indefinite byte string": "a1 6161 5f 4101 ff",
    "indefinite array": "a1 6161 9f 01 ff",
    "non-minimal integer": "a1 6161 1801",
    "non-minimal length": "a1 6161 5801 00",
    "non-minimal map head": "b80 1 6161 01".replace("b80 1", "b801"),
    "non-minimal 16-bit": "a1 6161 190017",
    "non-minimal 64-bit": "a1 6161 1b00000000ffffffff",
    "float": "a1 6161 f93c00",
    "double": "a1 6161 fb3ff0000000000000",
    "null": "a1 6161 f6",
    "undefined": "a1 6161 f7",
    "simple value": "a1 6161 f0",
    "tag": "a1 6161 c100",
    "integer key": "a1 01 01",
    "byte string key": "a1 4161 01",
    "invalid UTF-8": "a1 6161 61ff",
    "reserved head": "a1 6161 1c",
    "truncated": "a2 6161 01",
    "truncated string": "a1 6161 4501",
    "trailing bytes": "a1 6161 01 00",
    "not a map": "83 010203",
    "empty after identifier": "",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_strict_decoding_rejects(name: str) -> None:
    with pytest.raises(MslEncodingException) as info:
        decode(_b(BAD[name]))
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_nesting_limit() -> None:
    ok: Any = 1
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert decode(encode({"x": ok}, BIN)).get_array("x")
    deep = _b("a1 6178" + "81" * MAX_DEPTH + "01")
    with pytest.raises(MslEncodingException) as info:
        decode(deep)
    assert info.value.error is MslError.MSL_PARSE_ERROR
    with pytest.raises(MslEncodingException):
        encode({"x": [[[[ok]]]]}, BIN)


def test_encoder_refuses_what_the_format_lacks() -> None:
    with pytest.raises(MslEncodingException) as info:
        encode({"f": 1.5}, BIN)
    assert info.value.error is MslError.MSL_ENCODE_ERROR
    with pytest.raises(MslEncodingException):
        encode({"big": 2**64}, BIN)
    with pytest.raises(MslEncodingException):
        encode_value({1: 2})
    # None means absent, as in JSON.
    assert encode({"a": None, "b": 1}, BIN) == encode({"b": 1}, BIN)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value if v is not None]
    return value


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_like, max_size=6))
def test_round_trip_property(value: dict[str, Any]) -> None:
    encoded = encode(value, BIN)
    decoded = decode_value(encoded)
    assert decoded == _without_none(value)
    # Deterministic: re-encoding what was decoded gives the same bytes.
    assert encode(decoded, BIN) == encoded


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        obj = decode(bytes((IDENTIFIER,)) + data)
    except MslEncodingException as exc:
        assert exc.error is MslError.MSL_PARSE_ERROR
    else:
        # Whatever decodes is the one deterministic encoding of its value.
        assert encode(obj, BIN) == bytes((IDENTIFIER,)) + data


def test_stream_framing_in_any_split() -> None:
    first = encode({"payload": b"p" * 70000, "signature": b"s" * 32}, BIN)
    second = encode({"k": 1}, BIN)
    third = encode({"json": True})
    wire = first + second + third
    for split in (1, 7, 1000, len(wire)):
        decoder = ObjectStreamDecoder()
        got = []
        for i in range(0, len(wire), split):
            decoder.feed(wire[i : i + split])
            while (item := decoder.next_object()) is not None:
                got.append(item[0])
        assert got == [first, second, third], split


def test_stream_refuses_an_oversized_binary_object_from_its_head() -> None:
    decoder = ObjectStreamDecoder(max_object_size=1000)
    big = encode({"payload": b"x" * 5000}, BIN)
    decoder.feed(big[:20])  # the length is known from the head: no need to buffer 5000 bytes
    with pytest.raises(MslEncodingException) as info:
        decoder.next_raw()
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_stream_refuses_malformed_framing() -> None:
    decoder = ObjectStreamDecoder()
    decoder.feed(_b("bf6161"))  # indefinite-length map
    with pytest.raises(MslEncodingException):
        decoder.next_raw()
    decoder = ObjectStreamDecoder()
    decoder.feed(b"\x00{}")
    with pytest.raises(MslEncodingException):
        decoder.next_raw()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=30), json_like, max_size=6))
def test_agrees_with_an_independent_cbor_implementation(value: dict[str, Any]) -> None:
    """Differential check against cbor2 (installed with the ``bench`` extra): it reads
    our bytes as the same value, and its canonical encoding is our encoding."""
    cbor2 = pytest.importorskip("cbor2")
    encoded = encode(value, BIN)
    assert cbor2.loads(encoded[1:]) == _without_none(value)
    assert cbor2.dumps(_without_none(value), canonical=True) == encoded[1:]
