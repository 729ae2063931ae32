"""Small complete objects are parsed in one pass (ObjectStreamDecoder._decode_directly);
the result, the bytes consumed and any error must be those of the scanning path."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.encoding import ObjectStreamDecoder
from missile.encoding.mslobject import MslObject
from missile.errors import MslException

CASES = [
    b'{"a":1}',
    b'{"a":1}{"b":2}',
    b'  {"a":"x{y}\\"z"} {"b":[1,2,{"c":true}]}',
    b'{"a":{"b":{"c":{}}}}tail',
    b'{"a":"\xc3\xa9"}',  # non-ASCII: the scan path
    b'{"a":"\\u00e9"}',
    b'{"a":1,"a":2}',  # duplicate key
    b'{"a":null}',
    b'{"a":NaN}',
    b'{"a":1',  # incomplete
    b'{"a":"unterminated',
    b'{"a":1,}',
    b'{"a" 1}',
    b"[1,2]",
    b"x",
    b'{"a":01}',
    b'{"k":"' + b"A" * 5000 + b'"}{"n":1}',
    b'{"k":"' + b"A" * 9000 + b'"}',  # above the direct limit
]

# A header under a master token as the writer gives it, and near misses.
_HEADER = b'{"headerdata":"aGQ=","signature":"c2ln","mastertoken":{"tokendata":"dGQ+/w==","signature":"dHM="}}'
CASES += [
    _HEADER,
    _HEADER + b'{"payload":"cA==","signature":"cw=="}',
    b"  " + _HEADER + b"  ",
    _HEADER[:-1],
    _HEADER + b"}",
    _HEADER.replace(b"aGQ=", b""),
    _HEADER.replace(b"aGQ=", b"a\\u0047Q="),  # an escape
    _HEADER.replace(b"aGQ=", b'a"Q='),
    _HEADER.replace(b"aGQ=", b"a\xc3\xa9"),
    _HEADER.replace(b'"signature":"dHM="', b'"signature":"dHM=","signature":"dHM="'),
    _HEADER.replace(b'"signature":"c2ln"', b'"signature":1'),
    _HEADER.replace(b'":"', b'": "', 1),
]


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
        assert isinstance(obj, MslObject)
        out.append((raw, obj.to_dict()))


def _scanned(data: bytes, max_size: int = 1 << 20) -> list[object]:
    dec = ObjectStreamDecoder(max_object_size=max_size)
    dec.feed(bytearray(data))  # a bytearray buffer never takes the direct path
    return _drain(dec)


def _direct(data: bytes, max_size: int = 1 << 20) -> list[object]:
    dec = ObjectStreamDecoder(max_object_size=max_size)
    dec.feed(data)
    return _drain(dec)


@pytest.mark.parametrize("data", CASES)
def test_direct_path_agrees_with_the_scan(data: bytes) -> None:
    assert _direct(data) == _scanned(data)


def test_direct_path_respects_the_object_size_limit() -> None:
    data = b'{"a":"' + b"x" * 100 + b'"}'
    assert _direct(data, max_size=50) == _scanned(data, max_size=50)
    assert _direct(data, max_size=50)[0][0] == "error"


_json_values = st.recursive(
    st.integers(-(2**53), 2**53) | st.booleans() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=4), _json_values, max_size=4), min_size=1, max_size=3), st.data())
def test_direct_path_agrees_on_generated_streams(objects: list[dict[str, object]], data: st.DataObject) -> None:
    ascii_only = data.draw(st.booleans())
    wire = b"".join(json.dumps(o, separators=(",", ":"), ensure_ascii=ascii_only).encode() for o in objects)
    cut = data.draw(st.integers(0, len(wire)))
    wire = wire[:cut] if data.draw(st.booleans()) else wire
    assert _direct(wire) == _scanned(wire)


_B64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.tuples(_B64, _B64, _B64, _B64), st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=2))), st.data())
def test_direct_path_agrees_on_edited_headers(
    values: tuple[str, str, str, str], edits: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    header = {
        "headerdata": values[0],
        "signature": values[1],
        "mastertoken": {"tokendata": values[2], "signature": values[3]},
    }
    wire = bytearray(json.dumps(header, separators=(",", ":")).encode())
    for where, blob in edits:
        pos = where % (len(wire) + 1)
        wire[pos : pos + data.draw(st.integers(0, 2))] = blob
    if data.draw(st.booleans()):
        wire += b'{"payload":"cA==","signature":"cw=="}'
    assert _direct(bytes(wire)) == _scanned(bytes(wire))
