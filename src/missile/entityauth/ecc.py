"""ECC: a raw ECC key pair named by ``pubkeyid`` (entityauth.md §2.7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.asymmetric import EccCryptoContext
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory
from missile.entityauth.none import checked, expect_data
from missile.entityauth.stores import EccStore
from missile.errors import MslEntityAuthException, MslError

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["EccEntityAuthData", "EccEntityAuthFactory"]

KEY_IDENTITY = "identity"
KEY_PUBKEY_ID = "pubkeyid"


@ENTITY_AUTH_SCHEMES.register
class EccEntityAuthData(EntityAuthData):
    """``{"identity": string, "pubkeyid": string}``."""

    scheme: ClassVar[str] = "ECC"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = True

    def __init__(self, identity: str, pubkeyid: str) -> None:
        self._identity = identity
        self.pubkeyid = pubkeyid

    @property
    def identity(self) -> str:
        return self._identity

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_IDENTITY: self._identity, KEY_PUBKEY_ID: self.pubkeyid}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string(KEY_IDENTITY), authdata.get_string(KEY_PUBKEY_ID))

    def __repr__(self) -> str:
        return f"EccEntityAuthData(identity={self._identity!r}, pubkeyid={self.pubkeyid!r})"


class EccEntityAuthFactory(EntityAuthFactory):
    """As RSA with the :class:`EccStore`: a SHA256withECDSA (DER) SIGN_VERIFY context.

    ``pubkeyid == local_key_pair_id`` needs the private key (ECC_PRIVATEKEY_NOT_FOUND),
    any other a public key (ECC_PUBLICKEY_NOT_FOUND).
    """

    scheme: ClassVar[str] = EccEntityAuthData.scheme

    def __init__(self, store: EccStore, local_key_pair_id: str | None = None) -> None:
        self.store = store
        self.local_key_pair_id = local_key_pair_id

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> EccCryptoContext:
        ecc_data = expect_data(data, EccEntityAuthData)
        checked(ctx, ecc_data, ecc_data.identity, self.scheme)
        pubkeyid = ecc_data.pubkeyid
        public_key = self.store.get_public_key(pubkeyid)
        private_key = self.store.get_private_key(pubkeyid)
        if pubkeyid == self.local_key_pair_id:
            if private_key is None:
                raise MslEntityAuthException(MslError.ECC_PRIVATEKEY_NOT_FOUND, pubkeyid).set_entity_auth_data(ecc_data)
        elif public_key is None:
            raise MslEntityAuthException(MslError.ECC_PUBLICKEY_NOT_FOUND, pubkeyid).set_entity_auth_data(ecc_data)
        return EccCryptoContext(ecc_data.identity, private_key, public_key)
