"""Build a ready :class:`~missile.context.MslContext` from a key file.

The key file (:mod:`missile.keyfile`) describes an entity's keys; this module turns it
into a context for its role: a **server** gets the MSL token keys, a token factory and
every scheme its keys support; a **client** gets a store holding its sessions, its
outstanding key requests and ladder wrapping keys, and a verify-nothing MSL crypto
context (it cannot open the tokens the servers issue).
"""

from __future__ import annotations

from typing import Any

from missile.clock import Clock, FixedClock, system_clock
from missile.context import CONTEXT_OPTIONS, MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric import SessionCryptoContext
from missile.encoding import decode
from missile.entityauth.config import entity_auth_from_keyfile
from missile.keyfile import KeyFile
from missile.keyx.base import KeyRequestData
from missile.keyx.config import key_exchange_from_keyfile, key_request_data_from_keyfile, wrap_repository_from_keyfile
from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.tokens.factory import TokenFactory
from missile.tokens.master import MasterToken
from missile.userauth.config import user_auth_from_keyfile

__all__ = ["context_from_keyfile", "KeyFileContext"]


class KeyFileContext:
    """A context built from a key file, with the requester's outstanding key requests."""

    def __init__(self, ctx: MslContext, key_request_data: list[KeyRequestData], keys: KeyFile) -> None:
        self.ctx = ctx
        """The context."""
        self.key_request_data = key_request_data
        """Key request data this entity sent (with private parts), from ``key_request_data``."""
        self.keys = keys
        """The key file."""


def context_from_keyfile(
    keys: KeyFile,
    *,
    role: str | None = None,
    clock: Clock | None = None,
    random: RandomSource = DEFAULT_RANDOM,
    store: MslStore | None = None,
    token_factory: TokenFactory | None = None,
    peer_to_peer: bool = False,
    **overrides: Any,
) -> KeyFileContext:
    """Build the context a key file describes (``role`` defaults to the file's).

    ``overrides`` are :class:`~missile.context.MslContext` keywords (configuration
    members, or ``wrap_repository``) replacing what the key file gives
    (``user_auth_factories=...``, ``allowed_insecure_schemes=...``); an unknown name is a
    TypeError naming it. They are given here because the configuration is frozen once the
    context exists."""
    role = role or keys.role
    if clock is None:
        clock = FixedClock(keys.time_ms) if keys.time_ms is not None else system_clock
    entity_auth_data, entity_factories = entity_auth_from_keyfile(keys)
    user_factories = user_auth_from_keyfile(keys)
    keyx_factories = key_exchange_from_keyfile(keys)
    is_server = role == "server"
    server_crypto = keys.msl_crypto_context(random) if is_server else None
    msl_crypto: CryptoContext = server_crypto if server_crypto is not None else ClientMslCryptoContext()
    if store is None and not is_server:
        store = InMemoryStore()
    if token_factory is None and (is_server or peer_to_peer):
        token_factory = TokenFactory()
    fields: dict[str, Any] = {
        "msl_crypto": msl_crypto,
        "entity_auth_data": entity_auth_data,
        "entity_auth_factories": entity_factories,
        "user_auth_factories": user_factories,
        "key_exchange_factories": keyx_factories,
        "token_factory": token_factory,
        "store": store,
        "wrap_repository": wrap_repository_from_keyfile(keys),
        "clock": clock,
        "random": random,
        "peer_to_peer": peer_to_peer,
    }
    unknown = sorted(set(overrides) - CONTEXT_OPTIONS)
    if unknown:
        raise TypeError(f"context_from_keyfile: unknown MslContext option(s) {', '.join(unknown)}")
    # An override replaces what the key file gives (e.g. user_auth_factories).
    ctx = MslContext(**{**fields, **overrides})
    if store is not None:
        for held in keys.master_tokens:
            token = MasterToken.parse(decode(held.mastertoken), ctx.msl_crypto, clock=clock)
            store.set_crypto_context(
                token,
                SessionCryptoContext(
                    held.identity or ctx.identity or None,
                    token.sequence_number,
                    held.encryption_key,
                    held.hmac_key,
                    random=random,
                ),
            )
    return KeyFileContext(ctx, key_request_data_from_keyfile(keys), keys)
