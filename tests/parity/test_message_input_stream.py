"""Message input stream failure cases the reference probes (MessageInputStreamTest) that
the reader tests do not already cover: a revoked entity or user ID token, a key
response the receiver cannot process, and the peer-to-peer variants of the expiry and
non-replayable checks."""

from __future__ import annotations

import pytest

from issuer_helpers import check_events, check_fails, run
from messages.conftest import DAY_MS, Session, encode_message, objects, receive
from missile.authutils import ConfigurableAuthenticationUtils
from missile.clock import FixedClock
from missile.context import MslContext
from missile.errors import MslError, MslException
from missile.keyx.diffie_hellman import DiffieHellmanRequest
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages.builder import build_request, build_response
from missile.tokens.factory import TokenFactory

from ._helpers import entity_header, header_fields, issue_user_id_token, peers, read_fails, reconfigured


def issuer_fails(ctx: MslContext, wire: bytes, error: MslError) -> MslException:
    """The reader accepts ``wire`` and the engine's issuer checks refuse it with ``error``
    (the reference's MessageInputStream made both in one step)."""
    return check_fails(ctx, receive(ctx, wire).events, error)


# -- revocation --------------------------------------------------------------------------------


def test_revoked_entity(server: MslContext, client: MslContext) -> None:
    """revokedEntity: entity authentication data of a revoked entity."""
    utils = ConfigurableAuthenticationUtils()
    utils.revoke("client1")
    server = reconfigured(server, auth_utils=utils)
    request = build_request(client, use_entity_auth=True)
    exc = read_fails(server, encode_message(request, b"x"), MslError.ENTITY_REVOKED)
    assert exc.entity_auth_data is not None and exc.entity_auth_data.identity == "client1"


def test_revoked_user_id_token(session: Session) -> None:
    """revokedUserIdToken."""
    uit = issue_user_id_token(session)
    factory = session.server.token_factory
    assert isinstance(factory, TokenFactory)
    request = build_request(session.client, user_id_token=uit)
    received = receive(session.server, encode_message(request, b"x"))
    check_events(session.server, received.events)  # accepted before revocation
    assert received.data == b"x"
    run(factory.revoke_user_id_token(uit.serial_number))
    request = build_request(session.client, user_id_token=uit)
    exc = issuer_fails(session.server, encode_message(request, b"x"), MslError.USERIDTOKEN_REVOKED)
    assert exc.message_id == request.header.message_id
    assert exc.user_id_token == uit


def test_revoked_user(session: Session) -> None:
    """revokedUserIdToken, by user rather than by token."""
    uit = issue_user_id_token(session)
    factory = session.server.token_factory
    assert isinstance(factory, TokenFactory)
    run(factory.revoke_user("user1@foo.com"))
    request = build_request(session.client, user_id_token=uit)
    issuer_fails(session.server, encode_message(request, b"x"), MslError.USERIDTOKEN_REVOKED)


# -- key responses the requester cannot process ----------------------------------------------------


def _key_response(server: MslContext, client: MslContext) -> bytes:
    request = build_request(
        client, use_entity_auth=True, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")]
    )
    at_server = receive(server, encode_message(request, b"x")).header_event.header
    response = build_response(server, at_server)
    assert response.key_exchange is not None
    return encode_message(response, b"reply")


def test_key_response_scheme_without_factory(server: MslContext, client: MslContext) -> None:
    """unsupportedKeyExchangeScheme."""
    wire = _key_response(server, client)
    factories = [f for f in client.key_exchange_factories if f.scheme != "SYMMETRIC_WRAPPED"]
    client = reconfigured(client, key_exchange_factories=factories)
    read_fails(client, wire, MslError.KEYX_FACTORY_NOT_FOUND, key_request_data=[SymmetricWrappedRequest("PSK")])


def test_key_response_without_key_request(server: MslContext, client: MslContext) -> None:
    """missingKeyRequestData: the receiver sent no key request data."""
    read_fails(client, _key_response(server, client), MslError.KEYX_RESPONSE_REQUEST_MISMATCH)


@pytest.mark.parametrize(
    "request_data",
    [SymmetricWrappedRequest("SESSION"), DiffieHellmanRequest("default1", 5)],
    ids=["same-scheme-other-key-id", "other-scheme"],
)
def test_key_response_to_another_request(
    server: MslContext, client: MslContext, request_data: SymmetricWrappedRequest | DiffieHellmanRequest
) -> None:
    """incompatibleKeyRequestData."""
    wire = _key_response(server, client)
    read_fails(client, wire, MslError.KEYX_RESPONSE_REQUEST_MISMATCH, key_request_data=[request_data])


# -- peer-to-peer ----------------------------------------------------------------------------------


def test_expired_peer_message_not_renewable(clock: FixedClock) -> None:
    """expiredNotRenewablePeerMessage."""
    p = peers(clock)
    clock.advance(p.primary.expiration * 1000 - clock() + DAY_MS)
    exc = issuer_fails(p.bob, p.header(header_fields(41)), MslError.MESSAGE_EXPIRED_NOT_RENEWABLE)
    assert exc.message_id == 41
    assert exc.master_token == p.primary


def test_expired_peer_message_without_key_request_data(clock: FixedClock) -> None:
    """expiredNoKeyRequestDataPeerMessage."""
    p = peers(clock)
    clock.advance(p.primary.expiration * 1000 - clock() + DAY_MS)
    wire = p.header(header_fields(42, renewable=True))
    issuer_fails(p.bob, wire, MslError.MESSAGE_EXPIRED_NO_KEYREQUEST_DATA)


def test_non_replayable_peer_message_without_master_token(clock: FixedClock) -> None:
    """nonReplayableNoMasterTokenPeerMessage."""
    p = peers(clock)
    wire = entity_header(p.alice, header_fields(43, nonreplayableid=1))
    read_fails(p.bob, wire, MslError.INCOMPLETE_NONREPLAYABLE_MESSAGE)


def test_replayed_peer_message(clock: FixedClock) -> None:
    """replayedPeerMessage."""
    p = peers(clock)
    wire = p.header(header_fields(44, nonreplayableid=1))
    check_events(p.bob, receive(p.bob, wire).events)
    exc = issuer_fails(p.bob, wire, MslError.MESSAGE_REPLAYED)
    assert exc.message_id == 44


# -- truncation ----------------------------------------------------------------------------------------


def test_stream_cut_before_end_of_message_chunk(session: Session) -> None:
    """A network attacker dropping the final chunk(s): once chunks have begun, a stream
    ending without the end-of-message chunk is MESSAGE_FORMAT_ERROR, never a short message."""
    request = build_request(session.client)
    wire = encode_message(request, b"0123456789" * 50, chunk_size=100, compression=None)
    parts = objects(wire)
    assert len(parts) == 7  # header, five data chunks, the end-of-message chunk
    for keep in range(2, len(parts)):
        exc = read_fails(session.server, b"".join(parts[:keep]), MslError.MESSAGE_FORMAT_ERROR)
        assert exc.message_id == request.header.message_id
