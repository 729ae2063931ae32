"""RSA: a raw RSA key pair named by ``pubkeyid`` (entityauth.md §2.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.asymmetric import RsaCryptoContext, RsaMode
from missile.encoding import MslObject
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData, EntityAuthFactory
from missile.entityauth.none import checked, expect_data
from missile.entityauth.stores import RsaStore
from missile.errors import MslEntityAuthException, MslError

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["RsaEntityAuthData", "RsaEntityAuthFactory"]

KEY_IDENTITY = "identity"
KEY_PUBKEY_ID = "pubkeyid"


@ENTITY_AUTH_SCHEMES.register
class RsaEntityAuthData(EntityAuthData):
    """``{"identity": string, "pubkeyid": string}``."""

    scheme: ClassVar[str] = "RSA"
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
        return f"RsaEntityAuthData(identity={self._identity!r}, pubkeyid={self.pubkeyid!r})"


class RsaEntityAuthFactory(EntityAuthFactory):
    """Checks, then the keys of ``pubkeyid``: a SHA256withRSA SIGN_VERIFY context.

    ``local_key_pair_id`` is the local entity's own key pair: data naming it needs the
    private key (RSA_PRIVATEKEY_NOT_FOUND); any other ``pubkeyid`` needs a public key
    (RSA_PUBLICKEY_NOT_FOUND). The context's key ID is the identity.
    """

    scheme: ClassVar[str] = RsaEntityAuthData.scheme

    def __init__(self, store: RsaStore, local_key_pair_id: str | None = None) -> None:
        self.store = store
        self.local_key_pair_id = local_key_pair_id

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> RsaCryptoContext:
        rsa_data = expect_data(data, RsaEntityAuthData)
        checked(ctx, rsa_data, rsa_data.identity, self.scheme)
        pubkeyid = rsa_data.pubkeyid
        public_key = self.store.get_public_key(pubkeyid)
        private_key = self.store.get_private_key(pubkeyid)
        if pubkeyid == self.local_key_pair_id:
            if private_key is None:
                raise MslEntityAuthException(MslError.RSA_PRIVATEKEY_NOT_FOUND, pubkeyid).set_entity_auth_data(rsa_data)
        elif public_key is None:
            raise MslEntityAuthException(MslError.RSA_PUBLICKEY_NOT_FOUND, pubkeyid).set_entity_auth_data(rsa_data)
        return RsaCryptoContext(rsa_data.identity, private_key, public_key, RsaMode.SIGN_VERIFY)
