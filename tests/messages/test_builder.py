"""Request, response and error-response builders (messages.md §5, §7; keyx.md §1.1; errors.md §3)."""

from __future__ import annotations

import os

import pytest

from issuer_helpers import check_events, run
from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MAX_LONG_VALUE
from missile.encoding.compression import CompressionAlgorithm
from missile.errors import MslError, MslException, MslMessageException
from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest
from missile.messages import MessageCapabilities
from missile.messages.builder import build_error_response, build_request, build_response, exchange_keys
from missile.messages.header import HeaderData, MessageHeader
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user import MslUser
from missile.userauth.email_password import EmailPasswordAuthData

from .conftest import DAY_MS, SERVER_KEYS, Session, encode_message, keyfile, receive


def _at_server(session: Session, **kw: object) -> MessageHeader:
    request = build_request(session.client, **kw)  # type: ignore[arg-type]
    return receive(session.server, encode_message(request, b"data")).header_event.header


# -- message IDs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("request_id", "response_id"), [(0, 1), (12345, 12346), (MAX_LONG_VALUE, 0)])
def test_response_message_id(session: Session, request_id: int, response_id: int) -> None:
    header = _at_server(session, message_id=request_id)
    assert header.message_id == request_id
    response = build_response(session.server, header)
    assert response.header.message_id == response_id
    assert receive(session.client, encode_message(response)).header_event.header.message_id == response_id


def test_request_message_id_is_random_in_range(client: MslContext) -> None:
    ids = {build_request(client, use_entity_auth=True).header.message_id for _ in range(20)}
    assert len(ids) == 20
    assert all(0 <= i <= MAX_LONG_VALUE for i in ids)


def test_response_is_not_renewable_and_uses_request_protection(server: MslContext, client: MslContext) -> None:
    request = build_request(client, use_entity_auth=True, renewable=True)
    header = receive(server, encode_message(request)).header_event.header
    response = build_response(server, header).header
    assert not response.is_renewable
    assert response.master_token is None
    assert response.entity_auth_data is not None and response.entity_auth_data.identity == "server1"


# -- capabilities -----------------------------------------------------------------------------


def test_capabilities_intersection(session: Session) -> None:
    request_caps = MessageCapabilities.of(["LZW", "GZIP"], ["fr-FR", "en-US", "de-DE"])
    header = _at_server(session, capabilities=request_caps)
    assert header.data.capabilities == request_caps
    server_caps = MessageCapabilities.of(["GZIP"], ["de-DE", "en-US", "ja-JP"])
    response = build_response(session.server, header, capabilities=server_caps)
    caps = response.header.data.capabilities
    assert caps is not None
    assert caps.compression_algos == (CompressionAlgorithm.GZIP,)
    assert set(caps.languages) == {"en-US", "de-DE"}


def test_capabilities_intersection_keeps_request_language_order(session: Session) -> None:
    """messages.md §5: languages keep the *request's* order (its most preferred first)."""
    header = _at_server(session, capabilities=MessageCapabilities.of(["GZIP"], ["fr-FR", "en-US"]))
    response = build_response(session.server, header, capabilities=MessageCapabilities.of(["GZIP"], ["en-US", "fr-FR"]))
    caps = response.header.data.capabilities
    assert caps is not None
    assert caps.languages == ("fr-FR", "en-US")


def test_no_capabilities_on_either_side(session: Session) -> None:
    header = _at_server(session, capabilities=None)
    assert header.data.capabilities is None
    assert build_response(session.server, header).header.data.capabilities is None
    header = _at_server(session)
    assert build_response(session.server, header, capabilities=None).header.data.capabilities is None


# -- key exchange -----------------------------------------------------------------------------


def test_no_key_exchange_without_renewable(server: MslContext, client: MslContext) -> None:
    # The builder drops key request data of a non-renewable request ...
    request = build_request(client, use_entity_auth=True, key_request_data=[SymmetricWrappedRequest("PSK")])
    assert request.header.data.key_request_data == ()
    # ... and a non-renewable request carrying some anyway gets no key exchange.
    ead = client.get_entity_auth_data()
    data = HeaderData(message_id=5, renewable=False, key_request_data=(SymmetricWrappedRequest("PSK"),))
    header = MessageHeader.create(client, data, entity_auth_data=ead)
    received = receive(server, header.encode()).header_event.header
    assert received.data.key_request_data
    assert exchange_keys(server, received) is None
    assert build_response(server, received).header.data.key_response_data is None


def test_no_key_exchange_without_key_request_data(server: MslContext, client: MslContext) -> None:
    request = build_request(client, use_entity_auth=True, renewable=True)
    header = receive(server, encode_message(request)).header_event.header
    assert exchange_keys(server, header) is None


def test_key_exchange_with_master_token_only_when_renewable_or_expired(session: Session) -> None:
    krd = [SymmetricWrappedRequest("PSK")]
    fresh = _at_server(session, renewable=True, key_request_data=krd)
    assert exchange_keys(session.server, fresh) is None
    session.clock.advance(DAY_MS + 1000)  # inside the renewal window
    renewable = _at_server(session, renewable=True, key_request_data=krd)
    result = exchange_keys(session.server, renewable)
    assert result is not None
    assert result.response.master_token.serial_number == session.master_token.serial_number
    assert result.response.master_token.sequence_number == 1


def test_key_exchange_with_expired_master_token(session: Session) -> None:
    session.clock.advance(8 * DAY_MS)
    expired = _at_server(session, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")])
    assert expired.master_token is not None and expired.master_token.is_expired()
    result = exchange_keys(session.server, expired)
    assert result is not None and result.response.master_token.sequence_number == 1


def test_no_key_exchange_when_issue_tokens_is_false(server: MslContext, client: MslContext) -> None:
    request = build_request(
        client, use_entity_auth=True, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")]
    )
    header = receive(server, encode_message(request)).header_event.header
    response = build_response(server, header, issue_tokens=False)
    assert response.key_exchange is None and response.header.data.key_response_data is None
    assert response.payload_crypto_context is response.header.crypto_context


# -- user ID tokens ---------------------------------------------------------------------------


def _user_auth() -> tuple[EmailPasswordAuthData, str]:
    user = keyfile(SERVER_KEYS).users[0]
    return EmailPasswordAuthData(user.email, user.password), user.user


def test_user_id_token_issued_and_bound_to_new_master_token(server: MslContext, client: MslContext) -> None:
    uad, user = _user_auth()
    krd = [SymmetricWrappedRequest("PSK")]
    request = build_request(client, use_entity_auth=True, renewable=True, key_request_data=krd, user_auth_data=uad)
    header = receive(server, encode_message(request)).header_event.header
    assert header.user == MslUser(user)
    response = build_response(server, header)
    assert response.key_exchange is not None
    new_token = response.key_exchange.response.master_token
    uit = response.header.data.user_id_token
    assert uit is not None and uit.is_bound_to(new_token)
    assert uit.user == MslUser(user)
    # The client reads it bound to the master token in the key response.
    at_client = receive(client, encode_message(response, b"hi"), key_request_data=krd)
    got = at_client.header_event.header.data.user_id_token
    assert got is not None and got.mt_serial_number == new_token.serial_number


def test_user_id_token_issued_under_existing_master_token(session: Session) -> None:
    uad, user = _user_auth()
    header = _at_server(session, user_auth_data=uad)
    response = build_response(session.server, header)
    uit = response.header.data.user_id_token
    assert uit is not None and uit.user == MslUser(user)
    assert uit.mt_serial_number == session.master_token.serial_number
    # Sent back by the client, it identifies the user.
    assert session.client.store is not None
    held = receive(session.client, encode_message(response)).header_event.header.data.user_id_token
    assert held is not None
    header2 = _at_server(session, user_id_token=held)
    assert header2.user == MslUser(user)
    assert build_response(session.server, header2).header.data.user_id_token == held


def test_no_user_id_token_without_user_auth(session: Session) -> None:
    assert build_response(session.server, _at_server(session)).header.data.user_id_token is None


# -- service tokens ----------------------------------------------------------------------------


def test_service_tokens_echoed_when_binding_matches(session: Session, clock: FixedClock) -> None:
    st_crypto = SymmetricCryptoContext("st", os.urandom(16), os.urandom(32))
    unbound = ServiceToken.create("unbound", b"u", st_crypto)
    bound = ServiceToken.create("bound", b"b", st_crypto, master_token=session.master_token)
    request = build_request(session.client, service_tokens=[unbound, bound])
    header = receive(
        session.server, encode_message(request), service_token_contexts={"unbound": st_crypto, "bound": st_crypto}
    ).header_event.header
    assert {t.name for t in header.data.service_tokens} == {"unbound", "bound"}
    # A token bound to some other master token is dropped, not sent.
    other = MasterToken.create(
        session.server.msl_crypto,
        renewal_window_ms=clock() + DAY_MS,
        expiration_ms=clock() + 2 * DAY_MS,
        sequence_number=0,
        serial_number=(session.master_token.serial_number + 1) % MAX_LONG_VALUE,
        identity="someone-else",
        encryption_key=os.urandom(16),
        signature_key=os.urandom(32),
        clock=clock,
    )
    foreign = ServiceToken.create("foreign", b"f", st_crypto, master_token=other)
    extra = ServiceToken.create("extra", b"e", st_crypto, master_token=session.master_token)
    response = build_response(session.server, header, service_tokens=[foreign, extra])
    assert {t.name for t in response.header.data.service_tokens} == {"unbound", "bound", "extra"}


def test_master_token_bound_service_tokens_dropped_after_key_exchange(session: Session) -> None:
    """A renewed master token keeps its serial number, so bound tokens still match."""
    st_crypto = SymmetricCryptoContext("st", os.urandom(16), os.urandom(32))
    bound = ServiceToken.create("bound", b"b", st_crypto, master_token=session.master_token)
    session.clock.advance(DAY_MS + 1000)
    header = _at_server(
        session, renewable=True, key_request_data=[SymmetricWrappedRequest("PSK")], service_tokens=[bound]
    )
    response = build_response(session.server, header)
    assert response.key_exchange is not None
    assert [t.name for t in response.header.data.service_tokens] == ["bound"]


# -- error responses ---------------------------------------------------------------------------


def test_error_response_message_id_and_codes(server: MslContext, client: MslContext) -> None:
    error = build_error_response(server, MslError.MESSAGE_REPLAYED, 41, user_message="try again")
    assert error.message_id == 42
    assert error.internal_code == MslError.MESSAGE_REPLAYED.internal_code
    assert error.error_message == MslError.MESSAGE_REPLAYED.message
    assert error.error_code is MslError.MESSAGE_REPLAYED.response_code
    read = receive(client, error.encode()).error_event.error_header
    assert read.message_id == 42
    assert read.internal_code == MslError.MESSAGE_REPLAYED.internal_code
    assert read.error is MslError.MESSAGE_REPLAYED
    assert read.error_message == MslError.MESSAGE_REPLAYED.message
    assert read.user_message == "try again"


def test_error_response_wraps(server: MslContext) -> None:
    assert build_error_response(server, MslError.MSL_PARSE_ERROR, MAX_LONG_VALUE).message_id == 0


def test_error_response_random_id_when_unknown(server: MslContext) -> None:
    ids = {build_error_response(server, MslError.MSL_PARSE_ERROR).message_id for _ in range(10)}
    assert len(ids) == 10 and all(0 <= i <= MAX_LONG_VALUE for i in ids)


def test_error_response_from_exception_uses_its_message_id(session: Session) -> None:
    factory = session.server.token_factory
    assert factory is not None
    run(factory.revoke_identity("client1"))
    request = build_request(session.client)
    with pytest.raises(MslException) as info:
        check_events(session.server, receive(session.server, encode_message(request, b"x")).events)
    assert info.value.message_id == request.header.message_id
    error = build_error_response(session.server, info.value)
    assert error.message_id == request.header.message_id + 1
    assert error.error is MslError.MASTERTOKEN_IDENTITY_REVOKED
    assert error.error_code is MslError.MASTERTOKEN_IDENTITY_REVOKED.response_code


def test_handshake_request_needs_key_request_data(client: MslContext) -> None:
    with pytest.raises(MslMessageException) as info:
        build_request(client, handshake=True)
    assert info.value.error is MslError.HANDSHAKE_DATA_MISSING
    built = build_request(client, handshake=True, key_request_data=[SymmetricWrappedRequest("PSK")])
    assert built.header.is_handshake and built.header.is_renewable
    assert built.header.data.non_replayable_id is None


def test_non_replayable_request_needs_master_token(client: MslContext) -> None:
    with pytest.raises(MslMessageException) as info:
        build_request(client, use_entity_auth=True, non_replayable=True)
    assert info.value.error is MslError.NONREPLAYABLE_MESSAGE_REQUIRES_MASTERTOKEN


def test_expired_user_id_token_is_renewed_even_on_a_non_renewable_request() -> None:
    """control.md §4.3: an expired user ID token issued locally is renewed in the response."""
    from missile.clock import FixedClock
    from missile.messages.builder import build_request, build_response
    from missile.tokens import MslUser
    from missile.tokens.factory import TokenFactory

    from .conftest import client_ctx, establish, server_ctx

    clock = FixedClock(1_800_000_000_000)
    server = server_ctx(clock)
    client = client_ctx(clock)
    from missile.keyx.symmetric_wrapped import SymmetricWrappedRequest

    token, _, _ = establish(server, client, [SymmetricWrappedRequest("PSK")])
    factory = server.token_factory
    assert factory is not None
    server_token = receive(server, encode_message(build_request(client), b"x")).header_event.header.master_token
    assert server_token is not None
    # A user ID token issued (with the same token keys) to expire in two seconds.
    short_lived = TokenFactory(user_id_token_renewal_ms=1000, user_id_token_expiration_ms=2000)
    uit = short_lived.create_user_id_token(server, MslUser("alice"), server_token)
    assert client.store is not None
    client.store.add_user_id_token("alice", uit)
    clock.advance(3000)  # past the user ID token's expiration, not the master token's
    request = build_request(client, user_id_token=uit, renewable=False)
    header = receive(server, encode_message(request, b"x")).header_event.header
    response = build_response(server, header)
    renewed = response.header.data.user_id_token
    assert renewed is not None and renewed.serial_number == uit.serial_number
    assert renewed.expiration > uit.expiration
    assert token.serial_number == renewed.mt_serial_number
