"""The binary format's first codec, kept as the oracle the current one is tested against.

:mod:`missile.encoding.cbor` was rewritten for speed (issue #15: fewer bytecodes per
item, inline fast paths, ``struct`` heads, an iterative framer, cached key orders). This
is the codec it replaced, unchanged apart from sharing the module's constants: a
straightforward reading of docs/binary-format.md §3-4, one rule checked per step. The
property tests in test_cbor_agreement.py require both to give the same value, the same
bytes, the same framing, or the same MslError on every input they generate.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from missile.encoding.cbor import IDENTIFIER, MAX_DEPTH, IncompleteItem
from missile.errors import MslEncodingException, MslError

__all__ = ["decode_value", "encode_value", "item_end"]


_FALSE, _TRUE = 0xF4, 0xF5
_UINT64_MAX = (1 << 64) - 1


def _fail(detail: str) -> MslEncodingException:
    return MslEncodingException(MslError.MSL_PARSE_ERROR, f"invalid binary encoding: {detail}")


# -- encoding ---------------------------------------------------------------------------


#: One-byte heads, by major type and argument (most heads in MSL structures).
_SMALL_HEADS = [[bytes(((major << 5) | n,)) for n in range(24)] for major in range(8)]


def _head(major: int, n: int) -> bytes:
    """The shortest head for ``major`` with argument ``n`` (RFC 8949 §4.2.1 rule 1)."""
    if 0 <= n < 24:
        return _SMALL_HEADS[major][n]
    mt = major << 5
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    if n <= _UINT64_MAX:
        return bytes((mt | 27,)) + n.to_bytes(8, "big")
    raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "integer out of the binary format's range")


def encode_text(text: str) -> bytes:
    """A text string item."""
    raw = text.encode("utf-8")
    return _head(3, len(raw)) + raw


#: Encoded map keys. MSL uses a few dozen key names over and over; the cache is bounded
#: so that application-chosen keys (issuer data) cannot grow it without limit.
_KEYS: dict[str, bytes] = {}
_KEYS_MAX = 1024


def _encode_key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = encode_text(key)
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[key] = encoded
    return encoded


def bytes_head(length: int) -> bytes:
    """The head of a byte string of ``length`` bytes (the bytes follow it)."""
    return _head(2, length)


def map_head(count: int) -> bytes:
    """The head of a map of ``count`` pairs."""
    return _head(5, count)


def _encode_into(value: Any, out: list[bytes], depth: int) -> None:
    t = type(value)
    if t is bytes or t is bytearray or t is memoryview:
        out.append(_head(2, len(value)))
        out.append(bytes(value))
    elif t is str:
        out.append(encode_text(value))
    elif t is bool:
        out.append(b"\xf5" if value else b"\xf4")
    elif t is int:
        out.append(_head(0, value) if value >= 0 else _head(1, -1 - value))
    elif t is dict:
        _encode_map(value, out, depth)
    elif t is list or t is tuple:
        items = [v for v in value if v is not None]
        if depth >= MAX_DEPTH:
            raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "nesting too deep")
        out.append(_head(4, len(items)))
        for item in items:
            _encode_into(item, out, depth + 1)
    else:
        _encode_other(value, out, depth)


def _encode_other(value: Any, out: list[bytes], depth: int) -> None:
    # Encodables (tokens, auth data, capabilities, ...), decoded objects, enums.
    # Immutable encodables may keep their encoding (``cbor_encoded``, computed once).
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
    if isinstance(value, Enum):
        _encode_into(value.value, out, depth)
        return
    if isinstance(value, int):
        _encode_into(int(value), out, depth)
        return
    raise MslEncodingException(MslError.MSL_ENCODE_ERROR, f"cannot encode a {type(value).__name__}")


def _encode_map(value: Mapping[Any, Any], out: list[bytes], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "nesting too deep")
    pairs = []
    for key, item in value.items():
        if item is None:
            continue  # MSL never writes null: an absent value is an absent key
        if type(key) is not str:
            raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "map keys must be strings")
        pairs.append((_encode_key(key), item))
    # Deterministic order: by the bytes of the encoded keys (RFC 8949 §4.2.1).
    pairs.sort(key=lambda pair: pair[0])
    out.append(_head(5, len(pairs)))
    for encoded_key, item in pairs:
        out.append(encoded_key)
        _encode_into(item, out, depth + 1)


def encode_value(value: Any) -> bytes:
    """The deterministic CBOR encoding of ``value`` (no identifier byte)."""
    out: list[bytes] = []
    _encode_into(value, out, 0)
    return b"".join(out)


# -- decoding ---------------------------------------------------------------------------


def _argument(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a head at ``pos``: (major type, argument, position after the head). Non-minimal
    arguments and indefinite lengths are refused."""
    if pos >= end:
        raise IncompleteItem(pos + 1)
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        raise _fail("indefinite length or reserved head" if info == 31 else "reserved head")
    size = 1 << (info - 24)
    stop = pos + 1 + size
    if stop > end:
        raise IncompleteItem(stop)
    n = int.from_bytes(data[pos + 1 : stop], "big")
    if n < (24 if size == 1 else 1 << (4 * size)):
        raise _fail("non-minimal head")
    return major, n, stop


def read_head(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int]:
    """The head at ``pos``: (major type, argument, position after it), as strictly as the
    decoder reads it; malformed or truncated heads are MSL_PARSE_ERROR."""
    try:
        return _argument(data, pos, len(data))  # type: ignore[arg-type]
    except IncompleteItem:
        raise _fail("truncated") from None


def _check_simple(major: int, info: int) -> None:
    if major == 6:
        raise _fail("tags are not allowed")
    if major == 7 and info not in (20, 21):
        raise _fail("only true and false are allowed among simple values and floats")


def item_end(data: bytes | bytearray | memoryview, pos: int, depth: int = 0) -> int:
    """The end offset of the item that starts at ``pos``, checking only its framing; raises
    :class:`IncompleteItem` when ``data`` ends first (used to frame a stream)."""
    end = len(data)
    initial = data[pos] if pos < end else 0
    major, n, pos = _argument(data, pos, end)  # type: ignore[arg-type]
    if major in (2, 3):
        stop = pos + n
        if stop > end:
            raise IncompleteItem(stop)
        return stop
    if major in (4, 5):
        if depth >= MAX_DEPTH:
            raise _fail("nesting too deep")
        for _ in range(n * 2 if major == 5 else n):
            pos = item_end(data, pos, depth + 1)
        return pos
    if major >= 6:
        _check_simple(major, initial & 0x1F)
    return pos


def _decode(data: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    if pos >= end:
        raise IncompleteItem(pos + 1)
    initial = data[pos]
    if initial == _TRUE:
        return True, pos + 1
    if initial == _FALSE:
        return False, pos + 1
    major = initial >> 5
    if initial & 0x1F < 24:
        n = initial & 0x1F
        pos += 1
    else:
        major, n, pos = _argument(data, pos, end)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major == 2 or major == 3:
        stop = pos + n
        if stop > end:
            raise IncompleteItem(stop)
        if major == 2:
            return data[pos:stop], stop
        try:
            return data[pos:stop].decode("utf-8"), stop
        except UnicodeDecodeError:
            raise _fail("text is not valid UTF-8") from None
    if major == 4:
        if depth >= MAX_DEPTH:
            raise _fail("nesting too deep")
        items = []
        for _ in range(n):
            item, pos = _decode(data, pos, end, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        return _decode_map(data, pos, end, depth, n)
    _check_simple(major, n)
    raise AssertionError("unreachable")  # pragma: no cover - _check_simple raised


def _decode_map(data: bytes, pos: int, end: int, depth: int, count: int) -> tuple[dict[str, Any], int]:
    if depth >= MAX_DEPTH:
        raise _fail("nesting too deep")
    out: dict[str, Any] = {}
    previous = b""
    for _ in range(count):
        start = pos
        if pos >= end:
            raise IncompleteItem(pos + 1)
        initial = data[pos]
        if initial >> 5 != 3:
            raise _fail("map keys must be text strings")
        if initial < 0x78:  # a key shorter than 24 bytes: its head is one byte
            pos += 1 + (initial & 0x1F)
            if pos > end:
                raise IncompleteItem(pos)
            try:
                key = data[start + 1 : pos].decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("text is not valid UTF-8") from None
        else:
            key, pos = _decode(data, pos, end, depth + 1)
        encoded_key = data[start:pos]
        # Strictly increasing encoded keys: deterministic order, and no duplicates.
        if encoded_key <= previous:
            raise _fail("duplicate map key" if encoded_key == previous else "map keys out of order")
        previous = encoded_key
        out[key], pos = _decode(data, pos, end, depth + 1)
    return out, pos


def decode_value(data: bytes) -> dict[str, Any]:
    """Decode one encoded object: the identifier byte, one map, nothing after it."""
    if not data or data[0] != IDENTIFIER:
        raise _fail("missing format identifier")
    if len(data) < 2 or data[1] >> 5 != 5:
        raise _fail("not a map")
    try:
        value, pos = _decode(data, 1, len(data), 0)
    except IncompleteItem:
        raise _fail("truncated") from None
    if pos != len(data):
        raise _fail("data after the object")
    return value  # type: ignore[no-any-return]
