"""Helpers shared by the parity tests: crafting protected headers and chunks by hand
(bypassing the builders' sender checks, as a hostile peer would) and asserting the
exact MslError a failure carries."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from messages.conftest import Session, receive
from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode, encode
from missile.entityauth.base import EntityAuthData
from missile.entityauth.psk import PskEntityAuthData, PskEntityAuthFactory
from missile.entityauth.stores import InMemoryKeySetStore
from missile.errors import MslError, MslException
from missile.keyx.psk_lookup import StaticPskWrapKeyLookup
from missile.keyx.symmetric_wrapped import SymmetricWrappedExchange
from missile.stores.memory import InMemoryStore
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken

Absent = object()
"""A field value meaning "remove this field"."""


def raises(error: MslError, fn: Callable[..., Any], *args: Any, **kw: Any) -> MslException:
    """Calling ``fn`` raises an MslException carrying exactly ``error``."""
    with pytest.raises(MslException) as info:
        fn(*args, **kw)
    assert info.value.error is error, f"{info.value.error} != {error}: {info.value}"
    return info.value


def read_fails(ctx: MslContext, wire: bytes, error: MslError, **kw: Any) -> MslException:
    """Reading ``wire`` as one whole message raises ``error``."""
    return raises(error, receive, ctx, wire, **kw)


def reconfigured(ctx: MslContext, **changes: Any) -> MslContext:
    """A context like ``ctx`` with configuration ``changes`` (the configuration is frozen,
    so a test wanting another one builds a new context), sharing its store and wrap keys."""
    config = dataclasses.replace(ctx.config, **changes)
    return MslContext.from_config(config, store=ctx.store, wrap_repository=ctx.wrap_repository)


def without(factories: Mapping[str, Any], scheme: str) -> dict[str, Any]:
    """``factories`` but the one for ``scheme``."""
    return {name: factory for name, factory in factories.items() if name != scheme}


def mutate(fields: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for key, value in changes.items():
        if value is Absent:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def protected(
    crypto: CryptoContext,
    fields: dict[str, Any],
    *,
    master_token: MasterToken | None = None,
    entity_auth_data: EntityAuthData | None = None,
    outer: dict[str, Any] | None = None,
) -> bytes:
    """A header whose header data is ``fields``, encrypted and signed with ``crypto``;
    ``outer`` overrides (or, with :data:`Absent`, removes) keys of the outer object."""
    headerdata = crypto.encrypt(encode(fields))
    obj: dict[str, Any] = {
        "mastertoken": master_token,
        "entityauthdata": entity_auth_data,
        "headerdata": headerdata,
        "signature": crypto.sign(headerdata),
    }
    obj = mutate({k: v for k, v in obj.items() if v is not None}, outer or {})
    return encode(obj)


def header_fields(message_id: int = 5, **extra: Any) -> dict[str, Any]:
    """Minimal valid header data."""
    return {"sender": "client1", "timestamp": 1735689660, "messageid": message_id, "renewable": False, **extra}


def session_header(session: Session, fields: dict[str, Any], **kw: Any) -> bytes:
    """A header protected by the session's master token."""
    return protected(session.crypto, fields, master_token=session.master_token, **kw)


def entity_header(ctx: MslContext, fields: dict[str, Any], **kw: Any) -> bytes:
    """A header protected by ``ctx``'s own entity authentication data."""
    ead = ctx.get_entity_auth_data()
    assert ead is not None
    crypto = ctx.entity_auth_factories[ead.scheme].crypto_context(ctx, ead)
    return protected(crypto, fields, entity_auth_data=ead, **kw)


def chunk(crypto: CryptoContext, fields: dict[str, Any], *, outer: dict[str, Any] | None = None) -> bytes:
    """A payload chunk whose plaintext is ``fields``."""
    payload = crypto.encrypt(json.dumps(fields).encode())
    return encode(mutate({"payload": payload, "signature": crypto.sign(payload)}, outer or {}))


def server_master_token(session: Session) -> MasterToken:
    """The session's master token as its issuer sees it (verified and decrypted)."""
    token = session.server.parse_master_token(decode(encode(session.master_token)))
    assert token.decrypted
    return token


def issue_user_id_token(session: Session, user: str = "user1@foo.com") -> UserIdToken:
    """A user ID token the server issues under the session's master token."""
    factory = session.server.token_factory
    assert factory is not None
    return factory.create_user_id_token(session.server, MslUser(user), server_master_token(session))


# -- peer-to-peer ----------------------------------------------------------------------------


@dataclass
class Peers:
    """Two peers sharing PSK keys; ``bob`` receives what ``alice`` sends."""

    clock: FixedClock
    alice: MslContext
    bob: MslContext
    primary: MasterToken
    """Issued by bob to alice: protects alice's headers (bob can open it)."""
    crypto: CryptoContext
    """The session context of ``primary``."""
    peer: MasterToken
    """Issued by alice to bob: alice's headers carry it as the peer master token."""

    def other_peer_token(self) -> MasterToken:
        factory = self.alice.token_factory
        assert factory is not None
        return factory.create_master_token(self.alice, "bob", os.urandom(16), os.urandom(32))

    def peer_user_id_token(self, master_token: MasterToken | None = None) -> UserIdToken:
        factory = self.alice.token_factory
        assert factory is not None
        return factory.create_user_id_token(self.alice, MslUser("carol"), master_token or self.peer)

    def header(self, fields: dict[str, Any]) -> bytes:
        return protected(self.crypto, fields, master_token=self.primary)


def peers(clock: FixedClock) -> Peers:
    keys = InMemoryKeySetStore()
    for name in ("alice", "bob"):
        keys.add(name, os.urandom(16), os.urandom(32))

    def peer(identity: str) -> MslContext:
        return MslContext(
            msl_crypto=SymmetricCryptoContext(f"{identity}-msl", os.urandom(16), os.urandom(32)),
            entity_auth_data=PskEntityAuthData(identity),
            entity_auth_factories={"PSK": PskEntityAuthFactory(keys)},
            key_exchange_factories=[SymmetricWrappedExchange(StaticPskWrapKeyLookup({}))],
            token_factory=TokenFactory(),
            store=InMemoryStore(),
            clock=clock,
            peer_to_peer=True,
        )

    alice, bob = peer("alice"), peer("bob")
    assert alice.token_factory is not None and bob.token_factory is not None
    primary = bob.token_factory.create_master_token(bob, "alice", os.urandom(16), os.urandom(32))
    peer_token = alice.token_factory.create_master_token(alice, "bob", os.urandom(16), os.urandom(32))
    return Peers(clock, alice, bob, primary, bob.session_crypto_context(primary), peer_token)
