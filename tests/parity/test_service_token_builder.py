"""Service token builder cases the reference probes (MessageServiceTokenBuilderTest).

missile has no separate service token builder: the client engine picks the service
tokens of a request from its store and the message options, and the server's response
builder picks those of a reply. The reference's builder refuses (returns false for) a
token whose binding does not match the message's token set; missile's equivalents
leave such tokens out, so they are never sent. A trusted-network header never carries
a peer token set (the reference raises an internal error when one is added)."""

from __future__ import annotations

import pytest

from engine.harness import make_pair, run
from messages.conftest import encode_message, receive
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode, encode
from missile.engine.options import MessageOptions
from missile.engine.server import Reply, Request
from missile.errors import MslInternalException
from missile.messages.builder import build_request
from missile.tokens import ServiceToken
from missile.tokens.user import MslUser

ST_CRYPTO = SymmetricCryptoContext("st", bytes(range(16)), bytes(range(32)))


def test_client_sends_only_tokens_bound_to_its_token_set() -> None:
    """{mismatched,no}{MasterToken,UserIdToken}AddPrimaryServiceToken (client side)."""
    seen: list[set[str]] = []

    async def handler(request: Request) -> Reply:
        seen.append({t.name for t in request.service_tokens})
        return Reply(b"ok")

    async def go() -> None:
        p = make_pair(handler=handler, server_kwargs={"service_token_contexts": {"": ST_CRYPTO}})
        await p.client.request(b"first")  # establishes a master token
        held = p.store.get_master_token()
        assert held is not None
        issuer_view = p.server_ctx.parse_master_token(decode(encode(held)))
        foreign = p.factory.create_master_token(p.server_ctx, "someone-else", bytes(16), bytes(32))
        uit = p.factory.create_user_id_token(p.server_ctx, MslUser("nobody"), issuer_view)
        tokens = [
            ServiceToken.create("unbound", b"u", ST_CRYPTO),
            ServiceToken.create("mine", b"m", ST_CRYPTO, master_token=held),
            ServiceToken.create("foreign", b"f", ST_CRYPTO, master_token=foreign),
            ServiceToken.create("user", b"x", ST_CRYPTO, master_token=held, user_id_token=uit),
        ]
        options = MessageOptions(service_tokens=tokens, service_token_contexts={"": ST_CRYPTO})
        await p.client.request(b"second", options)
        assert seen[-1] == {"unbound", "mine"}

    run(go())


def test_reply_tokens_bound_elsewhere_are_not_sent() -> None:
    """{mismatched,no}MasterTokenAdd*ServiceToken (server side): the client only ever
    receives and stores the tokens that match the response's token set."""

    async def handler(request: Request) -> Reply:
        mt = request.header.master_token
        if mt is None:
            return Reply(b"ok")  # the first request: no master token yet
        return Reply(
            b"ok",
            service_tokens=[
                ServiceToken.create("unbound", b"u", ST_CRYPTO),
                ServiceToken.create("mine", b"m", ST_CRYPTO, master_token=mt),
                ServiceToken.create("foreign", b"f", ST_CRYPTO, master_token=foreign_token[0]),
            ],
        )

    foreign_token: list[object] = []

    async def go() -> None:
        p = make_pair(handler=handler)
        foreign_token.append(p.factory.create_master_token(p.server_ctx, "someone-else", bytes(16), bytes(32)))
        options = MessageOptions(service_token_contexts={"": ST_CRYPTO})
        await p.client.request(b"first", options)
        await p.client.request(b"second", options)
        held = p.store.get_master_token()
        assert {t.name for t in p.store.get_service_tokens(held, None)} == {"unbound", "mine"}

    run(go())


def test_trusted_network_never_sends_peer_tokens(server: MslContext, client: MslContext) -> None:
    """trustedNetAddPeerServiceToken / trustedNetAdd{Unbound,MasterBound,UserBound}PeerServiceToken:
    outside a peer-to-peer network peer tokens are a programming error, never silently dropped."""
    assert not client.peer_to_peer
    peer_token = ServiceToken.create("peer", b"p", ST_CRYPTO)
    with pytest.raises(MslInternalException):
        build_request(client, use_entity_auth=True, peer_service_tokens=[peer_token])
    request = build_request(client, use_entity_auth=True)
    received = receive(server, encode_message(request, b"x")).header_event.header
    assert received.data.peer_service_tokens == ()
    assert received.data.peer_master_token is None
