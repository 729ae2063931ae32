"""Tests for missile.encoding.mslobject (encoding.md §1: typed accessors)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from missile.encoding.codec import decode
from missile.encoding.mslobject import MslArray, MslObject
from missile.errors import MslEncodingException, MslError

SAMPLE: dict[str, Any] = {
    "str": "hello",
    "emptystr": "",
    "int": 42,
    "zero": 0,
    "neg": -7,
    "big": 2**53,
    "float": 3.9,
    "negfloat": -3.9,
    "wholefloat": 1.0,
    "true": True,
    "false": False,
    "bin": "AAEC",  # b"\x00\x01\x02"
    "emptybin": "",
    "badbin": "AAE",
    "urlbin": "-_8A",
    "obj": {"x": 1},
    "emptyobj": {},
    "arr": [1, "two", True],
    "emptyarr": [],
    "nan": float("nan"),
    "inf": float("inf"),
    "ninf": float("-inf"),
}


def obj() -> MslObject:
    return MslObject(dict(SAMPLE))


def parse_error(fn: Callable[[], object], key_hint: str | None = None) -> MslEncodingException:
    with pytest.raises(MslEncodingException) as info:
        fn()
    assert info.value.error is MslError.MSL_PARSE_ERROR
    if key_hint is not None:
        assert key_hint in (info.value.detail or "")
        assert key_hint in str(info.value)
    return info.value


# --- container behaviour ----------------------------------------------------


def test_container_protocol() -> None:
    o = MslObject({"a": 1, "b": "x"})
    assert len(o) == 2
    assert "a" in o and "c" not in o
    assert sorted(o) == ["a", "b"]
    assert sorted(o.keys()) == ["a", "b"]
    assert o.to_dict() == {"a": 1, "b": "x"}
    assert o == MslObject({"b": "x", "a": 1})
    assert o != MslObject({"a": 1})
    assert o != {"a": 1, "b": "x"}
    assert "MslObject" in repr(o)


def test_objects_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(MslObject({}))
    with pytest.raises(TypeError):
        hash(MslArray([]))


def test_array_container_protocol() -> None:
    a = MslArray([1, 2])
    assert len(a) == 2
    assert a.to_list() == [1, 2]
    assert a == MslArray([1, 2])
    assert a != MslArray([2, 1])
    assert a != [1, 2]
    assert "MslArray" in repr(a)


# --- required accessors -----------------------------------------------------


def test_get_string() -> None:
    assert obj().get_string("str") == "hello"
    assert obj().get_string("emptystr") == ""


@pytest.mark.parametrize("key", ["int", "float", "true", "obj", "arr"])
def test_get_string_wrong_type(key: str) -> None:
    parse_error(lambda: obj().get_string(key), f"'{key}'")


@pytest.mark.parametrize(
    ("key", "value"),
    [("int", 42), ("zero", 0), ("neg", -7), ("big", 2**53), ("float", 3), ("negfloat", -3), ("wholefloat", 1)],
)
def test_get_int(key: str, value: int) -> None:
    got = obj().get_int(key)
    assert got == value
    assert type(got) is int


@pytest.mark.parametrize("key", ["str", "true", "false", "obj", "arr", "nan", "inf", "ninf", "bin"])
def test_get_int_wrong_type(key: str) -> None:
    parse_error(lambda: obj().get_int(key), f"'{key}'")


def test_get_int_numeric_string_rejected() -> None:
    parse_error(lambda: MslObject({"n": "7"}).get_int("n"), "'n'")


def test_get_bool() -> None:
    assert obj().get_bool("true") is True
    assert obj().get_bool("false") is False


@pytest.mark.parametrize("value", ["true", "false", 1, 0, 1.0, {}, []])
def test_get_bool_wrong_type(value: Any) -> None:
    parse_error(lambda: MslObject({"b": value}).get_bool("b"), "'b'")


def test_get_bytes() -> None:
    assert obj().get_bytes("bin") == b"\x00\x01\x02"
    assert obj().get_bytes("emptybin") == b""
    assert MslObject({"b": "AA EC\n"}).get_bytes("b") == b"\x00\x01\x02"


@pytest.mark.parametrize("key", ["badbin", "urlbin", "int", "true", "obj", "arr"])
def test_get_bytes_invalid(key: str) -> None:
    exc = parse_error(lambda: obj().get_bytes(key), f"'{key}'")
    assert "binary" in (exc.detail or "")


def test_get_object() -> None:
    inner = obj().get_object("obj")
    assert isinstance(inner, MslObject)
    assert inner.get_int("x") == 1
    assert len(obj().get_object("emptyobj")) == 0


@pytest.mark.parametrize("key", ["str", "int", "true", "arr"])
def test_get_object_wrong_type(key: str) -> None:
    parse_error(lambda: obj().get_object(key), f"'{key}'")


def test_get_object_json_in_string_rejected() -> None:
    parse_error(lambda: MslObject({"o": '{"x":1}'}).get_object("o"), "'o'")


def test_get_array() -> None:
    arr = obj().get_array("arr")
    assert isinstance(arr, MslArray)
    assert arr.to_list() == [1, "two", True]
    assert len(obj().get_array("emptyarr")) == 0


@pytest.mark.parametrize("key", ["str", "int", "true", "obj"])
def test_get_array_wrong_type(key: str) -> None:
    parse_error(lambda: obj().get_array(key), f"'{key}'")


@pytest.mark.parametrize("method", ["get_string", "get_int", "get_bool", "get_bytes", "get_object", "get_array"])
def test_required_missing_names_key(method: str) -> None:
    exc = parse_error(lambda: getattr(obj(), method)("nosuchkey"), "'nosuchkey'")
    assert "missing" in (exc.detail or "")


def test_keys_are_case_sensitive() -> None:
    o = MslObject({"messageid": 1})
    parse_error(lambda: o.get_int("MessageID"), "'MessageID'")
    assert o.opt_int("MessageId") is None


# --- optional accessors: absent -> default, present -> strictly typed ------


@pytest.mark.parametrize("method", ["opt_string", "opt_int", "opt_bool", "opt_bytes", "opt_object", "opt_array"])
def test_optional_absent_gives_default(method: str) -> None:
    o = obj()
    assert getattr(o, method)("absent") is None
    sentinel = object()
    assert getattr(o, method)("absent", sentinel) is sentinel


def test_optional_present_values() -> None:
    o = obj()
    assert o.opt_string("str", "d") == "hello"
    assert o.opt_string("emptystr", "d") == ""
    assert o.opt_int("zero", 9) == 0
    assert o.opt_int("float", 9) == 3
    assert o.opt_bool("false", True) is False
    assert o.opt_bytes("emptybin", b"d") == b""
    assert o.opt_bytes("bin") == b"\x00\x01\x02"
    opt_obj = o.opt_object("obj")
    assert isinstance(opt_obj, MslObject) and opt_obj.get_int("x") == 1
    opt_arr = o.opt_array("emptyarr")
    assert isinstance(opt_arr, MslArray) and len(opt_arr) == 0


@pytest.mark.parametrize(
    ("method", "data", "key"),
    [
        # the spec's own examples (encoding.md §1)
        ("opt_int", {"nonreplayableid": "7"}, "nonreplayableid"),
        ("opt_int", {"timestamp": "x"}, "timestamp"),
        ("opt_bool", {"handshake": "false"}, "handshake"),
        ("opt_bool", {"endofmsg": 1}, "endofmsg"),
        ("opt_string", {"compressionalgo": 5}, "compressionalgo"),
        ("opt_int", {"internalcode": "3"}, "internalcode"),
        ("opt_int", {"mtserialnumber": "1"}, "mtserialnumber"),
        ("opt_object", {"capabilities": "x"}, "capabilities"),
        ("opt_object", {"capabilities": []}, "capabilities"),
        ("opt_array", {"servicetokens": {}}, "servicetokens"),
        ("opt_array", {"keyrequestdata": "[]"}, "keyrequestdata"),
        # bool where int expected / int where string expected
        ("opt_int", {"messageid": True}, "messageid"),
        ("opt_int", {"messageid": False}, "messageid"),
        ("opt_string", {"identity": 12345}, "identity"),
        ("opt_string", {"identity": True}, "identity"),
        ("opt_bool", {"renewable": 0}, "renewable"),
        ("opt_bool", {"renewable": "true"}, "renewable"),
        ("opt_bytes", {"signature": "not base64!"}, "signature"),
        ("opt_bytes", {"signature": 7}, "signature"),
        ("opt_bytes", {"signature": {"a": "b"}}, "signature"),
        ("opt_int", {"n": float("nan")}, "n"),
        ("opt_int", {"n": float("inf")}, "n"),
    ],
)
def test_optional_present_with_wrong_type_rejected(method: str, data: dict[str, Any], key: str) -> None:
    o = MslObject(data)
    parse_error(lambda: getattr(o, method)(key), f"'{key}'")
    parse_error(lambda: getattr(o, method)(key, "default"), f"'{key}'")


def test_optional_wrong_type_from_decoded_json() -> None:
    o = decode(b'{"nonreplayableid":"7","handshake":"false","messageid":true,"identity":3}')
    parse_error(lambda: o.opt_int("nonreplayableid"), "nonreplayableid")
    parse_error(lambda: o.opt_bool("handshake"), "handshake")
    parse_error(lambda: o.opt_int("messageid"), "messageid")
    parse_error(lambda: o.opt_string("identity"), "identity")


# --- numbers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"1.0", 1), (b"1.9", 1), (b"-1.9", -1), (b"1e2", 100), (b"1E2", 100), (b"2.5e0", 2), (b"-0.0", 0)],
)
def test_json_numbers_are_truncated(raw: bytes, value: int) -> None:
    o = decode(b'{"n":' + raw + b"}")
    assert o.get_int("n") == value
    assert type(o.get_int("n")) is int
    assert o.opt_int("n") == value


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400"])
def test_overflowing_json_numbers_rejected(raw: bytes) -> None:
    o = decode(b'{"n":' + raw + b"}")
    parse_error(lambda: o.get_int("n"), "'n'")


def test_large_integer_exact() -> None:
    o = decode(b'{"n":9007199254740993}')
    assert o.get_int("n") == 2**53 + 1


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-(2.0**60), max_value=2.0**60))
def test_float_truncation_property(value: float) -> None:
    got = MslObject({"n": value}).get_int("n")
    assert got == math.trunc(value)


# --- MslArray accessors -------------------------------------------------------


def test_array_accessors() -> None:
    a = MslArray(["s", 5, 2.7, True, "AAEC", {"k": "v"}, [1]])
    assert a.get_string(0) == "s"
    assert a.get_int(1) == 5
    assert a.get_int(2) == 2
    assert a.get_bool(3) is True
    assert a.get_bytes(4) == b"\x00\x01\x02"
    assert a.get_object(5).get_string("k") == "v"
    assert a.get_array(6).get_int(0) == 1


@pytest.mark.parametrize(
    ("method", "index"),
    [
        ("get_string", 1),
        ("get_int", 0),
        ("get_int", 3),
        ("get_bool", 1),
        ("get_bytes", 1),
        ("get_bytes", 0),
        ("get_object", 0),
        ("get_object", 6),
        ("get_array", 5),
    ],
)
def test_array_accessors_wrong_type(method: str, index: int) -> None:
    a = MslArray(["s", 5, 2.7, True, "AAEC", {"k": "v"}, [1]])
    parse_error(lambda: getattr(a, method)(index), f"element {index}")


@pytest.mark.parametrize("index", [7, 100, -1, -7])
@pytest.mark.parametrize("method", ["get_string", "get_int", "get_bool", "get_bytes", "get_object", "get_array"])
def test_array_index_out_of_range(method: str, index: int) -> None:
    a = MslArray(["s", 5, 2.7, True, "AAEC", {"k": "v"}, [1]])
    exc = parse_error(lambda: getattr(a, method)(index), f"element {index}")
    assert "missing" in (exc.detail or "")


def test_objects() -> None:
    a = MslArray([{"a": 1}, {}, {"b": {"c": "d"}}])
    objs = a.objects()
    assert [type(o) for o in objs] == [MslObject] * 3
    assert objs[0].get_int("a") == 1
    assert len(objs[1]) == 0
    assert objs[2].get_object("b").get_string("c") == "d"
    assert MslArray([]).objects() == []


@pytest.mark.parametrize("bad", [["x"], [{"a": 1}, 5], [{"a": 1}, [{}]], [{}, {}, '{"a":1}']])
def test_objects_rejects_non_object_element(bad: list[Any]) -> None:
    idx = next(i for i, v in enumerate(bad) if type(v) is not dict)
    parse_error(lambda: MslArray(bad).objects(), f"element {idx}")


def test_strings() -> None:
    assert MslArray(["GZIP", "LZW", ""]).strings() == ["GZIP", "LZW", ""]
    assert MslArray([]).strings() == []


@pytest.mark.parametrize("bad", [[1], ["a", True], ["a", "b", {}], ["a", None]])
def test_strings_rejects_non_string_element(bad: list[Any]) -> None:
    idx = next(i for i, v in enumerate(bad) if type(v) is not str)
    parse_error(lambda: MslArray(bad).strings(), f"element {idx}")


def test_nested_access_through_decode() -> None:
    o = decode(b'{"a":{"b":[{"c":"AAEC"},{"d":[true,false]}]}}')
    inner = o.get_object("a").get_array("b")
    assert inner.get_object(0).get_bytes("c") == b"\x00\x01\x02"
    assert inner.get_object(1).get_array("d").get_bool(1) is False
