"""Range and binding rules not reachable through the builders: crafted messages."""

from __future__ import annotations

import json

import pytest

from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.errors import MslError, MslException
from missile.messages import HeaderData, MessageHeader
from missile.messages.builder import build_request
from missile.tokens import ServiceToken

from .conftest import Session, receive


def _crafted_header(session: Session, **fields: object) -> bytes:
    """A master-token header whose header data is ``fields`` (protected with the session)."""
    plaintext = json.dumps({"messageid": 1, "renewable": False, **fields}).encode()
    headerdata = session.crypto.encrypt(plaintext)
    return encode(
        {"mastertoken": session.master_token, "headerdata": headerdata, "signature": session.crypto.sign(headerdata)}
    )


def _crafted_chunk(session: Session, **fields: object) -> bytes:
    payload = session.crypto.encrypt(json.dumps({"endofmsg": True, "data": "", **fields}).encode())
    return encode({"payload": payload, "signature": session.crypto.sign(payload)})


def _error(session: Session, wire: bytes) -> MslError:
    with pytest.raises(MslException) as info:
        receive(session.server, wire)
    return info.value.error


def test_nonreplayable_id_out_of_range(session: Session) -> None:
    wire = _crafted_header(session, nonreplayableid=MAX_LONG_VALUE + 1)
    assert _error(session, wire) is MslError.NONREPLAYABLE_ID_OUT_OF_RANGE


def test_header_message_id_out_of_range(session: Session) -> None:
    wire = _crafted_header(session, messageid=-1)
    assert _error(session, wire) is MslError.MESSAGE_ID_OUT_OF_RANGE


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"sequencenumber": MAX_LONG_VALUE + 1, "messageid": 1}, MslError.PAYLOAD_SEQUENCE_NUMBER_OUT_OF_RANGE),
        ({"sequencenumber": -5, "messageid": 1}, MslError.PAYLOAD_SEQUENCE_NUMBER_OUT_OF_RANGE),
        ({"sequencenumber": 1, "messageid": MAX_LONG_VALUE + 1}, MslError.PAYLOAD_MESSAGE_ID_OUT_OF_RANGE),
        ({"sequencenumber": 1, "messageid": 1, "compressionalgo": "BROTLI"}, MslError.UNIDENTIFIED_COMPRESSION),
    ],
)
def test_chunk_ranges(session: Session, fields: dict[str, object], error: MslError) -> None:
    wire = _crafted_header(session) + _crafted_chunk(session, **fields)
    assert _error(session, wire) is error


def test_service_token_bound_to_another_master_token_is_refused_when_building(session: Session) -> None:
    request = build_request(session.client)
    other = decode(encode(session.master_token))
    assert other.get_bytes("tokendata")
    foreign = ServiceToken.create("svc", b"data", session.crypto, master_token=session.master_token)
    # A token bound to this master token is fine ...
    data = HeaderData(message_id=5, service_tokens=(foreign,))
    MessageHeader.create(session.client, data, master_token=session.master_token)
    # ... but not in a header protected by entity auth data (no master token to bind to).
    with pytest.raises(MslException) as info:
        MessageHeader.create(
            session.client, data, entity_auth_data=session.client.get_entity_auth_data()
        )
    assert info.value.error is MslError.MESSAGE_SERVICETOKEN_MISMATCH
    assert request.header.message_id >= 0
