"""Messages in the binary encoder format (docs/binary-format.md): every structure, every
entity auth and key exchange scheme, the same meaning as in JSON, tokens kept byte for
byte across formats, and strictness at the message level."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.clock import FixedClock
from missile.context import MslContext
from missile.encoding import EncoderFormat, decode, encode, to_json_value
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException
from missile.keyx.base import KeyRequestData
from missile.messages import MessageWriter
from missile.messages.builder import build_error_response, build_request, build_response
from missile.messages.capabilities import BINARY_IMPLIED_FORMATS, DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.header import HeaderData, MessageHeader
from missile.tokens.service import ServiceToken
from missile.userauth.email_password import EmailPasswordAuthData

from .conftest import Session, client_ctx, encode_message, establish, objects, receive, server_ctx
from .test_roundtrip import ENTITY_SCHEMES, KEYX_CASES

BIN = EncoderFormat.MISSILE_CBOR
JSON = EncoderFormat.JSON


def _meaning(received: Any) -> dict[str, Any]:
    """What a received message says, independent of its encoding."""
    header: MessageHeader = received.header_event.header
    data = header.data
    return {
        "messageid": data.message_id,
        "renewable": data.renewable,
        "handshake": data.handshake,
        "nonreplayableid": data.non_replayable_id,
        "timestamp": data.timestamp,
        "capabilities": to_json_value(data.capabilities) if data.capabilities else None,
        "keyrequestdata": sorted(str(to_json_value(r)) for r in data.key_request_data),
        "keyresponsedata": to_json_value(data.key_response_data) if data.key_response_data else None,
        "userauthdata": to_json_value(data.user_auth_data) if data.user_auth_data else None,
        "useridtoken": to_json_value(data.user_id_token) if data.user_id_token else None,
        "servicetokens": sorted((t.name, t.data, t.tokendata) for t in data.service_tokens),
        # ``sender`` is left out: a legacy JSON member the reference ignores, which the
        # binary format does not carry (docs/binary-format.md §5.6).
        "mastertoken": to_json_value(header.master_token) if header.master_token else None,
        "entityauthdata": to_json_value(header.entity_auth_data) if header.entity_auth_data else None,
        "user": header.user.identity if header.user else None,
        "encrypting": header.encrypting,
        "chunks": [
            (c.chunk.sequence_number, c.chunk.end_of_message, c.chunk.compression_algo) for c in received.chunks
        ],
        "data": received.data,
    }


def _both(ctx: MslContext, header: MessageHeader, payload_crypto: Any, data: bytes, **kw: Any) -> list[bytes]:
    """The message of ``header``'s content in JSON and in the binary format."""
    out = []
    for fmt in (JSON, BIN):
        again = MessageHeader.create(
            ctx,
            header.data,
            master_token=header.master_token,
            entity_auth_data=header.entity_auth_data,
            encoder_format=fmt,
        )
        out.append(encode_message(MessageWriter(again, payload_crypto, **kw), data))
    return out


def test_binary_request_and_response_under_a_master_token(session: Session) -> None:
    server, client = session.server, session.client
    request = build_request(client, encoder_format=BIN, non_replayable=True)
    wire = encode_message(request, b"x" * 5000, chunk_size=2048)
    assert wire[0] == BIN.identifier
    assert all(raw[0] == BIN.identifier for raw in objects(wire))
    at_server = receive(server, wire, single_message=True)
    header = at_server.header_event.header
    assert header.encoder_format is BIN
    assert header.master_token is not None and header.master_token.tokendata == session.master_token.tokendata
    assert at_server.data == b"x" * 5000 and len(at_server.chunks) == 3
    # The header data inside the envelope is in the binary format too.
    assert decode(header.crypto_context.decrypt(header.headerdata)).binary
    response = build_response(server, header, capabilities=DEFAULT_CAPABILITIES)
    assert response.header.encoder_format is BIN  # both sides advertise it
    at_client = receive(client, encode_message(response, b"ok"), single_message=True)
    assert at_client.data == b"ok"
    assert at_client.header_event.header.encoder_format is BIN


def test_a_json_only_request_gets_a_json_response(session: Session) -> None:
    json_only = MessageCapabilities.of(encoder_formats=["JSON"])
    request = build_request(session.client, capabilities=json_only, encoder_format=JSON)
    at_server = receive(session.server, encode_message(request, b"hi"))
    response = build_response(session.server, at_server.header_event.header)
    assert response.header.encoder_format is JSON
    assert encode_message(response, b"ok")[0] == ord("{")
    # No capabilities at all: JSON too.
    request = build_request(session.client, capabilities=None, encoder_format=JSON)
    at_server = receive(session.server, encode_message(request, b"hi"))
    assert build_response(session.server, at_server.header_event.header).header.encoder_format is JSON


@pytest.mark.parametrize("scheme", list(ENTITY_SCHEMES))
def test_every_entity_auth_scheme_in_binary(scheme: str, clock: FixedClock) -> None:
    server = server_ctx(clock)
    client, server, _ = ENTITY_SCHEMES[scheme](clock, server)
    from .test_roundtrip import asymmetric

    key_requests: list[KeyRequestData] = [asymmetric("RSA")]
    request = build_request(
        client, use_entity_auth=True, renewable=True, key_request_data=key_requests, encoder_format=BIN
    )
    jw, bw = _both(client, request.header, request.payload_crypto_context, b"first request")
    assert bw[0] == BIN.identifier and jw[0] == ord("{")
    meanings = [_meaning(receive(server, wire)) for wire in (jw, bw)]
    assert meanings[0] == meanings[1]
    assert meanings[1]["entityauthdata"]["scheme"] == scheme


@pytest.mark.parametrize("case", list(KEYX_CASES))
def test_every_key_exchange_in_binary(case: str, clock: FixedClock) -> None:
    server, client = server_ctx(clock), client_ctx(clock)
    key_request = KEYX_CASES[case](client)
    token, _, at_client = establish(server, client, [key_request], encoder_format=BIN)
    header = at_client.header_event.header
    assert header.encoder_format is BIN  # the response: both advertise the binary format
    assert header.data.key_response_data is not None
    assert header.data.key_response_data.scheme == case.split("/")[0]
    # The issued token's bytes are what the client keeps and sends back.
    request = build_request(client, encoder_format=BIN)
    assert request.header.master_token is not None
    assert request.header.master_token.tokendata == token.tokendata
    at_server = receive(server, encode_message(request, b"again"))
    assert at_server.header_event.header.master_token is not None
    assert at_server.header_event.header.master_token.verified


def test_user_auth_user_id_token_and_service_tokens(session: Session) -> None:
    server, client = session.server, session.client
    auth = EmailPasswordAuthData("user1@foo.com", "user1pwd")
    request = build_request(client, renewable=True, user_auth_data=auth, encoder_format=BIN)
    at_server = receive(server, encode_message(request, b"login"))
    assert at_server.header_event.header.user is not None
    response = build_response(server, at_server.header_event.header, capabilities=DEFAULT_CAPABILITIES)
    uit = response.header.data.user_id_token
    assert uit is not None
    at_client = receive(client, encode_message(response, b"welcome"))
    assert at_client.header_event.header.data.user_id_token is not None
    assert at_client.header_event.header.data.user_id_token.tokendata == uit.tokendata
    crypto = session.crypto
    tokens = [
        ServiceToken.create("plain", b"p" * 300, crypto, encrypted=False, compression=CompressionAlgorithm.GZIP),
        ServiceToken.create("bound", b"secret", crypto, master_token=session.master_token),
        ServiceToken.create("binary-issued", b"b", crypto, encoder_format=BIN),
    ]
    contexts = {"": crypto}
    for fmt in (JSON, BIN):
        request = build_request(client, service_tokens=tokens, encoder_format=fmt)
        wire = encode_message(request, b"with tokens")
        received = receive(server, wire, service_token_contexts=contexts)
        got = {t.name: t for t in received.header_event.header.data.service_tokens}
        assert {name: t.data for name, t in got.items()} == {
            "plain": b"p" * 300,
            "bound": b"secret",
            "binary-issued": b"b",
        }
        # Tokens keep their signed bytes whatever format the message is in.
        assert {t.name: t.tokendata for t in tokens} == {name: t.tokendata for name, t in got.items()}


def test_tokens_issued_in_binary_travel_in_json_messages(session: Session) -> None:
    """A token whose token data is in the binary format inside a JSON message, and back."""
    server = session.server
    from missile.tokens.master import MasterToken

    issued = MasterToken.create(
        server.msl_crypto,
        renewal_window_ms=session.clock() + 3_600_000,
        expiration_ms=session.clock() + 7_200_000,
        sequence_number=0,
        serial_number=session.master_token.serial_number,
        identity="client1",
        encryption_key=bytes(16),
        signature_key=bytes(32),
        encoder_format=BIN,
    )
    assert issued.tokendata[0] == BIN.identifier
    for fmt in (JSON, BIN):
        wire = encode({"mastertoken": issued}, fmt)
        parsed = server.parse_master_token(decode(wire).get_object("mastertoken"))
        assert parsed.tokendata == issued.tokendata and parsed.signature == issued.signature
        assert parsed.verified and parsed.identity == "client1" and parsed.encryption_key == bytes(16)


def test_error_header_in_binary(session: Session) -> None:
    server, client = session.server, session.client
    ead = server.get_entity_auth_data()
    assert ead is not None
    for fmt in (JSON, BIN):
        error = ErrorHeader.from_error(server, ead, 42, MslError.MESSAGE_EXPIRED, encoder_format=fmt)
        wire = error.encode()
        assert wire[0] == fmt.identifier
        got = receive(client, wire).error_event.error_header
        assert got.encoder_format is fmt
        assert (got.message_id, got.error_code, got.internal_code, got.error_message) == (
            42,
            error.error_code,
            error.internal_code,
            error.error_message,
        )
    # Error responses are JSON unless asked otherwise: any peer can read them.
    assert build_error_response(server, MslError.MSL_PARSE_ERROR).encode()[0] == ord("{")


def test_binary_fields_written_as_text_are_refused(session: Session) -> None:
    request = build_request(session.client, encoder_format=BIN)
    header = request.header
    # headerdata as a text string (what JSON would carry as base64) is a wrong type.
    bad = encode({"mastertoken": header.master_token, "headerdata": "AAAA", "signature": header.signature}, BIN)
    with pytest.raises(MslException) as info:
        receive(session.server, bad)
    assert info.value.error is MslError.MSL_PARSE_ERROR


def test_formats_do_not_mix_within_a_message(session: Session) -> None:
    built = build_request(session.client, encoder_format=BIN)
    binary_header = built.header.encode()
    json_writer = MessageWriter(replace(built.header, encoder_format=JSON), built.payload_crypto_context)
    json_chunk = json_writer.close()
    with pytest.raises(MslException) as info:
        receive(session.server, binary_header + json_chunk)
    assert info.value.error is MslError.MSL_PARSE_ERROR


# -- the property: a message means the same in both formats -----------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=3000) | st.just(b"ab" * 4000),
    chunk_size=st.sampled_from([256, 1000, 65536]),
    compression=st.sampled_from([None, CompressionAlgorithm.GZIP, CompressionAlgorithm.LZW]),
    renewable=st.booleans(),
    non_replayable=st.booleans(),
    with_service_token=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_every_message_means_the_same_in_both_formats(
    session: Session,
    data: bytes,
    chunk_size: int,
    compression: CompressionAlgorithm | None,
    renewable: bool,
    non_replayable: bool,
    with_service_token: bool,
    seed: int,
) -> None:
    server, client = session.server, session.client
    tokens = (
        [
            ServiceToken.create(
                "st", random.Random(seed).randbytes(40), session.crypto, master_token=session.master_token
            )
        ]
        if with_service_token
        else []
    )
    built = build_request(
        client, renewable=renewable, non_replayable=non_replayable, service_tokens=tokens, encoder_format=JSON
    )
    jw, bw = _both(
        client, built.header, built.payload_crypto_context, data, chunk_size=chunk_size, compression=compression
    )
    assert jw[0] == ord("{") and bw[0] == BIN.identifier
    contexts = {"": session.crypto}
    # Two copies of one non-replayable message: the reader has no replay state, so both read.
    json_meaning = _meaning(receive(server, jw, service_token_contexts=contexts))
    binary_meaning = _meaning(receive(server, bw, service_token_contexts=contexts))
    assert json_meaning == binary_meaning
    assert binary_meaning["data"] == data


def test_header_data_carries_the_same_fields(session: Session) -> None:
    built = build_request(session.client, renewable=True, encoder_format=BIN)
    header = built.header
    plaintext = decode(header.crypto_context.decrypt(header.headerdata))
    assert plaintext.binary
    fields = set(plaintext.keys())
    assert {"messageid", "timestamp", "renewable", "capabilities"} <= fields
    # No legacy sender (docs/binary-format.md §5.6).
    assert "sender" not in fields
    # docs/binary-format.md §5.6: a false boolean is left out, a true one written.
    assert plaintext.get_bool("renewable") is True
    assert not fields & {"handshake", "nonreplayable"}
    caps = plaintext.get_object("capabilities")
    # The default formats are the implied list, left out (docs/binary-format.md §5.2).
    assert DEFAULT_CAPABILITIES.encoder_formats == BINARY_IMPLIED_FORMATS
    assert "encoderformats" not in set(caps.keys())
    assert header.data.capabilities == DEFAULT_CAPABILITIES
    assert isinstance(HeaderData(message_id=1), HeaderData)
