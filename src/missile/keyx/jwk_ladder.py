"""JWK_LADDER key exchange (keyx.md §6): every key is wrapped as RFC 3394 AES-KW of the
space-padded JWK JSON (crypto.md §7); the wrapping key JWK has ``key_ops``
wrapKey/unwrapKey and ``kid: "wrapKeyId"``; session key JWKs carry ``key_ops``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from missile.crypto.aeskw_jwk import AesKwJwkCryptoContext
from missile.crypto.context import CryptoContext
from missile.crypto.jwk import JsonWebKey, jwk_ladder_wrapping_jwk
from missile.keyx._ladder import LadderExchange, LadderMechanism, LadderRequest, LadderResponse
from missile.keyx.base import KEY_REQUEST_SCHEMES, KEY_RESPONSE_SCHEMES

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = [
    "JWK_LADDER",
    "LadderMechanism",
    "JwkLadderRequest",
    "JwkLadderResponse",
    "JwkLadderExchange",
    "jwk_ladder_key_context",
]

JWK_LADDER = "JWK_LADDER"


def jwk_ladder_key_context(key: bytes | CryptoContext) -> AesKwJwkCryptoContext:
    """Padded-JWK AES-KW under ``key``: the repository entry form."""
    return AesKwJwkCryptoContext(key)


@KEY_REQUEST_SCHEMES.register
class JwkLadderRequest(LadderRequest):
    """JWK_LADDER request data."""

    scheme: ClassVar[str] = JWK_LADDER


@KEY_RESPONSE_SCHEMES.register
class JwkLadderResponse(LadderResponse):
    """JWK_LADDER response data."""

    scheme: ClassVar[str] = JWK_LADDER


class JwkLadderExchange(LadderExchange):
    """Both sides of JWK_LADDER."""

    scheme: ClassVar[str] = JWK_LADDER
    request_class = JwkLadderRequest
    response_class = JwkLadderResponse
    session_jwk_key_ops: ClassVar[bool] = True

    def key_context(self, ctx: MslContext, key: bytes | CryptoContext) -> CryptoContext:
        return jwk_ladder_key_context(key)

    def wrapping_jwk(self, ctx: MslContext, wrap_key: bytes) -> JsonWebKey:
        return jwk_ladder_wrapping_jwk(wrap_key)
