"""Contexts that do not protect anything (crypto.md §1).

:class:`NullCryptoContext` serves NONE, NONE_SUFFIXED and PROVISIONED entity
authentication and deletion service tokens. :class:`ClientMslCryptoContext` is what a
trusted-network client uses as its "MSL crypto context": it cannot open tokens, so every
verification fails.
"""

from __future__ import annotations

from missile.crypto.context import CryptoContext
from missile.errors import MslInternalException

__all__ = ["NullCryptoContext", "ClientMslCryptoContext"]


class NullCryptoContext(CryptoContext):
    """Everything is pass-through; signatures are empty and always verify."""

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data

    def wrap(self, data: bytes) -> bytes:
        return data

    def unwrap(self, data: bytes) -> bytes:
        return data

    def sign(self, data: bytes) -> bytes:
        return b""

    def verify(self, data: bytes, signature: bytes) -> bool:
        return True


class ClientMslCryptoContext(CryptoContext):
    """A client's MSL crypto context: pass-through, empty signatures, verify always False.

    Wrap and unwrap are programming errors for a client and raise an internal error.
    """

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data

    def wrap(self, data: bytes) -> bytes:
        raise MslInternalException("wrap is unsupported by the client MSL crypto context")

    def unwrap(self, data: bytes) -> bytes:
        raise MslInternalException("unwrap is unsupported by the client MSL crypto context")

    def sign(self, data: bytes) -> bytes:
        return b""

    def verify(self, data: bytes, signature: bytes) -> bool:
        return False
