"""MT_PROTECTED: entity authentication data under a master token's keys (entityauth.md §2.8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.context import CryptoContext
from missile.encoding import MslObject, decode, encode
from missile.entityauth.base import (
    ENTITY_AUTH_SCHEMES,
    EntityAuthData,
    EntityAuthFactory,
    checked,
    expect_data,
    parse_entity_auth_data,
)
from missile.errors import MslEntityAuthException, MslError, MslException, MslMasterTokenException
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["MtProtectedEntityAuthData", "MtProtectedEntityAuthFactory"]

KEY_MASTER_TOKEN = "mastertoken"
KEY_AUTHDATA = "authdata"
KEY_SIGNATURE = "signature"


def _master_token_context(ctx: MslContext, master_token: MasterToken) -> CryptoContext:
    """The stored context of the token, else its session context (needs it decrypted)."""
    try:
        return ctx.master_token_crypto_context(master_token)
    except MslMasterTokenException as e:
        raise MslEntityAuthException(MslError.ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED, cause=e).set_master_token(
            master_token
        ) from e


@ENTITY_AUTH_SCHEMES.register
class MtProtectedEntityAuthData(EntityAuthData):
    """``{"mastertoken", "authdata": session-encrypted inner data, "signature"}``.

    Build it with :meth:`create`; identity and context come from the encapsulated
    data. Equality: same master token and same encapsulated data.
    """

    scheme: ClassVar[str] = "MT_PROTECTED"
    encrypts: ClassVar[bool] = False
    protects_integrity: ClassVar[bool] = False

    def __init__(self, master_token: MasterToken, inner: EntityAuthData, ciphertext: bytes, signature: bytes) -> None:
        self.master_token = master_token
        self.inner = inner
        self._ciphertext = ciphertext
        self._signature = signature

    @classmethod
    def create(cls, ctx: MslContext, master_token: MasterToken, inner: EntityAuthData) -> Self:
        """Encrypt ``inner`` with the master token's context and sign the ciphertext.

        A master token whose context is unavailable is ENTITYAUTH_MASTERTOKEN_NOT_DECRYPTED.
        """
        context = _master_token_context(ctx, master_token)
        ciphertext = context.encrypt(encode(inner.to_msl()))
        return cls(master_token, inner, ciphertext, context.sign(ciphertext))

    @property
    def identity(self) -> str:
        return self.inner.identity

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_MASTER_TOKEN: self.master_token, KEY_AUTHDATA: self._ciphertext, KEY_SIGNATURE: self._signature}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        """Parse the token, verify and decrypt, then parse the inner data recursively (§2.8)."""
        ciphertext = authdata.get_bytes(KEY_AUTHDATA)
        signature = authdata.get_bytes(KEY_SIGNATURE)
        token_obj = authdata.get_object(KEY_MASTER_TOKEN)
        try:
            master_token = MasterToken.parse(token_obj, ctx.msl_crypto, clock=ctx.clock)
        except MslException as e:
            raise MslEntityAuthException(MslError.ENTITYAUTH_MASTERTOKEN_INVALID, cause=e) from e
        context = _master_token_context(ctx, master_token)
        if not context.verify(ciphertext, signature):
            raise MslEntityAuthException(MslError.ENTITYAUTH_VERIFICATION_FAILED).set_master_token(master_token)
        inner = parse_entity_auth_data(decode(context.decrypt(ciphertext)), ctx)
        return cls(master_token, inner, ciphertext, signature)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MtProtectedEntityAuthData)
            and other.master_token == self.master_token
            and other.inner == self.inner
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.master_token, self.inner))

    def __repr__(self) -> str:
        return f"MtProtectedEntityAuthData(master_token={self.master_token!r}, inner={self.inner!r})"


class MtProtectedEntityAuthFactory(EntityAuthFactory):
    """Checks on the encapsulated identity, then the encapsulated scheme's factory."""

    scheme: ClassVar[str] = MtProtectedEntityAuthData.scheme

    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> CryptoContext:
        protected = expect_data(data, MtProtectedEntityAuthData)
        checked(ctx, protected, protected.identity, self.scheme)
        inner = protected.inner
        factory = ctx.entity_auth_factory(inner.scheme)
        if factory is None:
            raise MslEntityAuthException(MslError.ENTITYAUTH_FACTORY_NOT_FOUND, inner.scheme).set_entity_auth_data(
                protected
            )
        return factory.crypto_context(ctx, inner)
