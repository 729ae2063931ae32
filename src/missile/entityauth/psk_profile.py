"""PSK_PROFILE: pre-shared keys with a profile (entityauth.md §2.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory, expect_data
from missile.entityauth.psk import psk_crypto_context
from missile.entityauth.stores import KeySetStore

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["PskProfileEntityAuthData", "PskProfileEntityAuthFactory"]

KEY_PSKID = "pskid"
KEY_PROFILE = "profile"


@ENTITY_AUTH_SCHEMES.register
class PskProfileEntityAuthData(EntityAuthData):
    """``{"pskid": string, "profile": string}``; the identity is ``pskid-profile``."""

    scheme: ClassVar[str] = "PSK_PROFILE"
    encrypts: ClassVar[bool] = True
    protects_integrity: ClassVar[bool] = True

    def __init__(self, pskid: str, profile: str) -> None:
        self.pskid = pskid
        self.profile = profile

    @property
    def identity(self) -> str:
        return f"{self.pskid}-{self.profile}"

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_PSKID: self.pskid, KEY_PROFILE: self.profile}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string(KEY_PSKID), authdata.get_string(KEY_PROFILE))

    def __repr__(self) -> str:
        return f"PskProfileEntityAuthData(pskid={self.pskid!r}, profile={self.profile!r})"


class PskProfileEntityAuthFactory(EntityAuthFactory):
    """Checks and key lookup on ``pskid``; the context's key ID is ``pskid-profile``."""

    scheme: ClassVar[str] = PskProfileEntityAuthData.scheme

    def __init__(self, store: KeySetStore) -> None:
        self.store = store

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> SymmetricCryptoContext:
        profile = expect_data(data, PskProfileEntityAuthData)
        return psk_crypto_context(ctx, self.store, profile, self.scheme, profile.pskid)
