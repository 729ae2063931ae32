"""The MSL object model, JSON codec, base64, stream framing and compression."""

from missile.encoding.base64 import b64decode, b64encode, b64url_decode, b64url_encode
from missile.encoding.codec import EncoderFormat, MslEncodable, decode, detect_format, encode, to_json_value
from missile.encoding.ids import MAX_LONG_VALUE, in_range, next_id, previous_id
from missile.encoding.mslobject import MslArray, MslObject
from missile.encoding.stream import DEFAULT_MAX_OBJECT_SIZE, ObjectStreamDecoder

__all__ = [
    "DEFAULT_MAX_OBJECT_SIZE",
    "MAX_LONG_VALUE",
    "EncoderFormat",
    "MslArray",
    "MslEncodable",
    "MslObject",
    "ObjectStreamDecoder",
    "b64decode",
    "b64encode",
    "b64url_decode",
    "b64url_encode",
    "decode",
    "detect_format",
    "encode",
    "in_range",
    "next_id",
    "previous_id",
    "to_json_value",
]
