"""NONE_SUFFIXED: unauthenticated entities sharing a root identity (entityauth.md §2.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.context import CryptoContext
from missile.crypto.null import NullCryptoContext
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory, checked, expect_data

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["NoneSuffixedEntityAuthData", "NoneSuffixedEntityAuthFactory"]

KEY_ROOT = "root"
KEY_SUFFIX = "suffix"


@ENTITY_AUTH_SCHEMES.register
class NoneSuffixedEntityAuthData(EntityAuthData):
    """``{"root": string, "suffix": string}``; the identity is ``root.suffix``."""

    scheme: ClassVar[str] = "NONE_SUFFIXED"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = False

    def __init__(self, root: str, suffix: str) -> None:
        self.root = root
        self.suffix = suffix

    @property
    def identity(self) -> str:
        return f"{self.root}.{self.suffix}"

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_ROOT: self.root, KEY_SUFFIX: self.suffix}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string(KEY_ROOT), authdata.get_string(KEY_SUFFIX))

    def __repr__(self) -> str:
        return f"NoneSuffixedEntityAuthData(root={self.root!r}, suffix={self.suffix!r})"


class NoneSuffixedEntityAuthFactory(EntityAuthFactory):
    """Revocation and permission checks on the **root**, then the Null context."""

    scheme: ClassVar[str] = NoneSuffixedEntityAuthData.scheme

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> CryptoContext:
        suffixed = expect_data(data, NoneSuffixedEntityAuthData)
        checked(ctx, suffixed, suffixed.root, self.scheme)
        return NullCryptoContext()
