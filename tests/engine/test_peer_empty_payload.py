"""An empty request payload between peers reaches the handler.

A renewable message with key request data and one empty end-of-message chunk is the
legacy handshake form (messages.md §9): a responder answers it with keys and never hands
it to the application. So :meth:`MslPeer.request` follows the client's rule for an empty
payload: when keys are needed (no master token, or an expired one) a real handshake goes
first and the empty request follows; an optional renewal waits for a request with data.
"""

from __future__ import annotations

import asyncio

from missile.clock import FixedClock
from missile.engine.server import Request

from .test_peer_io import HOUR, TIMEOUT_S, _connected


def test_empty_payload_reaches_the_handler_fresh_renewable_and_expired() -> None:
    seen: list[Request] = []

    async def go() -> None:
        clock = FixedClock(1_800_000_000_000)
        alice, stream, serving = _connected(clock, seen)

        # No master token yet: a handshake establishes one, then the empty request goes.
        first = await alice.request(stream, b"")
        assert first.payload == b"got "
        assert [r.payload for r in seen] == [b""]
        assert seen[0].header.master_token is not None and not seen[0].header.data.key_request_data
        assert first.messages > 3  # the handshake round came first
        established = alice.primary
        assert established is not None

        # In the renewal window renewing is optional: the empty request carries no key
        # requests (it would read as a handshake); the next request with data renews.
        clock.advance(HOUR + 1000)
        second = await alice.request(stream, b"")
        assert second.payload == b"got " and seen[1].payload == b""
        assert not seen[1].header.data.key_request_data and alice.primary == established
        third = await alice.request(stream, b"data")
        assert third.payload == b"got data" and seen[2].header.data.key_request_data
        assert third.header.data.key_response_data is not None
        renewed = alice.primary
        assert renewed is not None and renewed != established

        # Expired: keys are mandatory, so a handshake goes first again.
        clock.advance(25 * HOUR)
        fourth = await alice.request(stream, b"")
        assert fourth.payload == b"got " and seen[3].payload == b""
        assert not seen[3].header.data.key_request_data
        assert alice.primary is not None and alice.primary != renewed

        await stream.finish()
        await serving

    asyncio.run(asyncio.wait_for(go(), TIMEOUT_S))
