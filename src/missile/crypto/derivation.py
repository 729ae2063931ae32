"""Key derivations (crypto.md §9) and the Diffie-Hellman integer encoding (keyx.md §4)."""

from __future__ import annotations

from typing import NamedTuple

from cryptography.hazmat.primitives import hashes, hmac

from missile.errors import MslCryptoException, MslError

__all__ = [
    "WRAP_KEY_SALT",
    "WRAP_KEY_INFO",
    "SessionKeys",
    "derive_wrapping_key",
    "derive_dh_session_keys",
    "dh_int_to_bytes",
    "dh_int_from_bytes",
]

WRAP_KEY_SALT = bytes.fromhex("027617984f6227539a630b897c017d69")
"""Fixed salt of the PSK/MGK wrapping key derivation (crypto.md §9.1)."""

WRAP_KEY_INFO = bytes.fromhex("809f82a7addf548d3ea9dd067ff9bb91")
"""Fixed info of the PSK/MGK wrapping key derivation (crypto.md §9.1)."""


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def derive_wrapping_key(encryption_key: bytes, hmac_key: bytes) -> bytes:
    """Kpw/Kdw = HMAC(HMAC(salt, Ke || Kh), info)[0:16] (crypto.md §9.1; not HKDF)."""
    if not encryption_key or not hmac_key:
        raise MslCryptoException(MslError.DERIVEKEY_ERROR, "empty input key")
    prk = _hmac_sha256(WRAP_KEY_SALT, encryption_key + hmac_key)
    return _hmac_sha256(prk, WRAP_KEY_INFO)[:16]


class SessionKeys(NamedTuple):
    """A session key pair: AES-128 encryption key and HMAC-SHA256 key."""

    encryption_key: bytes
    hmac_key: bytes

    def __repr__(self) -> str:  # never show key material
        return f"SessionKeys(encryption_key=<{len(self.encryption_key)} bytes>, hmac_key=<{len(self.hmac_key)} bytes>)"


def dh_int_to_bytes(value: int) -> bytes:
    """``0x00 || minimal big-endian magnitude`` (zero is the single byte ``00``), keyx.md §4."""
    if value < 0:
        raise ValueError("Diffie-Hellman values are non-negative")
    return b"\x00" + value.to_bytes((value.bit_length() + 7) // 8, "big")


def dh_int_from_bytes(data: bytes) -> int:
    """Read a DH integer sent with any number (including none) of leading zero bytes."""
    return int.from_bytes(data, "big")


def derive_dh_session_keys(shared_secret: int | bytes) -> SessionKeys:
    """SHA-384 of ``dh_int_to_bytes(z)`` split 16/32 (keyx.md §4).

    ``shared_secret`` may be the integer z or its big-endian bytes in any zero-padded form
    (e.g. the fixed-length output of ``DHPrivateKey.exchange``).
    """
    z = dh_int_from_bytes(shared_secret) if isinstance(shared_secret, bytes) else shared_secret
    digest = hashes.Hash(hashes.SHA384())
    digest.update(dh_int_to_bytes(z))
    out = digest.finalize()
    return SessionKeys(out[:16], out[16:48])
