"""Normal flows between the client and server engines (control.md §3, §4, §10).

Every entity authentication scheme a client can use, with every key exchange scheme it
can use, establishes a session and reuses it; then token renewal, re-keying after
expiry, user ID token issue and renewal, service tokens and the handshake.
"""

from __future__ import annotations

import pytest

from missile.clock import FixedClock
from missile.engine.options import MessageOptions
from missile.engine.server import Reply, Request
from missile.keyx.repository import InMemoryWrapCryptoContextRepository
from missile.tokens.factory import TokenFactory
from missile.tokens.service import ServiceToken
from missile.userauth.email_password import EmailPasswordAuthData

from .harness import (
    DAY_MS,
    ENTITY_SCHEMES,
    HOUR_MS,
    KEYX_SCHEMES,
    PSK_ONLY_KEYX,
    T0,
    USER1,
    SymmetricCryptoContext,
    make_pair,
    run,
)

# Entities whose data cannot be encrypted by their own scheme: a handshake comes first.
HANDSHAKE_ENTITIES = {"RSA", "ECC", "X509", "NONE", "NONE_SUFFIXED"}
IDENTITIES = {
    "PSK": "client1",
    "PSK_PROFILE": "client1-tv",
    "RSA": "rsaclient1",
    "ECC": "eccclient1",
    "X509": "CN=x509client1,O=missile",
    "NONE": "anon-device-001",
    "NONE_SUFFIXED": "anon-root.42",
}

COMBINATIONS = [
    pytest.param(entity, keyx, id=f"{entity}-{keyx}")
    for entity in ENTITY_SCHEMES
    for keyx in KEYX_SCHEMES
    if keyx not in PSK_ONLY_KEYX or entity == "PSK"
]


@pytest.mark.parametrize(("entity", "keyx"), COMBINATIONS)
def test_every_entity_and_key_exchange_scheme(entity: str, keyx: str) -> None:
    async def go() -> None:
        p = make_pair(entity, keyx)
        first = await p.client.request(b"hello")
        identity = IDENTITIES[entity]
        assert first.payload == f"echo hello ({identity}/-)".encode()
        handshake = entity in HANDSHAKE_ENTITIES
        # A handshake (header only, no data) is answered first, then the data is resent.
        assert first.messages == (4 if handshake else 2)
        assert p.transport.connections == (2 if handshake else 1)
        assert [s.handshake for s in p.seen] == ([True, False] if handshake else [False])
        opening = p.seen[0].request
        assert opening is not None and opening.master_token is None
        assert opening.entity_auth_data is not None and opening.entity_auth_data.scheme == entity
        assert [k.scheme for k in opening.data.key_request_data] == [keyx.split("/")[0]]
        mt = p.store.get_master_token()
        assert mt is not None and mt.sequence_number == 0
        assert p.store.get_crypto_context(mt) is not None
        if handshake:
            # The data went under the new master token, in response to the handshake response.
            data_request = p.seen[1].request
            assert data_request is not None and data_request.master_token == mt
            assert data_request.message_id == opening.message_id + 2
            assert first.header.data.key_response_data is None
        else:
            assert first.header.data.key_response_data is not None
            assert first.master_token == mt

        second = await p.client.request(b"again")
        assert second.payload == f"echo again ({identity}/-)".encode()
        assert second.messages == 2
        assert p.transport.connections == (3 if handshake else 2)
        assert second.header.data.key_response_data is None
        request = p.seen[-1].request
        assert request is not None and request.master_token == mt and not request.data.key_request_data
        assert p.store.get_master_token() == mt

    run(go())


@pytest.mark.parametrize("keyx", ["JWE_LADDER", "JWK_LADDER"])
def test_ladder_uses_psk_then_wrap_on_renewal(keyx: str) -> None:
    async def go() -> None:
        p = make_pair("PSK", keyx)
        repo = p.client_ctx.wrap_repository
        assert isinstance(repo, InMemoryWrapCryptoContextRepository)
        await p.client.request(b"one")
        first_mt = p.store.get_master_token()
        assert first_mt is not None
        first_req = p.seen[0].request
        assert first_req is not None
        assert str(first_req.data.key_request_data[0].mechanism) == "PSK"  # type: ignore[attr-defined]
        (wrapdata,) = repo.wrapdata()

        p.clock.advance(DAY_MS + 1000)  # inside the renewal window
        renewed = await p.client.request(b"two")
        assert renewed.payload == b"echo two (client1/-)"
        req = p.seen[-1].request
        assert req is not None and req.master_token == first_mt
        (krd,) = req.data.key_request_data
        assert str(krd.mechanism) == "WRAP" and krd.wrapdata == wrapdata  # type: ignore[attr-defined]
        new_mt = renewed.master_token
        assert renewed.header.data.key_response_data is not None and new_mt is not None
        assert new_mt.serial_number == first_mt.serial_number
        assert new_mt.sequence_number == first_mt.sequence_number + 1
        # The new wrapping key replaced the old one.
        (new_wrapdata,) = repo.wrapdata()
        assert new_wrapdata != wrapdata
        assert p.store.get_master_token() == new_mt
        assert p.store.get_crypto_context(first_mt) is None
        third = await p.client.request(b"three")
        assert third.header.data.key_response_data is None and third.messages == 2

    run(go())


def test_master_token_renewal_inside_window() -> None:
    async def go() -> None:
        factory = TokenFactory(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=DAY_MS)
        p = make_pair("PSK", "ASYMMETRIC_WRAPPED/JWK_RSA", token_factory=factory)
        await p.client.request(b"a")
        mt = p.store.get_master_token()
        assert mt is not None
        # Not yet renewable: no key request data.
        await p.client.request(b"b")
        req = p.seen[-1].request
        assert req is not None and not req.data.key_request_data and not req.data.renewable

        p.clock.advance(HOUR_MS + 1000)
        before = p.transport.connections
        response = await p.client.request(b"c")
        assert response.payload == b"echo c (client1/-)"
        assert p.transport.connections == before + 1 and response.messages == 2
        req = p.seen[-1].request
        assert req is not None and req.master_token == mt and req.data.renewable
        assert [k.scheme for k in req.data.key_request_data] == ["ASYMMETRIC_WRAPPED"]
        renewed = response.master_token
        assert response.header.data.key_response_data is not None and renewed is not None
        assert renewed.serial_number == mt.serial_number
        assert renewed.sequence_number == mt.sequence_number + 1
        assert renewed.renewal_window > mt.renewal_window
        assert p.store.get_master_token() == renewed
        assert p.store.get_crypto_context(renewed) is not None
        assert p.store.get_crypto_context(mt) is None
        # The renewed session is used as is.
        after = await p.client.request(b"d")
        req = p.seen[-1].request
        assert req is not None and req.master_token == renewed and not req.data.key_request_data
        assert after.header.data.key_response_data is None

    run(go())


def test_expired_master_token_known_to_the_client_is_renewed() -> None:
    async def go() -> None:
        factory = TokenFactory(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=2 * HOUR_MS)
        p = make_pair("PSK", "DIFFIE_HELLMAN", token_factory=factory)
        await p.client.request(b"a")
        mt = p.store.get_master_token()
        assert mt is not None
        p.clock.advance(3 * HOUR_MS)
        response = await p.client.request(b"b")
        assert response.payload == b"echo b (client1/-)"
        assert response.messages == 2
        req = p.seen[-1].request
        assert req is not None and req.master_token == mt and req.data.renewable and req.data.key_request_data
        renewed = p.store.get_master_token()
        assert renewed is not None and renewed.serial_number == mt.serial_number
        assert renewed.sequence_number == mt.sequence_number + 1
        assert not renewed.is_expired(p.clock())

    run(go())


def test_expired_master_token_unknown_to_the_client_gets_expired_then_renews() -> None:
    """The client's clock lags: it sends a non-renewable message with an expired token."""

    async def go() -> None:
        server_clock = FixedClock(T0)
        client_clock = FixedClock(T0)
        factory = TokenFactory(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=2 * HOUR_MS)
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", clock=server_clock, client_clock=client_clock, token_factory=factory)
        await p.client.request(b"a")
        mt = p.store.get_master_token()
        assert mt is not None
        server_clock.advance(3 * HOUR_MS)
        response = await p.client.request(b"b")
        assert response.payload == b"echo b (client1/-)"
        assert response.messages == 4
        failed, resent = p.seen[-2], p.seen[-1]
        assert failed.request is not None and not failed.request.data.renewable
        assert not failed.request.data.key_request_data
        from .harness import error_of

        error = error_of(failed, p.client_ctx)
        assert error is not None and error.error_code.name == "EXPIRED"
        assert error.message_id == failed.request.message_id + 1
        assert resent.request is not None and resent.request.message_id == error.message_id + 1
        assert resent.request.master_token == mt
        assert resent.request.data.renewable and resent.request.data.key_request_data
        renewed = p.store.get_master_token()
        assert renewed is not None and renewed.serial_number == mt.serial_number
        assert renewed.sequence_number == mt.sequence_number + 1

    run(go())


def test_user_id_token_issue_and_renewal() -> None:
    async def go() -> None:
        factory = TokenFactory(user_id_token_renewal_ms=HOUR_MS, user_id_token_expiration_ms=DAY_MS)
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", token_factory=factory)
        options = MessageOptions(user_id="alice", user_auth=EmailPasswordAuthData(*USER1))
        first = await p.client.request(b"hi", options)
        assert first.payload == b"echo hi (client1/user1@foo.com)"
        req = p.seen[-1].request
        # PSK encrypts: the user credentials go in the very first message.
        assert req is not None and req.data.user_auth_data is not None
        uit = p.store.get_user_id_token("alice")
        mt = p.store.get_master_token()
        assert uit is not None and mt is not None and uit.is_bound_to(mt)
        assert first.user_id_token == uit

        second = await p.client.request(b"again", options)
        assert second.payload == b"echo again (client1/user1@foo.com)"
        req = p.seen[-1].request
        assert req is not None and req.data.user_auth_data is None and req.data.user_id_token == uit
        assert not req.data.renewable

        p.clock.advance(HOUR_MS + 1000)  # user ID token renewable, master token not
        third = await p.client.request(b"later", options)
        assert third.payload == b"echo later (client1/user1@foo.com)"
        req = p.seen[-1].request
        assert req is not None and req.data.renewable and req.data.user_id_token == uit
        assert not req.data.key_request_data
        renewed = p.store.get_user_id_token("alice")
        assert renewed is not None and third.user_id_token is not None
        assert renewed.serial_number == uit.serial_number
        assert renewed.renewal_window > uit.renewal_window
        assert renewed.is_bound_to(mt)

    run(go())


def test_service_tokens_set_returned_and_deleted() -> None:
    st_crypto = SymmetricCryptoContext("st", bytes(range(16)), bytes(range(32)))
    seen_tokens: list[dict[str, bytes | None]] = []

    async def handler(request: Request) -> Reply:
        seen_tokens.append({t.name: t.data for t in request.service_tokens})
        mt = request.header.master_token
        if request.payload == b"set":
            return Reply(b"ok", service_tokens=[ServiceToken.create("pref", b"dark-mode", st_crypto)])
        if request.payload == b"bind" and mt is not None:
            return Reply(b"ok", service_tokens=[ServiceToken.create("session", b"s1", st_crypto, master_token=mt)])
        if request.payload == b"delete":
            return Reply(
                b"ok",
                service_tokens=[
                    ServiceToken.create("pref", b"", st_crypto, encrypted=False),
                    ServiceToken.create("session", b"", st_crypto, master_token=mt, encrypted=False),
                ],
            )
        return Reply(b"ok")

    async def go() -> None:
        p = make_pair(
            "PSK", "SYMMETRIC_WRAPPED", handler=handler, server_kwargs={"service_token_contexts": {"": st_crypto}}
        )
        options = MessageOptions(service_token_contexts={"pref": st_crypto, "session": st_crypto})
        await p.client.request(b"set", options)
        stored = {t.name: t for t in p.store.get_service_tokens(p.store.get_master_token(), None)}
        assert set(stored) == {"pref"} and stored["pref"].data == b"dark-mode"

        await p.client.request(b"bind", options)
        assert seen_tokens[-1] == {"pref": b"dark-mode"}
        mt = p.store.get_master_token()
        stored = {t.name: t for t in p.store.get_service_tokens(mt, None)}
        assert set(stored) == {"pref", "session"}
        assert mt is not None and stored["session"].mt_serial_number == mt.serial_number

        await p.client.request(b"plain", options)
        assert seen_tokens[-1] == {"pref": b"dark-mode", "session": b"s1"}

        await p.client.request(b"delete", options)
        assert p.store.get_service_tokens(mt, None) == []
        await p.client.request(b"plain", options)
        assert seen_tokens[-1] == {}

    run(go())


def test_handshake_for_none_client() -> None:
    async def go() -> None:
        p = make_pair("NONE", "ASYMMETRIC_WRAPPED/JWE_RSA")
        response = await p.client.request(b"secret")
        assert response.payload == b"echo secret (anon-device-001/-)"
        handshake, data = p.seen
        assert handshake.handshake and handshake.request is not None
        assert handshake.request.is_handshake and handshake.request.data.renewable
        assert handshake.request.master_token is None and handshake.request.data.key_request_data
        # The automatic handshake response carries the keys and no application data.
        assert p.handled == [p.handled[0]] and p.handled[0].payload == b"secret"
        mt = p.store.get_master_token()
        assert mt is not None
        assert data.request is not None and not data.handshake
        assert data.request.master_token == mt and data.request.entity_auth_data is None
        assert data.request.message_id == handshake.request.message_id + 2
        assert response.messages == 4 and p.transport.connections == 2

    run(go())
