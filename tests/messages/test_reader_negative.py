"""One test per validation rule of the message reader; each asserts the exact MslError."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from typing import Any

import pytest

from issuer_helpers import check_events, check_fails, run
from missile.clock import FixedClock
from missile.context import INSECURE_SCHEMES, MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import encode
from missile.encoding.compression import CompressionAlgorithm
from missile.entityauth.base import EntityAuthData
from missile.entityauth.psk import PskEntityAuthData
from missile.errors import MslError, MslException, ResponseCode
from missile.keyfile import TokenKeys
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages import MessageReader, ReaderLimits, encode_chunk
from missile.messages.builder import build_error_response, build_request
from missile.messages.header import MessageHeader
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken
from missile.userauth.email_password import EmailPasswordAuthData

from .conftest import (
    DAY_MS,
    RSA_CLIENT_KEYS,
    SERVER_KEYS,
    T0,
    Session,
    client_ctx,
    encode_message,
    establish,
    keyfile,
    objects,
    receive,
)

# -- helpers -------------------------------------------------------------------------------


def fails(ctx: MslContext, wire: bytes, error: MslError, **kw: Any) -> MslException:
    """Reading ``wire`` (then end of stream) raises ``error``; returns the exception."""
    with pytest.raises(MslException) as info:
        receive(ctx, wire, **kw)
    assert info.value.error is error, info.value
    return info.value


def issuer_fails(ctx: MslContext, wire: bytes, error: MslError) -> MslException:
    """The reader accepts ``wire`` and the engine's issuer checks then raise ``error``
    (the reference's MessageInputStream made both in one step)."""
    return check_fails(ctx, receive(ctx, wire).events, error)


def flip(obj_raw: bytes, key: str, index: int = 20) -> bytes:
    """Flip one bit of the binary value ``key`` of an encoded object."""
    obj = json.loads(obj_raw)
    value = bytearray(base64.b64decode(obj[key]))
    value[index % len(value)] ^= 0x01
    obj[key] = base64.b64encode(bytes(value)).decode()
    return json.dumps(obj, separators=(",", ":")).encode()


def raw_header(
    crypto: CryptoContext,
    fields: dict[str, Any],
    *,
    master_token: MasterToken | None = None,
    entity_auth_data: EntityAuthData | None = None,
) -> bytes:
    """A header assembled by hand (bypassing the builder's sender checks)."""
    headerdata = crypto.encrypt(encode(fields))
    return encode(
        {
            "mastertoken": master_token,
            "entityauthdata": entity_auth_data,
            "headerdata": headerdata,
            "signature": crypto.sign(headerdata),
        }
    )


def other_server(clock: FixedClock) -> MslContext:
    """A server like vector 01's but with different MSL token keys."""
    from missile.profiles import context_from_keyfile
    from missile.tokens.factory import TokenFactory

    keys = dataclasses.replace(
        keyfile(SERVER_KEYS), token_keys=TokenKeys("otherserver", os.urandom(16), os.urandom(32))
    )
    return context_from_keyfile(
        keys,
        role="server",
        clock=clock,
        token_factory=TokenFactory(),
        allowed_insecure_schemes=INSECURE_SCHEMES,
    ).ctx


def session_message(session: Session, data: bytes = b"0123456789" * 50, **kw: Any) -> tuple[MessageHeader, bytes]:
    request = build_request(session.client, **kw)
    return request.header, encode_message(request, data, chunk_size=100, compression=None)


def server_master_token(session: Session) -> MasterToken:
    """The session's master token as the server sees it (verified, decrypted)."""
    _, wire = session_message(session)
    token = receive(session.server, wire).header_event.header.master_token
    assert token is not None and token.decrypted
    return token


def check_decorated(exc: MslException, header: MessageHeader) -> None:
    """Failures after the header carry its message ID and master token."""
    assert exc.message_id == header.message_id
    assert exc.master_token == header.master_token


# -- header protection -----------------------------------------------------------------------


def test_tampered_entity_auth_header(server: MslContext, client: MslContext) -> None:
    request = build_request(client, use_entity_auth=True)
    parts = objects(encode_message(request, b"x"))
    exc = fails(server, flip(parts[0], "headerdata") + parts[1], MslError.MESSAGE_ENTITYDATABASED_VERIFICATION_FAILED)
    assert exc.entity_auth_data == PskEntityAuthData("client1")
    assert exc.message_id is None  # the header data was never read


def test_tampered_master_token_header(session: Session) -> None:
    _, wire = session_message(session)
    parts = objects(wire)
    exc = fails(session.server, flip(parts[0], "headerdata"), MslError.MESSAGE_MASTERTOKENBASED_VERIFICATION_FAILED)
    assert exc.master_token == session.master_token
    assert exc.response_code is ResponseCode.ENTITY_REAUTH


def test_tampered_signature(session: Session) -> None:
    _, wire = session_message(session)
    parts = objects(wire)
    fails(session.server, flip(parts[0], "signature", 3), MslError.MESSAGE_MASTERTOKENBASED_VERIFICATION_FAILED)


def test_master_token_from_another_server(session: Session) -> None:
    _, wire = session_message(session)
    exc = fails(other_server(session.clock), wire, MslError.MASTERTOKEN_UNTRUSTED)
    assert exc.master_token == session.master_token
    assert exc.response_code is ResponseCode.ENTITY_REAUTH


def test_unknown_entity_auth_scheme(server: MslContext) -> None:
    wire = b'{"entityauthdata":{"scheme":"BOGUS","authdata":{}},"headerdata":"AAAA","signature":""}'
    fails(server, wire, MslError.UNIDENTIFIED_ENTITYAUTH_SCHEME)


def test_neither_headerdata_nor_errordata(server: MslContext) -> None:
    fails(
        server,
        b'{"entityauthdata":{"scheme":"NONE","authdata":{"identity":"a"}},"signature":""}',
        MslError.MSL_PARSE_ERROR,
    )


def test_empty_headerdata(server: MslContext) -> None:
    wire = b'{"entityauthdata":{"scheme":"NONE","authdata":{"identity":"a"}},"headerdata":"","signature":""}'
    fails(server, wire, MslError.HEADER_DATA_MISSING)


def test_no_entity_auth_and_no_master_token(server: MslContext) -> None:
    fails(server, b'{"headerdata":"AAAA","signature":""}', MslError.MESSAGE_ENTITY_NOT_FOUND)


def _psk_header(client: MslContext, fields: dict[str, Any]) -> bytes:
    ead = client.get_entity_auth_data()
    assert ead is not None
    crypto = client.entity_auth_factories[ead.scheme].crypto_context(client, ead)
    return raw_header(crypto, fields, entity_auth_data=ead)


@pytest.mark.parametrize("message_id", [2**53 + 1, -1])
def test_message_id_out_of_range(server: MslContext, client: MslContext, message_id: int) -> None:
    wire = _psk_header(client, {"messageid": message_id, "renewable": False})
    exc = fails(server, wire, MslError.MESSAGE_ID_OUT_OF_RANGE)
    assert exc.message_id is None
    assert exc.entity_auth_data == PskEntityAuthData("client1")


def test_missing_renewable_is_parse_error(server: MslContext, client: MslContext) -> None:
    exc = fails(server, _psk_header(client, {"messageid": 5}), MslError.MSL_PARSE_ERROR)
    assert exc.message_id == 5


def test_handshake_without_key_request_data(server: MslContext, client: MslContext) -> None:
    wire = _psk_header(client, {"messageid": 7, "renewable": True, "handshake": True})
    exc = fails(server, wire, MslError.HANDSHAKE_DATA_MISSING)
    assert exc.message_id == 7


def test_handshake_not_renewable(server: MslContext, client: MslContext) -> None:
    krd = [SymmetricWrappedRequest("PSK")]
    wire = _psk_header(client, {"messageid": 7, "renewable": False, "handshake": True, "keyrequestdata": krd})
    fails(server, wire, MslError.HANDSHAKE_DATA_MISSING)


def test_non_replayable_without_master_token(server: MslContext, client: MslContext) -> None:
    wire = _psk_header(client, {"messageid": 8, "renewable": False, "nonreplayableid": 3})
    exc = fails(server, wire, MslError.INCOMPLETE_NONREPLAYABLE_MESSAGE)
    assert exc.message_id == 8


def test_user_auth_data_in_unencrypted_header(clock: FixedClock, server: MslContext) -> None:
    client = client_ctx(clock, stem=RSA_CLIENT_KEYS)
    ead = client.get_entity_auth_data()
    assert ead is not None and not ead.encrypts
    user = keyfile(SERVER_KEYS).users[0]
    uad = EmailPasswordAuthData(user.email, user.password)
    # The builder refuses it ...
    with pytest.raises(MslException) as info:
        build_request(client, use_entity_auth=True, user_auth_data=uad)
    assert info.value.error is MslError.UNENCRYPTED_MESSAGE_WITH_USERAUTHDATA
    # ... and so does the reader when a peer sends it anyway.
    crypto = client.entity_auth_factories["RSA"].crypto_context(client, ead)
    wire = raw_header(crypto, {"messageid": 9, "renewable": False, "userauthdata": uad}, entity_auth_data=ead)
    exc = fails(server, wire, MslError.UNENCRYPTED_MESSAGE_WITH_USERAUTHDATA)
    assert exc.message_id == 9
    assert exc.user_auth_data is not None


# -- issuer checks -----------------------------------------------------------------------------


def test_expired_master_token_not_renewable(session: Session) -> None:
    session.clock.advance(8 * DAY_MS)
    header, wire = session_message(session)
    exc = issuer_fails(session.server, wire, MslError.MESSAGE_EXPIRED_NOT_RENEWABLE)
    check_decorated(exc, header)
    assert exc.response_code is ResponseCode.EXPIRED


def test_expired_master_token_without_key_request_data(session: Session) -> None:
    session.clock.advance(8 * DAY_MS)
    header, wire = session_message(session, renewable=True)
    exc = issuer_fails(session.server, wire, MslError.MESSAGE_EXPIRED_NO_KEYREQUEST_DATA)
    check_decorated(exc, header)


def test_expired_master_token_with_key_request_data_is_accepted(session: Session) -> None:
    session.clock.advance(8 * DAY_MS)
    _, wire = session_message(session, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")])
    received = receive(session.server, wire)
    check_events(session.server, received.events)
    assert received.data == b"0123456789" * 50


def test_revoked_identity(session: Session) -> None:
    factory = session.server.token_factory
    assert factory is not None
    run(factory.revoke_identity("client1"))
    header, wire = session_message(session)
    exc = issuer_fails(session.server, wire, MslError.MASTERTOKEN_IDENTITY_REVOKED)
    check_decorated(exc, header)


def test_user_id_token_from_other_keys(session: Session) -> None:
    """A user ID token issued under another server's MSL keys cannot be decrypted here."""
    foreign = other_server(session.clock)
    uit = UserIdToken.create(
        foreign.msl_crypto,
        renewal_window_ms=T0 + DAY_MS,
        expiration_ms=T0 + 2 * DAY_MS,
        master_token=session.master_token,
        serial_number=42,
        user=MslUser("mallory"),
        clock=session.clock,
    )
    header, wire = session_message(session, user_id_token=uit)
    exc = issuer_fails(session.server, wire, MslError.USERIDTOKEN_NOT_DECRYPTED)
    check_decorated(exc, header)
    assert exc.user_id_token is not None and exc.user_id_token.serial_number == 42


def test_user_id_token_bound_to_another_master_token(session: Session) -> None:
    server, client = session.server, session.client
    # A second session of the same client gives another master token.
    other_client = client_ctx(session.clock)
    other_token, _, _ = establish(server, other_client, [SymmetricWrappedRequest("PSK")])
    _, other_wire = session_message(Session(session.clock, server, other_client, other_token, session.crypto))
    other_server_token = receive(server, other_wire).header_event.header.master_token
    assert other_server_token is not None
    uit = server.token_factory.create_user_id_token(server, MslUser("alice"), other_server_token)  # type: ignore[union-attr]
    # The builder refuses to put it under the first session's token ...
    with pytest.raises(MslException) as info:
        build_request(client, user_id_token=uit)
    assert info.value.error is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH
    # ... and the reader refuses a header assembled by hand.
    wire = raw_header(
        session.crypto,
        {"messageid": 11, "renewable": False, "useridtoken": uit, "sender": "client1"},
        master_token=session.master_token,
    )
    exc = fails(server, wire, MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
    assert exc.message_id == 11
    assert exc.master_token == session.master_token


def test_non_replayable_message_replayed(session: Session) -> None:
    header, wire = session_message(session, non_replayable=True)
    assert header.data.non_replayable_id == 1
    received = receive(session.server, wire)
    check_events(session.server, received.events)
    assert received.data
    exc = issuer_fails(session.server, wire, MslError.MESSAGE_REPLAYED)
    check_decorated(exc, header)
    # The next ID is accepted.
    _, wire2 = session_message(session, non_replayable=True)
    received = receive(session.server, wire2)
    check_events(session.server, received.events)
    assert received.data


def test_reader_leaves_issuer_checks_to_the_engine(session: Session) -> None:
    """The sans-IO reader never consults the token state: a revoked identity's replayed
    message still reads; only the engine's issuer checks refuse it."""
    factory = session.server.token_factory
    assert factory is not None
    _, wire = session_message(session, non_replayable=True)
    check_events(session.server, receive(session.server, wire).events)
    run(factory.revoke_identity("client1"))
    assert receive(session.server, wire).data == b"0123456789" * 50
    issuer_fails(session.server, wire, MslError.MASTERTOKEN_IDENTITY_REVOKED)


# -- payload chunks --------------------------------------------------------------------------


def test_tampered_chunk(session: Session) -> None:
    header, wire = session_message(session)
    parts = objects(wire)
    parts[2] = flip(parts[2], "payload")
    exc = fails(session.server, b"".join(parts), MslError.PAYLOAD_VERIFICATION_FAILED)
    check_decorated(exc, header)


@pytest.mark.parametrize(
    "order",
    [[0, 2, 1, 3, 4, 5, 6], [0, 1, 1, 2, 3, 4, 5, 6], [0, 1, 3, 4, 5, 6]],
    ids=["reordered", "repeated", "missing"],
)
def test_chunk_sequence(session: Session, order: list[int]) -> None:
    header, wire = session_message(session)
    parts = objects(wire)
    assert len(parts) == 7  # header, five full chunks, the empty end-of-message chunk
    exc = fails(session.server, b"".join(parts[i] for i in order), MslError.PAYLOAD_SEQUENCE_NUMBER_MISMATCH)
    check_decorated(exc, header)


def test_chunk_from_another_message(session: Session) -> None:
    header, wire = session_message(session)
    _, other = session_message(session)
    parts, other_parts = objects(wire), objects(other)
    exc = fails(session.server, parts[0] + other_parts[1], MslError.PAYLOAD_MESSAGE_ID_MISMATCH)
    check_decorated(exc, header)


def test_non_final_empty_chunk(session: Session) -> None:
    header, _ = session_message(session)
    chunk = encode_chunk(session.crypto, 1, header.message_id, b"")
    exc = fails(session.server, header.encode() + chunk, MslError.PAYLOAD_DATA_MISSING)
    check_decorated(exc, header)


def test_final_empty_chunk_is_fine(session: Session) -> None:
    header, _ = session_message(session)
    chunk = encode_chunk(session.crypto, 1, header.message_id, b"", end_of_message=True)
    assert receive(session.server, header.encode() + chunk).reader.done


def test_decompression_bomb(session: Session) -> None:
    header, _ = session_message(session)
    chunk = encode_chunk(
        session.crypto,
        1,
        header.message_id,
        bytes(4 << 20),
        end_of_message=True,
        compression=CompressionAlgorithm.GZIP,
        max_ratio=None,
    )
    assert len(chunk) < 40_000
    exc = fails(session.server, header.encode() + chunk, MslError.UNCOMPRESSION_ERROR)
    check_decorated(exc, header)


def test_chunk_data_size_limit(session: Session) -> None:
    """Even under the deflate ratio, max_chunk_data_size caps the inflated size."""
    header, _ = session_message(session)
    data = os.urandom(2000) * 20  # compresses ~20x
    chunk = encode_chunk(
        session.crypto, 1, header.message_id, data, end_of_message=True, compression=CompressionAlgorithm.GZIP
    )
    limits = ReaderLimits(max_chunk_data_size=10_000)
    fails(session.server, header.encode() + chunk, MslError.UNCOMPRESSION_ERROR, limits=limits)
    assert receive(session.server, header.encode() + chunk).data == data


# -- framing -----------------------------------------------------------------------------------


def test_oversized_header(session: Session) -> None:
    _, wire = session_message(session)
    header_len = len(objects(wire)[0])
    fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_header_size=header_len - 1))
    assert receive(session.server, wire, limits=ReaderLimits(max_header_size=header_len)).reader.done


def test_oversized_chunk(session: Session) -> None:
    header, wire = session_message(session)
    chunk_len = max(len(p) for p in objects(wire)[1:])
    exc = fails(session.server, wire, MslError.MSL_PARSE_ERROR, limits=ReaderLimits(max_chunk_size=chunk_len - 1))
    assert exc.message_id == header.message_id or exc.message_id is None
    assert receive(session.server, wire, limits=ReaderLimits(max_chunk_size=chunk_len)).reader.done


def test_empty_stream(server: MslContext) -> None:
    fails(server, b"", MslError.MSL_PARSE_ERROR)


def test_truncated_header(session: Session) -> None:
    _, wire = session_message(session)
    header = objects(wire)[0]
    fails(session.server, header[:-3], MslError.MSL_PARSE_ERROR)


def test_truncated_chunk(session: Session) -> None:
    header, wire = session_message(session)
    exc = fails(session.server, wire[:-3], MslError.MSL_PARSE_ERROR)
    check_decorated(exc, header)


def test_truncated_chunk_without_end_of_stream_waits(session: Session) -> None:
    _, wire = session_message(session)
    result = receive(session.server, wire[:-3], end=False)
    assert not result.reader.done
    assert len(result.chunks) == 5


def test_garbage_is_parse_error(server: MslContext) -> None:
    fails(server, b"not json at all", MslError.MSL_PARSE_ERROR)


def test_data_after_end_single_message(session: Session) -> None:
    header, wire = session_message(session)
    exc = fails(session.server, wire + b'{"next":1}', MslError.MESSAGE_FORMAT_ERROR, single_message=True)
    check_decorated(exc, header)
    # Fed later, after the message ended, it fails too.
    reader = MessageReader(session.server, single_message=True)
    reader.feed(wire)
    assert reader.done
    with pytest.raises(MslException) as info:
        reader.feed(b" {")
    assert info.value.error is MslError.MESSAGE_FORMAT_ERROR


def test_data_after_end_is_kept(session: Session) -> None:
    _, wire = session_message(session)
    _, wire2 = session_message(session, data=b"second")
    reader = MessageReader(session.server)
    reader.feed(wire + wire2[:100])
    assert reader.done
    reader.feed(wire2[100:])
    rest = reader.remaining()
    assert rest == wire2
    assert receive(session.server, rest).data == b"second"


def test_header_only_message_followed_by_next(session: Session) -> None:
    header, _ = session_message(session)
    _, wire2 = session_message(session, data=b"second")
    result = receive(session.server, header.encode() + wire2, end=False)
    assert result.reader.done and not result.chunks
    assert result.reader.remaining() == wire2


# -- error headers ------------------------------------------------------------------------------


def _error_wire(server: MslContext, errordata_fields: dict[str, Any] | None = None) -> bytes:
    if errordata_fields is None:
        return build_error_response(server, MslError.MESSAGE_REPLAYED, 41).encode()
    ead = server.get_entity_auth_data()
    assert ead is not None
    crypto = server.entity_auth_factories[ead.scheme].crypto_context(server, ead)
    errordata = crypto.encrypt(encode(errordata_fields))
    return encode({"entityauthdata": ead, "errordata": errordata, "signature": crypto.sign(errordata)})


def test_error_header_reads(server: MslContext, client: MslContext) -> None:
    result = receive(client, _error_wire(server))
    error = result.error_event.error_header
    assert error.message_id == 42
    assert error.error is MslError.MESSAGE_REPLAYED
    assert error.error_code is MslError.MESSAGE_REPLAYED.response_code
    assert result.reader.done


def test_tampered_error_header(server: MslContext, client: MslContext) -> None:
    exc = fails(client, flip(_error_wire(server), "errordata"), MslError.MESSAGE_VERIFICATION_FAILED)
    assert exc.entity_auth_data is not None and exc.entity_auth_data.identity == "server1"


def test_error_header_negative_internal_code(server: MslContext, client: MslContext) -> None:
    wire = _error_wire(server, {"messageid": 3, "errorcode": 1, "internalcode": -5})
    fails(client, wire, MslError.INTERNAL_CODE_NEGATIVE)


def test_error_header_unknown_error_code_reads_as_fail(server: MslContext, client: MslContext) -> None:
    wire = _error_wire(server, {"messageid": 3, "errorcode": 99, "errormsg": "??"})
    error = receive(client, wire).error_event.error_header
    assert error.error_code is ResponseCode.FAIL
    assert error.raw_error_code == 99
    assert error.error_message == "??"


def test_error_header_message_id_out_of_range(server: MslContext, client: MslContext) -> None:
    fails(client, _error_wire(server, {"messageid": 2**53 + 1, "errorcode": 1}), MslError.MESSAGE_ID_OUT_OF_RANGE)


def test_error_header_without_entity_auth(client: MslContext) -> None:
    fails(client, b'{"errordata":"AAAA","signature":""}', MslError.MESSAGE_ENTITY_NOT_FOUND)


def test_error_header_followed_by_data_single_message(server: MslContext, client: MslContext) -> None:
    fails(client, _error_wire(server) + b"{}", MslError.MESSAGE_FORMAT_ERROR, single_message=True)


def test_remaining_is_stable(session: Session) -> None:
    """remaining() reports the bytes after the message; asking twice must not lose them."""
    _, wire = session_message(session)
    _, wire2 = session_message(session, data=b"second")
    reader = MessageReader(session.server)
    reader.feed(wire + wire2)
    assert reader.remaining() == wire2
    assert reader.remaining() == wire2
