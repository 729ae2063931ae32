"""The binary format's codec agrees with its first version, kept as an oracle (issue #15).

:mod:`missile.encoding.cbor` was rewritten for speed; :mod:`.cbor_oracle` is the codec it
replaced, a plain reading of docs/binary-format.md §3-4. On every generated input both
must give the same value (with the same Python types and key order), or both refuse it
with MSL_PARSE_ERROR; the encoders must write the same bytes or both refuse with
MSL_ENCODE_ERROR; the stream framer must find the same end, ask for the same number of
bytes, or refuse. Inputs are valid encodings of random values, the same encodings
mutated (bytes flipped, replaced by the heads the format refuses, inserted, deleted, cut
short, extended), and random CBOR written item by item with every head form (minimal or
not, definite or not), floats, simple values, tags, unsorted and repeated keys and
invalid UTF-8. Where ``cbor2`` is installed (the ``bench`` extra) it is a third, independent
reader: whatever missile accepts, ``cbor2`` reads as the same value and writes back, in
canonical mode, byte for byte.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.encoding import cbor
from missile.encoding.cbor import IDENTIFIER, MAX_DEPTH, IncompleteItem
from missile.errors import MslEncodingException, MslError

from . import cbor_oracle as oracle

_ID = bytes((IDENTIFIER,))
_HAS_CBOR2 = importlib.util.find_spec("cbor2") is not None
_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _typed(value: Any) -> Any:
    """``value`` with every type spelled out (``True == 1`` and dict order would hide a difference)."""
    if isinstance(value, dict):
        return ("map", tuple((type(k).__name__, k, _typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_typed(v) for v in value))
    return (type(value).__name__, value)


def _decoded(decode: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", _typed(decode(data))
    except MslEncodingException as exc:
        return "refused", exc.error


def _encoded(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(value)
    except MslEncodingException as exc:
        return "refused", exc.error


def _framed(item_end: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "end", item_end(data, 1)
    except IncompleteItem as incomplete:
        return "incomplete", incomplete.at_least
    except MslEncodingException as exc:
        return "refused", exc.error


def _check_decoders_agree(data: bytes) -> None:
    got = _decoded(cbor.decode_value, data)
    assert got == _decoded(oracle.decode_value, data), data.hex()
    assert got[0] == "value" or got[1] is MslError.MSL_PARSE_ERROR
    assert _framed(cbor.item_end, data) == _framed(oracle.item_end, data), data.hex()
    if got[0] == "value" and _HAS_CBOR2:
        import cbor2

        value = cbor.decode_value(data)
        assert _typed(cbor2.loads(data[1:])) == got[1], data.hex()
        assert cbor2.dumps(value, canonical=True) == data[1:], data.hex()


# -- values and their encodings ------------------------------------------------------------

_BOUNDARIES = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
_integers = st.one_of(
    st.integers(-(2**64) - 2, 2**64 + 1),
    st.sampled_from(_BOUNDARIES + [-1 - n for n in _BOUNDARIES] + [2**64, -(2**64) - 1]),
)
#: Text around the one-byte head's limit (23/24 bytes) and beyond ASCII.
_text = st.one_of(st.text(max_size=30), st.text(alphabet="aé€😀", min_size=5, max_size=14))
_scalars = st.none() | st.booleans() | _integers | _text | st.binary(max_size=300)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=25,
)
_objects = st.dictionaries(_text, _values, max_size=6)


@_SETTINGS
@given(_objects)
def test_encoders_agree(value: dict[str, Any]) -> None:
    got = _encoded(cbor.encode_value, value)
    assert got == _encoded(oracle.encode_value, value)
    assert got[0] == "bytes" or got[1] is MslError.MSL_ENCODE_ERROR
    if got[0] == "bytes":
        _check_decoders_agree(_ID + got[1])


def _encoding(value: dict[str, Any]) -> bytes:
    try:
        return _ID + oracle.encode_value(value)
    except MslEncodingException:
        return _ID + b"\xa0"


@_SETTINGS
@given(_objects)
def test_decoders_agree_on_valid_encodings(value: dict[str, Any]) -> None:
    data = _encoding(value)
    assert _decoded(cbor.decode_value, data)[0] == "value"
    _check_decoders_agree(data)


#: Bytes a mutation writes: the heads and values the format refuses, and their neighbours.
_INTERESTING = [
    *range(0x17, 0x20),  # extended and reserved heads, indefinite
    0x38, 0x3B, 0x40, 0x58, 0x5F, 0x60, 0x78, 0x7F, 0x80, 0x98, 0x9F, 0xA0, 0xB8, 0xBF,
    0xC0, 0xC1, 0xD8, 0xDB, 0xE0, 0xF0, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFF,
    0x00, 0x80, 0xC3, 0xED, 0xF0,  # UTF-8 lead and continuation bytes
]  # fmt: skip
_mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]),
    st.floats(0, 1, exclude_max=True),
    st.one_of(st.sampled_from(_INTERESTING), st.integers(0, 255)),
)


def _mutate(data: bytes, mutations: list[tuple[str, float, int]]) -> bytes:
    body = bytearray(data[1:])
    for kind, where, byte in mutations:
        at = int(where * len(body)) if body else 0
        if kind == "flip" and body:
            body[at] ^= 1 << (byte % 8)
        elif kind == "set" and body:
            body[at] = byte
        elif kind == "insert":
            body.insert(at, byte)
        elif kind == "delete" and body:
            del body[at]
        elif kind == "truncate":
            del body[at:]
        elif kind == "append":
            body.append(byte)
    return _ID + bytes(body)


@_SETTINGS
@given(_objects, st.lists(_mutation, min_size=1, max_size=3))
def test_decoders_agree_on_mutated_encodings(value: dict[str, Any], mutations: list[tuple[str, float, int]]) -> None:
    _check_decoders_agree(_mutate(_encoding(value), mutations))


# -- random CBOR, item by item -------------------------------------------------------------


def _head(major: int, n: int, form: int) -> bytes:
    """A head for ``n``: ``form`` 0 is the shortest, 1-4 force 1, 2, 4 or 8 argument bytes
    (non-minimal when the shortest is smaller); an argument too big for a form uses the shortest."""
    shortest = cbor._head(major, min(n, 2**64 - 1))
    if form == 0:
        return shortest
    size = 1 << (form - 1)
    if n >= 1 << (8 * size):
        return shortest
    return bytes(((major << 5) | (23 + form),)) + n.to_bytes(size, "big")


#: Mostly the shortest form, so that whole maps are often valid and a single defect decides.
_forms = st.sampled_from([0] * 12 + [1, 2, 3, 4])
_TEXTS = ["", "a", "b", "aa", "ab", "é", "keyid", "iv", "x" * 23, "y" * 24, "\u00ff", "😀"]
#: Items the format refuses wherever they appear.
_REFUSED_ITEMS = [
    b"\xf6", b"\xf7", b"\xf0", b"\xf8\x20", b"\xf8\x05", b"\xf9\x3c\x00", b"\xfa\x3f\x80\x00\x00",
    b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", b"\xff", b"\xfc", b"\x5f\x41\x01\xff", b"\x7f\x61a\xff", b"\x5f\xff",
    b"\x1c", b"\x3d", b"\x5e", b"\x7c", b"\x9d", b"\xbe", b"\xdc", b"\x61\xff", b"\x62\xc3\x28", b"\x63\xed\xa0\x80",
]  # fmt: skip


@st.composite
def _raw_text(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from([t.encode() for t in _TEXTS]))
    return _head(3, len(raw), draw(_forms)) + raw


@st.composite
def _raw_leaf(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["uint", "nint", "bytes", "text", "text", "bool", "bool", "refused"]))
    if kind in ("uint", "nint"):
        n = draw(st.sampled_from(_BOUNDARIES) | st.integers(0, 2**64 - 1))
        return _head(0 if kind == "uint" else 1, n, draw(_forms))
    if kind == "bytes":
        raw = draw(st.binary(max_size=30))
        return _head(2, len(raw), draw(_forms)) + raw
    if kind == "text":
        return draw(_raw_text())
    if kind == "bool":
        return draw(st.sampled_from([b"\xf4", b"\xf5"]))
    return draw(st.sampled_from(_REFUSED_ITEMS))


def _raw_containers(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def array(draw: st.DrawFn) -> bytes:
        items = draw(st.lists(children, max_size=4))
        if draw(st.integers(0, 15)) == 0:
            return b"\x9f" + b"".join(items) + b"\xff"
        return _head(4, len(items), draw(_forms)) + b"".join(items)

    @st.composite
    def tag(draw: st.DrawFn) -> bytes:
        return _head(6, draw(st.sampled_from([0, 1, 2, 3, 24, 55799, 2**40])), draw(_forms)) + draw(children)

    return st.one_of(array(), array(), _raw_map(children), _raw_map(children), tag())


@st.composite
def _raw_map(draw: st.DrawFn, children: st.SearchStrategy[bytes]) -> bytes:
    keys = draw(st.lists(_raw_text(), max_size=5))
    order = draw(st.sampled_from(["sorted", "sorted", "sorted", "with repeats", "as drawn"]))
    if order == "sorted":
        keys = sorted(set(keys), key=lambda k: (len(k), k))
    elif order == "with repeats":
        keys = sorted(keys, key=lambda k: (len(k), k))
    if draw(st.integers(0, 15)) == 0:
        keys.insert(draw(st.integers(0, len(keys))), draw(_raw_leaf()))  # maybe not text
    pairs = b"".join(k + draw(children) for k in keys)
    if draw(st.integers(0, 15)) == 0:
        return b"\xbf" + pairs + b"\xff"
    return _head(5, len(keys), draw(_forms)) + pairs


_raw_items = st.recursive(_raw_leaf(), _raw_containers, max_leaves=10)


@_SETTINGS
@given(_raw_map(_raw_items), st.sampled_from([b"", b"", b"", b"\x00", b"\xff", b"\xa0"]))
def test_decoders_agree_on_random_cbor(body: bytes, trailing: bytes) -> None:
    _check_decoders_agree(_ID + body + trailing)


@_SETTINGS
@given(st.binary(max_size=80))
def test_decoders_agree_on_arbitrary_bytes(body: bytes) -> None:
    _check_decoders_agree(_ID + body)


# -- valid encodings with one defect ------------------------------------------------------

_DEFECTS = [
    "non-minimal head", "null", "undefined", "simple value", "half float", "double", "reserved head", "break",
    "tag", "indefinite length", "invalid UTF-8", "duplicate key", "keys out of order", "integer key",
]  # fmt: skip
_REPLACEMENTS = {
    "null": b"\xf6",
    "undefined": b"\xf7",
    "simple value": b"\xf0",
    "half float": b"\xf9\x3c\x00",
    "double": b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00",
    "reserved head": b"\x1c",
    "break": b"\xff",
}


class _Writer:
    """Writes a value deterministically, except item number ``target`` (depth-first), which
    gets ``defect`` (or ``null`` where that defect cannot apply to the item)."""

    def __init__(self, target: int, defect: str) -> None:
        self.left, self.defect, self.out = target, defect, bytearray()

    def _head(self, major: int, n: int, hit: bool) -> bytes:
        if hit and self.defect == "non-minimal head":
            size = next(size for size in (0, 1, 2, 4, 8) if n < 1 << (8 * size) and (size or n < 24))
            if size < 8:
                wider = {0: 1, 1: 2, 2: 4, 4: 8}[size]
                return bytes(((major << 5) | {1: 24, 2: 25, 4: 26, 8: 27}[wider],)) + n.to_bytes(wider, "big")
        return cbor._head(major, n)

    def write(self, value: Any) -> None:
        hit, self.left = self.left == 0, self.left - 1
        defect = _applicable(self.defect, value) if hit else ""
        if defect == "tag":
            self.out += b"\xc1"
            defect, hit = "", False
        if defect in _REPLACEMENTS:
            self.out += _REPLACEMENTS[defect]
        elif isinstance(value, bool):
            self.out += (b"\xf8" if defect else b"") + (b"\xf5" if value else b"\xf4")  # a one-byte argument
        elif isinstance(value, int):
            self.out += self._head(0, value, hit) if value >= 0 else self._head(1, -1 - value, hit)
        elif isinstance(value, (bytes, str)):
            raw = value.encode() if isinstance(value, str) else value
            major = 3 if isinstance(value, str) else 2
            if defect == "invalid UTF-8":
                raw += b"\xc3"
            if defect == "indefinite length":
                self.out += bytes(((major << 5) | 31,)) + self._head(major, len(raw), False) + raw + b"\xff"
            else:
                self.out += self._head(major, len(raw), hit) + raw
        elif isinstance(value, list):
            items = [v for v in value if v is not None]
            self.out += b"\x9f" if defect == "indefinite length" else self._head(4, len(items), hit)
            for item in items:
                self.write(item)
            self.out += b"\xff" if defect == "indefinite length" else b""
        else:
            self._map(value, hit, defect)

    def _map(self, value: dict[str, Any], hit: bool, defect: str) -> None:
        pairs = sorted((cbor.encode_text(k), v) for k, v in value.items() if v is not None)
        if defect == "duplicate key":
            pairs.insert(0, pairs[0])
        elif defect == "keys out of order":
            pairs[0], pairs[1] = pairs[1], pairs[0]
        elif defect == "integer key":
            pairs[0] = (b"\x01", pairs[0][1])
        self.out += b"\xbf" if defect == "indefinite length" else self._head(5, len(pairs), hit)
        for key, item in pairs:
            self.out += key
            self.write(item)
        self.out += b"\xff" if defect == "indefinite length" else b""


def _applicable(defect: str, value: Any) -> str:
    """``defect`` if it can be applied to ``value``'s item, else ``null`` in its place."""
    pairs = sum(v is not None for v in value.values()) if isinstance(value, dict) else 0
    applies = {
        "non-minimal head": not isinstance(value, int) or isinstance(value, bool) or -(2**32) <= value < 2**32,
        "indefinite length": isinstance(value, (bytes, str, list, dict)),
        "invalid UTF-8": isinstance(value, str),
        "duplicate key": pairs >= 1,
        "keys out of order": pairs >= 2,
        "integer key": pairs >= 1,
    }
    return defect if applies.get(defect, True) else "null"


def _item_count(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_item_count(v) for v in value.values() if v is not None)
    if isinstance(value, list):
        return 1 + sum(_item_count(v) for v in value if v is not None)
    return 1


@_SETTINGS
@given(_objects, st.sampled_from(_DEFECTS), st.floats(0, 1, exclude_max=True))
def test_one_defect_is_refused_by_both(value: dict[str, Any], defect: str, where: float) -> None:
    value = {k: v for k, v in value.items() if not isinstance(v, int) or -(2**64) <= v < 2**64}
    try:
        oracle.encode_value(value)
    except MslEncodingException:
        return  # an integer out of range deeper down: not a valid value to start from
    writer = _Writer(int(where * _item_count(value)), defect)
    writer.write(value)
    data = _ID + bytes(writer.out)
    assert _decoded(cbor.decode_value, data) == ("refused", MslError.MSL_PARSE_ERROR), (defect, data.hex())
    _check_decoders_agree(data)


# -- edges ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
@pytest.mark.parametrize("container", [b"\x81", b"\xa1\x61a"])
def test_nesting_limit_agrees(depth: int, container: bytes) -> None:
    # ``depth`` maps and arrays in all, the top-level map included: 64 are accepted.
    data = _ID + b"\xa1\x61x" + container * (depth - 1) + b"\x01"
    _check_decoders_agree(data)
    accepted = _decoded(cbor.decode_value, data)[0] == "value"
    assert accepted is (depth <= MAX_DEPTH)


@pytest.mark.parametrize(
    "hex_body",
    [
        "a1 6161 5bffffffffffffffff",  # a byte string claiming 2^64-1 bytes
        "a1 6161 7b0000000100000000 61",  # text claiming 2^32 bytes
        "a1 6161 9bffffffffffffffff",  # an array claiming 2^64-1 items
        "bbffffffffffffffff 6161 01",  # a map claiming 2^64-1 pairs
        "a1 7818 " + "61" * 24 + " 01",  # a 24-byte key: a one-byte length
        "a1 7817 " + "61" * 23 + " 01",  # a 23-byte key written long: non-minimal
        "a2 6162 01 7818 " + "61" * 24 + " 01",  # shorter key first even if bytewise larger
        "a2 62c3a9 01 626161 01",  # keys of equal length: bytewise (é after aa)
        "a2 626161 01 62c3a9 01",
        "a1 6161 3bffffffffffffffff",  # -2^64
        "a1 6161 1bffffffffffffffff",  # 2^64-1
        "a1 6161 f8f5",  # true written as a two-byte simple value
        "a1 6161 5800",  # empty byte string with a one-byte length: non-minimal
        "a1 6161 a1 6161 f5",
        "a1 6161 82 f4 a0",
    ],
)
def test_edges_agree(hex_body: str) -> None:
    _check_decoders_agree(_ID + bytes.fromhex(hex_body.replace(" ", "")))


def _content(major: int, n: int) -> bytes:
    """What follows a head with argument ``n``: ``n`` bytes, items or pairs (nothing for integers)."""
    if major in (2, 3):
        return b"x" * n
    if major == 4:
        return b"\x01" * n
    if major == 5:
        return b"".join(cbor.encode_text(f"{i:03}") + b"\x01" for i in range(n))
    return b""


_HEAD_CASES = [
    (major, n, width)
    for major in range(6)
    for n in [0, 23, 24, 255, 256, 300, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    if major < 2 or n <= 300
    for width in (1, 2, 4, 8)
    if n < 1 << (8 * width)
]


@pytest.mark.parametrize(("major", "n", "width"), _HEAD_CASES)
def test_every_head_form_agrees(major: int, n: int, width: int) -> None:
    # Every argument at and around each boundary, in every width that can hold it, as a map
    # value and as an array element: only the shortest form is accepted.
    head = bytes(((major << 5) | {1: 24, 2: 25, 4: 26, 8: 27}[width],)) + n.to_bytes(width, "big")
    item = head + _content(major, n)
    minimal = cbor._head(major, n) == head
    for data in (_ID + b"\xa1\x61a" + item, _ID + b"\xa1\x61a\x81" + item):
        _check_decoders_agree(data)
        assert (_decoded(cbor.decode_value, data)[0] == "value") is minimal, data[:20].hex()


def test_encoder_refusals_agree() -> None:
    for value in ({"a": 1.5}, {"a": 2**64}, {"a": -(2**64) - 1}, {1: 2}, {"a": {b"k": 1}}, {"a": object()}):
        assert (
            _encoded(cbor.encode_value, value)
            == _encoded(oracle.encode_value, value)
            == (
                "refused",
                MslError.MSL_ENCODE_ERROR,
            )
        )
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert _encoded(cbor.encode_value, {"x": deep}) == ("refused", MslError.MSL_ENCODE_ERROR)
    assert _encoded(cbor.encode_value, {"x": deep[0]})[0] == "bytes"


def test_unencodable_text_is_an_encode_error() -> None:
    # A lone surrogate has no UTF-8 form: a typed error, not a UnicodeEncodeError.
    assert _encoded(cbor.encode_value, {"a": "\ud800"}) == ("refused", MslError.MSL_ENCODE_ERROR)
    assert _encoded(cbor.encode_value, {"\ud800": 1}) == ("refused", MslError.MSL_ENCODE_ERROR)


def test_the_key_order_cache_does_not_change_the_bytes() -> None:
    # The same key set in another insertion order, with absent (None) values, and again
    # once its order is cached: always the oracle's bytes.
    for value in ({"b": 1, "a": None, "cc": b"x"}, {"cc": b"x", "a": 2, "b": None}, {"a": 3, "cc": None, "b": 1}):
        for _ in range(2):
            assert cbor.encode_value(value) == oracle.encode_value(value)
