"""Message capabilities (messages.md §5)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from missile.encoding import EncoderFormat, MslObject, cbor
from missile.encoding.codec import encode_json_value, java_ordered
from missile.encoding.compression import CompressionAlgorithm, choose_algorithm
from missile.errors import MslEncodingException, MslError

__all__ = ["DEFAULT_CAPABILITIES", "JSON_PREFERRED", "MessageCapabilities"]

KEY_COMPRESSION_ALGOS = "compressionalgos"
KEY_LANGUAGES = "languages"
KEY_ENCODER_FORMATS = "encoderformats"


def _strings(obj: MslObject, key: str) -> list[str]:
    # A missing or non-array value counts as empty; a non-string element is an error.
    value = obj.to_dict().get(key)
    if type(value) is not list:
        return []
    return obj.get_array(key).strings()


@dataclass(frozen=True)
class MessageCapabilities:
    """What a sender supports: compression algorithms, languages, encoder formats."""

    compression_algos: tuple[CompressionAlgorithm, ...] = ()
    """Compression algorithms, in the sender's preference order."""
    languages: tuple[str, ...] = ()
    """BCP-47 language tags, most preferred first."""
    encoder_formats: tuple[EncoderFormat, ...] = ()
    """Encoder formats."""

    @classmethod
    def parse(cls, obj: MslObject) -> MessageCapabilities:
        """Parse a ``capabilities`` object; unknown algorithm and format names are dropped.

        Peers send the same few capability sets in every message, so parsed ones are
        kept (by their exact wire values, a bounded number of them)."""
        try:
            # The format is part of the key: an absent ``encoderformats`` means
            # something else in each (docs/binary-format.md §5.2).
            key = (obj.binary, *((k, tuple(v) if type(v) is list else v) for k, v in obj.to_dict().items()))
            hit = _PARSED.get(key)
        except TypeError:  # an unhashable (nested) value: parse it without the cache
            key, hit = None, None
        if hit is not None:
            return hit
        parsed = cls._parse(obj)
        if key is not None and len(_PARSED) < _PARSED_MAX:
            _PARSED[key] = parsed
        return parsed

    @classmethod
    def _parse(cls, obj: MslObject) -> MessageCapabilities:
        algos = [CompressionAlgorithm(n) for n in _strings(obj, KEY_COMPRESSION_ALGOS) if n in _ALGO_NAMES]
        if obj.binary and KEY_ENCODER_FORMATS not in obj:
            formats = list(BINARY_IMPLIED_FORMATS)
        else:
            names = _strings(obj, KEY_ENCODER_FORMATS)
            if obj.binary and names == _BINARY_IMPLIED_NAMES:
                # The implied list written out is a second encoding of the same value.
                raise MslEncodingException(
                    MslError.MSL_PARSE_ERROR, "binary capabilities must leave out the implied encoderformats"
                )
            formats = [EncoderFormat(n) for n in names if n in _FORMAT_NAMES]
        return cls(tuple(dict.fromkeys(algos)), tuple(_strings(obj, KEY_LANGUAGES)), tuple(dict.fromkeys(formats)))

    def to_msl(self) -> dict[str, Any]:
        """The wire object; all three arrays are always written."""
        return {
            KEY_COMPRESSION_ALGOS: [a.value for a in self.compression_algos],
            KEY_LANGUAGES: list(self.languages),
            KEY_ENCODER_FORMATS: [f.value for f in self.encoder_formats],
        }

    @functools.cached_property
    def compression(self) -> tuple[frozenset[CompressionAlgorithm], CompressionAlgorithm | None]:
        """The compression algorithms offered, and the one a sender uses by default (computed once)."""
        offered = frozenset(self.compression_algos)
        return offered, choose_algorithm(offered)

    @functools.cached_property
    def json_value(self) -> dict[str, Any]:
        """:meth:`to_msl` as a JSON value, computed once (capabilities never change)."""
        return java_ordered(self.to_msl())

    @functools.cached_property
    def json_encoded(self) -> bytes:
        """:attr:`json_value` encoded, computed once."""
        return encode_json_value(self.json_value)

    @functools.cached_property
    def cbor_encoded(self) -> bytes:
        """:meth:`to_msl` as a binary-format map (no identifier byte), computed once;
        ``encoderformats`` is left out when it is the implied list (docs/binary-format.md §5.2)."""
        fields = self.to_msl()
        if self.encoder_formats == BINARY_IMPLIED_FORMATS:
            del fields[KEY_ENCODER_FORMATS]
        return cbor.encode_value(fields)

    def intersection(self, other: MessageCapabilities | None) -> MessageCapabilities | None:
        """Capabilities both sides share, in this side's order (a response to ``self``'s request)."""
        if other is None:
            return None
        return _intersection(self, other)

    @classmethod
    def of(
        cls,
        compression_algos: Iterable[CompressionAlgorithm | str] = (),
        languages: Iterable[str] = (),
        encoder_formats: Iterable[EncoderFormat | str] = (EncoderFormat.JSON,),
    ) -> MessageCapabilities:
        """Build from names."""
        return cls(
            tuple(CompressionAlgorithm(a) for a in compression_algos),
            tuple(languages),
            tuple(EncoderFormat(f) for f in encoder_formats),
        )


@functools.lru_cache(maxsize=64)
def _intersection(mine: MessageCapabilities, other: MessageCapabilities) -> MessageCapabilities:
    # Cached: a server meets the same few capability sets over and over, and the same
    # result object keeps its encoded form.
    return MessageCapabilities(
        tuple(a for a in mine.compression_algos if a in other.compression_algos),
        tuple(lang for lang in mine.languages if lang in other.languages),
        tuple(f for f in mine.encoder_formats if f in other.encoder_formats),
    )


_PARSED: dict[tuple[Any, ...], MessageCapabilities] = {}
_PARSED_MAX = 64

_ALGO_NAMES = frozenset(a.value for a in CompressionAlgorithm)
_FORMAT_NAMES = frozenset(f.value for f in EncoderFormat)

#: The encoder formats that binary capabilities without ``encoderformats`` stand for: a
#: sender writing the binary format reads it, and every MSL implementation reads JSON.
#: Written out, the list would be the longest member of a small request's header data
#: (docs/binary-format.md §5.2), so the binary encoding leaves it out.
BINARY_IMPLIED_FORMATS = (EncoderFormat.MISSILE_CBOR, EncoderFormat.JSON)
_BINARY_IMPLIED_NAMES = [f.value for f in BINARY_IMPLIED_FORMATS]

#: What missile advertises by default: both compression algorithms, and its binary
#: format before JSON, so two missile parties move to binary after their first exchange
#: (docs/binary-format.md §8): 2.4 times smaller on the wire, cheaper per small message
#: and two to two and a half times as fast in bulk (benchmarks/run.py, sections peers
#: and payload). A peer that lists only JSON (the Java and JavaScript references) gets only
#: JSON. The binary encoding leaves this list of formats out (§5.2).
DEFAULT_CAPABILITIES = MessageCapabilities(
    (CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW),
    ("en-US",),
    BINARY_IMPLIED_FORMATS,
)

#: The same, preferring JSON (reads binary, answers and writes JSON where the other side
#: also reads it): for a party whose messages must stay readable as text.
JSON_PREFERRED = replace(DEFAULT_CAPABILITIES, encoder_formats=(EncoderFormat.JSON, EncoderFormat.MISSILE_CBOR))
