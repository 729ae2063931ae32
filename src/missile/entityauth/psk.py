"""PSK: pre-shared keys (entityauth.md §2.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory
from missile.entityauth.none import checked, expect_data
from missile.entityauth.stores import KeySet, KeySetStore
from missile.errors import MslEntityAuthException, MslError

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["PskEntityAuthData", "PskEntityAuthFactory"]

KEY_IDENTITY = "identity"


@ENTITY_AUTH_SCHEMES.register
class PskEntityAuthData(EntityAuthData):
    """``{"identity": string}``: an entity holding pre-shared keys."""

    scheme: ClassVar[str] = "PSK"
    encrypts: ClassVar[bool] = True
    protects_integrity: ClassVar[bool] = True

    def __init__(self, identity: str) -> None:
        self._identity = identity

    @property
    def identity(self) -> str:
        return self._identity

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_IDENTITY: self._identity}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string(KEY_IDENTITY))

    def __repr__(self) -> str:
        return f"PskEntityAuthData(identity={self._identity!r})"


def lookup_keys(store: KeySetStore, data: EntityAuthData, key_identity: str) -> KeySet:
    """The key set of ``key_identity``; unknown is ENTITY_NOT_FOUND."""
    keys = store.get_keys(key_identity)
    if keys is None:
        raise MslEntityAuthException(MslError.ENTITY_NOT_FOUND, f"psk {key_identity}").set_entity_auth_data(data)
    return keys


class PskEntityAuthFactory(EntityAuthFactory):
    """Checks, key lookup in the :class:`KeySetStore`, and a symmetric context.

    The returned :class:`SymmetricCryptoContext` has key ID = identity and holds Kpe,
    Kph and Kpw, so it also wraps and unwraps: it is the wrapping context of the
    SYMMETRIC_WRAPPED ``PSK`` key ID and the ladder exchanges' ``PSK`` mechanism
    (see :meth:`wrap_crypto_context`).
    """

    scheme: ClassVar[str] = PskEntityAuthData.scheme

    def __init__(self, store: KeySetStore) -> None:
        self.store = store

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> SymmetricCryptoContext:
        psk = expect_data(data, PskEntityAuthData)
        checked(ctx, psk, psk.identity, self.scheme)
        keys = lookup_keys(self.store, psk, psk.identity)
        return SymmetricCryptoContext(
            psk.identity, keys.encryption_key, keys.hmac_key, keys.wrap_key, random=ctx.random
        )

    def wrap_crypto_context(self, ctx: MslContext, identity: str) -> SymmetricCryptoContext:
        """The PSK context of ``identity`` (wraps with Kpw), as the key exchanges need it.

        Like the reference, this authenticates fresh PSK data for ``identity``
        (revocation, permission, ENTITY_NOT_FOUND) — also when the entity used
        PSK_PROFILE (entityauth.md §2.4 note).
        """
        return self.crypto_context(ctx, PskEntityAuthData(identity))
