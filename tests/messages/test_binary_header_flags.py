"""Booleans of binary-format header data (docs/binary-format.md §5.6): a false flag is
left out, a true one written, an explicit ``false`` refused; JSON keeps writing every
flag, as the reference does. The same rule of one encoding per value for the legacy
``sender`` (never in binary) and the implied ``encoderformats`` of binary capabilities
(§5.2). Also the one-pass header construction and the master token cache keyed by the
format's own values."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from missile.crypto.envelopes import envelope_in_format
from missile.encoding import EncoderFormat, MslObject, decode, encode
from missile.encoding.base64 import b64encode
from missile.encoding.mslobject import BinaryMslObject
from missile.errors import MslError, MslException
from missile.messages.builder import build_request
from missile.messages.capabilities import BINARY_IMPLIED_FORMATS, DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.header import HeaderData, MessageHeader

from .conftest import Session, receive

BIN = EncoderFormat.MISSILE_CBOR
JSON = EncoderFormat.JSON
FLAGS = ("renewable", "handshake", "nonreplayable")


def _plaintext(header: MessageHeader) -> dict[str, Any]:
    return decode(header.crypto_context.decrypt(header.headerdata)).to_dict()


def _with_header_data(header: MessageHeader, fields: dict[str, Any]) -> bytes:
    """``header`` re-protected around header data ``fields`` (binary), correctly signed."""
    crypto = header.crypto_context
    headerdata = envelope_in_format(crypto.encrypt(encode(fields, BIN)), BIN)
    forged = replace(header, headerdata=headerdata, signature=crypto.sign(headerdata))
    return forged.encode()


def test_a_binary_header_leaves_false_flags_out(session: Session) -> None:
    header = build_request(session.client, encoder_format=BIN).header
    assert not set(FLAGS) & set(_plaintext(header))
    received = receive(session.server, header.encode()).header_event.header
    assert (received.data.renewable, received.data.handshake, received.data.non_replayable_id) == (False, False, None)


def test_a_binary_header_writes_true_flags(session: Session) -> None:
    header = build_request(session.client, encoder_format=BIN, renewable=True, non_replayable=True).header
    fields = _plaintext(header)
    assert fields["renewable"] is True and fields["nonreplayable"] is True
    assert "handshake" not in fields
    received = receive(session.server, header.encode()).header_event.header
    assert received.data.renewable is True
    assert received.data.non_replayable_id == header.data.non_replayable_id


def test_a_json_header_still_writes_every_flag(session: Session) -> None:
    header = build_request(session.client, encoder_format=JSON).header
    fields = _plaintext(header)
    assert [fields[flag] for flag in FLAGS] == [False, False, False]


@pytest.mark.parametrize("flag", FLAGS)
def test_an_explicit_false_flag_in_binary_is_refused(session: Session, flag: str) -> None:
    header = build_request(session.client, encoder_format=BIN).header
    wire = _with_header_data(header, {**_plaintext(header), flag: False})
    with pytest.raises(MslException) as info:
        receive(session.server, wire)
    assert info.value.error is MslError.MSL_PARSE_ERROR
    assert info.value.message_id == header.message_id  # the error response can name it


@pytest.mark.parametrize("flag", FLAGS)
def test_a_non_boolean_flag_in_binary_is_refused(session: Session, flag: str) -> None:
    header = build_request(session.client, encoder_format=BIN).header
    wire = _with_header_data(header, {**_plaintext(header), flag: 1})
    with pytest.raises(MslException) as info:
        receive(session.server, wire)
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_json_still_requires_renewable(session: Session) -> None:
    header = build_request(session.client, encoder_format=JSON).header
    fields = {k: v for k, v in _plaintext(header).items() if k != "renewable"}
    crypto = header.crypto_context
    headerdata = crypto.encrypt(encode(fields))
    wire = replace(header, headerdata=headerdata, signature=crypto.sign(headerdata)).encode()
    with pytest.raises(MslException) as info:
        receive(session.server, wire)
    assert info.value.error is MslError.MSL_PARSE_ERROR


@pytest.mark.parametrize("fmt", [JSON, BIN])
def test_built_headers_equal_ones_made_by_their_constructors(session: Session, fmt: EncoderFormat) -> None:
    # create() and parse() fill frozen dataclasses through written-out __init__s: every field is set.
    built = build_request(session.client, encoder_format=fmt, renewable=True).header
    parsed = receive(session.server, built.encode()).header_event.header
    for header in (built, parsed):
        assert vars(replace(header)) == vars(header)
        assert replace(header.data) == header.data
        assert isinstance(header.data, HeaderData)


def test_binary_master_tokens_are_cached_by_their_bytes(session: Session) -> None:
    header = build_request(session.client, encoder_format=BIN).header
    first = receive(session.server, header.encode()).header_event.header.master_token
    second = receive(session.server, header.encode()).header_event.header.master_token
    assert first is second and first is not None and first.decrypted


def test_a_cached_token_does_not_excuse_a_binary_object_holding_text(session: Session) -> None:
    token = build_request(session.client, encoder_format=JSON).header.master_token
    assert token is not None
    as_json = MslObject({"tokendata": b64encode(token.tokendata), "signature": b64encode(token.signature)})
    assert session.server.parse_master_token(as_json).decrypted  # now cached under its text
    as_text_in_binary = BinaryMslObject(dict(as_json.to_dict()))
    with pytest.raises(MslException) as info:
        session.server.parse_master_token(as_text_in_binary)
    assert info.value.error is MslError.MSL_PARSE_ERROR


# -- sender and implied encoder formats (docs/binary-format.md §5.2, §5.6) -------------------


def test_binary_header_data_has_no_sender_json_keeps_it(session: Session) -> None:
    binary = build_request(session.client, encoder_format=BIN).header
    json = build_request(session.client, encoder_format=JSON).header
    assert "sender" not in _plaintext(binary)
    assert _plaintext(json)["sender"] == session.client.identity
    assert receive(session.server, binary.encode()).header_event.header.data.sender is None


def test_a_sender_in_binary_header_data_is_refused(session: Session) -> None:
    header = build_request(session.client, encoder_format=BIN).header
    wire = _with_header_data(header, {**_plaintext(header), "sender": session.client.identity})
    with pytest.raises(MslException) as info:
        receive(session.server, wire)
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_implied_encoder_formats_are_left_out_and_read_back(session: Session) -> None:
    assert DEFAULT_CAPABILITIES.encoder_formats == BINARY_IMPLIED_FORMATS
    header = build_request(session.client, encoder_format=BIN, capabilities=DEFAULT_CAPABILITIES).header
    written = _plaintext(header)["capabilities"]
    assert "encoderformats" not in written
    received = receive(session.server, header.encode()).header_event.header
    assert received.data.capabilities == DEFAULT_CAPABILITIES


@pytest.mark.parametrize(
    "formats",
    [(EncoderFormat.JSON, BIN), (BIN,), (EncoderFormat.JSON,), ()],
    ids=["json-first", "binary-only", "json-only", "none"],
)
def test_other_encoder_formats_are_written_out_in_binary(session: Session, formats: tuple[EncoderFormat, ...]) -> None:
    capabilities = MessageCapabilities(DEFAULT_CAPABILITIES.compression_algos, ("en-US",), formats)
    header = build_request(session.client, encoder_format=BIN, capabilities=capabilities).header
    assert _plaintext(header)["capabilities"]["encoderformats"] == [f.value for f in formats]
    assert receive(session.server, header.encode()).header_event.header.data.capabilities == capabilities


def test_the_implied_encoder_formats_written_out_are_refused(session: Session) -> None:
    header = build_request(session.client, encoder_format=BIN, capabilities=DEFAULT_CAPABILITIES).header
    fields = _plaintext(header)
    capabilities = {**fields["capabilities"], "encoderformats": [f.value for f in BINARY_IMPLIED_FORMATS]}
    wire = _with_header_data(header, {**fields, "capabilities": capabilities})
    with pytest.raises(MslException) as info:
        receive(session.server, wire)
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_json_capabilities_without_formats_are_not_the_binary_default() -> None:
    # Same members, two formats, two meanings: the parse cache must keep them apart.
    members = {"compressionalgos": ["GZIP"], "languages": ["en-US"]}
    as_binary = MessageCapabilities.parse(BinaryMslObject(dict(members)))
    as_json = MessageCapabilities.parse(MslObject(dict(members)))
    assert as_binary.encoder_formats == BINARY_IMPLIED_FORMATS
    assert as_json.encoder_formats == ()
    assert MessageCapabilities.parse(BinaryMslObject(dict(members))) is as_binary
