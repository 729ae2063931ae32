"""Tests for missile.encoding.base64 (encoding.md §3, interop.md A.1)."""

from __future__ import annotations

import base64 as std_b64

import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.encoding.base64 import b64decode, b64encode, b64url_decode, b64url_encode
from missile.errors import MslEncodingException, MslError


def _rejected(text: str | bytes) -> None:
    with pytest.raises(MslEncodingException) as info:
        b64decode(text)
    assert info.value.error is MslError.MSL_PARSE_ERROR


def _url_rejected(text: str) -> None:
    with pytest.raises(MslEncodingException) as info:
        b64url_decode(text)
    assert info.value.error is MslError.MSL_PARSE_ERROR


# --- standard base64: encoding ---------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg=="),
        (b"fooba", "Zm9vYmE="),
        (b"foobar", "Zm9vYmFy"),
        (b"\xfb\xff\xfe", "+//+"),
    ],
)
def test_encode_rfc4648_vectors(data: bytes, text: str) -> None:
    assert b64encode(data) == text
    assert b64decode(text) == data
    assert b64decode(text.encode("ascii")) == data


def test_encode_has_no_line_breaks() -> None:
    out = b64encode(bytes(range(256)) * 40)
    assert "\n" not in out and "\r" not in out
    assert len(out) % 4 == 0
    assert isinstance(out, str)


# --- standard base64: strict decoding --------------------------------------


def test_empty_string_decodes_to_empty() -> None:
    assert b64decode("") == b""
    assert b64decode(b"") == b""


@pytest.mark.parametrize("text", ["Zg", "Zg=", "Zm8", "Zm9vY", "Zm9vYg", "Zm9vYg=", "Q", "QUJDRA"])
def test_missing_padding_rejected(text: str) -> None:
    _rejected(text)


@pytest.mark.parametrize("text", ["-_8A", "Zm9_", "Zm9-", "+-/_", "Zm9v_A==", "QQ-="])
def test_base64url_characters_rejected(text: str) -> None:
    _rejected(text)


@pytest.mark.parametrize(
    "text",
    [
        "Zm9v!",
        "Zm9v.",
        "Zm9v\x00",
        "Zm\x0b9v",  # vertical tab is not skipped
        "Zm\x0c9v",  # form feed is not skipped
        "Zm9vé===",
        "Zm9v\u00a0",  # non-breaking space is not skipped
        "Zm 9v*",
    ],
)
def test_stray_characters_rejected(text: str) -> None:
    _rejected(text)


@pytest.mark.parametrize(
    "text",
    [
        "====",
        "=Zm9",
        "Z===",  # padding in the second position of the last quad
        "Zg==Zg==",  # padding not in the last quad
        "Zm8=Zm8=",
        "Zm9v=Zm9",
        "Z=g=",
        "Zg===",  # excess padding
        "Zg====",
        "Zm8==",
    ],
)
def test_misplaced_padding_rejected(text: str) -> None:
    _rejected(text)


@pytest.mark.parametrize("text", ["Zg==A", "Zg==Zm9v", "Zm8=Zg", "Zm8=x"])
def test_excess_data_after_padding_rejected(text: str) -> None:
    _rejected(text)


@pytest.mark.parametrize("text", ["Zm9v=", "Zm9v==", "Zm9v===", "Zm9vYmFy=", "Zm9v\n="])
def test_padding_after_complete_quad_rejected(text: str) -> None:
    # The reference counts '=' as a significant character: "Zm9v=" leaves one character in
    # an unfinished quadruplet (and "Zm9v====" is a quad that starts with padding); both
    # are invalid (encoding.md §3: significant characters must be a multiple of 4).
    _rejected(text)


def test_padding_only_quad_after_complete_quad_rejected() -> None:
    _rejected("Zm9v====")


@pytest.mark.parametrize(
    ("text", "data"),
    [
        (" Zm9v", b"foo"),
        ("Zm9v ", b"foo"),
        ("Zm\t9v", b"foo"),
        ("Zm9v\r\n", b"foo"),
        ("\nZm9v\nYmFy\n", b"foobar"),
        (" Z g = = ", b"f"),
        ("Zm8\t=", b"fo"),
        ("Zg=\r\n=", b"f"),
        (" \t\r\n", b""),
    ],
)
def test_whitespace_is_skipped(text: str, data: bytes) -> None:
    assert b64decode(text) == data
    assert b64decode(text.encode("ascii")) == data


def test_mime_style_line_breaks_are_skipped() -> None:
    data = bytes(range(200))
    encoded = std_b64.encodebytes(data).decode("ascii")  # 76-char lines with \n
    assert "\n" in encoded
    assert b64decode(encoded) == data
    assert b64decode(encoded.replace("\n", "\r\n")) == data


def test_non_ascii_bytes_rejected() -> None:
    _rejected(b"Zm9v\xff")
    _rejected(b"\x80Zm9")


@given(st.binary(max_size=512))
def test_round_trip(data: bytes) -> None:
    text = b64encode(data)
    assert text == std_b64.b64encode(data).decode("ascii")
    assert b64decode(text) == data


@given(st.binary(max_size=128), st.data())
def test_round_trip_with_inserted_whitespace(data: bytes, draw: st.DataObject) -> None:
    text = b64encode(data)
    pieces = []
    for ch in text:
        pieces.append(draw.draw(st.sampled_from(["", " ", "\t", "\r", "\n", "\r\n"])))
        pieces.append(ch)
    pieces.append(draw.draw(st.sampled_from(["", " ", "\n"])))
    assert b64decode("".join(pieces)) == data


@given(st.binary(min_size=1, max_size=64))
def test_url_alphabet_of_data_is_rejected_by_standard_decoder(data: bytes) -> None:
    url = std_b64.urlsafe_b64encode(data).decode("ascii")
    if "-" in url or "_" in url:
        _rejected(url)
    else:
        assert b64decode(url) == data


@given(st.binary(min_size=1, max_size=64))
def test_truncated_encoding_rejected(data: bytes) -> None:
    text = b64encode(data)
    # Dropping the last character always leaves a length that is not a multiple of 4.
    _rejected(text[:-1])


def _reference_decode(text: str) -> bytes | None:
    """A model of the reference decoder (Base64Secure.decode); None means invalid.

    Raises LookupError for the one input shape where the reference is looser than the
    spec text (padding in position 3 of a quad followed by a non-padding character),
    which an implementation may reject.
    """
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    pad = 127
    invalid = False
    out = bytearray()
    quad: list[int] = []
    last_quad = False
    for ch in text:
        if ch in " \t\r\n":
            continue
        if ch == "=":
            b = pad
        elif ch in alphabet:
            b = alphabet.index(ch)
        else:
            invalid = True
            continue
        if last_quad:
            invalid = True
        quad.append(b)
        if len(quad) == 4:
            if pad in (quad[0], quad[1]):
                invalid = True
            if quad[2] == pad and quad[3] != pad:
                raise LookupError("reference quirk")
            if quad[2] == pad or quad[3] == pad:
                last_quad = True
            if not invalid:
                out.append(((quad[0] << 2) | (quad[1] >> 4)) & 0xFF)
                if quad[2] != pad:
                    out.append(((quad[1] << 4) | (quad[2] >> 2)) & 0xFF)
                if quad[3] != pad:
                    out.append(((quad[2] << 6) | quad[3]) & 0xFF)
            quad = []
    if quad:
        invalid = True
    return None if invalid else bytes(out)


_PIECES = ["A", "Q", "g", "w", "+", "/", "Zm9v", "Zm8", "Zg", "=", "==", " ", "\n", "\t", "-", "_", "."]


@given(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join))
def test_agrees_with_reference_decoder_model(text: str) -> None:
    try:
        expected = _reference_decode(text)
    except LookupError:
        return
    if expected is None:
        _rejected(text)
    else:
        assert b64decode(text) == expected


@pytest.mark.parametrize("text", ["QR==", "Zh==", "Zm9=", "QUJE"])
def test_nonzero_trailing_bits_accepted_like_reference(text: str) -> None:
    assert b64decode(text) == _reference_decode(text)


# --- base64url (JOSE only) -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"\xfb\xff", "-_8"),
        (b"\xfb\xff\xfe", "-__-"),
    ],
)
def test_b64url_vectors(data: bytes, text: str) -> None:
    assert b64url_encode(data) == text
    assert b64url_decode(text) == data


def test_b64url_accepts_padding() -> None:
    assert b64url_decode("Zg==") == b"f"
    assert b64url_decode("Zm8=") == b"fo"
    assert b64url_decode("-_8=") == b"\xfb\xff"


@pytest.mark.parametrize(
    "text",
    [
        "Z",  # length 1 mod 4 can never be valid
        "Zm9vY",
        "+/8",  # standard alphabet characters
        "Zm9/",
        "Zm9+",
        "Zg===",
        "Z=g",
        "Zg=A",
        "Zm9v!",
        "Zm 9v",
        "Zm9v\n",
        "é",
        "Zm9vé",
    ],
)
def test_b64url_rejections(text: str) -> None:
    _url_rejected(text)


@given(st.binary(max_size=512))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert text == std_b64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
    assert b64url_decode(text) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 300), max_size=6))
def test_b64decode_stream_any_split_equals_whole(data: bytes, cuts: list[int]) -> None:
    from missile.encoding.base64 import b64decode_stream

    text = pybase64.b64encode(data)
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert b"".join(b64decode_stream(pieces)) == data


@pytest.mark.parametrize(
    "pieces",
    [
        [b"QQ==", b"QUJD"],  # padding, then more
        [b"QQ=", b"=QUJD"],
        [b"QUJ"],  # not whole quadruplets
        [b"QU", b"J"],
        [b"QU JD"],  # whitespace is not forgiven here
        [b"QU\\nJD"],
        [b"QUJD", b"Q==="],
        [b"-_AA"],  # base64url alphabet
    ],
)
def test_b64decode_stream_is_strict(pieces: list[bytes]) -> None:
    from missile.encoding.base64 import b64decode_stream

    with pytest.raises(MslEncodingException) as err:
        b"".join(b64decode_stream(pieces))
    assert err.value.error is MslError.MSL_PARSE_ERROR
