"""The MSL object model: typed, strict read access to decoded JSON (encoding.md §1).

A decoded MSL object is a :class:`MslObject`; nested arrays are :class:`MslArray`.
Accessors enforce the reference's type rules: strings only where strings belong,
booleans only as JSON booleans, binary only as strict standard base64, objects only as
nested objects. ``get_*`` reads a required key; ``opt_*`` returns the default when the
key is absent but still rejects a present value of the wrong type ("present implies
strictly typed"). Every failure is an :class:`~missile.errors.MslEncodingException`
with ``MSL_PARSE_ERROR`` naming the key; callers that own a more specific error code
translate it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from missile.encoding.base64 import b64decode
from missile.errors import MslEncodingException, MslError

__all__ = ["BinaryMslArray", "BinaryMslObject", "LazyBinaryMslObject", "LazyMslObject", "MslArray", "MslObject"]

_T = TypeVar("_T")
_MISSING: Any = object()


def _fail(where: str | int, what: str) -> MslEncodingException:
    """MSL_PARSE_ERROR naming an object's key (``where`` a string) or an array's element
    (an index); the name is formatted only on failure, as accessors are hot."""
    label = f"'{where}'" if isinstance(where, str) else f"element {where}"
    return MslEncodingException(MslError.MSL_PARSE_ERROR, f"{label} {what}")


def _as_string(value: Any, where: str | int) -> str:
    if type(value) is not str:
        raise _fail(where, "is not a string")
    return value


def _as_int(value: Any, where: str | int) -> int:
    # The reference reads any JSON number and truncates (encoding.md §1); booleans are not numbers.
    if type(value) is int:
        return value
    if type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _fail(where, "is not a number")
        return int(value)
    raise _fail(where, "is not a number")


def _as_bool(value: Any, where: str | int) -> bool:
    if type(value) is not bool:
        raise _fail(where, "is not a boolean")
    return value


def _as_bytes(value: Any, where: str | int) -> bytes:
    if type(value) is bytes:
        # Only the binary format yields bytes (JSON never does); a binary-format object
        # re-wrapped as a plain MslObject is read the same way.
        return value
    if type(value) is not str:
        raise _fail(where, "is not binary data")
    try:
        return b64decode(value)
    except MslEncodingException:
        raise _fail(where, "is not binary data") from None


def _as_object(value: Any, where: str | int) -> MslObject:
    if type(value) is not dict:
        raise _fail(where, "is not an object")
    return MslObject(value)


def _as_array(value: Any, where: str | int) -> MslArray:
    if type(value) is not list:
        raise _fail(where, "is not an array")
    return MslArray(value)


class MslObject:
    """A read-only view of a decoded JSON object with strictly typed accessors."""

    __slots__ = ("_data", "encoded")

    def __init__(self, data: dict[str, Any], encoded: bytes | None = None) -> None:
        self._data = data
        self.encoded = encoded
        """The bytes this object was decoded from, when it was decoded (signatures and
        payload chunk codecs read those, never a re-encoding)."""

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MslObject) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:  # pragma: no cover - objects are not meant as keys
        raise TypeError("MslObject is unhashable")

    def __repr__(self) -> str:
        return f"MslObject(keys={sorted(self._data)})"

    @property
    def binary(self) -> bool:
        """True when the object was decoded from the binary format (docs/binary-format.md)."""
        return False

    def keys(self) -> list[str]:
        """The object's keys."""
        return list(self._data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON value itself (binary values stay base64 strings)."""
        return self._data

    def string_size(self) -> int:
        """Total length of the top-level string values (for size limits on objects such
        as tokens)."""
        return sum(len(value) for value in self._data.values() if isinstance(value, str))

    def _get(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise _fail(key, "is missing") from None

    def get_string(self, key: str) -> str:
        """A required string."""
        return _as_string(self._get(key), key)

    def get_int(self, key: str) -> int:
        """A required integer (JSON numbers are truncated as in the reference)."""
        return _as_int(self._get(key), key)

    def get_bool(self, key: str) -> bool:
        """A required boolean."""
        return _as_bool(self._get(key), key)

    def get_bytes(self, key: str) -> bytes:
        """Required binary data (strict standard base64)."""
        return _as_bytes(self._get(key), key)

    def get_object(self, key: str) -> MslObject:
        """A required nested object."""
        return _as_object(self._get(key), key)

    def get_array(self, key: str) -> MslArray:
        """A required array."""
        return _as_array(self._get(key), key)

    def opt_string(self, key: str, default: _T = None) -> str | _T:  # type: ignore[assignment]
        """An optional string; absent gives ``default``, a wrong type is an error."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_string(value, key)

    def opt_int(self, key: str, default: _T = None) -> int | _T:  # type: ignore[assignment]
        """An optional integer."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_int(value, key)

    def opt_bool(self, key: str, default: _T = None) -> bool | _T:  # type: ignore[assignment]
        """An optional boolean."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_bool(value, key)

    def opt_bytes(self, key: str, default: _T = None) -> bytes | _T:  # type: ignore[assignment]
        """Optional binary data."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_bytes(value, key)

    def opt_object(self, key: str, default: _T = None) -> MslObject | _T:  # type: ignore[assignment]
        """An optional nested object."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_object(value, key)

    def opt_array(self, key: str, default: _T = None) -> MslArray | _T:  # type: ignore[assignment]
        """An optional array."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_array(value, key)


class MslArray:
    """A read-only view of a decoded JSON array with strictly typed accessors."""

    __slots__ = ("_data",)

    def __init__(self, data: list[Any]) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MslArray) and other._data == self._data

    def __hash__(self) -> int:  # pragma: no cover
        raise TypeError("MslArray is unhashable")

    def __repr__(self) -> str:
        return f"MslArray(len={len(self._data)})"

    def to_list(self) -> list[Any]:
        """The JSON value itself."""
        return self._data

    def _get(self, index: int) -> Any:
        if not 0 <= index < len(self._data):
            raise _fail(index, "is missing")
        return self._data[index]

    def get_string(self, index: int) -> str:
        """A string element."""
        return _as_string(self._get(index), index)

    def get_int(self, index: int) -> int:
        """An integer element."""
        return _as_int(self._get(index), index)

    def get_bool(self, index: int) -> bool:
        """A boolean element."""
        return _as_bool(self._get(index), index)

    def get_bytes(self, index: int) -> bytes:
        """A binary element."""
        return _as_bytes(self._get(index), index)

    def get_object(self, index: int) -> MslObject:
        """An object element."""
        return _as_object(self._get(index), index)

    def get_array(self, index: int) -> MslArray:
        """An array element."""
        return _as_array(self._get(index), index)

    def objects(self) -> list[MslObject]:
        """Every element, each required to be an object."""
        return [_as_object(v, f"element {i}") for i, v in enumerate(self._data)]

    def strings(self) -> list[str]:
        """Every element, each required to be a string."""
        return [_as_string(v, f"element {i}") for i, v in enumerate(self._data)]


# -- the binary format --------------------------------------------------------------------
#
# Objects decoded from the binary format hold binary values as ``bytes``. They are read
# with the same accessors, except that a binary field must be a byte string: a text
# string (which JSON would read as base64) is a wrong type there, as the format's
# strictness requires (docs/binary-format.md §4).


def _as_raw_bytes(value: Any, where: str | int) -> bytes:
    if type(value) is not bytes:
        raise _fail(where, "is not a byte string")
    return value


def _as_binary_object(value: Any, where: str | int) -> BinaryMslObject:
    if type(value) is not dict:
        raise _fail(where, "is not an object")
    return BinaryMslObject(value)


def _as_binary_array(value: Any, where: str | int) -> BinaryMslArray:
    if type(value) is not list:
        raise _fail(where, "is not an array")
    return BinaryMslArray(value)


class BinaryMslObject(MslObject):
    """An object decoded from the binary format."""

    __slots__ = ()

    @property
    def binary(self) -> bool:
        """Always True."""
        return True

    def __repr__(self) -> str:
        return f"BinaryMslObject(keys={sorted(self._data)})"

    def string_size(self) -> int:
        """Total length of the top-level text and byte string values (for size limits)."""
        return sum(len(v) for v in self._data.values() if type(v) is str or type(v) is bytes)

    def get_bytes(self, key: str) -> bytes:
        """A required byte string."""
        return _as_raw_bytes(self._get(key), key)

    def opt_bytes(self, key: str, default: _T = None) -> bytes | _T:  # type: ignore[assignment]
        """An optional byte string."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_raw_bytes(value, key)

    def get_object(self, key: str) -> BinaryMslObject:
        """A required nested object."""
        return _as_binary_object(self._get(key), key)

    def opt_object(self, key: str, default: _T = None) -> BinaryMslObject | _T:  # type: ignore[assignment]
        """An optional nested object."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_binary_object(value, key)

    def get_array(self, key: str) -> BinaryMslArray:
        """A required array."""
        return _as_binary_array(self._get(key), key)

    def opt_array(self, key: str, default: _T = None) -> BinaryMslArray | _T:  # type: ignore[assignment]
        """An optional array."""
        value = self._data.get(key, _MISSING)
        return default if value is _MISSING else _as_binary_array(value, key)


class BinaryMslArray(MslArray):
    """An array decoded from the binary format."""

    __slots__ = ()

    def get_bytes(self, index: int) -> bytes:
        """A byte string element."""
        return _as_raw_bytes(self._get(index), index)

    def get_object(self, index: int) -> BinaryMslObject:
        """An object element."""
        return _as_binary_object(self._get(index), index)

    def get_array(self, index: int) -> BinaryMslArray:
        """An array element."""
        return _as_binary_array(self._get(index), index)

    def objects(self) -> list[MslObject]:
        """Every element, each required to be an object."""
        return [_as_binary_object(v, f"element {i}") for i, v in enumerate(self._data)]


class LazyMslObject(MslObject):
    """A JSON object whose keys are known but whose values are decoded on first read.

    The stream decoder (:mod:`missile.encoding.stream`) hands out large payload chunks
    this way: their codec reads them from :attr:`encoded` in one pass, and decoding
    megabytes of base64 text into a string first would cost more than the cryptography.
    Reading a value decodes the whole object with ``decode``, strictly as always (a
    malformed object is MSL_PARSE_ERROR then)."""

    __slots__ = ("_decode", "_keys", "_values")

    def __init__(self, encoded: bytes, keys: tuple[str, ...], decode: Callable[[bytes], MslObject]) -> None:
        self.encoded = encoded
        self._keys = keys
        self._decode = decode
        self._values: dict[str, Any] | None = None

    @property
    def _data(self) -> dict[str, Any]:
        if self._values is None:
            self._values = self._decode(self.encoded or b"").to_dict()
        return self._values

    @_data.setter
    def _data(self, values: dict[str, Any]) -> None:
        self._values = values

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def keys(self) -> list[str]:
        """The object's keys."""
        return list(self._keys)

    def __repr__(self) -> str:
        return f"MslObject(keys={sorted(self._keys)})"


class LazyBinaryMslObject(LazyMslObject, BinaryMslObject):
    """A :class:`LazyMslObject` in the binary format."""

    __slots__ = ()
