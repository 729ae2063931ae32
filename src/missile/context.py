"""The MSL context: everything one entity needs in one MSL network.

One :class:`MslContext` carries the entity's identity and entity authentication data,
the MSL crypto context (token keys), the scheme factories, the token factory (issuers),
the store (holders), authorization hooks, clock, randomness and limits. Nothing is
shared between contexts.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from missile.authutils import AuthenticationUtils, PermissiveAuthenticationUtils
from missile.clock import Clock, system_clock
from missile.crypto.context import CryptoContext
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.encoding.compression import DEFAULT_MAX_DEFLATE_RATIO
from missile.errors import MslError, MslMasterTokenException
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.encoding.mslobject import MslObject
    from missile.entityauth.base import EntityAuthData, EntityAuthFactory
    from missile.errors import ResponseCode
    from missile.keyx.base import KeyExchangeFactory
    from missile.keyx.repository import WrapCryptoContextRepository
    from missile.stores.base import MslStore
    from missile.tokens.factory import TokenFactory
    from missile.userauth.base import UserAuthFactory

__all__ = ["INSECURE_SCHEMES", "MslContext"]

INSECURE_SCHEMES = frozenset({"NONE", "NONE_SUFFIXED", "JWK_RSAES"})
"""Schemes and mechanisms a context refuses from peers unless it lists them in
:attr:`MslContext.allowed_insecure_schemes`: the entity authentication schemes NONE and
NONE_SUFFIXED (no authentication at all) and the ASYMMETRIC_WRAPPED mechanism JWK_RSAES
(RSA PKCS#1 v1.5 encryption, the padding-oracle-prone one)."""

_SESSION_CACHE_SIZE = 4096
#: Larger token data than this (real master tokens are well under 2 KiB) is not cached.
_CACHEABLE_TOKEN_SIZE = 8192
_TOKEN_CACHE_SIZE = 4096


@dataclass(eq=False)
class MslContext:
    """Configuration and state of one entity in one MSL network."""

    msl_crypto: CryptoContext
    """The MSL crypto context: the issuer's token keys, or a client's verify-nothing context."""
    entity_auth_data: EntityAuthData | None = None
    """The local entity's authentication data."""
    entity_auth_data_provider: Callable[[ResponseCode | None], EntityAuthData | None] | None = None
    """Optional callback returning (possibly new) entity auth data for a reauth code."""
    entity_auth_factories: dict[str, EntityAuthFactory] = field(default_factory=dict)
    """Entity authentication factories by scheme name."""
    user_auth_factories: dict[str, UserAuthFactory] = field(default_factory=dict)
    """User authentication factories by scheme name."""
    key_exchange_factories: list[KeyExchangeFactory] = field(default_factory=list)
    """Key exchange factories in preference order."""
    token_factory: TokenFactory | None = None
    """Issuer policy (servers and peers)."""
    store: MslStore | None = None
    """Held tokens and session keys (clients and peers)."""
    wrap_repository: WrapCryptoContextRepository | None = None
    """Ladder key exchange wrapping keys (requesters)."""
    auth_utils: AuthenticationUtils = field(default_factory=PermissiveAuthenticationUtils)
    """Entity revocation and scheme permission hooks."""
    clock: Clock = system_clock
    """Milliseconds since the epoch."""
    random: RandomSource = DEFAULT_RANDOM
    """Cryptographically secure random source."""
    peer_to_peer: bool = False
    """True in a peer-to-peer network, False in a trusted services network."""
    max_deflate_ratio: int = DEFAULT_MAX_DEFLATE_RATIO
    """Decompression cap: output at most this multiple of the compressed size."""
    allowed_insecure_schemes: frozenset[str] = frozenset()
    """Members of :data:`INSECURE_SCHEMES` this entity accepts anyway: entity auth data
    of a peer under NONE or NONE_SUFFIXED (refused otherwise with
    INCORRECT_ENTITYAUTH_DATA), key requests for JWK_RSAES (answered otherwise with
    UNSUPPORTED_KEYX_MECHANISM). Empty by default; enable one only for tests, demos or a
    closed network where the weakness is understood."""

    def allows_insecure(self, scheme: str) -> bool:
        """True when ``scheme`` is not insecure, or explicitly allowed."""
        return scheme not in INSECURE_SCHEMES or scheme in self.allowed_insecure_schemes

    def __post_init__(self) -> None:
        unknown = set(self.allowed_insecure_schemes) - INSECURE_SCHEMES
        if unknown:
            raise ValueError(f"not insecure schemes: {sorted(unknown)}")
        self.allowed_insecure_schemes = frozenset(self.allowed_insecure_schemes)
        self._sessions: OrderedDict[tuple[int, int, int, str | None], CryptoContext] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._parsed_tokens: OrderedDict[tuple[str, str], tuple[object, object, MasterToken]] = OrderedDict()
        self._renewal_lock: asyncio.Lock | None = None
        self.master_tokens_in_use: dict[MasterToken, int] = {}
        """Master tokens used by in-flight exchanges, with their counts (control.md §11)."""
        self.master_tokens_doomed: set[MasterToken] = set()
        """Master tokens to delete from the store once no exchange uses them."""

    @property
    def renewal_lock(self) -> asyncio.Lock:
        """The lock allowing one outstanding renewable message per context (control.md §3.2)."""
        with self._sessions_lock:
            if self._renewal_lock is None:
                self._renewal_lock = asyncio.Lock()
            return self._renewal_lock

    def parse_master_token(self, obj: MslObject) -> MasterToken:
        """Parse a received master token object with the MSL crypto context (cached).

        A master token arrives in every message of a session, and verifying and
        decrypting it is a fixed function of its wire form and the MSL crypto context,
        so successfully parsed tokens are kept per (tokendata, signature) and reused
        while the context's MSL crypto context and clock are unchanged. Failures are
        never cached: they raise exactly as :meth:`MasterToken.parse` does.
        """
        raw = obj.to_dict()
        tokendata = raw.get("tokendata")
        signature = raw.get("signature")
        if type(tokendata) is not str or type(signature) is not str or len(raw) != 2:
            return MasterToken.parse(obj, self.msl_crypto, clock=self.clock)
        key = (tokendata, signature)
        with self._sessions_lock:
            hit = self._parsed_tokens.get(key)
            if hit is not None and hit[0] is self.msl_crypto and hit[1] is self.clock:
                self._parsed_tokens.move_to_end(key)
                return hit[2]
        token = MasterToken.parse(obj, self.msl_crypto, clock=self.clock)
        if len(tokendata) > _CACHEABLE_TOKEN_SIZE or not (
            token.verified or isinstance(self.msl_crypto, ClientMslCryptoContext)
        ):
            # An issuer caches only tokens its own MSL keys verified: anyone can send
            # unverifiable ones, and must not be able to fill the cache with them. A
            # client verifies no token, and sees only those of the servers it calls.
            return token
        with self._sessions_lock:
            self._parsed_tokens[key] = (self.msl_crypto, self.clock, token)
            while len(self._parsed_tokens) > _TOKEN_CACHE_SIZE:
                self._parsed_tokens.popitem(last=False)
        return token

    # -- lookups ----------------------------------------------------------------------

    @property
    def identity(self) -> str:
        """The local entity identity ("" when unknown, e.g. before provisioning)."""
        data = self.get_entity_auth_data()
        return data.identity if data is not None else ""

    def get_entity_auth_data(self, reauth_code: ResponseCode | None = None) -> EntityAuthData | None:
        """The local entity auth data; after ENTITYDATA_REAUTH the provider may return new data."""
        if self.entity_auth_data_provider is not None:
            data = self.entity_auth_data_provider(reauth_code)
            if data is not None:
                self.entity_auth_data = data
            return data
        return self.entity_auth_data

    def entity_auth_factory(self, scheme: str) -> EntityAuthFactory | None:
        """The entity authentication factory for ``scheme``."""
        return self.entity_auth_factories.get(scheme)

    def user_auth_factory(self, scheme: str) -> UserAuthFactory | None:
        """The user authentication factory for ``scheme``."""
        return self.user_auth_factories.get(scheme)

    def key_exchange_factory(self, scheme: str) -> KeyExchangeFactory | None:
        """The key exchange factory for ``scheme``."""
        return next((f for f in self.key_exchange_factories if f.scheme == scheme), None)

    # -- session crypto contexts --------------------------------------------------------

    def master_token_crypto_context(self, master_token: MasterToken) -> CryptoContext:
        """The crypto context of a master token's session keys (crypto.md §5).

        The store's context wins; otherwise the token must be decrypted (issued by this
        network) and a session context is built from it, cached per token.
        """
        if self.store is not None:
            stored = self.store.get_crypto_context(master_token)
            if stored is not None:
                return stored
        if not master_token.decrypted:
            raise MslMasterTokenException(MslError.MASTERTOKEN_UNTRUSTED).set_master_token(master_token)
        return self.session_crypto_context(master_token)

    def session_crypto_context(self, master_token: MasterToken) -> CryptoContext:
        """A (cached) session context built from a decrypted master token."""
        from missile.crypto.symmetric import SessionCryptoContext

        assert master_token.encryption_key is not None and master_token.signature_key is not None
        key = (*master_token.key, master_token.identity)
        with self._sessions_lock:
            cached = self._sessions.get(key)
            if cached is not None:
                self._sessions.move_to_end(key)
                return cached
        context = SessionCryptoContext(
            master_token.identity,
            master_token.sequence_number,
            master_token.encryption_key,
            master_token.signature_key,
            master_token.signature_algorithm,
            random=self.random,
        )
        with self._sessions_lock:
            self._sessions[key] = context
            while len(self._sessions) > _SESSION_CACHE_SIZE:
                self._sessions.popitem(last=False)
        return context
