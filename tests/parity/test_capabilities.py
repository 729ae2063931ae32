"""Message capabilities cases the reference probes (MessageCapabilitiesTest, and
MessageHeaderTest.invalidCapabilities): absent lists, unknown names, intersection.
Capabilities are hostile input too: a peer must not be able to make the receiver use
an algorithm or format it did not list, nor break parsing with unexpected shapes."""

from __future__ import annotations

from typing import Any

import pytest

from missile.encoding import EncoderFormat, MslObject, decode, encode
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException
from missile.messages.capabilities import MessageCapabilities

ALGOS = (CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW)
LANGUAGES = ("en-US", "fr-FR")
FORMATS = (EncoderFormat.JSON,)


def _round_trip(caps: MessageCapabilities) -> MessageCapabilities:
    return MessageCapabilities.parse(decode(encode(caps.to_msl())))


@pytest.mark.parametrize(
    "caps",
    [
        MessageCapabilities((), LANGUAGES, FORMATS),
        MessageCapabilities(ALGOS, (), FORMATS),
        MessageCapabilities(ALGOS, LANGUAGES, ()),
        MessageCapabilities(),
    ],
    ids=["no-algos", "no-languages", "no-formats", "empty"],
)
def test_empty_lists_round_trip(caps: MessageCapabilities) -> None:
    """nullAlgos / nullLanguages / nullEncoderFormats: empty lists survive a round trip."""
    assert _round_trip(caps) == caps
    assert set(caps.to_msl()) == {"compressionalgos", "languages", "encoderformats"}


@pytest.mark.parametrize("key", ["compressionalgos", "languages", "encoderformats"])
@pytest.mark.parametrize("value", [None, "GZIP", 5, {"a": 1}])
def test_absent_or_non_array_lists_count_as_empty(key: str, value: Any) -> None:
    """A missing or non-array list is empty (messages.md §5), never an error."""
    obj = MessageCapabilities(ALGOS, LANGUAGES, FORMATS).to_msl()
    if value is None:
        del obj[key]
    else:
        obj[key] = value
    caps = MessageCapabilities.parse(MslObject(obj))
    attr = {"compressionalgos": "compression_algos", "languages": "languages", "encoderformats": "encoder_formats"}
    assert getattr(caps, attr[key]) == ()


def test_unknown_compression_algorithm_is_dropped() -> None:
    """unknownCompressionAlgo."""
    obj = MessageCapabilities(ALGOS, LANGUAGES, FORMATS).to_msl()
    obj["compressionalgos"] = ["CATZ", *obj["compressionalgos"], "gzip"]
    assert MessageCapabilities.parse(MslObject(obj)).compression_algos == ALGOS


def test_unknown_encoder_format_is_dropped() -> None:
    """unknownEncoderFormat."""
    obj = MessageCapabilities(ALGOS, LANGUAGES, FORMATS).to_msl()
    obj["encoderformats"] = [*obj["encoderformats"], "CATZ", "MSL"]
    assert MessageCapabilities.parse(MslObject(obj)).encoder_formats == FORMATS


@pytest.mark.parametrize("key", ["compressionalgos", "languages", "encoderformats"])
def test_non_string_element_is_a_parse_error(key: str) -> None:
    """Every element must be a string (messages.md §5)."""
    obj = MessageCapabilities(ALGOS, LANGUAGES, FORMATS).to_msl()
    obj[key] = [*obj[key], 7]
    with pytest.raises(MslException) as info:
        MessageCapabilities.parse(MslObject(obj))
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_duplicates_are_collapsed() -> None:
    obj = {"compressionalgos": ["LZW", "LZW", "GZIP"], "encoderformats": ["JSON", "JSON"], "languages": []}
    caps = MessageCapabilities.parse(MslObject(obj))
    assert caps.compression_algos == (CompressionAlgorithm.LZW, CompressionAlgorithm.GZIP)
    assert caps.encoder_formats == (EncoderFormat.JSON,)


def test_intersection() -> None:
    """selfIntersection / intersection / nullIntersection."""
    ours = MessageCapabilities(ALGOS, LANGUAGES, FORMATS)
    assert ours.intersection(ours) == ours
    theirs = MessageCapabilities((CompressionAlgorithm.LZW,), ("de-DE", "fr-FR"), ())
    shared = ours.intersection(theirs)
    assert shared == MessageCapabilities((CompressionAlgorithm.LZW,), ("fr-FR",), ())
    assert theirs.intersection(ours) == MessageCapabilities((CompressionAlgorithm.LZW,), ("fr-FR",), ())
    assert ours.intersection(None) is None


def test_equality() -> None:
    """equalsCompressionAlgos / equalsLanguages / equalsEncoderFormats."""
    base = MessageCapabilities(ALGOS, LANGUAGES, FORMATS)
    assert base == MessageCapabilities(ALGOS, LANGUAGES, FORMATS)
    assert base != MessageCapabilities((CompressionAlgorithm.GZIP,), LANGUAGES, FORMATS)
    assert base != MessageCapabilities(ALGOS, ("en-US",), FORMATS)
    assert base != MessageCapabilities(ALGOS, LANGUAGES, ())
