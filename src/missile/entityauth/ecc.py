"""ECC: a raw ECC key pair named by ``pubkeyid`` (entityauth.md §2.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from cryptography.hazmat.primitives.asymmetric import ec

from missile.crypto.asymmetric import EccCryptoContext
from missile.entityauth._key_pair import KeyPairEntityAuthData, KeyPairEntityAuthFactory
from missile.entityauth.base import ENTITY_AUTH_SCHEMES, EntityAuthData
from missile.errors import MslError

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["EccEntityAuthData", "EccEntityAuthFactory"]


@ENTITY_AUTH_SCHEMES.register
class EccEntityAuthData(KeyPairEntityAuthData):
    """``{"identity": string, "pubkeyid": string}``."""

    scheme: ClassVar[str] = "ECC"


class EccEntityAuthFactory(
    KeyPairEntityAuthFactory[EccEntityAuthData, ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey]
):
    """As RSA with the :class:`EccStore`: a SHA256withECDSA (DER) SIGN_VERIFY context.

    ``pubkeyid == local_key_pair_id`` needs the private key (ECC_PRIVATEKEY_NOT_FOUND),
    any other a public key (ECC_PUBLICKEY_NOT_FOUND).
    """

    scheme: ClassVar[str] = EccEntityAuthData.scheme
    data_class = EccEntityAuthData
    private_key_missing: ClassVar[MslError] = MslError.ECC_PRIVATEKEY_NOT_FOUND
    public_key_missing: ClassVar[MslError] = MslError.ECC_PUBLICKEY_NOT_FOUND

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> EccCryptoContext:
        ecc_data, private_key, public_key = self._keys(ctx, data)
        return EccCryptoContext(ecc_data.identity, private_key, public_key)
