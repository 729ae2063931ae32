"""Peer-to-peer exchanges in both directions over one in-memory channel."""

from __future__ import annotations

import asyncio
import os

from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.engine.peer import MslPeer
from missile.engine.server import Reply, Request
from missile.engine.transport import channel_pair
from missile.entityauth.psk import PskEntityAuthData, PskEntityAuthFactory
from missile.entityauth.stores import InMemoryKeySetStore, KeySet
from missile.keyx.psk_lookup import StaticPskWrapKeyLookup
from missile.keyx.symmetric_wrapped import SymmetricWrappedExchange, SymmetricWrappedRequest
from missile.stores.memory import InMemoryStore
from missile.tokens.factory import TokenFactory

HOUR = 3_600_000


def _peer(identity: str, keysets: dict[str, KeySet], clock: FixedClock, tag: str) -> MslPeer:
    store = InMemoryKeySetStore()
    for name, keyset in keysets.items():
        store.add(name, keyset.encryption_key, keyset.hmac_key, keyset.wrap_key)
    lookup = StaticPskWrapKeyLookup({name: ks.wrap_key for name, ks in keysets.items()})
    ctx = MslContext(
        msl_crypto=SymmetricCryptoContext(f"{identity}-msl", os.urandom(16), os.urandom(32), os.urandom(16)),
        entity_auth_data=PskEntityAuthData(identity),
        entity_auth_factories={"PSK": PskEntityAuthFactory(store)},
        key_exchange_factories=[SymmetricWrappedExchange(lookup)],
        token_factory=TokenFactory(master_token_renewal_ms=HOUR, master_token_expiration_ms=24 * HOUR),
        store=InMemoryStore(),
        clock=clock,
        peer_to_peer=True,
    )

    async def handler(request: Request) -> Reply:
        return Reply(data=f"{tag} got ".encode() + request.payload)

    return MslPeer(ctx, handler=handler, key_request_factory=lambda: [SymmetricWrappedRequest("PSK")])


def _keysets() -> dict[str, KeySet]:
    return {name: KeySet(os.urandom(16), os.urandom(32)) for name in ("alice", "bob")}


def test_peer_to_peer_both_directions() -> None:
    async def go() -> None:
        clock = FixedClock(1_800_000_000_000)
        keysets = _keysets()
        alice = _peer("alice", keysets, clock, "A")
        bob = _peer("bob", keysets, clock, "B")

        # Alice initiates on one connection; Bob serves it.
        a_end, b_end = channel_pair()
        serving = asyncio.ensure_future(bob.serve_channel(b_end))
        first = await alice.request(a_end, b"hello bob")
        assert first.payload == b"B got hello bob"
        assert first.header.data.key_response_data is not None
        second = await alice.request(a_end, b"again")
        assert second.payload == b"B got again"
        # Both now hold a master token issued by the other (Bob took his from Alice's
        # key-exchange answer, sent on the channel right after the first reply).
        assert alice.primary is not None and bob.primary is not None
        assert alice.issued is not None and bob.issued is not None
        assert alice.primary == bob.issued and bob.primary == alice.issued
        assert second.header.master_token == alice.issued  # Bob's primary: the token Alice issued
        assert second.header.data.peer_master_token == alice.primary
        assert second.header.data.key_response_data is None
        await a_end.finish()
        await serving

        # Bob initiates on another connection; Alice serves it with the same tokens.
        b2, a2 = channel_pair()
        serving = asyncio.ensure_future(alice.serve_channel(a2))
        reply = await bob.request(b2, b"hello alice")
        assert reply.payload == b"A got hello alice"
        assert reply.header.data.key_response_data is None
        assert reply.header.master_token == bob.issued
        await b2.finish()
        await serving

    asyncio.run(go())


def test_peer_renews_the_token_it_holds() -> None:
    async def go() -> None:
        clock = FixedClock(1_800_000_000_000)
        keysets = _keysets()
        alice = _peer("alice", keysets, clock, "A")
        bob = _peer("bob", keysets, clock, "B")
        a_end, b_end = channel_pair()
        serving = asyncio.ensure_future(bob.serve_channel(b_end))
        await alice.request(a_end, b"one")
        before = alice.primary
        assert before is not None
        clock.advance(2 * HOUR)  # inside the renewal window, before expiry
        renewed = await alice.request(a_end, b"two")
        assert renewed.payload == b"B got two"
        krd = renewed.header.data.key_response_data
        assert krd is not None
        after = alice.primary
        assert after is not None
        assert after.serial_number == before.serial_number
        assert after.sequence_number == before.sequence_number + 1
        await a_end.finish()
        await serving

    asyncio.run(go())
