"""JWE_LADDER key exchange (keyx.md §5): every key is wrapped as a JWE JSON serialization
with ``alg: A128KW`` and ``enc: A128GCM``; the wrapping key JWK has ``use: wrap`` and a
random decimal ``kid``; session key JWKs carry ``use``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from missile.crypto.algorithms import JweEncryption, JweFormat
from missile.crypto.context import CryptoContext
from missile.crypto.jwe import AesKwCekContext, JweCryptoContext
from missile.crypto.jwk import JsonWebKey, jwe_ladder_wrapping_jwk
from missile.crypto.random import DEFAULT_RANDOM, RandomSource, random_signed_long
from missile.keyx._ladder import LadderExchange, LadderMechanism, LadderRequest, LadderResponse
from missile.keyx.base import KEY_REQUEST_SCHEMES, KEY_RESPONSE_SCHEMES

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = [
    "JWE_LADDER",
    "LadderMechanism",
    "JweLadderRequest",
    "JweLadderResponse",
    "JweLadderExchange",
    "jwe_ladder_key_context",
]

JWE_LADDER = "JWE_LADDER"


def jwe_ladder_key_context(key: bytes | CryptoContext, random: RandomSource = DEFAULT_RANDOM) -> JweCryptoContext:
    """JWE (JSON serialization, A128KW with ``key``, A128GCM): the repository entry form."""
    return JweCryptoContext(AesKwCekContext(key), JweEncryption.A128GCM, JweFormat.JWE_JS, random=random)


@KEY_REQUEST_SCHEMES.register
class JweLadderRequest(LadderRequest):
    """JWE_LADDER request data."""

    scheme: ClassVar[str] = JWE_LADDER


@KEY_RESPONSE_SCHEMES.register
class JweLadderResponse(LadderResponse):
    """JWE_LADDER response data."""

    scheme: ClassVar[str] = JWE_LADDER


class JweLadderExchange(LadderExchange):
    """Both sides of JWE_LADDER."""

    scheme: ClassVar[str] = JWE_LADDER
    request_class = JweLadderRequest
    response_class = JweLadderResponse
    session_jwk_key_ops: ClassVar[bool] = False

    def key_context(self, ctx: MslContext, key: bytes | CryptoContext) -> CryptoContext:
        return jwe_ladder_key_context(key, ctx.random)

    def wrapping_jwk(self, ctx: MslContext, wrap_key: bytes) -> JsonWebKey:
        return jwe_ladder_wrapping_jwk(wrap_key, str(random_signed_long(ctx.random)))
