"""Algorithm identifiers as they appear on the wire (crypto.md §2, §6, §7).

Every enum is a :class:`~enum.StrEnum` whose value is the exact wire string, and offers
``from_wire`` which raises the error the reference raises for an unknown name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

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

_E = TypeVar("_E", bound=StrEnum)


def _lookup(cls: type[_E], value: str, error: MslError) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise MslCryptoException(error, f"unknown {cls.__name__}: {value!r}") from None


class EncryptionAlgo(StrEnum):
    """Session data ``encryptionalgorithm`` values."""

    AES = "AES"

    @classmethod
    def from_wire(cls, value: str) -> EncryptionAlgo:
        """Parse; unknown names raise ``UNIDENTIFIED_ALGORITHM``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_ALGORITHM)


class SignatureAlgo(StrEnum):
    """Session data ``signaturealgorithm`` and V2 signature envelope ``algorithm`` values."""

    HMAC_SHA256 = "HmacSHA256"
    SHA256_RSA = "SHA256withRSA"
    AES_CMAC = "AESCmac"

    @classmethod
    def from_wire(cls, value: str) -> SignatureAlgo:
        """Parse; unknown names raise ``UNIDENTIFIED_ALGORITHM``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_ALGORITHM)


class CipherSpec(StrEnum):
    """Version 2 ciphertext envelope ``cipherspec`` values."""

    AES_CBC_PKCS5 = "AES/CBC/PKCS5Padding"
    AES_WRAP = "AESWrap"
    RSA_ECB_PKCS1 = "RSA/ECB/PKCS1Padding"

    @classmethod
    def from_wire(cls, value: str) -> CipherSpec:
        """Parse; unknown names raise ``UNIDENTIFIED_CIPHERSPEC``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_CIPHERSPEC)


class JweAlgorithm(StrEnum):
    """JWE header ``alg``: how the content encryption key is protected (crypto.md §6)."""

    RSA_OAEP = "RSA-OAEP"
    A128KW = "A128KW"

    @classmethod
    def from_wire(cls, value: str) -> JweAlgorithm:
        """Parse; unknown names raise ``JWE_PARSE_ERROR``."""
        return _lookup(cls, value, MslError.JWE_PARSE_ERROR)


class JweEncryption(StrEnum):
    """JWE header ``enc``: the AES-GCM content encryption (crypto.md §6)."""

    A128GCM = "A128GCM"
    A256GCM = "A256GCM"

    @property
    def key_length(self) -> int:
        """Content encryption key length in bytes."""
        return 16 if self is JweEncryption.A128GCM else 32

    @classmethod
    def from_wire(cls, value: str) -> JweEncryption:
        """Parse; unknown names raise ``JWE_PARSE_ERROR``."""
        return _lookup(cls, value, MslError.JWE_PARSE_ERROR)


class JweFormat(StrEnum):
    """JWE serialization: compact (``JWE_CS``) or JSON (``JWE_JS``)."""

    JWE_CS = "JWE_CS"
    JWE_JS = "JWE_JS"


class JwkType(StrEnum):
    """JWK ``kty`` (lowercase, as the reference writes it)."""

    OCT = "oct"
    RSA = "rsa"

    @classmethod
    def from_wire(cls, value: str) -> JwkType:
        """Parse; unknown names raise ``UNIDENTIFIED_JWK_TYPE``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_JWK_TYPE)


class JwkUsage(StrEnum):
    """JWK ``use`` (``wrap`` is MSL-specific)."""

    SIG = "sig"
    ENC = "enc"
    WRAP = "wrap"

    @classmethod
    def from_wire(cls, value: str) -> JwkUsage:
        """Parse; unknown names raise ``UNIDENTIFIED_JWK_USAGE``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_JWK_USAGE)


class JwkKeyOp(StrEnum):
    """JWK ``key_ops`` members."""

    SIGN = "sign"
    VERIFY = "verify"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    WRAP_KEY = "wrapKey"
    UNWRAP_KEY = "unwrapKey"
    DERIVE_KEY = "deriveKey"
    DERIVE_BITS = "deriveBits"

    @classmethod
    def from_wire(cls, value: str) -> JwkKeyOp:
        """Parse; unknown names raise ``UNIDENTIFIED_JWK_KEYOP``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_JWK_KEYOP)


class JwkAlgorithm(StrEnum):
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

    @classmethod
    def from_wire(cls, value: str) -> JwkAlgorithm:
        """Parse; unknown names raise ``UNIDENTIFIED_JWK_ALGORITHM``."""
        return _lookup(cls, value, MslError.UNIDENTIFIED_JWK_ALGORITHM)
