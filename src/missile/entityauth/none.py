"""NONE: unauthenticated entities (entityauth.md §2.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from missile.crypto.context import CryptoContext
from missile.crypto.null import NullCryptoContext
from missile.entityauth.base import (
    ENTITY_AUTH_SCHEMES,
    EntityAuthData,
    EntityAuthFactory,
    IdentityEntityAuthData,
    checked,
    expect_data,
)

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["NoneEntityAuthData", "NoneEntityAuthFactory"]


@ENTITY_AUTH_SCHEMES.register
class NoneEntityAuthData(IdentityEntityAuthData):
    """``{"identity": string}``: an entity without credentials."""

    scheme: ClassVar[str] = "NONE"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = False


class NoneEntityAuthFactory(EntityAuthFactory):
    """Revocation and permission checks on the identity, then the Null context."""

    scheme: ClassVar[str] = NoneEntityAuthData.scheme

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> CryptoContext:
        none = expect_data(data, NoneEntityAuthData)
        checked(ctx, none, none.identity, self.scheme)
        return NullCryptoContext()
