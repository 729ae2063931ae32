"""Tests for missile.encoding.codec (encoding.md §2–§3, interop.md A)."""

from __future__ import annotations

import json
from enum import Enum, IntEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.encoding.base64 import b64encode
from missile.encoding.codec import EncoderFormat, decode, detect_format, encode, to_json_value
from missile.encoding.mslobject import MslArray, MslObject
from missile.errors import MslEncodingException, MslError


class Algo(str, Enum):
    GZIP = "GZIP"
    LZW = "LZW"


class Plain(Enum):
    AES = "AES"


class Number(IntEnum):
    ONE = 1


class Token:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_msl(self) -> dict[str, Any]:
        return {"tokendata": self.data, "signature": b"\x01", "absent": None}


def parse_error(data: bytes | bytearray | memoryview) -> MslEncodingException:
    with pytest.raises(MslEncodingException) as info:
        decode(data)
    assert info.value.error is MslError.MSL_PARSE_ERROR
    return info.value


def encode_error(value: Any) -> MslEncodingException:
    with pytest.raises(MslEncodingException) as info:
        encode(value)
    assert info.value.error is MslError.MSL_ENCODE_ERROR
    return info.value


# --- detect_format ----------------------------------------------------------


def test_detect_format_json() -> None:
    assert detect_format(b"{") is EncoderFormat.JSON
    assert detect_format(bytearray(b'{"a":1}')) is EncoderFormat.JSON
    assert detect_format(memoryview(b"{}")) is EncoderFormat.JSON
    assert EncoderFormat.JSON.identifier == 0x7B
    assert EncoderFormat.JSON.value == "JSON"
    assert EncoderFormat("JSON") is EncoderFormat.JSON


@pytest.mark.parametrize("data", [b"", b" {}", b"\n{}", b"\xef\xbb\xbf{}", b"[]", b'"x"', b"1", b"\x00"])
def test_detect_format_rejects(data: bytes) -> None:
    with pytest.raises(MslEncodingException) as info:
        detect_format(data)
    assert info.value.error is MslError.MSL_PARSE_ERROR


# --- encode -----------------------------------------------------------------


def test_encode_is_compact_utf8_json() -> None:
    out = encode({"a": 1, "b": "x y", "c": [1, 2], "d": {"e": True}})
    assert isinstance(out, bytes)
    assert out.startswith(b"{")
    assert b": " not in out and b", " not in out
    assert b"\n" not in out
    assert json.loads(out) == {"a": 1, "b": "x y", "c": [1, 2], "d": {"e": True}}


def test_encode_exact_bytes() -> None:
    assert encode({"a": 1}) == b'{"a":1}'
    assert encode({}) == b"{}"
    assert encode({"k": [True, False, "s", 0]}) == b'{"k":[true,false,"s",0]}'


def test_encode_bytes_as_standard_base64() -> None:
    data = bytes(range(256))
    out = json.loads(encode({"b": data, "e": b"", "ba": bytearray(b"\xfb\xff"), "mv": memoryview(b"f")}))
    assert out["b"] == b64encode(data)
    assert out["e"] == ""
    assert out["ba"] == "+/8="
    assert out["mv"] == "Zg=="
    assert decode(encode({"b": data})).get_bytes("b") == data


def test_encode_omits_none() -> None:
    out = encode({"a": None, "b": 1, "c": {"d": None, "e": 2}, "f": [None, 3, None]})
    assert b"null" not in out
    assert json.loads(out) == {"b": 1, "c": {"e": 2}, "f": [3]}


def test_encode_nested_and_tuple() -> None:
    value = {"l1": {"l2": {"l3": [{"x": (1, 2)}, [b"\x00"]]}}}
    out = json.loads(encode(value))
    assert out == {"l1": {"l2": {"l3": [{"x": [1, 2]}, ["AA=="]]}}}


def test_encode_enums() -> None:
    out = json.loads(encode({"c": Algo.GZIP, "p": Plain.AES, "n": Number.ONE, "l": [Algo.LZW]}))
    assert out == {"c": "GZIP", "p": "AES", "n": 1, "l": ["LZW"]}
    raw = encode({"c": Algo.GZIP, "n": Number.ONE})
    assert b"Algo" not in raw and b"Number" not in raw


def test_encode_encodable_as_nested_object() -> None:
    tok = Token(b"\x00\x01\x02")
    out = json.loads(encode({"mastertoken": tok}))
    assert out == {"mastertoken": {"tokendata": "AAEC", "signature": "AQ=="}}
    # A top-level encodable is encoded as its object.
    assert json.loads(encode(tok)) == {"tokendata": "AAEC", "signature": "AQ=="}
    assert json.loads(encode({"servicetokens": [tok, tok]}))["servicetokens"][1]["tokendata"] == "AAEC"


def test_encode_mslobject_and_mslarray() -> None:
    o = decode(b'{"a":{"b":[1,"AAEC"]}}')
    assert encode(o) == b'{"a":{"b":[1,"AAEC"]}}'
    assert json.loads(encode({"wrap": o, "arr": MslArray([1, 2])})) == {
        "wrap": {"a": {"b": [1, "AAEC"]}},
        "arr": [1, 2],
    }


def test_encode_bool_stays_bool() -> None:
    assert encode({"t": True, "f": False}) == b'{"t":true,"f":false}'


def test_encode_non_ascii_text_round_trip() -> None:
    text = 'Grüße – 日本語 😀 \u2028 \x00 "quoted" back\\slash'
    out = encode({"s": text, "ключ": "значение"})
    assert "Grüße".encode() in out  # raw UTF-8, not \u escapes
    assert not out.startswith(b"\xef\xbb\xbf")
    out.decode("utf-8")
    o = decode(out)
    assert o.get_string("s") == text
    assert o.get_string("ключ") == "значение"


def test_encode_integer_limits() -> None:
    assert decode(encode({"n": 2**53})).get_int("n") == 2**53
    assert decode(encode({"n": -(2**63)})).get_int("n") == -(2**63)
    assert b"." not in encode({"n": 2**53}) and b"e" not in encode({"n": 2**53})


@pytest.mark.parametrize(
    "value",
    [
        {"f": 1.5},
        {"f": float("nan")},
        {"s": {1, 2}},
        {"o": object()},
        {"n": [1, {"x": 2.0}]},
        {"c": 1j},
        {"s": "\ud800"},  # lone surrogate cannot be UTF-8
    ],
)
def test_encode_unencodable_value(value: dict[str, Any]) -> None:
    encode_error(value)


@pytest.mark.parametrize("value", [[1, 2], "x", 5, b"abc", None])
def test_encode_top_level_must_be_object(value: Any) -> None:
    encode_error(value)


def test_to_json_value() -> None:
    assert to_json_value(b"\x00") == "AA=="
    assert to_json_value(Algo.LZW) == "LZW"
    assert to_json_value([None, 1]) == [1]
    assert to_json_value(True) is True


# --- decode -----------------------------------------------------------------


def test_decode_returns_mslobject() -> None:
    o = decode(b'{"a":1,"b":"x","c":[true],"d":{}}')
    assert isinstance(o, MslObject)
    assert o.to_dict() == {"a": 1, "b": "x", "c": [True], "d": {}}
    assert decode(bytearray(b'{"a":1}')).get_int("a") == 1
    assert decode(memoryview(b'{"a":1}')).get_int("a") == 1


def test_decode_allows_inner_whitespace_and_escapes() -> None:
    o = decode(b'{ "a" : [ 1 , 2 ] ,\n\t"b":"\\u00e9\\n\\"\\\\\\/" }')
    assert o.get_array("a").to_list() == [1, 2]
    assert o.get_string("b") == 'é\n"\\/'


def test_decode_trailing_whitespace_tolerated() -> None:
    assert decode(b'{"a":1}  \r\n\t').get_int("a") == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b" {}",
        b"\n{}",
        b"\t{}",
        b"\xef\xbb\xbf{}",
        b"\xef\xbb\xbf" + b'{"a":1}',
        b"[]",
        b"[{}]",
        b'"{}"',
        b"1",
        b"true",
        b"null",
    ],
)
def test_decode_rejects_leading_garbage_and_non_objects(data: bytes) -> None:
    parse_error(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":1}',
        b'{"a":1,"b":2,"a":3}',
        b'{"o":{"x":1,"x":2}}',
        b'{"l":[{"x":1},{"y":1,"y":2}]}',
        b'{"o":{"p":{"q":{"r":1,"r":1}}}}',
    ],
)
def test_decode_rejects_duplicate_keys(data: bytes) -> None:
    exc = parse_error(data)
    assert "duplicate" in (exc.detail or "")


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":null}',
        b'{"a":1,"b":null}',
        b'{"o":{"x":null}}',
        b'{"l":[null]}',
        b'{"l":[1,null,2]}',
        b'{"l":[[null]]}',
        b'{"l":[1,[2,[3,[null]]]]}',
        b'{"l":[{"x":null}]}',
        b'{"l":[[{"x":[null]}]]}',
        b'{"o":{"l":[[1],[null]]}}',
    ],
)
def test_decode_rejects_null_anywhere(data: bytes) -> None:
    exc = parse_error(data)
    assert "null" in (exc.detail or "")


@pytest.mark.parametrize(
    "data",
    [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":[NaN]}', b'{"o":{"x":Infinity}}'],
)
def test_decode_rejects_nan_and_infinity(data: bytes) -> None:
    parse_error(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":"\xff"}',
        b'{"a":"\xc3"}',  # truncated sequence
        b'{"a":"\xc0\xaf"}',  # overlong encoding
        b'{"a":"\xed\xa0\x80"}',  # encoded surrogate
        b'{"\xfe":1}',
        b'{"a":1}\x80',
    ],
)
def test_decode_rejects_invalid_utf8(data: bytes) -> None:
    parse_error(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1}x',
        b'{"a":1}{}',
        b'{"a":1} {"b":2}',
        b'{"a":1}}',
        b'{"a":1},',
        b'{"a":1}\x00',
    ],
)
def test_decode_rejects_trailing_garbage(data: bytes) -> None:
    parse_error(data)


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b'{"a":1',
        b'{"a":}',
        b'{"a":1,}',
        b"{'a':1}",
        b"{a:1}",
        b'{"a":01}',
        b'{"a":+1}',
        b'{"a":.5}',
        b'{"a":"x\ny"}',  # raw control character in a string
        b'{"a":"\\x41"}',
        b'{"a":[1,]}',
        b'{"a":True}',
        b'{"a":undefined}',
        b'{"a":1 /* c */}',
    ],
)
def test_decode_rejects_malformed_json(data: bytes) -> None:
    parse_error(data)


def test_decode_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    depth = 100_000
    parse_error(b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    parse_error(b'{"a":' + b'{"a":' * depth + b"1" + b"}" * (depth + 1))


def test_decode_moderate_nesting_works() -> None:
    depth = 50
    o = decode(b'{"a":' + b"[" * depth + b"1" + b"]" * depth + b"}")
    arr = o.get_array("a")
    for _ in range(depth - 1):
        arr = arr.get_array(0)
    assert arr.get_int(0) == 1


# --- hypothesis round trips ---------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalars = st.one_of(
    st.integers(min_value=0, max_value=2**53),
    st.booleans(),
    _text,
    st.binary(max_size=40),
)
_trees = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_text, children, max_size=5),
    ),
    max_leaves=30,
)
_objects = st.dictionaries(_text, _trees, max_size=8)


def _expected(value: Any) -> Any:
    if isinstance(value, bytes):
        return b64encode(value)
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


def _check(value: Any, node: MslObject | MslArray, key: Any) -> None:
    """Read ``value`` back from ``node[key]`` with the accessor for its model type."""
    if isinstance(value, bytes):
        assert node.get_bytes(key) == value
    elif isinstance(value, bool):
        assert node.get_bool(key) is value
    elif isinstance(value, int):
        assert node.get_int(key) == value
    elif isinstance(value, str):
        assert node.get_string(key) == value
    elif isinstance(value, dict):
        inner = node.get_object(key)
        assert sorted(inner.keys()) == sorted(value)
        for k, v in value.items():
            _check(v, inner, k)
    else:
        arr = node.get_array(key)
        assert len(arr) == len(value)
        for i, v in enumerate(value):
            _check(v, arr, i)


@settings(max_examples=200)
@given(_objects)
def test_round_trip_arbitrary_trees(value: dict[str, Any]) -> None:
    raw = encode(value)
    assert raw[:1] == b"{"
    decoded = decode(raw)
    assert decoded.to_dict() == _expected(value)
    for k, v in value.items():
        _check(v, decoded, k)
    # Re-encoding the decoded object is stable.
    assert decode(encode(decoded)) == decoded


@given(_objects)
def test_encode_output_is_valid_strict_json(value: dict[str, Any]) -> None:
    raw = encode(value)
    assert json.loads(raw.decode("utf-8")) == _expected(value)


@given(st.dictionaries(_text, st.binary(max_size=100), min_size=1, max_size=5))
def test_binary_fields_round_trip_via_get_bytes(value: dict[str, bytes]) -> None:
    decoded = decode(encode(value))
    for k, v in value.items():
        assert decoded.get_bytes(k) == v
        assert decoded.opt_bytes(k) == v


_json_scalars = st.one_of(st.none(), st.integers(min_value=0, max_value=2**53), st.booleans(), _text)
_json_trees = st.recursive(
    _json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_text, children, max_size=4)),
    max_leaves=20,
)


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


@given(st.dictionaries(_text, _json_trees, max_size=6))
def test_decode_accepts_exactly_the_null_free_objects(value: dict[str, Any]) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8")
    if _has_null(value):
        parse_error(raw)
    else:
        assert decode(raw).to_dict() == value
