"""NONE: unauthenticated entities (entityauth.md §2.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from missile.crypto.context import CryptoContext
from missile.crypto.null import NullCryptoContext
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory
from missile.errors import MslException, MslInternalException

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["NoneEntityAuthData", "NoneEntityAuthFactory"]

KEY_IDENTITY = "identity"

_D = TypeVar("_D", bound=EntityAuthData)


def expect_data(data: EntityAuthData, cls: type[_D]) -> _D:
    """``data`` as ``cls``; a factory handed another scheme's data is a programming error."""
    if not isinstance(data, cls):
        raise MslInternalException(f"incorrect entity authentication data type {type(data).__name__}")
    return data


def checked(ctx: MslContext, data: EntityAuthData, identity: str, scheme: str) -> None:
    """Revocation and permission checks with ``data`` attached to the failure."""
    try:
        EntityAuthFactory.check_entity(ctx, identity, scheme)
    except MslException as e:
        e.set_entity_auth_data(data)
        raise


@ENTITY_AUTH_SCHEMES.register
class NoneEntityAuthData(EntityAuthData):
    """``{"identity": string}``: an entity without credentials."""

    scheme: ClassVar[str] = "NONE"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = False

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
        return f"NoneEntityAuthData(identity={self._identity!r})"


class NoneEntityAuthFactory(EntityAuthFactory):
    """Revocation and permission checks on the identity, then the Null context."""

    scheme: ClassVar[str] = NoneEntityAuthData.scheme

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> CryptoContext:
        none = expect_data(data, NoneEntityAuthData)
        checked(ctx, none, none.identity, self.scheme)
        return NullCryptoContext()
