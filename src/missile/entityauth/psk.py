"""PSK: pre-shared keys (entityauth.md §2.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.entityauth.base import (
    ENTITY_AUTH_SCHEMES,
    EntityAuthData,
    EntityAuthFactory,
    IdentityEntityAuthData,
    checked,
    expect_data,
)
from missile.entityauth.stores import KeySetStore
from missile.errors import MslEntityAuthException, MslError

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["PskEntityAuthData", "PskEntityAuthFactory"]


@ENTITY_AUTH_SCHEMES.register
class PskEntityAuthData(IdentityEntityAuthData):
    """``{"identity": string}``: an entity holding pre-shared keys."""

    scheme: ClassVar[str] = "PSK"
    encrypts: ClassVar[bool] = True
    protects_integrity: ClassVar[bool] = True


def psk_crypto_context(
    ctx: MslContext, store: KeySetStore, data: EntityAuthData, scheme: str, pskid: str
) -> SymmetricCryptoContext:
    """Checks and key lookup on ``pskid`` (unknown: ENTITY_NOT_FOUND), then a symmetric
    context with key ID = the data's identity holding Kpe, Kph and Kpw (§2.3, §2.4)."""
    checked(ctx, data, pskid, scheme)
    keys = store.get_keys(pskid)
    if keys is None:
        raise MslEntityAuthException(MslError.ENTITY_NOT_FOUND, f"psk {pskid}").set_entity_auth_data(data)
    return SymmetricCryptoContext(data.identity, keys.encryption_key, keys.hmac_key, keys.wrap_key, random=ctx.random)


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
        return psk_crypto_context(ctx, self.store, psk, self.scheme, psk.identity)

    def wrap_crypto_context(self, ctx: MslContext, identity: str) -> SymmetricCryptoContext:
        """The PSK context of ``identity`` (wraps with Kpw), as the key exchanges need it.

        Like the reference, this authenticates fresh PSK data for ``identity``
        (revocation, permission, ENTITY_NOT_FOUND) — also when the entity used
        PSK_PROFILE (entityauth.md §2.4 note).
        """
        return self.crypto_context(ctx, PskEntityAuthData(identity))
