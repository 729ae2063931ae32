"""Message builder failure cases the reference probes (MessageBuilderSuite) beyond
tests/messages/test_builder.py: identifier arithmetic out of range, requests carrying
tokens bound elsewhere, and key exchange a responder cannot perform."""

from __future__ import annotations

import pytest

from messages.conftest import Session, encode_message, receive
from missile.context import MslContext
from missile.encoding import MAX_LONG_VALUE, next_id, previous_id
from missile.errors import MslError, MslInternalException
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages.builder import build_request, build_response, exchange_keys
from missile.tokens import ServiceToken

from ._helpers import issue_user_id_token, raises, reconfigured, server_master_token


@pytest.mark.parametrize("value", [-1, MAX_LONG_VALUE + 1])
def test_message_id_arithmetic_out_of_range(value: int) -> None:
    """incrementNegativeMessageId / incrementTooLargeMessageId / decrement*."""
    with pytest.raises(MslInternalException):
        next_id(value)
    with pytest.raises(MslInternalException):
        previous_id(value)


@pytest.mark.parametrize("message_id", [-1, MAX_LONG_VALUE + 1])
def test_request_message_id_out_of_range(client: MslContext, message_id: int) -> None:
    """negativeMessageId / tooLargeMessageId (setMessageId)."""
    with pytest.raises(MslInternalException):
        build_request(client, use_entity_auth=True, message_id=message_id)


@pytest.mark.parametrize("message_id", [-1, MAX_LONG_VALUE + 1])
def test_response_message_id_out_of_range(session: Session, message_id: int) -> None:
    """negativeMessageId / tooLargeMessageId (response)."""
    header = receive(session.server, encode_message(build_request(session.client))).header_event.header
    with pytest.raises(MslInternalException):
        build_response(session.server, header, message_id=message_id)


def test_request_service_token_bindings(session: Session, client: MslContext) -> None:
    """{mismatched,null}{MasterToken,UserIdToken}AddServiceToken: the reference refuses the
    token when it is added; missile refuses the header that would carry it."""
    factory = session.server.token_factory
    assert factory is not None
    other_mt = factory.create_master_token(session.server, "someone-else", bytes(16), bytes(32))
    uit = issue_user_id_token(session)
    other_uit = issue_user_id_token(session, "user2@foo.com")
    mt_bound = ServiceToken.create("m", b"x", session.crypto, master_token=session.master_token)
    other_bound = ServiceToken.create("o", b"x", session.crypto, master_token=other_mt)
    user_bound = ServiceToken.create(
        "u", b"x", session.crypto, master_token=session.master_token, user_id_token=other_uit
    )
    # No master token (entity authentication) for a master-token-bound token.
    raises(
        MslError.MESSAGE_SERVICETOKEN_MISMATCH, build_request, client, use_entity_auth=True, service_tokens=[mt_bound]
    )
    # Bound to another master token.
    raises(MslError.MESSAGE_SERVICETOKEN_MISMATCH, build_request, session.client, service_tokens=[other_bound])
    # Bound to a user ID token the message does not carry, or another one.
    raises(MslError.MESSAGE_SERVICETOKEN_MISMATCH, build_request, session.client, service_tokens=[user_bound])
    raises(
        MslError.MESSAGE_SERVICETOKEN_MISMATCH,
        build_request,
        session.client,
        user_id_token=uit,
        service_tokens=[user_bound],
    )
    # Correctly bound, all are accepted.
    ok = build_request(session.client, user_id_token=other_uit, service_tokens=[mt_bound, user_bound])
    assert {t.name for t in ok.header.data.service_tokens} == {"m", "u"}


def test_request_user_id_token_without_master_token_is_dropped(session: Session, client: MslContext) -> None:
    """setUserNoMasterToken: a request under entity authentication never carries a user ID token."""
    request = build_request(client, use_entity_auth=True, user_id_token=issue_user_id_token(session))
    assert request.header.data.user_id_token is None


def _renewal_request(session: Session) -> object:
    session.clock.advance(24 * 3600 * 1000 + 1000)  # inside the renewal window
    request = build_request(session.client, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")])
    return receive(session.server, encode_message(request)).header_event.header


def test_key_exchange_scheme_without_factory_renewing(session: Session) -> None:
    """unsupportedKeyExchangeRenewMasterToken."""
    header = _renewal_request(session)
    factories = [f for f in session.server.key_exchange_factories if f.scheme != "SYMMETRIC_WRAPPED"]
    server = reconfigured(session.server, key_exchange_factories=factories)
    raises(MslError.KEYX_FACTORY_NOT_FOUND, exchange_keys, server, header)


def test_key_exchange_scheme_without_factory_entity_auth(server: MslContext, client: MslContext) -> None:
    """unsupportedKeyExchangeEntityAuthData."""
    request = build_request(
        client, use_entity_auth=True, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")]
    )
    header = receive(server, encode_message(request)).header_event.header
    factories = [f for f in server.key_exchange_factories if f.scheme != "SYMMETRIC_WRAPPED"]
    server = reconfigured(server, key_exchange_factories=factories)
    raises(MslError.KEYX_FACTORY_NOT_FOUND, build_response, server, header)


def test_key_exchange_with_untrusted_master_token(session: Session) -> None:
    """untrustedMasterTokenRenewMasterToken: renewal needs a token this server can open."""
    import dataclasses

    header = _renewal_request(session)
    assert header.master_token is not None
    untrusted = dataclasses.replace(header, master_token=session.master_token)  # the client's opaque copy
    assert not session.master_token.decrypted
    exc = raises(MslError.MASTERTOKEN_UNTRUSTED, exchange_keys, session.server, untrusted)
    assert exc.master_token == session.master_token


def test_response_drops_service_tokens_bound_to_the_replaced_master_token(session: Session) -> None:
    """nullKeyxAddServiceToken / keyxAddMismatchedServiceToken: the reference refuses such
    tokens; missile's response builder leaves them out, so they are never sent."""
    header = _renewal_request(session)
    factory = session.server.token_factory
    assert factory is not None
    other_mt = factory.create_master_token(session.server, "someone-else", bytes(16), bytes(32))
    foreign = ServiceToken.create("f", b"x", session.crypto, master_token=other_mt)
    own = ServiceToken.create("o", b"x", session.crypto, master_token=server_master_token(session))
    response = build_response(session.server, header, service_tokens=[foreign, own])  # type: ignore[arg-type]
    assert response.key_exchange is not None
    assert [t.name for t in response.header.data.service_tokens] == ["o"]
