"""PROVISIONED: the receiver assigns the identity (entityauth.md §2.9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.null import NullCryptoContext
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory, expect_data
from missile.entityauth.stores import IdentityProvisioningService

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["ProvisionedEntityAuthData", "ProvisionedEntityAuthFactory"]


@ENTITY_AUTH_SCHEMES.register
class ProvisionedEntityAuthData(EntityAuthData):
    """``{}``: an entity asking the receiver for an identity.

    The one **mutable** entity authentication data: its identity is ``""`` until
    :class:`ProvisionedEntityAuthFactory` assigns one in ``crypto_context``. Equality
    and hashing therefore ignore the identity (all PROVISIONED data are equal, as in
    the reference).
    """

    scheme: ClassVar[str] = "PROVISIONED"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = False

    def __init__(self) -> None:
        self._identity = ""

    @property
    def identity(self) -> str:
        return self._identity

    def assign_identity(self, identity: str) -> None:
        """Set the provisioned identity (done by the factory)."""
        self._identity = identity

    def authdata(self) -> Mapping[str, Any]:
        return {}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProvisionedEntityAuthData)

    def __hash__(self) -> int:
        return hash(self.scheme)

    def __repr__(self) -> str:
        return f"ProvisionedEntityAuthData(identity={self._identity!r})"


class ProvisionedEntityAuthFactory(EntityAuthFactory):
    """Assigns ``service.next_identity()`` to the data and returns the Null context.

    As in the reference no revocation or permission check is made: the identity is
    new. (Policy on the new identity belongs to the token factory.)
    """

    scheme: ClassVar[str] = ProvisionedEntityAuthData.scheme

    def __init__(self, service: IdentityProvisioningService) -> None:
        self.service = service

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> NullCryptoContext:
        provisioned = expect_data(data, ProvisionedEntityAuthData)
        provisioned.assign_identity(self.service.next_identity())
        return NullCryptoContext()
