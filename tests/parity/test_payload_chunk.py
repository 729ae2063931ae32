"""Payload chunk failure cases the reference probes (PayloadChunkTest) beyond those in
tests/messages: missing or mistyped outer keys and chunk fields, chunks protected with
other keys, and out-of-range numbers refused when building a chunk."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from messages.conftest import Session, receive
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE, decode
from missile.errors import MslCryptoException, MslError, MslException, MslInternalException
from missile.messages import encode_chunk
from missile.messages.payload import PayloadChunk

from ._helpers import Absent, chunk, header_fields, read_fails, session_header

MESSAGE_ID = 5


def _fields(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"sequencenumber": 1, "messageid": MESSAGE_ID, "endofmsg": True, "data": "AAEC"}
    for key, value in changes.items():
        if value is Absent:
            out.pop(key)
        else:
            out[key] = value
    return out


def _message(session: Session, chunk_bytes: bytes) -> bytes:
    return session_header(session, header_fields(MESSAGE_ID)) + chunk_bytes


@pytest.mark.parametrize(
    "outer",
    [{"payload": Absent}, {"payload": 5}, {"signature": Absent}, {"signature": False}],
    ids=["missing-payload", "invalid-payload", "missing-signature", "invalid-signature"],
)
def test_outer_parse_errors(session: Session, outer: dict[str, Any]) -> None:
    """missingPayload / invalidPayload (and the signature equivalents)."""
    wire = _message(session, chunk(session.crypto, _fields(), outer=outer))
    exc = read_fails(session.server, wire, MslError.MSL_PARSE_ERROR)
    assert exc.message_id == MESSAGE_ID


@pytest.mark.parametrize(
    "changes",
    [
        {"sequencenumber": Absent},
        {"sequencenumber": "x"},
        {"messageid": Absent},
        {"messageid": "x"},
        {"endofmsg": "x"},
        {"data": Absent},
        {"data": 7},
        {"data": "not base64 !", "endofmsg": True},
        {"compressionalgo": 3},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}"[:30] for k, v in c.items()),
)
def test_chunk_field_parse_errors(session: Session, changes: dict[str, Any]) -> None:
    """missingSequenceNumber, invalidSequenceNumber, missingMessageId, invalidMessageId,
    invalidEndOfMessage, missingData, invalidDataEndOfMessage."""
    exc = read_fails(
        session.server, _message(session, chunk(session.crypto, _fields(**changes))), MslError.MSL_PARSE_ERROR
    )
    assert exc.message_id == MESSAGE_ID


def test_incorrect_signature(session: Session) -> None:
    """incorrectSignature: a valid signature of another chunk."""
    good = json.loads(chunk(session.crypto, _fields()))
    other = json.loads(chunk(session.crypto, _fields(data="AAAA")))
    good["signature"] = other["signature"]
    read_fails(session.server, _message(session, json.dumps(good).encode()), MslError.PAYLOAD_VERIFICATION_FAILED)


def test_signed_with_another_key(session: Session) -> None:
    """mismatchedCryptoContextSignKey."""
    assert isinstance(session.crypto, SymmetricCryptoContext)
    other = SymmetricCryptoContext("x", session.crypto.encryption_key, bytes(32))
    read_fails(session.server, _message(session, chunk(other, _fields())), MslError.PAYLOAD_VERIFICATION_FAILED)


def test_encrypted_with_another_key(session: Session) -> None:
    """mismatchedCryptoContextEncryptionKey: signed correctly, but not decryptable here."""
    assert isinstance(session.crypto, SymmetricCryptoContext)
    other = SymmetricCryptoContext("x", bytes(range(16)), session.crypto.signature_key)
    with pytest.raises(MslException) as info:
        receive(session.server, _message(session, chunk(other, _fields())))
    # Bad padding, or (rarely) garbage that is not a chunk: never accepted.
    assert info.value.error in (MslError.CIPHERTEXT_BAD_PADDING, MslError.MSL_PARSE_ERROR)


def test_corrupt_payload(session: Session) -> None:
    """corruptPayload: signed bytes that are not a ciphertext envelope."""
    garbage = b"this is not an envelope"
    wire = json.dumps(
        {
            "payload": base64.b64encode(garbage).decode(),
            "signature": base64.b64encode(session.crypto.sign(garbage)).decode(),
        }
    ).encode()
    with pytest.raises(MslCryptoException) as info:
        receive(session.server, _message(session, wire))
    assert info.value.error is MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR


def test_decrypted_payload_not_an_object(session: Session) -> None:
    """A correctly protected payload whose plaintext is not a JSON object."""
    payload = session.crypto.encrypt(b"[1, 2, 3]")
    obj = {
        "payload": base64.b64encode(payload).decode(),
        "signature": base64.b64encode(session.crypto.sign(payload)).decode(),
    }
    with pytest.raises(MslException) as info:
        PayloadChunk.parse(decode(json.dumps(obj).encode()), session.crypto, max_deflate_ratio=200)
    assert info.value.error is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize(
    ("sequence_number", "message_id"),
    [(-1, 1), (MAX_LONG_VALUE + 1, 1), (1, -1), (1, MAX_LONG_VALUE + 1)],
    ids=["negative-sequence", "large-sequence", "negative-message-id", "large-message-id"],
)
def test_encode_out_of_range(session: Session, sequence_number: int, message_id: int) -> None:
    """negative/tooLarge SequenceNumberCtor and MessageIdCtor: refused when building."""
    with pytest.raises(MslInternalException):
        encode_chunk(session.crypto, sequence_number, message_id, b"data")


def test_encode_range_bounds_accepted(session: Session) -> None:
    for sequence_number, message_id in ((0, 0), (MAX_LONG_VALUE, MAX_LONG_VALUE)):
        raw = encode_chunk(session.crypto, sequence_number, message_id, b"data", end_of_message=True)
        parsed = PayloadChunk.parse(decode(raw), session.crypto, max_deflate_ratio=200)
        assert (parsed.sequence_number, parsed.message_id, parsed.data) == (sequence_number, message_id, b"data")
