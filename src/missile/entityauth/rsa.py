"""RSA: a raw RSA key pair named by ``pubkeyid`` (entityauth.md §2.6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from cryptography.hazmat.primitives.asymmetric import rsa

from missile.crypto.asymmetric import RsaCryptoContext, RsaMode
from missile.entityauth._key_pair import KeyPairEntityAuthData, KeyPairEntityAuthFactory
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData
from missile.errors import MslError

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["RsaEntityAuthData", "RsaEntityAuthFactory"]


@ENTITY_AUTH_SCHEMES.register
class RsaEntityAuthData(KeyPairEntityAuthData):
    """``{"identity": string, "pubkeyid": string}``."""

    scheme: ClassVar[str] = "RSA"


class RsaEntityAuthFactory(KeyPairEntityAuthFactory[RsaEntityAuthData, rsa.RSAPublicKey, rsa.RSAPrivateKey]):
    """Checks, then the keys of ``pubkeyid``: a SHA256withRSA SIGN_VERIFY context.

    ``local_key_pair_id`` is the local entity's own key pair: data naming it needs the
    private key (RSA_PRIVATEKEY_NOT_FOUND); any other ``pubkeyid`` needs a public key
    (RSA_PUBLICKEY_NOT_FOUND). The context's key ID is the identity.
    """

    scheme: ClassVar[str] = RsaEntityAuthData.scheme
    data_class = RsaEntityAuthData
    private_key_missing: ClassVar[MslError] = MslError.RSA_PRIVATEKEY_NOT_FOUND
    public_key_missing: ClassVar[MslError] = MslError.RSA_PUBLICKEY_NOT_FOUND

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> RsaCryptoContext:
        rsa_data, private_key, public_key = self._keys(ctx, data)
        return RsaCryptoContext(rsa_data.identity, private_key, public_key, RsaMode.SIGN_VERIFY)
