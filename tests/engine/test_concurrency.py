"""Concurrent requests through one client (control.md §3.2, §11): the renewal lock
lets one request establish or renew keys; the others share the session."""

from __future__ import annotations

import asyncio

from missile.context import MslContext
from missile.engine.options import MessageOptions
from missile.errors import MslError
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken

from .harness import DAY_MS, HOUR_MS, Pair, make_pair, run

N = 100


def _keyx_requests(p: Pair) -> int:
    return sum(1 for s in p.seen if s.request is not None and s.request.data.key_request_data)


def _assert_consistent(p: Pair) -> None:
    mt = p.store.get_master_token()
    assert mt is not None
    assert len(p.store._contexts) == 1
    assert p.store.get_crypto_context(mt) is not None


def test_concurrent_requests_share_one_master_token() -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        await p.client.request(b"setup")
        mt = p.store.get_master_token()
        responses = await asyncio.gather(*(p.client.request(f"r{i}".encode()) for i in range(N)))
        assert [r.payload for r in responses] == [f"echo r{i} (client1/-)".encode() for i in range(N)]
        assert all(r.messages == 2 and r.header.data.key_response_data is None for r in responses)
        assert p.transport.connections == N + 1
        assert _keyx_requests(p) == 1  # only the setup
        assert all(s.request is not None and s.request.master_token == mt for s in p.seen[1:])
        assert p.store.get_master_token() == mt
        _assert_consistent(p)

    run(go())


class ReferenceTokenFactory(TokenFactory):
    """The reference MockTokenFactory's policy: a master token whose serial number was
    renewed meanwhile is still accepted for ordinary messages (only renewing it again is
    refused, MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC)."""

    def is_master_token_revoked(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        error = super().is_master_token_revoked(ctx, master_token)
        return None if error is MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC else error

    def is_master_token_renewable(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        return super().is_master_token_revoked(ctx, master_token)


async def _renew_concurrently(factory: TokenFactory) -> None:
    p = make_pair("PSK", "SYMMETRIC_WRAPPED", token_factory=factory)
    await p.client.request(b"setup")
    old = p.store.get_master_token()
    assert old is not None
    p.clock.advance(HOUR_MS + 1000)
    responses = await asyncio.gather(*(p.client.request(f"r{i}".encode()) for i in range(N)))
    assert [r.payload for r in responses] == [f"echo r{i} (client1/-)".encode() for i in range(N)]
    renewals = [r for r in responses if r.header.data.key_response_data is not None]
    assert len(renewals) == 1
    assert all(r.messages == 2 for r in responses)
    new = p.store.get_master_token()
    assert new is not None and new == renewals[0].master_token
    assert new.serial_number == old.serial_number and new.sequence_number == old.sequence_number + 1
    assert _keyx_requests(p) == 2  # setup + the one renewal
    _assert_consistent(p)


def test_concurrent_requests_in_renewal_window_renew_once() -> None:
    run(_renew_concurrently(ReferenceTokenFactory(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=DAY_MS)))


def test_concurrent_requests_in_renewal_window_default_factory() -> None:
    run(_renew_concurrently(TokenFactory(master_token_renewal_ms=HOUR_MS, master_token_expiration_ms=DAY_MS)))


def test_concurrent_first_requests_establish_keys_once() -> None:
    """No session yet and data that must be encrypted by a client whose entity scheme
    cannot: every request needs keys; the lock holder gets them, the rest reuse them."""

    async def go() -> None:
        p = make_pair("RSA", "ASYMMETRIC_WRAPPED/JWE_RSA")
        responses = await asyncio.gather(*(p.client.request(f"r{i}".encode()) for i in range(N)))
        assert [r.payload for r in responses] == [f"echo r{i} (rsaclient1/-)".encode() for i in range(N)]
        handshakes = [s for s in p.seen if s.handshake]
        assert len(handshakes) == 1
        assert _keyx_requests(p) == 1
        mt = p.store.get_master_token()
        data_requests = [s.request for s in p.seen if not s.handshake]
        assert len(data_requests) == N
        assert all(r is not None and r.master_token == mt for r in data_requests)
        _assert_consistent(p)

    run(go())


def test_concurrent_first_requests_of_psk_client() -> None:
    """A PSK client can encrypt without a session: one request carries key request
    data, the others go out protected by PSK at once; all succeed."""

    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", server_options=MessageOptions(encrypted=False))
        responses = await asyncio.gather(*(p.client.request(f"r{i}".encode()) for i in range(N)))
        assert [r.payload for r in responses] == [f"echo r{i} (client1/-)".encode() for i in range(N)]
        assert sum(1 for r in responses if r.header.data.key_response_data is not None) == 1
        assert _keyx_requests(p) == 1
        _assert_consistent(p)

    run(go())


def test_concurrent_non_replayable_requests_get_distinct_ids() -> None:
    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        await p.client.request(b"setup")
        options = MessageOptions(non_replayable=True)
        responses = await asyncio.gather(*(p.client.request(f"n{i}".encode(), options) for i in range(20)))
        assert len(responses) == 20
        ids = [s.request.data.non_replayable_id for s in p.seen[1:] if s.request is not None]
        assert len(set(ids)) == len(ids)
        assert len(p.handled) - 1 >= 20  # a resend after REPLAYED runs the handler again

    run(go())
