"""Chunk plaintexts of every unusual shape open alike on the symmetric contexts' codec
(which reads the usual uncompressed shape with one match, in either format) and the
general codec: heads that are not minimal, numbers in other forms, members out of order,
missing, repeated or extra, wrong types, a false end-of-message flag, compression,
trailing bytes."""

from __future__ import annotations

import pytest

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.crypto.symmetric_chunks import _BINARY_PLAINTEXT_TAIL, _JSON_PLAINTEXT_TAIL
from missile.encoding import EncoderFormat, cbor
from missile.encoding.codec import encode_binary

from .test_chunk_codec import KE, KH, _agree, _by_plaintext, _codecs

ID = bytes((cbor.IDENTIFIER,))
DATA = cbor.encode_text("data") + b"\x43abc"
EOM = cbor.encode_text("endofmsg")
MID = cbor.encode_text("messageid")
SEQ = cbor.encode_text("sequencenumber")
ALGO = cbor.encode_text("compressionalgo")

PLAINTEXTS = {
    "usual": ID + b"\xa3" + DATA + MID + b"\x05" + SEQ + b"\x01",
    "usual, end": ID + b"\xa4" + DATA + EOM + b"\xf5" + MID + b"\x05" + SEQ + b"\x01",
    "large ids": ID + b"\xa3" + DATA + MID + b"\x1b\x00\x1f\xff\xff\xff\xff\xff\xff" + SEQ + b"\x1a\x00\x01\x00\x00",
    "every head size": ID + b"\xa3" + DATA + MID + b"\x18\x18" + SEQ + b"\x19\x01\x00",
    "non-minimal 8-bit": ID + b"\xa3" + DATA + MID + b"\x18\x05" + SEQ + b"\x01",
    "non-minimal 16-bit": ID + b"\xa3" + DATA + MID + b"\x19\x00\xff" + SEQ + b"\x01",
    "non-minimal 32-bit": ID + b"\xa3" + DATA + MID + b"\x1a\x00\x00\xff\xff" + SEQ + b"\x01",
    "non-minimal 64-bit": ID + b"\xa3" + DATA + MID + b"\x1b\x00\x00\x00\x00\xff\xff\xff\xff" + SEQ + b"\x01",
    "negative id": ID + b"\xa3" + DATA + MID + b"\x20" + SEQ + b"\x01",
    "text id": ID + b"\xa3" + DATA + MID + b"\x61\x35" + SEQ + b"\x01",
    "false end": ID + b"\xa4" + DATA + EOM + b"\xf4" + MID + b"\x05" + SEQ + b"\x01",
    "count too high": ID + b"\xa4" + DATA + MID + b"\x05" + SEQ + b"\x01",
    "count too low": ID + b"\xa3" + DATA + EOM + b"\xf5" + MID + b"\x05" + SEQ + b"\x01",
    "missing sequence number": ID + b"\xa2" + DATA + MID + b"\x05",
    "order swapped": ID + b"\xa3" + DATA + SEQ + b"\x01" + MID + b"\x05",
    "repeated": ID + b"\xa4" + DATA + MID + b"\x05" + MID + b"\x05" + SEQ + b"\x01",
    "compressed": ID + b"\xa4" + DATA + MID + b"\x05" + SEQ + b"\x01" + ALGO + cbor.encode_text("GZIP"),
    "extra member": ID + b"\xa4" + DATA + MID + b"\x05" + SEQ + b"\x01" + cbor.encode_text("z" * 17) + b"\x01",
    "trailing byte": ID + b"\xa3" + DATA + MID + b"\x05" + SEQ + b"\x01\x00",
    "truncated": ID + b"\xa3" + DATA + MID + b"\x05" + SEQ,
    "data not minimal": ID + b"\xa3" + cbor.encode_text("data") + b"\x58\x03abc" + MID + b"\x05" + SEQ + b"\x01",
    "data as text": ID + b"\xa3" + cbor.encode_text("data") + b"\x63abc" + MID + b"\x05" + SEQ + b"\x01",
    "data overruns": ID + b"\xa3" + cbor.encode_text("data") + b"\x58\x30abc" + MID + b"\x05" + SEQ + b"\x01",
    "indefinite map": ID + b"\xbf" + DATA + MID + b"\x05" + SEQ + b"\x01\xff",
    "no identifier": b"\xa3" + DATA + MID + b"\x05" + SEQ + b"\x01",
    "empty": b"",
    "general encoder": encode_binary({"data": b"abc", "messageid": 5, "sequencenumber": 1, "endofmsg": True}),
}


@pytest.mark.parametrize("name", list(PLAINTEXTS))
def test_hand_written_binary_plaintexts_read_alike(name: str) -> None:
    fast, general = _codecs(1, EncoderFormat.MISSILE_CBOR)
    ctx = SymmetricCryptoContext("k", KE, KH)
    outcome = _agree(fast, general, _by_plaintext(ctx, PLAINTEXTS[name], EncoderFormat.MISSILE_CBOR))
    if name.startswith("usual") or name in ("large ids", "every head size", "general encoder"):
        assert isinstance(outcome, tuple) and outcome[1] == b"abc"


@pytest.mark.parametrize("name", ["usual", "usual, end", "large ids", "every head size", "general encoder"])
def test_the_usual_shapes_are_read_by_one_match(name: str) -> None:
    """Guard against the match silently never applying (the general reading would hide it)."""
    plaintext = PLAINTEXTS[name]
    count = plaintext[1] - 0xA3
    tail = _BINARY_PLAINTEXT_TAIL.fullmatch(plaintext, 2 + len(DATA))
    assert tail is not None and (tail.group(1) is not None) == count


TAIL = b'{"data":"YWJj"'
JSON_PLAINTEXTS = {
    "usual": TAIL + b',"messageid":5,"sequencenumber":1}',
    "usual, end": TAIL + b',"messageid":5,"endofmsg":true,"sequencenumber":1}',
    "twenty digits": TAIL + b',"messageid":99999999999999999999,"sequencenumber":1}',
    "twenty-one digits": TAIL + b',"messageid":999999999999999999999,"sequencenumber":1}',
    "five thousand digits": TAIL + b',"messageid":' + b"9" * 5000 + b',"sequencenumber":1}',
    "zero": TAIL + b',"messageid":0,"sequencenumber":0}',
    "leading zero": TAIL + b',"messageid":05,"sequencenumber":1}',
    "negative": TAIL + b',"messageid":-5,"sequencenumber":1}',
    "exponent": TAIL + b',"messageid":5e0,"sequencenumber":1}',
    "fraction": TAIL + b',"messageid":5.5,"sequencenumber":1}',
    "false end": TAIL + b',"messageid":5,"endofmsg":false,"sequencenumber":1}',
    "end last": TAIL + b',"messageid":5,"sequencenumber":1,"endofmsg":true}',
    "compressed": TAIL + b',"messageid":5,"compressionalgo":"GZIP","sequencenumber":1}',
    "repeated": TAIL + b',"messageid":5,"messageid":6,"sequencenumber":1}',
    "space": TAIL + b',"messageid": 5,"sequencenumber":1}',
    "trailing space": TAIL + b',"messageid":5,"sequencenumber":1} ',
    "trailing brace": TAIL + b',"messageid":5,"sequencenumber":1}}',
    "string number": TAIL + b',"messageid":"5","sequencenumber":1}',
}


@pytest.mark.parametrize("name", list(JSON_PLAINTEXTS))
def test_hand_written_json_plaintexts_read_alike(name: str) -> None:
    fast, general = _codecs(1, EncoderFormat.JSON)
    ctx = SymmetricCryptoContext("k", KE, KH)
    outcome = _agree(fast, general, _by_plaintext(ctx, JSON_PLAINTEXTS[name], EncoderFormat.JSON))
    if name.startswith("usual") or name in ("twenty digits", "zero"):
        assert isinstance(outcome, tuple) and outcome[1] == b"abc"


@pytest.mark.parametrize("name", ["usual", "usual, end", "twenty digits", "zero"])
def test_the_usual_json_shapes_are_read_by_one_match(name: str) -> None:
    plaintext = JSON_PLAINTEXTS[name]
    assert _JSON_PLAINTEXT_TAIL.fullmatch(plaintext, len(TAIL) - 1) is not None
