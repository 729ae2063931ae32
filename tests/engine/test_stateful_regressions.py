"""Focused regressions for protocol bugs the stateful test (test_stateful.py) found."""

from __future__ import annotations

import asyncio

from missile.engine.server import Reply, Request
from missile.errors import MslError, MslException

from .harness import DAY_MS, make_pair, run


def test_keyx_required_on_a_master_token_request_drops_that_token() -> None:
    """KEYX_REQUIRED in answer to a request under master token A: the resend
    re-authenticates the entity and obtains B (a new serial number), which invalidates A
    at the server. A must not stay in the store: with a higher sequence number than B it
    would be the store's "newest" and the next request would use the dead token."""

    async def go() -> None:
        refuse = [False]

        async def handler(request: Request) -> Reply:
            if refuse[0]:
                refuse[0] = False
                raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION)
            return Reply(b"ok")

        p = make_pair("PSK", "SYMMETRIC_WRAPPED", handler=handler)
        await p.client.request(b"a")
        p.clock.advance(DAY_MS + 1000)
        await p.client.request(b"b")  # renewal: sequence number 1
        old = p.store.get_master_token()
        assert old is not None and old.sequence_number == 1

        refuse[0] = True
        response = await p.client.request(b"c")
        assert response.payload == b"ok" and response.messages == 4
        new = p.store.get_master_token()
        assert new is not None and new.serial_number != old.serial_number
        assert p.store.get_crypto_context(old) is None

        response = await p.client.request(b"d")
        assert response.messages == 2
        last = p.seen[-1].request
        assert last is not None and last.master_token == new

    run(go())


def test_concurrent_first_requests_leave_one_master_token() -> None:
    """Two requests from a client without a session: the first (renewable) obtains A;
    the second went out without key request data, gets KEYX_REQUIRED and re-authenticates,
    obtaining B, which invalidates A at the server. A must not stay in the store next to
    B (equal sequence numbers: either could be picked as the "newest")."""

    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        first, second = await asyncio.gather(p.client.request(b"a"), p.client.request(b"b"))
        assert first.payload.startswith(b"echo a") and second.payload.startswith(b"echo b")
        issued = [s.request.master_token for s in p.seen if s.request is not None and s.request.master_token]
        assert not issued  # both exchanges authenticated the entity
        held = list(p.store._contexts)
        assert len(held) == 1, held
        response = await p.client.request(b"c")
        assert response.messages == 2
        last = p.seen[-1].request
        assert last is not None and last.master_token == held[0]

    run(go())


def test_tokens_are_read_again_after_waiting_for_the_renewal_lock() -> None:
    """A request that finds the renewal lock free but queued behind a waiter must take
    the master token after it got the lock: while it waited, another exchange of the
    context may have deleted the token it first saw (e.g. after ENTITY_REAUTH)."""

    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED")
        await p.client.request(b"a")
        old = p.store.get_master_token()
        assert old is not None
        p.clock.advance(DAY_MS + 1000)  # renewable: the next request wants the lock
        lock = p.client_ctx.renewal_lock
        await lock.acquire()
        waiter = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        # The request starts right after the release, before the waiter wakes up: it
        # finds the lock free, but queues behind the waiter.
        request = asyncio.ensure_future(p.client.request(b"b"))
        lock.release()
        for _ in range(5):
            await asyncio.sleep(0)
        assert waiter.done() and not request.done()
        # Meanwhile another exchange of the context deletes the session.
        p.store.remove_crypto_context(old)
        lock.release()
        response = await request
        assert response.payload.startswith(b"echo b")
        sent = p.seen[-1].request
        assert sent is not None and sent.master_token is None and sent.entity_auth_data is not None

    run(go())


def test_a_master_token_being_deleted_is_not_used_for_new_requests() -> None:
    """Master token A is revoked while a request using it is still in flight, so after
    ENTITY_REAUTH A can only be deleted once that request ends (control.md §11). Until
    then A stays stored, and ties with the new B (same sequence number and expiration):
    a new request must still take B, not A (which would cost an ENTITY_REAUTH round and
    a re-authentication that invalidates B in turn)."""

    async def go() -> None:
        gate = asyncio.Event()

        async def handler(request: Request) -> Reply:
            if request.payload == b"slow":
                await gate.wait()
            return Reply(b"ok " + request.payload)

        p = make_pair("PSK", "SYMMETRIC_WRAPPED", handler=handler)
        await p.client.request(b"a")
        old = p.store.get_master_token()
        assert old is not None
        slow = asyncio.ensure_future(p.client.request(b"slow"))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not slow.done()
        await p.factory.revoke_master_token(old.serial_number)
        assert (await p.client.request(b"b")).messages == 4  # ENTITY_REAUTH, then B
        assert p.store.get_crypto_context(old) is not None  # in use: still stored

        response = await p.client.request(b"c")
        assert response.messages == 2
        sent = p.seen[-1].request
        assert sent is not None and sent.master_token is not None
        assert sent.master_token.serial_number != old.serial_number

        gate.set()
        assert (await slow).payload == b"ok slow"
        held = list(p.store._contexts)
        assert held == [sent.master_token]

    run(go())
