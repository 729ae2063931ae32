"""Crypto contexts, envelopes, JOSE structures and key derivations (crypto.md)."""

from missile.crypto.aeskw_jwk import AesKwJwkCryptoContext, pad_jwk
from missile.crypto.algorithms import (
    CipherSpec,
    EncryptionAlgo,
    JweAlgorithm,
    JweEncryption,
    JweFormat,
    JwkAlgorithm,
    JwkKeyOp,
    JwkType,
    JwkUsage,
    SignatureAlgo,
)
from missile.crypto.asymmetric import (
    EccCryptoContext,
    RsaCryptoContext,
    RsaMode,
    RsaWrapMode,
    RsaWrappingCryptoContext,
    rsa_oaep_padding,
)
from missile.crypto.chunks import ChunkCodec, ChunkHead, GeneralChunkCodec
from missile.crypto.context import CryptoContext
from missile.crypto.derivation import (
    SessionKeys,
    derive_dh_session_keys,
    derive_wrapping_key,
    dh_int_from_bytes,
    dh_int_to_bytes,
)
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, SignatureEnvelope
from missile.crypto.jwe import AesKwCekContext, CekCryptoContext, JweCryptoContext, RsaOaepCekContext
from missile.crypto.jwk import (
    JWK_LADDER_WRAP_KEY_ID,
    JsonWebKey,
    jwe_ladder_wrapping_jwk,
    jwk_ladder_wrapping_jwk,
    session_encryption_jwk,
    session_hmac_jwk,
)
from missile.crypto.null import ClientMslCryptoContext, NullCryptoContext
from missile.crypto.random import DEFAULT_RANDOM, RandomSource, SystemRandom, random_long, random_signed_long
from missile.crypto.symmetric import (
    SessionCryptoContext,
    SymmetricCryptoContext,
    aes_key_unwrap,
    aes_key_wrap,
    session_crypto_context,
)

__all__ = [
    "DEFAULT_RANDOM",
    "JWK_LADDER_WRAP_KEY_ID",
    "AesKwCekContext",
    "AesKwJwkCryptoContext",
    "CekCryptoContext",
    "ChunkCodec",
    "ChunkHead",
    "CipherSpec",
    "CiphertextEnvelope",
    "ClientMslCryptoContext",
    "CryptoContext",
    "EccCryptoContext",
    "EncryptionAlgo",
    "EnvelopeVersion",
    "GeneralChunkCodec",
    "JsonWebKey",
    "JweAlgorithm",
    "JweCryptoContext",
    "JweEncryption",
    "JweFormat",
    "JwkAlgorithm",
    "JwkKeyOp",
    "JwkType",
    "JwkUsage",
    "NullCryptoContext",
    "RandomSource",
    "RsaCryptoContext",
    "RsaMode",
    "RsaOaepCekContext",
    "RsaWrapMode",
    "RsaWrappingCryptoContext",
    "SessionCryptoContext",
    "SessionKeys",
    "SignatureAlgo",
    "SignatureEnvelope",
    "SymmetricCryptoContext",
    "SystemRandom",
    "aes_key_unwrap",
    "aes_key_wrap",
    "derive_dh_session_keys",
    "derive_wrapping_key",
    "dh_int_from_bytes",
    "dh_int_to_bytes",
    "jwe_ladder_wrapping_jwk",
    "jwk_ladder_wrapping_jwk",
    "pad_jwk",
    "random_long",
    "random_signed_long",
    "rsa_oaep_padding",
    "session_crypto_context",
    "session_encryption_jwk",
    "session_hmac_jwk",
]
