"""The binary encoder format: strict, deterministic CBOR (docs/binary-format.md).

MSL lets every encoding start with a format identifier byte (encoding.md §2). JSON's is
``{``, the object's own opening brace; the binary format's is :data:`IDENTIFIER`, a byte
CBOR reserves (major type 0, additional information 28), so it is never ``{`` and no
generic CBOR decoder can mistake our data for some other party's CBOR item: it refuses
it. One CBOR map follows the identifier, encoded deterministically (RFC 8949 §4.2.1).

Only the subset MSL's data model needs is accepted: maps with text keys, arrays, text
strings, byte strings, integers, ``true`` and ``false``. Everything a deterministic
encoder would not write is refused, because two encodings of one value would let a peer
smuggle a second meaning past anything that compares bytes: indefinite lengths,
non-minimal heads, map keys out of order or repeated, floats, ``null``, ``undefined``,
tags, simple values, invalid UTF-8, bytes after the map, and nesting beyond
:data:`MAX_DEPTH`. Every such input is ``MSL_PARSE_ERROR``.

Why a hand-written decoder rather than ``cbor2``: ``cbor2`` (6.x, C) can refuse
duplicate keys and indefinite lengths, but accepts non-minimal integers and lengths,
keys in any order, tags (decoding some into dates), floats and trailing bytes. Making it
strict takes a type walk plus a canonical re-encoding compared byte for byte, and on
MSL's small objects (headers, tokens, envelopes) that costs more than this decoder,
which checks each rule as it reads (docs/binary-format.md gives the measurements).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from itertools import pairwise
from struct import Struct
from struct import error as StructError
from typing import Any

from missile.errors import MslEncodingException, MslError

__all__ = [
    "IDENTIFIER",
    "MAX_DEPTH",
    "MINIMAL_UINT",
    "IncompleteItem",
    "bytes_head",
    "decode_object_at",
    "decode_value",
    "encode_text",
    "encode_value",
    "item_end",
    "map_head",
    "minimal_head",
    "minimal_uint_value",
    "read_head",
]

#: The format identifier byte (docs/binary-format.md §2).
IDENTIFIER = 0x1C

#: Deepest nesting of maps and arrays accepted. MSL structures nest at most about six
#: deep (header, key response, master token, ...); issuer data and application-defined
#: auth data are bounded by the same limit, which keeps recursion far from Python's.
MAX_DEPTH = 64

_FALSE, _TRUE = 0xF4, 0xF5

#: A regular expression (bytes, to compile with ``re.DOTALL``) of an unsigned integer
#: item as the decoder accepts it: the shortest head (RFC 8949 §4.2.1), so each value
#: has one encoding. For readers of known shapes that match a whole structure at once.
MINIMAL_UINT = (
    rb"[\x00-\x17]|\x18[\x18-\xff]|\x19[\x01-\xff].|\x1a(?:[\x01-\xff].|\x00[\x01-\xff]).."
    rb"|\x1b(?:[\x01-\xff]...|\x00[\x01-\xff]..|\x00\x00[\x01-\xff].|\x00\x00\x00[\x01-\xff])...."
)


def minimal_uint_value(encoded: bytes) -> int:
    """The value of an unsigned integer item matched by :data:`MINIMAL_UINT`."""
    return encoded[0] if len(encoded) == 1 else int.from_bytes(encoded[1:], "big")


_UINT64_MAX = (1 << 64) - 1


class IncompleteItem(Exception):
    """The data ends inside the item; ``at_least`` is the shortest length that could hold it."""

    def __init__(self, at_least: int) -> None:
        super().__init__(at_least)
        self.at_least = at_least


def _fail(detail: str) -> MslEncodingException:
    return MslEncodingException(MslError.MSL_PARSE_ERROR, f"invalid binary encoding: {detail}")


# -- encoding ---------------------------------------------------------------------------


#: One-byte heads, by major type and argument (most heads in MSL structures).
_SMALL_HEADS = [[bytes(((major << 5) | n,)) for n in range(24)] for major in range(8)]
_UINT_HEADS, _BYTES_HEADS, _TEXT_HEADS, _ARRAY_HEADS, _MAP_HEADS = (_SMALL_HEADS[i] for i in (0, 2, 3, 4, 5))
_PACK_16, _PACK_32, _PACK_64 = (Struct(f">B{c}").pack for c in "HIQ")


def _short_head(major: int, n: int) -> bytes:
    return _SMALL_HEADS[major][n] if n < 24 else bytes(((major << 5) | 24, n))


#: Byte string heads up to 255 (signatures, IVs, small envelopes and ciphertexts).
_SHORT_BYTES_HEADS = [_short_head(2, n) for n in range(256)]


def _head(major: int, n: int) -> bytes:
    """The shortest head for ``major`` with argument ``n`` (RFC 8949 §4.2.1 rule 1)."""
    if 0 <= n < 24:
        return _SMALL_HEADS[major][n]
    mt = major << 5
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return _PACK_16(mt | 25, n)
    if n < 0x100000000:
        return _PACK_32(mt | 26, n)
    if n <= _UINT64_MAX:
        return _PACK_64(mt | 27, n)
    raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "integer out of the binary format's range")


def _int(value: int) -> bytes:
    return _head(0, value) if value >= 0 else _head(1, -1 - value)


def encode_text(text: str) -> bytes:
    """A text string item."""
    raw = text.encode("utf-8")
    n = len(raw)
    return (_TEXT_HEADS[n] if n < 24 else _head(3, n)) + raw


def bytes_head(length: int) -> bytes:
    """The head of a byte string of ``length`` bytes (the bytes follow it)."""
    return _SHORT_BYTES_HEADS[length] if 0 <= length < 256 else _head(2, length)


def map_head(count: int) -> bytes:
    """The head of a map of ``count`` pairs."""
    return _head(5, count)


#: How to write a map with a given key sequence: (position in the map, encoded key) in
#: deterministic order. MSL writes a few dozen key sets over and over, so each is sorted
#: once; the cache is bounded so that application-chosen keys (issuer data) cannot grow
#: it without limit (past the bound, maps are sorted each time).
_PLANS: dict[tuple[Any, ...], tuple[tuple[int, bytes], ...]] = {}
_PLANS_MAX = 1024


def _plan(keys: tuple[Any, ...]) -> tuple[tuple[int, bytes], ...]:
    pairs = []
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "map keys must be strings")
        pairs.append((index, encode_text(str.__str__(key))))  # a str subclass is written as its text
    # Deterministic order: by the bytes of the encoded keys (RFC 8949 §4.2.1).
    pairs.sort(key=lambda pair: pair[1])
    for (_, first), (_, second) in pairwise(pairs):
        if first == second:
            raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "two map keys with the same text")
    plan = tuple(pairs)
    if len(_PLANS) < _PLANS_MAX:
        _PLANS[keys] = plan
    return plan


def _encode_map(value: Mapping[Any, Any], out: list[bytes], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "nesting too deep")
    keys = tuple(value)
    plan = _PLANS.get(keys) or _plan(keys)
    values = tuple(value.values())
    at = len(out)
    out.append(b"")  # the head, once the pairs that are not None are counted
    depth += 1
    count = 0
    for index, encoded_key in plan:
        item = values[index]
        if item is None:
            continue  # MSL never writes null: an absent value is an absent key
        count += 1
        out.append(encoded_key)
        t = type(item)
        if t is bytes:
            n = len(item)
            out.append(_BYTES_HEADS[n] if n < 24 else _head(2, n))
            out.append(item)
        elif t is str:
            raw = item.encode("utf-8")
            n = len(raw)
            out.append(_TEXT_HEADS[n] if n < 24 else _head(3, n))
            out.append(raw)
        elif t is bool:
            out.append(b"\xf5" if item else b"\xf4")
        elif t is int:
            out.append(_UINT_HEADS[item] if 0 <= item < 24 else _int(item))
        else:
            _encode_into(item, out, depth)
    out[at] = _MAP_HEADS[count] if count < 24 else _head(5, count)


def _encode_into(value: Any, out: list[bytes], depth: int) -> None:
    t = type(value)
    if t is dict:
        _encode_map(value, out, depth)
    elif t is bytes:
        n = len(value)
        out.append(_BYTES_HEADS[n] if n < 24 else _head(2, n))
        out.append(value)
    elif t is str:
        out.append(encode_text(value))
    elif t is bool:
        out.append(b"\xf5" if value else b"\xf4")
    elif t is int:
        out.append(_UINT_HEADS[value] if 0 <= value < 24 else _int(value))
    elif t is list or t is tuple:
        _encode_array(value, out, depth)
    elif t is bytearray or t is memoryview:
        raw = bytes(value)
        out.append(_head(2, len(raw)))
        out.append(raw)
    else:
        _encode_other(value, out, depth)


def _encode_array(value: list[Any] | tuple[Any, ...], out: list[bytes], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "nesting too deep")
    if None in value:
        value = [item for item in value if item is not None]  # absent, as in a map
    n = len(value)
    out.append(_ARRAY_HEADS[n] if n < 24 else _head(4, n))
    depth += 1
    for item in value:
        if type(item) is str:  # MSL's arrays are mostly names
            raw = item.encode("utf-8")
            n = len(raw)
            out.append(_TEXT_HEADS[n] if n < 24 else _head(3, n))
            out.append(raw)
        else:
            _encode_into(item, out, depth)


def _encode_other(value: Any, out: list[bytes], depth: int) -> None:
    # Enums (algorithm and format names: checked first, as they are frequent and a missed
    # attribute lookup costs an exception), encodables (tokens, auth data, capabilities,
    # ...), decoded objects. Immutable encodables may keep their encoding
    # (``cbor_encoded``, computed once).
    if isinstance(value, Enum):
        _encode_into(value.value, out, depth)
        return
    encoded = getattr(value, "cbor_encoded", None)
    if encoded is not None:
        out.append(encoded)
        return
    to_msl = getattr(value, "to_msl", None)
    if to_msl is not None:
        _encode_into(to_msl(), out, depth)
        return
    if isinstance(value, Mapping):
        _encode_map(value, out, depth)
        return
    to_dict = getattr(value, "to_dict", None) or getattr(value, "to_list", None)
    if to_dict is not None:
        _encode_into(to_dict(), out, depth)
        return
    if isinstance(value, int):
        _encode_into(int(value), out, depth)
        return
    raise MslEncodingException(MslError.MSL_ENCODE_ERROR, f"cannot encode a {type(value).__name__}")


def encode_value(value: Any) -> bytes:
    """The deterministic CBOR encoding of ``value`` (no identifier byte)."""
    if type(value) is int:  # chunk fields (message ID, sequence number) are written alone
        return _UINT_HEADS[value] if 0 <= value < 24 else _int(value)
    out: list[bytes] = []
    try:
        _encode_into(value, out, 0)
    except UnicodeEncodeError:  # a str holding a lone surrogate has no UTF-8 form
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "text is not valid Unicode") from None
    return b"".join(out)


# -- decoding ---------------------------------------------------------------------------
#
# Pure Python pays per bytecode, so the decoder is shaped to run few of them per item:
# the map and array loops read the common items inline (short keys, small integers,
# byte and text strings, booleans, 32- and 64-bit integers, nested maps and arrays) and
# call the general :func:`_item` only for the rest; heads are read with precompiled
# ``struct`` unpackers; key order is checked on the decoded keys (UTF-8 preserves code
# point order, so comparing byte lengths, then strings, is comparing encoded keys); and
# running off the end of the data is caught once, in :func:`decode_value`, rather than
# tested before every read (a string that would end past the data is still tested, as a
# slice would silently stop short).

_U16, _U32, _U64 = (Struct(f">{c}").unpack_from for c in "HIQ")


def _extended(data: bytes | bytearray | memoryview, pos: int, info: int) -> tuple[int, int]:
    """The argument of the head at ``pos`` whose additional information ``info`` is 24 or
    more, and the position after the head; non-minimal, indefinite and reserved are refused
    (each size carries only what the next smaller one cannot)."""
    if info == 24:
        n = data[pos + 1]
        if n >= 24:
            return n, pos + 2
    elif info == 25:
        n = _U16(data, pos + 1)[0]
        if n >= 0x100:
            return n, pos + 3
    elif info == 26:
        n = _U32(data, pos + 1)[0]
        if n >= 0x10000:
            return n, pos + 5
    elif info == 27:
        n = _U64(data, pos + 1)[0]
        if n >= 0x100000000:
            return n, pos + 9
    else:
        raise _fail("indefinite length or reserved head" if info == 31 else "reserved head")
    raise _fail("non-minimal head")


def _item(data: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    """The item at ``pos`` (at nesting ``depth``) and the position after it."""
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if major == 7:
        if initial == _TRUE:
            return True, pos + 1
        if initial == _FALSE:
            return False, pos + 1
        if info == 31:
            raise _fail("indefinite length or reserved head")
        raise _fail("only true and false are allowed among simple values and floats")
    if info < 24:
        n, pos = info, pos + 1
    else:
        n, pos = _extended(data, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major == 2 or major == 3:
        stop = pos + n
        if stop > end:
            raise _fail("truncated")
        return (data[pos:stop] if major == 2 else data[pos:stop].decode()), stop
    if major == 4:
        return _array(data, pos, end, depth, n)
    if major == 5:
        return _map(data, pos, end, depth, n)
    raise _fail("tags are not allowed")


def _array(data: bytes, pos: int, end: int, depth: int, count: int) -> tuple[list[Any], int]:
    if depth >= MAX_DEPTH:
        raise _fail("nesting too deep")
    depth += 1
    items: list[Any] = []
    append = items.append
    for _ in range(count):
        initial = data[pos]
        if 0x60 <= initial < 0x78:  # short text: MSL's arrays are mostly names
            stop = pos + initial - 0x5F
            if stop > end:
                raise _fail("truncated")
            append(data[pos + 1 : stop].decode())
            pos = stop
        else:
            item, pos = _item(data, pos, end, depth)
            append(item)
    return items, pos


def _map(data: bytes, pos: int, end: int, depth: int, count: int) -> tuple[dict[str, Any], int]:
    if depth >= MAX_DEPTH:
        raise _fail("nesting too deep")
    depth += 1
    out: dict[str, Any] = {}
    previous_size, previous = -1, ""
    for _ in range(count):
        initial = data[pos]
        if 0x60 <= initial < 0x78:  # a key shorter than 24 bytes: its head is one byte
            size = initial - 0x60
            pos += 1
        elif 0x78 <= initial < 0x7C:
            size, pos = _extended(data, pos, initial - 0x60)
        else:
            raise _fail("map keys must be text strings")
        stop = pos + size
        if stop > end:
            raise _fail("truncated")
        key = data[pos:stop].decode()
        # Strictly increasing encoded keys (shorter first, then bytewise): deterministic
        # order, and no duplicates.
        if size <= previous_size and (size < previous_size or key <= previous):
            raise _fail("duplicate map key" if key == previous else "map keys out of order")
        previous_size, previous = size, key
        initial = data[stop]
        if initial < 0x18:
            out[key] = initial
            pos = stop + 1
        elif 0x40 <= initial < 0x58:
            pos = stop + initial - 0x3F
            if pos > end:
                raise _fail("truncated")
            out[key] = data[stop + 1 : pos]
        elif 0x60 <= initial < 0x78:
            pos = stop + initial - 0x5F
            if pos > end:
                raise _fail("truncated")
            out[key] = data[stop + 1 : pos].decode()
        elif initial == 0xF4:
            out[key] = False
            pos = stop + 1
        elif initial == 0xF5:
            out[key] = True
            pos = stop + 1
        elif initial == 0x58:  # signatures, keys, small ciphertexts
            size = data[stop + 1]
            if size < 24:
                raise _fail("non-minimal head")
            pos = stop + 2 + size
            if pos > end:
                raise _fail("truncated")
            out[key] = data[stop + 2 : pos]
        elif initial == 0x1B:  # message IDs, serial numbers
            n = _U64(data, stop + 1)[0]
            if n < 0x100000000:
                raise _fail("non-minimal head")
            out[key] = n
            pos = stop + 9
        elif initial == 0x1A:  # times
            n = _U32(data, stop + 1)[0]
            if n < 0x10000:
                raise _fail("non-minimal head")
            out[key] = n
            pos = stop + 5
        elif 0xA0 <= initial < 0xB8:
            out[key], pos = _map(data, stop + 1, end, depth, initial - 0xA0)
        elif 0x80 <= initial < 0x98:
            out[key], pos = _array(data, stop + 1, end, depth, initial - 0x80)
        else:
            out[key], pos = _item(data, stop, end, depth)
    return out, pos


def decode_value(data: bytes) -> dict[str, Any]:
    """Decode one encoded object: the identifier byte, one map, nothing after it."""
    if type(data) is not bytes:
        data = bytes(data)
    value, pos = decode_object_at(data, 0)
    if pos != len(data):
        raise _fail("data after the object")
    return value


def decode_object_at(data: bytes, start: int) -> tuple[dict[str, Any], int]:
    """Decode the encoded object (identifier byte, one map) that starts at ``start`` and
    return it with the offset just past it; what follows is not looked at. As strict as
    :func:`decode_value`; an object cut short by the end of ``data`` is MSL_PARSE_ERROR
    too. Lets a stream decode a header where it lies, framing it in the same pass."""
    end = len(data)
    if start >= end or data[start] != IDENTIFIER:
        raise _fail("missing format identifier")
    if end - start < 2 or data[start + 1] >> 5 != 5:
        raise _fail("not a map")
    try:
        initial = data[start + 1]
        if initial < 0xB8:
            return _map(data, start + 2, end, 0, initial - 0xA0)
        return _item(data, start + 1, end, 0)
    except (IndexError, StructError):  # a read past the end of the data
        raise _fail("truncated") from None
    except UnicodeDecodeError:
        raise _fail("text is not valid UTF-8") from None


# -- framing ----------------------------------------------------------------------------


def _argument(data: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int, int]:
    """Read a head at ``pos``: (major type, argument, position after the head). Non-minimal
    arguments and indefinite lengths are refused; :class:`IncompleteItem` if it is cut off."""
    if pos >= end:
        raise IncompleteItem(pos + 1)
    initial = data[pos]
    info = initial & 0x1F
    if info < 24:
        return initial >> 5, info, pos + 1
    if info < 28 and pos + 1 + (1 << (info - 24)) > end:
        raise IncompleteItem(pos + 1 + (1 << (info - 24)))
    n, stop = _extended(data, pos, info)
    return initial >> 5, n, stop


def read_head(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int]:
    """The head at ``pos``: (major type, argument, position after it), as strictly as the
    decoder reads it; malformed or truncated heads are MSL_PARSE_ERROR."""
    try:
        return _argument(data, pos, len(data))
    except IncompleteItem:
        raise _fail("truncated") from None


def minimal_head(data: bytes | bytearray | memoryview, pos: int, major: int) -> tuple[int, int] | None:
    """The argument of the head at ``pos`` and the position after it, when it is a head of
    major type ``major`` the decoder accepts (minimal, definite) and all there; None
    otherwise (never raises). For readers of known shapes (payload chunks, envelopes):
    the one- and two-byte arguments of their strings are read here directly."""
    if pos >= len(data):
        return None
    initial = data[pos]
    if initial >> 5 != major:
        return None
    info = initial & 0x1F
    if info < 24:
        return info, pos + 1
    if info == 24:
        if pos + 1 < len(data) and data[pos + 1] >= 24:
            return data[pos + 1], pos + 2
        return None
    if info == 25:
        if pos + 2 < len(data) and data[pos + 1]:
            return data[pos + 1] << 8 | data[pos + 2], pos + 3
        return None
    try:
        _, n, after = read_head(data, pos)
    except MslEncodingException:
        return None
    return n, after


def item_end(data: bytes | bytearray | memoryview, pos: int, depth: int = 0) -> int:
    """The end offset of the item that starts at ``pos`` (at nesting ``depth``), checking
    only its framing; raises :class:`IncompleteItem` when ``data`` ends first (used to
    frame a stream). Iterative: ``pending`` holds, for each open map or array, how many
    items of it are still to come."""
    end = len(data)
    pending: list[int] = []
    left = 1
    while True:
        while not left:
            if not pending:
                return pos
            left = pending.pop()
        left -= 1
        if pos >= end:
            raise IncompleteItem(pos + 1)
        initial = data[pos]
        major = initial >> 5
        if initial & 0x1F < 24:
            n = initial & 0x1F
            pos += 1
        else:
            major, n, pos = _argument(data, pos, end)
        if major == 2 or major == 3:
            pos += n
            if pos > end:
                raise IncompleteItem(pos)
        elif major == 4 or major == 5:
            if depth + len(pending) >= MAX_DEPTH:
                raise _fail("nesting too deep")
            if n:
                pending.append(left)
                left = n * 2 if major == 5 else n
        elif major == 6:
            raise _fail("tags are not allowed")
        elif major == 7 and initial != _TRUE and initial != _FALSE:
            raise _fail("only true and false are allowed among simple values and floats")
