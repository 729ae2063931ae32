"""AES Key Wrap of a space-padded JWK, the JWK_LADDER wrapping (crypto.md §7; keyx.md §6)."""

from __future__ import annotations

from missile.crypto.context import CryptoContext
from missile.crypto.symmetric import aes_key_unwrap, aes_key_wrap
from missile.errors import MslCryptoException, MslError

__all__ = ["AesKwJwkCryptoContext", "pad_jwk"]

_KW_BLOCK = 8


def pad_jwk(jwk_json: bytes) -> bytes:
    """Insert ``(8 - len % 8) % 8`` spaces right after the opening ``{``.

    The result is still the same JSON object and a multiple of 8 bytes long, as RFC 3394
    requires.
    """
    count = -len(jwk_json) % _KW_BLOCK
    if count == 0:
        return jwk_json
    if jwk_json[:1] != b"{":
        raise MslCryptoException(MslError.WRAP_ERROR, "JWK JSON must start with '{'")
    return b"{" + b" " * count + jwk_json[1:]


class AesKwJwkCryptoContext(CryptoContext):
    """Wrap = pad the JWK JSON then AES-KW; unwrap = AES-KW unwrap (the padding stays).

    ``key`` is either a raw AES key or another context whose ``wrap``/``unwrap`` performs
    AES-KW (for instance a PSK :class:`~missile.crypto.symmetric.SymmetricCryptoContext`
    with Kpw). Encrypt, decrypt, sign and verify are unsupported.
    """

    def __init__(self, key: bytes | CryptoContext) -> None:
        if isinstance(key, bytes) and len(key) not in (16, 24, 32):
            raise MslCryptoException(MslError.INVALID_WRAPPING_KEY, f"{len(key)}-byte AES key")
        self._key = key

    def wrap(self, data: bytes) -> bytes:
        padded = pad_jwk(data)
        if isinstance(self._key, bytes):
            return aes_key_wrap(self._key, padded)
        return self._key.wrap(padded)

    def unwrap(self, data: bytes) -> bytes:
        if isinstance(self._key, bytes):
            return aes_key_unwrap(self._key, data)
        return self._key.unwrap(data)

    def encrypt(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.ENCRYPT_NOT_SUPPORTED)

    def decrypt(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.DECRYPT_NOT_SUPPORTED)

    def sign(self, data: bytes) -> bytes:
        raise MslCryptoException(MslError.SIGN_NOT_SUPPORTED)

    def verify(self, data: bytes, signature: bytes) -> bool:
        raise MslCryptoException(MslError.VERIFY_NOT_SUPPORTED)
