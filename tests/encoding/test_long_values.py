"""Long string values of the flat fast path resolve exactly as the full JSON parser would."""

from __future__ import annotations

import base64
import json
import os

import pytest

from missile.encoding import decode
from missile.encoding.codec import decode_json_value
from missile.errors import MslEncodingException, MslError


def _flat(value_json: str) -> bytes:
    """A flat object large enough for the fast path, with ``value_json`` as a long value."""
    return ('{"n":1,"v":' + value_json + ',"pad":"' + "A" * 600 + '"}').encode()


def test_escaped_slashes_in_long_base64_decode_like_the_full_parser() -> None:
    data = os.urandom(3000)
    text = base64.b64encode(data).decode()
    assert "/" in text
    raw = _flat('"' + text.replace("/", "\\/") + '"')
    assert decode(raw).get_bytes("v") == data
    assert decode(raw).get_string("v") == text


def test_non_ascii_long_text_is_utf8() -> None:
    value = "é" * 400 + "✓" * 10
    raw = _flat(json.dumps(value, ensure_ascii=False))
    assert decode(raw).get_string("v") == value == decode_json_value(raw.decode())["v"]
    with pytest.raises(MslEncodingException) as info:
        decode(raw).get_bytes("v")
    assert info.value.error is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize(
    "body",
    [
        b"A" * 300 + b"\x01" + b"A" * 10,  # raw control character
        b"A" * 300 + b"\\x41",  # invalid escape
        b"A" * 300 + b"\xff\xfe",  # invalid UTF-8
    ],
    ids=["control", "bad-escape", "bad-utf8"],
)
def test_invalid_long_strings_are_parse_errors(body: bytes) -> None:
    raw = b'{"n":1,"v":"' + body + b'","pad":"' + b"A" * 600 + b'"}'
    for read in ("get_string", "get_bytes"):
        with pytest.raises(MslEncodingException) as info:
            getattr(decode(raw), read)("v")
        assert info.value.error is MslError.MSL_PARSE_ERROR


def test_escaped_quote_falls_back_to_the_full_parser() -> None:
    value = "x" * 300 + '"quoted"' + "y" * 10
    raw = _flat(json.dumps(value))
    assert decode(raw).get_string("v") == value


def test_escaped_unicode_and_newline_in_long_text() -> None:
    value = "line\n" * 80 + "\u00e9"
    raw = _flat(json.dumps(value))  # ensure_ascii: \n and \u00e9 escapes
    assert decode(raw).get_string("v") == value
