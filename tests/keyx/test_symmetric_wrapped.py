"""SYMMETRIC_WRAPPED (keyx.md §3)."""

from __future__ import annotations

from typing import Any

import pytest

from missile.authutils import ConfigurableAuthenticationUtils
from missile.crypto import SymmetricCryptoContext
from missile.crypto.context import CryptoContext
from missile.encoding import MslObject
from missile.errors import (
    MslCryptoException,
    MslEntityAuthException,
    MslError,
    MslKeyExchangeException,
    MslMasterTokenException,
)
from missile.keyx import (
    StaticPskWrapKeyLookup,
    SymmetricWrappedExchange,
    SymmetricWrappedKeyId,
    SymmetricWrappedRequest,
    SymmetricWrappedResponse,
)
from missile.tokens.master import MasterToken

from . import (
    CLIENT,
    StubEntityAuth,
    over_the_wire_request,
    over_the_wire_response,
    psk_lookup,
    requester,
    responder,
    run_exchange,
)

PSK = SymmetricWrappedRequest("PSK")
SESSION = SymmetricWrappedRequest("SESSION")


def test_psk_round_trip_create_and_renew() -> None:
    server, client = responder(), requester()
    first = run_exchange(server, client, PSK)
    response = first.response
    assert isinstance(response, SymmetricWrappedResponse)
    assert len(response.encryption_key) == 24 and len(response.hmac_key) == 40
    # The keys are AES-KW wrapped under Kpw.
    kpw = psk_lookup().wrap_crypto_context(CLIENT)
    assert kpw is not None and kpw.unwrap(response.encryption_key) == first.issued.encryption_key
    second = run_exchange(server, client, PSK, master_token=first.issued)
    assert (second.issued.serial_number, second.issued.sequence_number) == (first.issued.serial_number, 1)


def test_parse_and_keyid() -> None:
    server = responder()
    assert over_the_wire_request(SESSION, server) == SESSION
    with pytest.raises(MslKeyExchangeException) as info:
        SymmetricWrappedRequest.parse(MslObject({"keyid": "MGK"}), server)
    assert info.value.error is MslError.UNIDENTIFIED_KEYX_KEY_ID
    assert SymmetricWrappedKeyId.from_wire("PSK") is SymmetricWrappedKeyId.PSK


def test_psk_lookup_missing_or_unknown_identity() -> None:
    server = responder(keyx=[SymmetricWrappedExchange(None)])
    with pytest.raises(MslKeyExchangeException) as info:
        SymmetricWrappedExchange(None).generate_response(server, PSK, entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.UNSUPPORTED_KEYX_KEY_ID
    with pytest.raises(MslEntityAuthException) as ea_info:
        SymmetricWrappedExchange(psk_lookup()).generate_response(
            server, PSK, entity_auth_data=StubEntityAuth("stranger")
        )
    assert ea_info.value.error is MslError.ENTITY_NOT_FOUND


def test_session_behaves_like_the_reference() -> None:
    """SESSION: no master token -> KEYX_MASTER_TOKEN_MISSING; a session context cannot
    wrap -> WRAP_NOT_SUPPORTED (responder) / UNWRAP_NOT_SUPPORTED (requester)."""
    server, client = responder(), requester()
    factory = SymmetricWrappedExchange(psk_lookup())
    with pytest.raises(MslKeyExchangeException) as info:
        factory.generate_response(server, SESSION, entity_auth_data=StubEntityAuth())
    assert info.value.error is MslError.KEYX_MASTER_TOKEN_MISSING
    issued = run_exchange(server, client, PSK).issued
    with pytest.raises(MslCryptoException) as crypto_info:
        factory.generate_response(server, SESSION, master_token=issued)
    assert crypto_info.value.error is MslError.WRAP_NOT_SUPPORTED

    psk_result = factory.generate_response(server, PSK, entity_auth_data=StubEntityAuth())
    session_response = SymmetricWrappedResponse(psk_result.response.master_token, "SESSION", bytes(24), bytes(40))
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, SESSION, session_response, None)
    assert info.value.error is MslError.KEYX_MASTER_TOKEN_MISSING
    unverified = over_the_wire_response(psk_result.response, client).master_token
    with pytest.raises(MslMasterTokenException) as mt_info:  # client cannot open the token, no store
        factory.crypto_context(client, SESSION, session_response, unverified)
    assert mt_info.value.error is MslError.MASTERTOKEN_UNTRUSTED
    with pytest.raises(MslCryptoException) as crypto_info:
        factory.crypto_context(server, SESSION, session_response, issued)
    assert crypto_info.value.error is MslError.UNWRAP_NOT_SUPPORTED


class _WrappingStore:
    """A store whose session context can wrap (the only way SESSION works)."""

    def __init__(self, context: CryptoContext) -> None:
        self.context = context

    def get_crypto_context(self, master_token: MasterToken) -> CryptoContext | None:
        return self.context


def test_session_with_a_wrapping_store_context() -> None:
    server, client = responder(), requester()
    issued = run_exchange(server, client, PSK).issued
    shared = SymmetricCryptoContext("s", bytes(16), bytes(32), bytes(range(16)))
    store: Any = _WrappingStore(shared)
    server.store = store
    client.store = store
    renewed = run_exchange(server, client, SESSION, master_token=issued)
    response = renewed.response
    assert isinstance(response, SymmetricWrappedResponse)
    assert shared.unwrap(response.hmac_key) == renewed.issued.signature_key


def test_requester_errors() -> None:
    server, client = responder(), requester()
    factory = SymmetricWrappedExchange(psk_lookup())
    result = factory.generate_response(server, PSK, entity_auth_data=StubEntityAuth())
    response = over_the_wire_response(result.response, client)
    assert isinstance(response, SymmetricWrappedResponse)
    with pytest.raises(MslKeyExchangeException) as info:
        factory.crypto_context(client, SESSION, response, None)
    assert info.value.error is MslError.KEYX_RESPONSE_REQUEST_MISMATCH
    tampered = SymmetricWrappedResponse(
        response.master_token, "PSK", response.encryption_key[:-1] + bytes([response.encryption_key[-1] ^ 1]), b""
    )
    with pytest.raises(MslCryptoException) as crypto_info:
        factory.crypto_context(client, PSK, tampered, None)
    assert crypto_info.value.error is MslError.UNWRAP_ERROR
    other_kpw = StaticPskWrapKeyLookup({CLIENT: bytes(16)})
    with pytest.raises(MslCryptoException) as crypto_info:
        SymmetricWrappedExchange(other_kpw).crypto_context(client, PSK, response, None)
    assert crypto_info.value.error is MslError.UNWRAP_ERROR


def test_not_permitted() -> None:
    utils = ConfigurableAuthenticationUtils()
    utils.deny(CLIENT, "SYMMETRIC_WRAPPED")
    with pytest.raises(MslKeyExchangeException) as info:
        SymmetricWrappedExchange(psk_lookup()).generate_response(
            responder(auth_utils=utils), PSK, entity_auth_data=StubEntityAuth()
        )
    assert info.value.error is MslError.KEYX_INCORRECT_DATA
    assert info.value.entity_auth_data is not None
