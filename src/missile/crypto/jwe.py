"""JSON Web Encryption wrap/unwrap context, draft-08 style (crypto.md §6; interop.md B.14).

Differences from RFC 7516 are deliberate: the AAD is the ASCII of
``b64url(header).b64url(encrypted key).b64url(iv)``, the compact form has five parts and the
JSON form uses ``recipients[0].header/encrypted_key/integrity_value`` with top-level
``initialization_vector`` and ``ciphertext``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from missile.crypto.algorithms import JweAlgorithm, JweEncryption, JweFormat
from missile.crypto.asymmetric import rsa_decrypt, rsa_encrypt
from missile.crypto.context import CryptoContext
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric import aes_key_unwrap, aes_key_wrap
from missile.encoding import MslObject, b64url_decode, b64url_encode, decode, encode
from missile.errors import MslCryptoException, MslEncodingException, MslError

__all__ = [
    "CekCryptoContext",
    "RsaOaepCekContext",
    "AesKwCekContext",
    "JweCryptoContext",
]

_GCM_IV_LENGTH = 12
_GCM_TAG_LENGTH = 16

_KEY_ALGORITHM = "alg"
_KEY_ENCRYPTION = "enc"
_KEY_RECIPIENTS = "recipients"
_KEY_HEADER = "header"
_KEY_ENCRYPTED_KEY = "encrypted_key"
_KEY_INTEGRITY_VALUE = "integrity_value"
_KEY_INITIALIZATION_VECTOR = "initialization_vector"
_KEY_CIPHERTEXT = "ciphertext"


class CekCryptoContext(ABC):
    """Protects the JWE content encryption key (the header ``alg``)."""

    @property
    @abstractmethod
    def algorithm(self) -> JweAlgorithm:
        """The JWE ``alg`` this context implements."""

    @abstractmethod
    def encrypt_cek(self, cek: bytes) -> bytes:
        """Encrypt (wrap) a content encryption key."""

    @abstractmethod
    def decrypt_cek(self, ecek: bytes) -> bytes:
        """Decrypt (unwrap) an encrypted content encryption key."""


class RsaOaepCekContext(CekCryptoContext):
    """``RSA-OAEP`` (SHA-1, MGF1-SHA-1, empty label): public key to wrap, private to unwrap."""

    def __init__(self, private_key: rsa.RSAPrivateKey | None, public_key: rsa.RSAPublicKey | None) -> None:
        self._private_key = private_key
        self._public_key = public_key

    @property
    def algorithm(self) -> JweAlgorithm:
        return JweAlgorithm.RSA_OAEP

    def encrypt_cek(self, cek: bytes) -> bytes:
        if self._public_key is None:
            raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED, "no public key")
        return rsa_encrypt(self._public_key, cek, oaep=True)

    def decrypt_cek(self, ecek: bytes) -> bytes:
        if self._private_key is None:
            raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED, "no private key")
        return rsa_decrypt(self._private_key, ecek, oaep=True)


class AesKwCekContext(CekCryptoContext):
    """``A128KW``: RFC 3394 with an AES key, or delegated to another context's wrap/unwrap.

    The delegating form is how the JWE ladder's ``PSK`` mechanism uses the PSK
    context's wrapping key Kpw (keyx.md §5).
    """

    def __init__(self, key: bytes | CryptoContext) -> None:
        if isinstance(key, bytes) and len(key) not in (16, 24, 32):
            raise MslCryptoException(MslError.INVALID_WRAPPING_KEY, f"{len(key)}-byte AES key")
        self._key = key

    @property
    def algorithm(self) -> JweAlgorithm:
        return JweAlgorithm.A128KW

    def encrypt_cek(self, cek: bytes) -> bytes:
        if isinstance(self._key, bytes):
            return aes_key_wrap(self._key, cek)
        return self._key.wrap(cek)

    def decrypt_cek(self, ecek: bytes) -> bytes:
        if isinstance(self._key, bytes):
            return aes_key_unwrap(self._key, ecek)
        return self._key.unwrap(ecek)


def _jwe_b64url_decode(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except MslEncodingException as e:
        raise MslCryptoException(MslError.JWE_PARSE_ERROR, "invalid base64url", cause=e) from e


class JweCryptoContext(CryptoContext):
    """JWE wrap/unwrap (crypto.md §6); encrypt/decrypt/sign/verify are unsupported."""

    def __init__(
        self,
        cek_context: CekCryptoContext,
        encryption: JweEncryption,
        serialization: JweFormat,
        *,
        random: RandomSource = DEFAULT_RANDOM,
    ) -> None:
        self._cek_context = cek_context
        self._encryption = JweEncryption(encryption)
        self._format = JweFormat(serialization)
        self._random = random

    @property
    def algorithm(self) -> JweAlgorithm:
        """The header ``alg``."""
        return self._cek_context.algorithm

    @property
    def encryption(self) -> JweEncryption:
        """The header ``enc``."""
        return self._encryption

    @property
    def serialization(self) -> JweFormat:
        """Compact (``JWE_CS``) or JSON (``JWE_JS``)."""
        return self._format

    def encrypt(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED)

    def decrypt(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED)

    def sign(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.SIGN_NOT_SUPPORTED)

    def verify(self, data: bytes, signature: bytes) -> bool:
        raise MslCryptoException(MslError.VERIFY_NOT_SUPPORTED)

    def wrap(self, data: bytes) -> bytes:
        """Encrypt ``data`` under a fresh CEK and IV; returns the serialization bytes."""
        header = encode({_KEY_ALGORITHM: str(self.algorithm), _KEY_ENCRYPTION: str(self._encryption)})
        cek = self._random.random_bytes(self._encryption.key_length)
        iv = self._random.random_bytes(_GCM_IV_LENGTH)
        ecek = self._cek_context.encrypt_cek(cek)
        header_b64 = b64url_encode(header)
        ecek_b64 = b64url_encode(ecek)
        iv_b64 = b64url_encode(iv)
        aad = f"{header_b64}.{ecek_b64}.{iv_b64}".encode("ascii")
        sealed = AESGCM(cek).encrypt(iv, data, aad)
        ciphertext, tag = sealed[:-_GCM_TAG_LENGTH], sealed[-_GCM_TAG_LENGTH:]
        if self._format is JweFormat.JWE_CS:
            return ".".join((header_b64, ecek_b64, iv_b64, b64url_encode(ciphertext), b64url_encode(tag))).encode(
                "ascii"
            )
        return encode(
            {
                _KEY_RECIPIENTS: [
                    {
                        _KEY_HEADER: header_b64,
                        _KEY_ENCRYPTED_KEY: ecek_b64,
                        _KEY_INTEGRITY_VALUE: b64url_encode(tag),
                    }
                ],
                _KEY_INITIALIZATION_VECTOR: iv_b64,
                _KEY_CIPHERTEXT: b64url_encode(ciphertext),
            }
        )

    def unwrap(self, data: bytes) -> bytes:
        """Parse either serialization, check ``alg``/``enc`` and decrypt (crypto.md §6)."""
        header_b64, ecek_b64, iv_b64, ciphertext, tag = self._parse(data)
        header_bytes = _jwe_b64url_decode(header_b64)
        ecek = _jwe_b64url_decode(ecek_b64)
        iv = _jwe_b64url_decode(iv_b64)
        if not (header_bytes and ecek and iv and ciphertext and tag):
            raise MslCryptoException(MslError.JWE_PARSE_ERROR, "empty JWE component")

        try:
            header = decode(header_bytes)
            algorithm = JweAlgorithm.from_wire(header.get_string(_KEY_ALGORITHM))
            encryption = JweEncryption.from_wire(header.get_string(_KEY_ENCRYPTION))
        except MslEncodingException as e:
            raise MslCryptoException(MslError.JWE_PARSE_ERROR, "invalid JWE header", cause=e) from e
        if algorithm is not self.algorithm or encryption is not self._encryption:
            raise MslCryptoException(MslError.JWE_ALGORITHM_MISMATCH, f"header alg {algorithm}, enc {encryption}")

        cek = self._cek_context.decrypt_cek(ecek)
        if len(cek) != encryption.key_length:
            raise MslCryptoException(MslError.INVALID_SYMMETRIC_KEY, f"{len(cek)}-byte content encryption key")
        if len(tag) != _GCM_TAG_LENGTH:
            raise MslCryptoException(MslError.INVALID_ALGORITHM_PARAMS, f"{len(tag)}-byte tag")
        aad = f"{header_b64}.{ecek_b64}.{iv_b64}".encode("ascii")
        try:
            return AESGCM(cek).decrypt(iv, ciphertext + tag, aad)
        except InvalidTag as e:
            raise MslCryptoException(MslError.UNWRAP_ERROR, "JWE authentication failed", cause=e) from e
        except ValueError as e:
            raise MslCryptoException(MslError.INVALID_ALGORITHM_PARAMS, "invalid JWE IV", cause=e) from e

    @staticmethod
    def _parse(data: bytes) -> tuple[str, str, str, bytes, bytes]:
        """Split a serialization into the header/ECEK/IV strings and ciphertext/tag bytes."""
        if data[:1] == b"{":
            try:
                obj = decode(data)
                iv_b64 = obj.get_string(_KEY_INITIALIZATION_VECTOR)
                ciphertext_b64 = obj.get_string(_KEY_CIPHERTEXT)
                recipients = obj.get_array(_KEY_RECIPIENTS)
                if len(recipients) < 1:
                    raise MslCryptoException(MslError.JWE_PARSE_ERROR, "no recipients")
                recipient: MslObject = recipients.get_object(0)
                header_b64 = recipient.get_string(_KEY_HEADER)
                ecek_b64 = recipient.get_string(_KEY_ENCRYPTED_KEY)
                tag_b64 = recipient.get_string(_KEY_INTEGRITY_VALUE)
            except MslEncodingException as e:
                raise MslCryptoException(MslError.JWE_PARSE_ERROR, "invalid JWE JSON serialization", cause=e) from e
        else:
            try:
                text = data.decode("ascii")
            except UnicodeDecodeError:
                raise MslCryptoException(MslError.JWE_PARSE_ERROR, "non-ASCII compact serialization") from None
            parts = text.split(".")
            if len(parts) != 5:
                raise MslCryptoException(MslError.JWE_PARSE_ERROR, f"{len(parts)} compact serialization parts")
            header_b64, ecek_b64, iv_b64, ciphertext_b64, tag_b64 = parts
        return header_b64, ecek_b64, iv_b64, _jwe_b64url_decode(ciphertext_b64), _jwe_b64url_decode(tag_b64)
