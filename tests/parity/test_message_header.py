"""Message header failure cases the reference probes (MessageHeaderTest) that the
message-layer tests do not already cover: mistyped or missing outer keys and header
data fields, missing factories, token bindings on receipt and when building, and the
peer-to-peer token set. Each asserts the MslError the reference raises; where the
reference attaches the message ID, so must missile."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from messages.conftest import Session, receive
from missile.context import MslContext
from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError, MslInternalException
from missile.messages import HeaderData, MessageHeader
from missile.tokens import ServiceToken
from missile.userauth.email_password import EmailPasswordAuthData

from ._helpers import (
    Absent,
    entity_header,
    header_fields,
    issue_user_id_token,
    peers,
    raises,
    read_fails,
    reconfigured,
    server_master_token,
    session_header,
    without,
)

# -- the outer header object -------------------------------------------------------------------


@pytest.mark.parametrize(
    "outer",
    [
        {"signature": Absent},
        {"signature": True},
        {"signature": "not base64 !"},
        {"headerdata": 7},
        {"headerdata": "not base64 !"},
        {"mastertoken": "x"},
        {"mastertoken": {"tokendata": 1, "signature": "AAAA"}},
    ],
    ids=[
        "missing-signature",
        "signature-not-binary",
        "signature-not-base64",
        "headerdata-not-binary",
        "headerdata-not-base64",
        "mastertoken-not-object",
        "mastertoken-mistyped",
    ],
)
def test_outer_object_parse_errors(session: Session, outer: dict[str, Any]) -> None:
    """missingSignature / invalidSignature / invalidHeaderData / invalidMasterToken."""
    read_fails(session.server, session_header(session, header_fields(), outer=outer), MslError.MSL_PARSE_ERROR)


def test_entity_auth_data_not_an_object(server: MslContext, client: MslContext) -> None:
    """invalidEntityAuthDataParseHeader."""
    wire = entity_header(client, header_fields(), outer={"entityauthdata": "x"})
    read_fails(server, wire, MslError.MSL_PARSE_ERROR)


def test_entity_auth_scheme_without_factory(server: MslContext, client: MslContext) -> None:
    """unsupportedEntityAuthSchemeParseHeader: a known scheme the receiver has no factory for."""
    server = reconfigured(server, entity_auth_factories=without(server.entity_auth_factories, "PSK"))
    read_fails(server, entity_header(client, header_fields()), MslError.ENTITYAUTH_FACTORY_NOT_FOUND)


def test_wrong_signature_under_entity_auth(server: MslContext, client: MslContext) -> None:
    """incorrectSignatureParseHeader: a valid signature of other bytes."""
    good = entity_header(client, header_fields())
    other = entity_header(client, header_fields(6))
    from missile.encoding import decode, encode

    obj = decode(good).to_dict()
    obj["signature"] = decode(other).to_dict()["signature"]
    exc = read_fails(server, encode(obj), MslError.MESSAGE_ENTITYDATABASED_VERIFICATION_FAILED)
    assert exc.entity_auth_data is not None


# -- header data fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": "x"},
        {"nonreplayableid": "x"},
        {"renewable": "x"},
        {"renewable": 1},
        {"handshake": "x"},
        {"capabilities": "x"},
        {"capabilities": {"compressionalgos": [1]}},
        {"keyrequestdata": "x"},
        {"keyrequestdata": ["x"]},
        {"keyrequestdata": [{"scheme": "SYMMETRIC_WRAPPED"}]},
        {"keyresponsedata": "x"},
        {"userauthdata": "x"},
        {"userauthdata": {"scheme": "EMAIL_PASSWORD"}},
        {"useridtoken": "x"},
        {"servicetokens": "x"},
        {"servicetokens": ["x"]},
        {"servicetokens": [{"tokendata": "AAAA"}]},
    ],
    ids=lambda c: "-".join(f"{k}={v!r}"[:40] for k, v in c.items()),
)
def test_mistyped_header_data_fields(session: Session, changes: dict[str, Any]) -> None:
    """invalidTimestamp, invalidNonReplayable, invalidRenewable, invalidHandshake,
    invalidCapabilities, invalidKeyRequestData(Array), invalidUserAuth,
    invalidServiceToken(s)Array: MSL_PARSE_ERROR carrying the message ID."""
    exc = read_fails(session.server, session_header(session, header_fields(77, **changes)), MslError.MSL_PARSE_ERROR)
    assert exc.message_id == 77
    assert exc.master_token == session.master_token


@pytest.mark.parametrize("message_id", [Absent, "x", True, None], ids=["missing", "string", "boolean", "null"])
def test_missing_or_mistyped_message_id(session: Session, message_id: Any) -> None:
    """missingMessageIdParseHeader / invalidMessageIdParseHeader."""
    fields = header_fields()
    if message_id is Absent:
        del fields["messageid"]
    else:
        fields["messageid"] = message_id
    exc = read_fails(session.server, session_header(session, fields), MslError.MSL_PARSE_ERROR)
    assert exc.message_id is None  # no valid message ID to attach


@pytest.mark.parametrize("message_id", [-1, MAX_LONG_VALUE + 1])
def test_message_id_out_of_range_under_master_token(session: Session, message_id: int) -> None:
    """negativeMessageIdParseHeader / tooLargeMessageIdParseHeader (master token protected)."""
    read_fails(session.server, session_header(session, header_fields(message_id)), MslError.MESSAGE_ID_OUT_OF_RANGE)


def test_missing_handshake_reads_as_false(session: Session) -> None:
    """missingHandshakeParseHeader: the reference accepts a missing flag as false."""
    fields = header_fields()
    fields.pop("handshake", None)
    header = receive(session.server, session_header(session, fields)).header_event.header
    assert header.is_handshake is False


# -- bindings on receipt ----------------------------------------------------------------------------


def test_user_id_token_without_master_token(session: Session, client: MslContext) -> None:
    """userIdTokenNullMasterTokenParseHeader: a user ID token in an entity-auth header."""
    uit = issue_user_id_token(session)
    wire = entity_header(client, header_fields(21, useridtoken=uit))
    exc = read_fails(session.server, wire, MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
    assert exc.message_id == 21


def test_service_token_bound_to_another_master_token(session: Session) -> None:
    """serviceTokenMismatchedMasterTokenParseHeader."""
    factory = session.server.token_factory
    assert factory is not None
    other = factory.create_master_token(session.server, "someone-else", bytes(16), bytes(32))
    token = ServiceToken.create("svc", b"x", session.crypto, master_token=other)
    exc = read_fails(
        session.server,
        session_header(session, header_fields(22, servicetokens=[token])),
        MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH,
    )
    assert exc.message_id == 22


def test_service_token_bound_to_absent_master_token(session: Session, client: MslContext) -> None:
    """serviceTokenMismatchedMasterTokenParseHeader, entity-auth variant: no master token at all."""
    token = ServiceToken.create("svc", b"x", session.crypto, master_token=session.master_token)
    wire = entity_header(client, header_fields(23, servicetokens=[token]))
    read_fails(session.server, wire, MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH)


def test_service_token_bound_to_another_user_id_token(session: Session) -> None:
    """serviceTokenMismatchedUserIdTokenParseHeader."""
    uit = issue_user_id_token(session)
    other = issue_user_id_token(session, "user2@foo.com")
    token = ServiceToken.create("svc", b"x", session.crypto, master_token=session.master_token, user_id_token=other)
    read_fails(
        session.server,
        session_header(session, header_fields(24, useridtoken=uit, servicetokens=[token])),
        MslError.SERVICETOKEN_USERIDTOKEN_MISMATCH,
    )
    # ... and with no user ID token in the header at all.
    read_fails(
        session.server,
        session_header(session, header_fields(24, servicetokens=[token])),
        MslError.SERVICETOKEN_USERIDTOKEN_MISMATCH,
    )


def test_user_id_token_and_user_auth_data_name_different_users(session: Session) -> None:
    """userIdTokenMismatchedUserAuthDataParseHeader."""
    from messages.conftest import SERVER_KEYS, keyfile

    users = keyfile(SERVER_KEYS).users
    uit = issue_user_id_token(session, users[0].user)
    uad = EmailPasswordAuthData(users[1].email, users[1].password)
    exc = read_fails(
        session.server,
        session_header(session, header_fields(25, useridtoken=uit, userauthdata=uad)),
        MslError.USERIDTOKEN_USERAUTH_DATA_MISMATCH,
    )
    assert exc.message_id == 25


def test_user_auth_scheme_without_factory(session: Session) -> None:
    """unsupportedUserAuthSchemeParseHeader."""
    session.server = reconfigured(
        session.server, user_auth_factories=without(session.server.user_auth_factories, "EMAIL_PASSWORD")
    )
    uad = EmailPasswordAuthData("user1@foo.com", "x")
    exc = read_fails(
        session.server,
        session_header(session, header_fields(26, userauthdata=uad)),
        MslError.USERAUTH_FACTORY_NOT_FOUND,
    )
    assert exc.message_id == 26


# -- sender constraints (MessageHeader.create) ---------------------------------------------------------


def test_create_without_master_token_or_entity_auth(client: MslContext) -> None:
    """missingBothAuthDataCtor (the reference raises an internal error; missile the
    protocol error a receiver would report)."""
    raises(MslError.MESSAGE_ENTITY_NOT_FOUND, MessageHeader.create, client, HeaderData(message_id=1))


@pytest.mark.parametrize("message_id", [-1, MAX_LONG_VALUE + 1])
def test_create_message_id_out_of_range(session: Session, message_id: int) -> None:
    """negativeMessageIdCtor / tooLargeMessageIdCtor."""
    with pytest.raises(MslInternalException):
        MessageHeader.create(session.client, HeaderData(message_id=message_id), master_token=session.master_token)


def test_create_with_untrusted_master_token(session: Session) -> None:
    """untrustedMasterTokenCtor: no stored session and the token cannot be opened."""
    assert session.client.store is not None
    session.client.store.remove_crypto_context(session.master_token)
    exc = raises(
        MslError.MASTERTOKEN_UNTRUSTED,
        MessageHeader.create,
        session.client,
        HeaderData(message_id=1),
        master_token=session.master_token,
    )
    assert exc.master_token == session.master_token


def test_create_with_entity_auth_scheme_without_factory(client: MslContext) -> None:
    """unsupportedEntityAuthSchemeCtor."""
    ead = client.get_entity_auth_data()
    client = reconfigured(client, entity_auth_factories=without(client.entity_auth_factories, "PSK"))
    raises(
        MslError.ENTITYAUTH_FACTORY_NOT_FOUND,
        MessageHeader.create,
        client,
        HeaderData(message_id=1),
        entity_auth_data=ead,
    )


def test_create_user_id_token_bindings(session: Session, client: MslContext) -> None:
    """userIdTokenNullMasterTokenCtor / userIdTokenMismatchedMasterTokenCtor."""
    uit = issue_user_id_token(session)
    data = HeaderData(message_id=1, user_id_token=uit)
    raises(
        MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH,
        MessageHeader.create,
        client,
        data,
        entity_auth_data=client.get_entity_auth_data(),
    )
    factory = session.server.token_factory
    assert factory is not None
    other = factory.create_master_token(session.server, "someone-else", bytes(16), bytes(32))
    raises(MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH, MessageHeader.create, session.server, data, master_token=other)


def test_create_service_token_bindings(session: Session) -> None:
    """serviceToken{Null,Mismatched}{MasterToken,UserIdToken}Ctor."""
    server = session.server
    mt = server_master_token(session)
    factory = server.token_factory
    assert factory is not None
    other_mt = factory.create_master_token(server, "someone-else", bytes(16), bytes(32))
    uit = issue_user_id_token(session)
    other_uit = issue_user_id_token(session, "user2@foo.com")
    mt_bound = ServiceToken.create("a", b"x", session.crypto, master_token=other_mt)
    uit_bound = ServiceToken.create("b", b"x", session.crypto, master_token=mt, user_id_token=other_uit)
    for data in (
        HeaderData(message_id=1, service_tokens=(mt_bound,)),
        HeaderData(message_id=1, user_id_token=uit, service_tokens=(uit_bound,)),
        HeaderData(message_id=1, service_tokens=(uit_bound,)),
    ):
        raises(MslError.MESSAGE_SERVICETOKEN_MISMATCH, MessageHeader.create, server, data, master_token=mt)


def test_header_data_is_immutable(session: Session) -> None:
    """immutableKeyRequestData / immutableServiceTokens / immutablePeerServiceTokens."""
    header = receive(session.server, session_header(session, header_fields())).header_event.header
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.data.service_tokens = ()  # type: ignore[misc]
    assert isinstance(header.data.key_request_data, tuple)
    assert isinstance(header.data.service_tokens, tuple)
    assert isinstance(header.data.peer_service_tokens, tuple)


# -- peer-to-peer token set ---------------------------------------------------------------------------


def test_peer_user_id_token_without_peer_master_token(clock: Any) -> None:
    """peerUserIdTokenMissingPeerMasterTokenParseHeader."""
    p = peers(clock)
    wire = p.header(header_fields(31, peeruseridtoken=p.peer_user_id_token()))
    exc = read_fails(p.bob, wire, MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
    assert exc.message_id == 31


def test_peer_user_id_token_bound_to_another_peer_master_token(clock: Any) -> None:
    """peerUserIdTokenMismatchedPeerMasterTokenParseHeader."""
    p = peers(clock)
    uit = p.peer_user_id_token(p.other_peer_token())
    wire = p.header(header_fields(32, peermastertoken=p.peer, peeruseridtoken=uit))
    read_fails(p.bob, wire, MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)


def test_peer_service_token_bindings(clock: Any) -> None:
    """peerServiceToken{Missing,Mismatched}PeerMasterToken / MismatchedPeerUserIdToken."""
    p = peers(clock)
    st_crypto = p.crypto
    bound = ServiceToken.create("p", b"x", st_crypto, master_token=p.peer)
    read_fails(
        p.bob, p.header(header_fields(33, peerservicetokens=[bound])), MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH
    )
    other = ServiceToken.create("p", b"x", st_crypto, master_token=p.other_peer_token())
    read_fails(
        p.bob,
        p.header(header_fields(33, peermastertoken=p.peer, peerservicetokens=[other])),
        MslError.SERVICETOKEN_MASTERTOKEN_MISMATCH,
    )
    uit = p.peer_user_id_token()
    other_uit = p.peer_user_id_token()
    user_bound = ServiceToken.create("u", b"x", st_crypto, master_token=p.peer, user_id_token=other_uit)
    read_fails(
        p.bob,
        p.header(header_fields(33, peermastertoken=p.peer, peeruseridtoken=uit, peerservicetokens=[user_bound])),
        MslError.SERVICETOKEN_USERIDTOKEN_MISMATCH,
    )


def test_peer_token_set_accepted_when_bound(clock: Any) -> None:
    """The positive control of the peer cases above."""
    p = peers(clock)
    uit = p.peer_user_id_token()
    token = ServiceToken.create("u", b"x", p.crypto, master_token=p.peer, user_id_token=uit)
    fields = header_fields(34, peermastertoken=p.peer, peeruseridtoken=uit, peerservicetokens=[token])
    header = receive(p.bob, p.header(fields)).header_event.header
    assert header.data.peer_master_token == p.peer
    assert header.data.peer_user_id_token == uit
    assert [t.name for t in header.data.peer_service_tokens] == ["u"]


@pytest.mark.parametrize(
    "changes",
    [
        {"peermastertoken": "x"},
        {"peeruseridtoken": "x"},
        {"peerservicetokens": "x"},
        {"peerservicetokens": ["x"]},
    ],
    ids=["peermastertoken", "peeruseridtoken", "peerservicetokens", "peerservicetokens-element"],
)
def test_mistyped_peer_fields(clock: Any, changes: dict[str, Any]) -> None:
    """invalidPeerMasterToken / invalidPeerUserIdToken / invalidPeerServiceTokens(Array)."""
    p = peers(clock)
    exc = read_fails(p.bob, p.header(header_fields(35, **changes)), MslError.MSL_PARSE_ERROR)
    assert exc.message_id == 35


def test_create_peer_bindings(clock: Any) -> None:
    """peerUserIdToken{Null,Mismatched}PeerMasterTokenCtor and
    peerServiceToken{Null,Mismatched}{MasterToken,UserIdToken}Ctor."""
    p = peers(clock)
    alice = p.alice
    assert alice.store is not None
    alice.store.set_crypto_context(p.primary, p.crypto)
    uit = p.peer_user_id_token()
    other_uit = p.peer_user_id_token()
    bound = ServiceToken.create("p", b"x", p.crypto, master_token=p.peer)
    user_bound = ServiceToken.create("u", b"x", p.crypto, master_token=p.peer, user_id_token=other_uit)
    cases: list[tuple[HeaderData, MslError]] = [
        (HeaderData(message_id=1, peer_user_id_token=uit), MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH),
        (
            HeaderData(message_id=1, peer_master_token=p.other_peer_token(), peer_user_id_token=uit),
            MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH,
        ),
        (HeaderData(message_id=1, peer_service_tokens=(bound,)), MslError.MESSAGE_SERVICETOKEN_MISMATCH),
        (
            HeaderData(message_id=1, peer_master_token=p.other_peer_token(), peer_service_tokens=(bound,)),
            MslError.MESSAGE_SERVICETOKEN_MISMATCH,
        ),
        (
            HeaderData(message_id=1, peer_master_token=p.peer, peer_service_tokens=(user_bound,)),
            MslError.MESSAGE_SERVICETOKEN_MISMATCH,
        ),
        (
            HeaderData(
                message_id=1, peer_master_token=p.peer, peer_user_id_token=uit, peer_service_tokens=(user_bound,)
            ),
            MslError.MESSAGE_SERVICETOKEN_MISMATCH,
        ),
    ]
    for data, error in cases:
        raises(error, MessageHeader.create, alice, data, master_token=p.primary)
    # The same token set correctly bound is accepted.
    good = HeaderData(
        message_id=1, peer_master_token=p.peer, peer_user_id_token=other_uit, peer_service_tokens=(user_bound,)
    )
    assert MessageHeader.create(alice, good, master_token=p.primary).data.peer_user_id_token == other_uit
