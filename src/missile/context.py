"""The MSL context: everything one entity needs in one MSL network.

It comes in two parts, because they have different lifetimes and different rules:

* :class:`MslConfiguration` is what the entity *is* and *accepts*: its identity and
  entity authentication data (or the provider of it), the MSL crypto context (token
  keys), the scheme factories, the token factory (issuer policy), authorization hooks,
  clock, randomness and limits. It is frozen once built: a running engine can rely on it
  not changing under an exchange in flight, and one configuration can back several
  contexts (a test's recording copy, a restarted server). To change it, build a new one
  (:func:`dataclasses.replace`) and a new context from it.
* :class:`MslContext` adds the runtime state of one entity: the store of held tokens and
  session keys, the ladder wrapping-key repository, the current entity authentication
  data (a provider may replace it after ENTITYDATA_REAUTH), the session crypto context
  and parsed-token caches, the renewal lock and the master tokens in use. It is the one
  object the engines and message builders are given; configuration members read through
  it (``ctx.clock``, ``ctx.msl_crypto``...) and cannot be assigned.

Nothing is shared between contexts but what their configurations share.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeAlias

from missile.authutils import AuthenticationUtils, PermissiveAuthenticationUtils
from missile.clock import Clock, system_clock
from missile.crypto.context import CryptoContext
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric import SessionCryptoContext
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

__all__ = ["CONTEXT_OPTIONS", "INSECURE_SCHEMES", "EntityAuthDataProvider", "MslConfiguration", "MslContext"]

INSECURE_SCHEMES = frozenset({"NONE", "NONE_SUFFIXED", "JWK_RSAES"})
"""Schemes and mechanisms a context refuses from peers unless it lists them in
:attr:`MslConfiguration.allowed_insecure_schemes`: the entity authentication schemes NONE
and NONE_SUFFIXED (no authentication at all) and the ASYMMETRIC_WRAPPED mechanism
JWK_RSAES (RSA PKCS#1 v1.5 encryption, the padding-oracle-prone one)."""

EntityAuthDataProvider: TypeAlias = Callable[["ResponseCode | None"], "EntityAuthData | None"]
"""Returns (possibly new) entity auth data, given the reauth code that asks for it (or None)."""

#: Session crypto contexts kept per context: one per live master token; bounded so that
#: an issuer seeing many clients does not grow without limit (least recently used go).
_SESSION_CACHE_SIZE = 4096
#: Larger token data than this (real master tokens are well under 2 KiB) is not cached.
_CACHEABLE_TOKEN_SIZE = 8192
#: Parsed master tokens kept per context (least recently used go), bounded like sessions.
_TOKEN_CACHE_SIZE = 4096

_PERMISSIVE = PermissiveAuthenticationUtils()


@dataclass(frozen=True, eq=False)
class MslConfiguration:
    """What one entity is and accepts in one MSL network; frozen once built.

    The factory collections are copied into read-only forms (a mapping proxy, a tuple),
    so neither the configuration nor a caller's dict or list it was built from can change
    it afterwards. Change a copy instead: ``dataclasses.replace(config, clock=...)``.
    """

    msl_crypto: CryptoContext
    """The MSL crypto context: the issuer's token keys, or a client's verify-nothing context."""
    _: KW_ONLY
    entity_auth_data: EntityAuthData | None = None
    """The local entity's authentication data at start (the context holds the current one)."""
    entity_auth_data_provider: EntityAuthDataProvider | None = None
    """Optional callback returning (possibly new) entity auth data for a reauth code."""
    entity_auth_factories: Mapping[str, EntityAuthFactory] = field(default_factory=dict)
    """Entity authentication factories by scheme name."""
    user_auth_factories: Mapping[str, UserAuthFactory] = field(default_factory=dict)
    """User authentication factories by scheme name."""
    key_exchange_factories: Sequence[KeyExchangeFactory] = ()
    """Key exchange factories in preference order."""
    token_factory: TokenFactory | None = None
    """Issuer policy (servers and peers)."""
    auth_utils: AuthenticationUtils = _PERMISSIVE
    """Entity revocation and scheme permission hooks (default: nothing revoked, all permitted)."""
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

    def __post_init__(self) -> None:
        unknown = set(self.allowed_insecure_schemes) - INSECURE_SCHEMES
        if unknown:
            raise ValueError(f"not insecure schemes: {sorted(unknown)}")
        # Frozen: the normalised copies are stored the only way a frozen dataclass allows.
        freeze = object.__setattr__
        freeze(self, "allowed_insecure_schemes", frozenset(self.allowed_insecure_schemes))
        freeze(self, "entity_auth_factories", MappingProxyType(dict(self.entity_auth_factories)))
        freeze(self, "user_auth_factories", MappingProxyType(dict(self.user_auth_factories)))
        freeze(self, "key_exchange_factories", tuple(self.key_exchange_factories))

    def allows_insecure(self, scheme: str) -> bool:
        """True when ``scheme`` is not insecure, or explicitly allowed."""
        return scheme not in INSECURE_SCHEMES or scheme in self.allowed_insecure_schemes


#: The keyword arguments :class:`MslContext` accepts: every configuration member and the
#: runtime state a caller supplies (the store and the wrapping-key repository).
CONTEXT_OPTIONS = frozenset(f.name for f in dataclasses.fields(MslConfiguration)) | {"store", "wrap_repository"}


class MslContext:
    """One entity in one MSL network: its frozen :class:`MslConfiguration` and runtime state.

    ``MslContext(msl_crypto, clock=..., store=...)`` takes every configuration member as
    a keyword; :meth:`from_config` starts from a configuration already built. The
    configuration members read through the context and cannot be assigned on it.

    The runtime state is the store (held tokens and session keys; clients and peers), the
    ladder wrapping-key repository (requesters), the current entity auth data and the
    caches and locks below. The store and the repository are runtime state rather than
    configuration because their whole job is to change as exchanges run; they may be
    replaced (``ctx.store = ...``) like any state, though normally they are given once.
    """

    __slots__ = (
        "_config",
        "_parsed_tokens",
        "_renewal_lock",
        "_sessions",
        "_sessions_lock",
        "entity_auth_data",
        "master_tokens_doomed",
        "master_tokens_in_use",
        "store",
        "wrap_repository",
    )

    def __init__(
        self,
        msl_crypto: CryptoContext,
        *,
        entity_auth_data: EntityAuthData | None = None,
        entity_auth_data_provider: EntityAuthDataProvider | None = None,
        entity_auth_factories: Mapping[str, EntityAuthFactory] | None = None,
        user_auth_factories: Mapping[str, UserAuthFactory] | None = None,
        key_exchange_factories: Sequence[KeyExchangeFactory] = (),
        token_factory: TokenFactory | None = None,
        store: MslStore | None = None,
        wrap_repository: WrapCryptoContextRepository | None = None,
        auth_utils: AuthenticationUtils = _PERMISSIVE,
        clock: Clock = system_clock,
        random: RandomSource = DEFAULT_RANDOM,
        peer_to_peer: bool = False,
        max_deflate_ratio: int = DEFAULT_MAX_DEFLATE_RATIO,
        allowed_insecure_schemes: frozenset[str] = frozenset(),
    ) -> None:
        config = MslConfiguration(
            msl_crypto,
            entity_auth_data=entity_auth_data,
            entity_auth_data_provider=entity_auth_data_provider,
            entity_auth_factories=entity_auth_factories or {},
            user_auth_factories=user_auth_factories or {},
            key_exchange_factories=key_exchange_factories,
            token_factory=token_factory,
            auth_utils=auth_utils,
            clock=clock,
            random=random,
            peer_to_peer=peer_to_peer,
            max_deflate_ratio=max_deflate_ratio,
            allowed_insecure_schemes=allowed_insecure_schemes,
        )
        self._start(config, store, wrap_repository)

    @classmethod
    def from_config(
        cls,
        config: MslConfiguration,
        *,
        store: MslStore | None = None,
        wrap_repository: WrapCryptoContextRepository | None = None,
    ) -> MslContext:
        """A fresh context (empty caches, nothing in use) running ``config``."""
        ctx = cls.__new__(cls)
        ctx._start(config, store, wrap_repository)
        return ctx

    def _start(
        self, config: MslConfiguration, store: MslStore | None, wrap_repository: WrapCryptoContextRepository | None
    ) -> None:
        self._config = config
        self.store = store
        """Held tokens and session keys (clients and peers)."""
        self.wrap_repository = wrap_repository
        """Ladder key exchange wrapping keys (requesters)."""
        self.entity_auth_data: EntityAuthData | None = config.entity_auth_data
        """The local entity's current authentication data (a provider may replace it)."""
        self._sessions: OrderedDict[tuple[int, int, int, str | None], CryptoContext] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._parsed_tokens: OrderedDict[tuple[object, object], MasterToken] = OrderedDict()
        self._renewal_lock: asyncio.Lock | None = None
        self.master_tokens_in_use: dict[MasterToken, int] = {}
        """Master tokens used by in-flight exchanges, with their counts (control.md §11)."""
        self.master_tokens_doomed: set[MasterToken] = set()
        """Master tokens to delete from the store once no exchange uses them."""

    def __repr__(self) -> str:
        return f"MslContext(identity={self.identity!r}, config={self._config!r}, store={self.store!r})"

    # -- configuration, read-only ---------------------------------------------------------

    @property
    def config(self) -> MslConfiguration:
        """The frozen configuration this context runs."""
        return self._config

    @property
    def msl_crypto(self) -> CryptoContext:
        """The MSL crypto context (:attr:`MslConfiguration.msl_crypto`)."""
        return self._config.msl_crypto

    @property
    def entity_auth_data_provider(self) -> EntityAuthDataProvider | None:
        """The entity auth data provider (:attr:`MslConfiguration.entity_auth_data_provider`)."""
        return self._config.entity_auth_data_provider

    @property
    def entity_auth_factories(self) -> Mapping[str, EntityAuthFactory]:
        """Entity authentication factories by scheme name (read-only)."""
        return self._config.entity_auth_factories

    @property
    def user_auth_factories(self) -> Mapping[str, UserAuthFactory]:
        """User authentication factories by scheme name (read-only)."""
        return self._config.user_auth_factories

    @property
    def key_exchange_factories(self) -> Sequence[KeyExchangeFactory]:
        """Key exchange factories in preference order (a tuple)."""
        return self._config.key_exchange_factories

    @property
    def token_factory(self) -> TokenFactory | None:
        """Issuer policy (:attr:`MslConfiguration.token_factory`)."""
        return self._config.token_factory

    @property
    def auth_utils(self) -> AuthenticationUtils:
        """Entity revocation and scheme permission hooks."""
        return self._config.auth_utils

    @property
    def clock(self) -> Clock:
        """Milliseconds since the epoch."""
        return self._config.clock

    @property
    def random(self) -> RandomSource:
        """Cryptographically secure random source."""
        return self._config.random

    @property
    def peer_to_peer(self) -> bool:
        """True in a peer-to-peer network, False in a trusted services network."""
        return self._config.peer_to_peer

    @property
    def max_deflate_ratio(self) -> int:
        """Decompression cap (:attr:`MslConfiguration.max_deflate_ratio`)."""
        return self._config.max_deflate_ratio

    @property
    def allowed_insecure_schemes(self) -> frozenset[str]:
        """Insecure schemes accepted anyway (:attr:`MslConfiguration.allowed_insecure_schemes`)."""
        return self._config.allowed_insecure_schemes

    def allows_insecure(self, scheme: str) -> bool:
        """True when ``scheme`` is not insecure, or explicitly allowed."""
        return self._config.allows_insecure(scheme)

    # -- runtime state --------------------------------------------------------------------

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
        which the frozen configuration never changes, so successfully parsed tokens are
        kept per (tokendata, signature) and reused. Failures are never cached: they raise
        exactly as :meth:`MasterToken.parse` does.
        """
        msl_crypto, clock = self._config.msl_crypto, self._config.clock
        raw = obj.to_dict()
        tokendata = raw.get("tokendata")
        signature = raw.get("signature")
        # The key is the values as the format holds them: base64 text in JSON, byte
        # strings in the binary format (the two never compare equal, and a value of the
        # other format's type is left to MasterToken.parse to refuse).
        kind = bytes if obj.binary else str
        if type(tokendata) is not kind or type(signature) is not kind or len(raw) != 2:
            return MasterToken.parse(obj, msl_crypto, clock=clock)
        key = (tokendata, signature)
        with self._sessions_lock:
            hit = self._parsed_tokens.get(key)
            if hit is not None:
                self._parsed_tokens.move_to_end(key)
                return hit
        token = MasterToken.parse(obj, msl_crypto, clock=clock)
        # The size limit counts base64 characters (what a binary token would take in JSON).
        size = len(tokendata) if kind is str else (len(tokendata) + 2) // 3 * 4
        if size > _CACHEABLE_TOKEN_SIZE or not (
            token.verified or isinstance(msl_crypto, ClientMslCryptoContext)
        ):
            # An issuer caches only tokens its own MSL keys verified: anyone can send
            # unverifiable ones, and must not be able to fill the cache with them. A
            # client verifies no token, and sees only those of the servers it calls.
            return token
        with self._sessions_lock:
            self._parsed_tokens[key] = token
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
        """The local entity auth data; after ENTITYDATA_REAUTH the provider may return new data.

        New data from the provider becomes the context's current data (runtime state);
        the configuration keeps what the entity started with.
        """
        provider = self._config.entity_auth_data_provider
        if provider is not None:
            data = provider(reauth_code)
            if data is not None:
                self.entity_auth_data = data
            return data
        return self.entity_auth_data

    def entity_auth_factory(self, scheme: str) -> EntityAuthFactory | None:
        """The entity authentication factory for ``scheme``."""
        return self._config.entity_auth_factories.get(scheme)

    def user_auth_factory(self, scheme: str) -> UserAuthFactory | None:
        """The user authentication factory for ``scheme``."""
        return self._config.user_auth_factories.get(scheme)

    def key_exchange_factory(self, scheme: str) -> KeyExchangeFactory | None:
        """The key exchange factory for ``scheme``."""
        return next((f for f in self._config.key_exchange_factories if f.scheme == scheme), None)

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
            random=self._config.random,
        )
        with self._sessions_lock:
            self._sessions[key] = context
            while len(self._sessions) > _SESSION_CACHE_SIZE:
                self._sessions.popitem(last=False)
        return context
