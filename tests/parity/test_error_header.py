"""Error header failure cases the reference probes (ErrorHeaderTest) beyond those in
tests/messages/test_reader_negative.py: missing or mistyped outer keys and error data
fields, undecryptable error data, and out-of-range message IDs when building."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from missile.context import MslContext
from missile.encoding import MAX_LONG_VALUE, decode, encode
from missile.errors import MslError, MslInternalException, ResponseCode
from missile.messages.builder import build_error_response
from missile.messages.error_header import ErrorHeader

from ._helpers import Absent, mutate, raises, read_fails


def _error_wire(server: MslContext, fields: dict[str, Any], outer: dict[str, Any] | None = None) -> bytes:
    ead = server.get_entity_auth_data()
    assert ead is not None
    crypto = server.entity_auth_factories[ead.scheme].crypto_context(server, ead)
    errordata = crypto.encrypt(encode(fields))
    obj = {"entityauthdata": ead, "errordata": errordata, "signature": crypto.sign(errordata)}
    return encode(mutate(obj, outer or {}))


GOOD = {"timestamp": 1735689660, "messageid": 3, "errorcode": 1, "internalcode": 100002, "errormsg": "m"}


@pytest.mark.parametrize(
    "outer",
    [{"entityauthdata": "x"}, {"signature": Absent}, {"signature": 1}, {"errordata": 1}],
    ids=["invalid-entityauthdata", "missing-signature", "invalid-signature", "invalid-errordata-type"],
)
def test_outer_parse_errors(server: MslContext, client: MslContext, outer: dict[str, Any]) -> None:
    """invalidEntityAuthData / missingSignature / invalidSignature."""
    read_fails(client, _error_wire(server, GOOD, outer), MslError.MSL_PARSE_ERROR)


def test_missing_errordata(server: MslContext, client: MslContext) -> None:
    """missingErrordata: without errordata (or headerdata) the object is no header at all."""
    obj = decode(_error_wire(server, GOOD))
    raises(
        MslError.MSL_PARSE_ERROR,
        ErrorHeader.parse,
        client,
        decode(encode(mutate(obj.to_dict(), {"errordata": Absent}))),
    )
    read_fails(client, _error_wire(server, GOOD, {"errordata": Absent}), MslError.MSL_PARSE_ERROR)


def test_empty_errordata(server: MslContext, client: MslContext) -> None:
    """emptyErrordata."""
    read_fails(client, _error_wire(server, GOOD, {"errordata": "", "signature": ""}), MslError.HEADER_DATA_MISSING)


def test_errordata_not_a_ciphertext_envelope(server: MslContext, client: MslContext) -> None:
    """invalidErrordata: correctly signed bytes that are not a ciphertext envelope (the
    PSK client's error header, so the error data must be encrypted)."""
    ead = client.get_entity_auth_data()
    assert ead is not None and ead.encrypts
    crypto = client.entity_auth_factories[ead.scheme].crypto_context(client, ead)
    garbage = b"not an envelope"
    wire = encode(
        {
            "entityauthdata": ead,
            "errordata": base64.b64encode(garbage).decode(),
            "signature": base64.b64encode(crypto.sign(garbage)).decode(),
        }
    )
    exc = read_fails(server, wire, MslError.CIPHERTEXT_ENVELOPE_PARSE_ERROR)
    assert exc.entity_auth_data == ead


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": "x"},
        {"messageid": Absent},
        {"messageid": "x"},
        {"errorcode": Absent},
        {"errorcode": "x"},
        {"internalcode": "x"},
    ],
    ids=[
        "invalid-timestamp",
        "missing-messageid",
        "invalid-messageid",
        "missing-errorcode",
        "invalid-errorcode",
        "invalid-internalcode",
    ],
)
def test_error_data_field_errors(server: MslContext, client: MslContext, changes: dict[str, Any]) -> None:
    """invalidTimestamp, missingMessageId, invalidMessageId, missingErrorCode,
    invalidErrorCode, invalidInternalCode."""
    exc = read_fails(client, _error_wire(server, mutate(GOOD, changes)), MslError.MSL_PARSE_ERROR)
    assert exc.entity_auth_data is not None


def test_negative_message_id_on_parse(server: MslContext, client: MslContext) -> None:
    """negativeMessageIdParseHeader."""
    read_fails(client, _error_wire(server, mutate(GOOD, {"messageid": -1})), MslError.MESSAGE_ID_OUT_OF_RANGE)


@pytest.mark.parametrize("message_id", [-1, MAX_LONG_VALUE + 1])
def test_message_id_out_of_range_on_create(server: MslContext, message_id: int) -> None:
    """negativeMessageIdCtor / tooLargeMessageIdCtor."""
    ead = server.get_entity_auth_data()
    assert ead is not None
    raises(MslError.MESSAGE_ID_OUT_OF_RANGE, ErrorHeader.create, server, ead, message_id, ResponseCode.FAIL)


def test_create_without_entity_auth_data(server: MslContext) -> None:
    """missingEntityAuthDataCtor: an error response needs the sender's entity auth data."""
    server.entity_auth_data = None
    with pytest.raises(MslInternalException):
        build_error_response(server, MslError.MSL_PARSE_ERROR, 1)
