"""JSON encoding of MSL objects, the encoder-format byte (encoding.md §2–§3), and the
dispatch to the binary format (:mod:`missile.encoding.cbor`, docs/binary-format.md).

:func:`encode` turns a mapping into compact UTF-8 JSON: ``bytes`` become standard
base64 strings, values with a ``to_msl()`` method are embedded as nested objects,
string enums become their value, and keys whose value is ``None`` are omitted (MSL
never emits ``null``). :func:`decode` parses one encoded object strictly: first byte
``{`` (the JSON format identifier), valid UTF-8, no duplicate keys, no ``null``, no
NaN or Infinity, nothing after the object but whitespace.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Protocol

from missile.encoding import cbor
from missile.encoding.base64 import b64encode
from missile.encoding.mslobject import BinaryMslObject, MslArray, MslObject
from missile.errors import MslEncodingException, MslError

__all__ = [
    "EncoderFormat",
    "MslEncodable",
    "decode",
    "detect_format",
    "encode",
    "encode_binary",
    "encode_json",
    "to_json_value",
]


class EncoderFormat(str, Enum):
    """Encoder formats (encoding.md §2), by their capability names.

    JSON is the reference's only format. ``MISSILE_CBOR`` is missile's binary format
    (docs/binary-format.md); its name is namespaced so that it cannot be taken for some
    other party's CBOR mapping, and it is only ever sent to a peer that advertised it."""

    JSON = "JSON"
    MISSILE_CBOR = "missile.cbor.v1"

    @property
    def identifier(self) -> int:
        """The first byte of data in this format."""
        return 0x7B if self is EncoderFormat.JSON else cbor.IDENTIFIER


class MslEncodable(Protocol):
    """Anything that knows its own MSL object form (tokens, auth data, ...).

    An immutable encodable may also offer a ``json_value`` attribute: its object form
    already converted by :func:`to_json_value` (computed once, then reused by every
    message that carries it)."""

    def to_msl(self) -> Mapping[str, Any]:
        """The object's MSL form, ready to encode."""
        ...


def detect_format(data: bytes | bytearray | memoryview) -> EncoderFormat:
    """Identify the encoder format from the first byte; unknown or empty is MSL_PARSE_ERROR."""
    if len(data) == 0:
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "no data")
    if data[0] == 0x7B:
        return EncoderFormat.JSON
    if data[0] == cbor.IDENTIFIER:
        return EncoderFormat.MISSILE_CBOR
    raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"unknown encoder format byte 0x{data[0]:02x}")


@functools.lru_cache(maxsize=4096)
def java_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """``keys`` in the order the reference writes an object with these members.

    Order carries no meaning in MSL, but some deployed clients scan the text and expect
    the reference's order. The reference's objects are ``java.util.HashMap``s (org.json),
    iterated bucket by bucket: a key's bucket is its ``String.hashCode`` spread as
    ``h ^ (h >>> 16)``, masked by the table size (16, doubled whenever more than three
    quarters full); keys sharing a bucket stay in insertion order (ours). For example a
    message header is ``headerdata``, ``signature``, then ``mastertoken`` or
    ``entityauthdata``; a ciphertext envelope ``ciphertext``, ``sha256``, ``keyid``,
    ``iv``."""
    size = 16
    while len(keys) > size * 3 // 4:
        size *= 2
    position = {key: i for i, key in enumerate(keys)}
    return tuple(sorted(keys, key=lambda key: (_java_bucket(key, size), position[key])))


def _java_bucket(key: str, size: int) -> int:
    h = 0
    units = key.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & (size - 1)


def java_ordered(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its members in the reference's order (:func:`java_order`)."""
    keys = tuple(obj)
    order = java_order(keys)
    return obj if order == keys else {key: obj[key] for key in order}


def to_json_value(value: Any) -> Any:
    """Convert a model value to its JSON value (bytes to base64, encodables to objects);
    objects get the reference's member order (:func:`java_order`)."""
    t = type(value)
    if t is str or t is int or t is bool:
        return value
    if t is dict:
        return java_ordered({str(k): to_json_value(v) for k, v in value.items() if v is not None})
    if t is bytes or t is bytearray or t is memoryview:
        return b64encode(bytes(value))
    if t is list or t is tuple:
        return [to_json_value(v) for v in value if v is not None]
    if t is MslObject:
        return value.to_dict()
    if t is MslArray:
        return value.to_list()
    # Immutable encodables (tokens, capabilities) keep their converted form.
    json_value = getattr(value, "json_value", None)
    if json_value is not None:
        return json_value
    # Encodables (tokens, auth data, ...) before the slower ABC and Enum checks.
    to_msl = getattr(value, "to_msl", None)
    if to_msl is not None:
        return to_json_value(to_msl())
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Mapping):
        return java_ordered({str(k): to_json_value(v) for k, v in value.items() if v is not None})
    if isinstance(value, MslObject | MslArray):
        # Binary-format objects hold bytes: converted like any other value.
        return to_json_value(value.to_dict() if isinstance(value, MslObject) else value.to_list())
    if isinstance(value, int):
        return int(value)
    raise MslEncodingException(MslError.MSL_ENCODE_ERROR, f"cannot encode a {t.__name__}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(value: Mapping[str, Any] | MslEncodable | MslObject, fmt: EncoderFormat = EncoderFormat.JSON) -> bytes:
    """Encode an MSL object: compact UTF-8 JSON bytes, or the binary format's bytes."""
    if fmt is EncoderFormat.MISSILE_CBOR:
        return encode_binary(value)
    prepared = to_json_value(value)
    if type(prepared) is not dict:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "top-level value is not an object")
    return encode_json(prepared)


def encode_binary(value: Mapping[str, Any] | MslEncodable | MslObject) -> bytes:
    """Encode an MSL object in the binary format: the identifier byte, then one
    deterministic CBOR map (docs/binary-format.md)."""
    encoded = cbor.encode_value(value)
    if not encoded or encoded[0] >> 5 != 5:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "top-level value is not an object")
    return _BINARY_PREFIX + encoded


_BINARY_PREFIX = bytes((cbor.IDENTIFIER,))


def encode_json(prepared: dict[str, Any]) -> bytes:
    """:func:`encode` of a mapping whose values are already JSON values (as
    :func:`to_json_value` makes them: no bytes, encodables or None); the top-level
    members are put in the reference's order."""
    try:
        return _ENCODER.encode(java_ordered(prepared)).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "value cannot be encoded as JSON") from exc


def encode_json_value(value: Any) -> bytes:
    """A JSON value (as :func:`to_json_value` makes them) encoded exactly as
    :func:`encode_json` encodes it inside an object: for writers that put encoded
    members together themselves."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise MslEncodingException(MslError.MSL_ENCODE_ERROR, "value cannot be encoded as JSON") from exc


def _list_has_null(items: list[Any]) -> bool:
    return None in items or (list in map(type, items) and any(_list_has_null(x) for x in items if type(x) is list))


def _object_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DecodeRejected("duplicate key")
    values = obj.values()
    # The scans run in C (no JSON value but null equals None); only arrays, few in MSL
    # objects, are looked into one by one.
    if None in values or (list in map(type, values) and any(_list_has_null(v) for v in values if type(v) is list)):
        raise _DecodeRejected("null value")
    return obj


def _reject_constant(name: str) -> Any:
    raise _DecodeRejected(f"{name} is not a number")


class _DecodeRejected(ValueError):
    pass


_DECODER = json.JSONDecoder(object_pairs_hook=_object_hook, parse_constant=_reject_constant)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]  # set in __init__
#: What JSON (RFC 8259) counts as whitespace, and nothing else.
_JSON_WHITESPACE = " \t\n\r"


def decode(data: bytes | bytearray | memoryview) -> MslObject:
    """Decode one encoded MSL object, in either format (told by its first byte);
    anything malformed is MSL_PARSE_ERROR."""
    fmt = detect_format(data)
    raw = data if type(data) is bytes else bytes(data)
    if fmt is EncoderFormat.MISSILE_CBOR:
        return BinaryMslObject(cbor.decode_value(raw), raw)
    try:
        text = raw.decode("utf-8")
        # The scanner itself (what JSONDecoder.decode wraps): the text starts with '{'.
        value, end = _SCAN(text, 0)
    except _DecodeRejected as exc:
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"invalid JSON: {exc}") from None
    except (ValueError, RecursionError, StopIteration):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "invalid JSON") from None
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "invalid JSON: data after the object")
    if type(value) is not dict:  # pragma: no cover - guaranteed by the '{' check
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "not a JSON object")
    return MslObject(value, raw)


def decode_at(text: str, start: int) -> tuple[MslObject, int]:
    """Decode the object that starts at ``text[start]`` and return it with the index
    just past it; what follows is not looked at. Same strictness as :func:`decode`;
    anything malformed or incomplete is MSL_PARSE_ERROR."""
    if not text.startswith("{", start):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "not a JSON object")
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "invalid JSON") from None
    return MslObject(value), end


def decode_json_value(text: str) -> Any:
    """Decode a JSON text with the same strictness as :func:`decode` (helper for tests/tools)."""
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise MslEncodingException(MslError.MSL_PARSE_ERROR, "invalid JSON") from None
