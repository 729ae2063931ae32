"""Algorithm identifiers as they appear on the wire (crypto.md §2, §6, §7).

Every enum is a :class:`~enum.StrEnum` whose value is the exact wire string, and offers
``from_wire`` which raises the error the reference raises for an unknown name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from missile.errors import MslCryptoException, MslError

__all__ = [
    "EncryptionAlgo",
    "SignatureAlgo",
    "CipherSpec",
    "JweAlgorithm",
    "JweEncryption",
    "JweFormat",
    "JwkType",
    "JwkUsage",
    "JwkKeyOp",
    "JwkAlgorithm",
]


class WireEnum(StrEnum):
    """A wire-string enum whose ``from_wire`` raises the reference's error for an
    unknown name (the error of each enum is listed in ``_UNKNOWN`` below)."""

    @classmethod
    def from_wire(cls, value: str) -> Self:
        """Parse a wire name; unknown names raise the enum's MslError."""
        try:
            return cls(value)
        except ValueError:
            raise MslCryptoException(_UNKNOWN[cls.__name__], f"unknown {cls.__name__}: {value!r}") from None


class EncryptionAlgo(WireEnum):
    """Session data ``encryptionalgorithm`` values."""

    AES = "AES"


class SignatureAlgo(WireEnum):
    """Session data ``signaturealgorithm`` and V2 signature envelope ``algorithm`` values."""

    HMAC_SHA256 = "HmacSHA256"
    SHA256_RSA = "SHA256withRSA"
    AES_CMAC = "AESCmac"


class CipherSpec(WireEnum):
    """Version 2 ciphertext envelope ``cipherspec`` values."""

    AES_CBC_PKCS5 = "AES/CBC/PKCS5Padding"
    AES_WRAP = "AESWrap"
    RSA_ECB_PKCS1 = "RSA/ECB/PKCS1Padding"


class JweAlgorithm(WireEnum):
    """JWE header ``alg``: how the content encryption key is protected (crypto.md §6)."""

    RSA_OAEP = "RSA-OAEP"
    A128KW = "A128KW"


class JweEncryption(WireEnum):
    """JWE header ``enc``: the AES-GCM content encryption (crypto.md §6)."""

    A128GCM = "A128GCM"
    A256GCM = "A256GCM"

    @property
    def key_length(self) -> int:
        """Content encryption key length in bytes."""
        return 16 if self is JweEncryption.A128GCM else 32


class JweFormat(StrEnum):
    """JWE serialization: compact (``JWE_CS``) or JSON (``JWE_JS``)."""

    JWE_CS = "JWE_CS"
    JWE_JS = "JWE_JS"


class JwkType(WireEnum):
    """JWK ``kty`` (lowercase, as the reference writes it)."""

    OCT = "oct"
    RSA = "rsa"


class JwkUsage(WireEnum):
    """JWK ``use`` (``wrap`` is MSL-specific)."""

    SIG = "sig"
    ENC = "enc"
    WRAP = "wrap"


class JwkKeyOp(WireEnum):
    """JWK ``key_ops`` members."""

    SIGN = "sign"
    VERIFY = "verify"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    WRAP_KEY = "wrapKey"
    UNWRAP_KEY = "unwrapKey"
    DERIVE_KEY = "deriveKey"
    DERIVE_BITS = "deriveBits"


class JwkAlgorithm(WireEnum):
    """JWK ``alg`` (``A128CBC`` is MSL-specific: an AES-CBC encryption key)."""

    HS256 = "HS256"
    RSA1_5 = "RSA1_5"
    RSA_OAEP = "RSA-OAEP"
    A128KW = "A128KW"
    A128CBC = "A128CBC"

    @property
    def is_symmetric(self) -> bool:
        """True for the algorithms that carry raw ``k`` key bytes."""
        return self in (JwkAlgorithm.HS256, JwkAlgorithm.A128KW, JwkAlgorithm.A128CBC)


_UNKNOWN: dict[str, MslError] = {
    "EncryptionAlgo": MslError.UNIDENTIFIED_ALGORITHM,
    "SignatureAlgo": MslError.UNIDENTIFIED_ALGORITHM,
    "CipherSpec": MslError.UNIDENTIFIED_CIPHERSPEC,
    "JweAlgorithm": MslError.JWE_PARSE_ERROR,
    "JweEncryption": MslError.JWE_PARSE_ERROR,
    "JwkType": MslError.UNIDENTIFIED_JWK_TYPE,
    "JwkUsage": MslError.UNIDENTIFIED_JWK_USAGE,
    "JwkKeyOp": MslError.UNIDENTIFIED_JWK_KEYOP,
    "JwkAlgorithm": MslError.UNIDENTIFIED_JWK_ALGORITHM,
}
