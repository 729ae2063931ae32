"""RSA and ECC crypto contexts (crypto.md §1, §8).

RSA-OAEP in MSL always means SHA-1 with MGF1-SHA-1 and an empty label; RSA signatures are
RSASSA-PKCS1-v1_5 with SHA-256; ECDSA signatures are SHA-256 with the DER encoding.
Operations a mode does not configure are pass-through (data returned unchanged, an empty
signature, verification always true), exactly like the reference.
"""

from __future__ import annotations

from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding

from missile.crypto.context import CryptoContext
from missile.crypto.envelopes import CiphertextEnvelope, EnvelopeVersion, SignatureEnvelope, encode_v1
from missile.errors import MslCryptoException, MslError

__all__ = [
    "RsaMode",
    "RsaCryptoContext",
    "RsaWrapMode",
    "RsaWrappingCryptoContext",
    "EccCryptoContext",
    "rsa_oaep_padding",
    "rsa_encrypt",
    "rsa_decrypt",
]


def rsa_oaep_padding() -> asym_padding.OAEP:
    """OAEP with SHA-1, MGF1-SHA-1 and an empty label (Java ``OAEPParameterSpec.DEFAULT``)."""
    return asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


_PKCS1 = asym_padding.PKCS1v15()


def _padding(oaep: bool) -> asym_padding.AsymmetricPadding:
    return rsa_oaep_padding() if oaep else _PKCS1


def rsa_encrypt(public_key: rsa.RSAPublicKey, data: bytes, *, oaep: bool) -> bytes:
    """Raw RSA encryption (OAEP or PKCS#1 v1.5); too much data raises ``PLAINTEXT_ILLEGAL_BLOCK_SIZE``."""
    try:
        return public_key.encrypt(data, _padding(oaep))
    except ValueError as e:
        raise MslCryptoException(
            MslError.PLAINTEXT_ILLEGAL_BLOCK_SIZE, "plaintext too long for the RSA key", cause=e
        ) from e


def rsa_decrypt(private_key: rsa.RSAPrivateKey, data: bytes, *, oaep: bool) -> bytes:
    """Raw RSA decryption; any failure is ``CIPHERTEXT_BAD_PADDING`` (no padding oracle detail)."""
    if len(data) != (private_key.key_size + 7) // 8:
        raise MslCryptoException(MslError.CIPHERTEXT_ILLEGAL_BLOCK_SIZE, f"{len(data)}-byte RSA ciphertext")
    try:
        return private_key.decrypt(data, _padding(oaep))
    except ValueError as e:
        raise MslCryptoException(MslError.CIPHERTEXT_BAD_PADDING, "RSA decryption failed", cause=e) from e


class RsaMode(Enum):
    """What an :class:`RsaCryptoContext` does (the rest is pass-through)."""

    SIGN_VERIFY = "SIGN_VERIFY"
    ENCRYPT_DECRYPT_OAEP = "ENCRYPT_DECRYPT_OAEP"
    ENCRYPT_DECRYPT_PKCS1 = "ENCRYPT_DECRYPT_PKCS1"


class _AsymmetricContext(CryptoContext):
    """Shared pass-through behaviour; wrap/unwrap are unsupported."""

    def __init__(self, key_id: str) -> None:
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        """The key ID written into ciphertext envelopes."""
        return self._key_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self._key_id!r})"

    def wrap(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.WRAP_NOT_SUPPORTED)

    def unwrap(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.UNWRAP_NOT_SUPPORTED)


class RsaCryptoContext(_AsymmetricContext):
    """RSA context for entity authentication (SIGN_VERIFY) or application encryption.

    With only a public key the context can verify/encrypt; with only a private key it can
    sign/decrypt; the other operations of the mode raise ``*_NOT_SUPPORTED``.
    ``ENCRYPT_DECRYPT_*`` produces V1 envelopes without an IV and pass-through signatures.
    """

    def __init__(
        self,
        key_id: str,
        private_key: rsa.RSAPrivateKey | None = None,
        public_key: rsa.RSAPublicKey | None = None,
        mode: RsaMode = RsaMode.SIGN_VERIFY,
    ) -> None:
        super().__init__(key_id)
        if private_key is not None and not isinstance(private_key, rsa.RSAPrivateKey):
            raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, "not an RSA private key")
        if public_key is not None and not isinstance(public_key, rsa.RSAPublicKey):
            raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, "not an RSA public key")
        self._private_key = private_key
        self._public_key = public_key
        self._mode = mode

    @property
    def mode(self) -> RsaMode:
        """The configured mode."""
        return self._mode

    def encrypt(self, data: bytes) -> bytes:
        if self._mode is RsaMode.SIGN_VERIFY:
            return data
        if self._public_key is None:
            raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED, "no public key")
        oaep = self._mode is RsaMode.ENCRYPT_DECRYPT_OAEP
        return encode_v1(self._key_id, None, rsa_encrypt(self._public_key, data, oaep=oaep))

    def decrypt(self, data: bytes) -> bytes:
        if self._mode is RsaMode.SIGN_VERIFY:
            return data
        if self._private_key is None:
            raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED, "no private key")
        envelope = CiphertextEnvelope.parse(data, EnvelopeVersion.V1)
        oaep = self._mode is RsaMode.ENCRYPT_DECRYPT_OAEP
        return rsa_decrypt(self._private_key, envelope.ciphertext, oaep=oaep)

    def sign(self, data: bytes) -> bytes:
        if self._mode is not RsaMode.SIGN_VERIFY:
            return b""
        if self._private_key is None:
            raise MslCryptoException(MslError.SIGN_NOT_SUPPORTED, "no private key")
        return self._private_key.sign(data, _PKCS1, hashes.SHA256())

    def verify(self, data: bytes, signature: bytes) -> bool:
        if self._mode is not RsaMode.SIGN_VERIFY:
            return True
        if self._public_key is None:
            raise MslCryptoException(MslError.VERIFY_NOT_SUPPORTED, "no public key")
        sig = SignatureEnvelope.parse(signature).signature
        try:
            self._public_key.verify(sig, data, _PKCS1, hashes.SHA256())
        except InvalidSignature:
            return False
        return True


class RsaWrapMode(Enum):
    """RSA padding of the key exchange wrapping context."""

    WRAP_UNWRAP_OAEP = "WRAP_UNWRAP_OAEP"
    WRAP_UNWRAP_PKCS1 = "WRAP_UNWRAP_PKCS1"


class RsaWrappingCryptoContext(_AsymmetricContext):
    """ASYMMETRIC_WRAPPED key exchange context (keyx.md §2).

    ``wrap``/``unwrap`` are raw RSA-OAEP or RSA PKCS#1 v1.5 (no envelope); encrypt and
    decrypt return their input, sign returns empty bytes and verify is always true.
    Wrapping needs the public key, unwrapping the private key.
    """

    def __init__(
        self,
        key_id: str,
        private_key: rsa.RSAPrivateKey | None = None,
        public_key: rsa.RSAPublicKey | None = None,
        mode: RsaWrapMode = RsaWrapMode.WRAP_UNWRAP_OAEP,
    ) -> None:
        super().__init__(key_id)
        self._private_key = private_key
        self._public_key = public_key
        self._oaep = mode is RsaWrapMode.WRAP_UNWRAP_OAEP

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data

    def wrap(self, data: bytes) -> bytes:
        if self._public_key is None:
            raise MslCryptoException(MslError.WRAP_NOT_SUPPORTED, "no public key")
        return rsa_encrypt(self._public_key, data, oaep=self._oaep)

    def unwrap(self, data: bytes) -> bytes:
        if self._private_key is None:
            raise MslCryptoException(MslError.UNWRAP_NOT_SUPPORTED, "no private key")
        return rsa_decrypt(self._private_key, data, oaep=self._oaep)

    def sign(self, data: bytes) -> bytes:
        return b""

    def verify(self, data: bytes, signature: bytes) -> bool:
        return True


class EccCryptoContext(_AsymmetricContext):
    """ECDSA SHA-256 context (DER signatures) for ECC entity authentication.

    Encrypt/decrypt are pass-through (ECIES is deliberately not implemented, crypto.md §8).
    """

    def __init__(
        self,
        key_id: str,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        public_key: ec.EllipticCurvePublicKey | None = None,
    ) -> None:
        super().__init__(key_id)
        if private_key is not None and not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise MslCryptoException(MslError.INVALID_PRIVATE_KEY, "not an EC private key")
        if public_key is not None and not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise MslCryptoException(MslError.INVALID_PUBLIC_KEY, "not an EC public key")
        self._private_key = private_key
        self._public_key = public_key

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data

    def sign(self, data: bytes) -> bytes:
        if self._private_key is None:
            raise MslCryptoException(MslError.SIGN_NOT_SUPPORTED, "no private key")
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, data: bytes, signature: bytes) -> bool:
        if self._public_key is None:
            raise MslCryptoException(MslError.VERIFY_NOT_SUPPORTED, "no public key")
        sig = SignatureEnvelope.parse(signature).signature
        try:
            self._public_key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True
