"""The PSK wrapping key (Kpw) lookup used by SYMMETRIC_WRAPPED ``PSK`` and the ladders'
``PSK`` mechanism (keyx.md §3, §5, §6; crypto.md §9.1).

The reference obtains Kpw through the PSK entity authentication factory. Here the key
exchange factories take a :class:`PskWrapKeyLookup` instead, so they do not depend on the
entity authentication implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from missile.crypto.context import CryptoContext
from missile.crypto.derivation import derive_wrapping_key
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.keyfile import KeyFile, PskKeySet

__all__ = ["PskWrapKeyLookup", "StaticPskWrapKeyLookup", "psk_lookup_from_keyfile"]


@runtime_checkable
class PskWrapKeyLookup(Protocol):
    """Maps an entity identity to a crypto context whose ``wrap``/``unwrap`` is AES-KW with Kpw."""

    def wrap_crypto_context(self, identity: str) -> CryptoContext | None:
        """The identity's Kpw context, or None when the identity has no PSK key set."""
        ...


class StaticPskWrapKeyLookup:
    """A fixed identity -> Kpw table (16/24/32-byte AES keys)."""

    def __init__(self, wrap_keys: Mapping[str, bytes]) -> None:
        self._contexts: dict[str, SymmetricCryptoContext] = {
            identity: SymmetricCryptoContext(identity, wrap_key=bytes(key)) for identity, key in wrap_keys.items()
        }

    @classmethod
    def from_key_sets(cls, key_sets: Iterable[PskKeySet]) -> StaticPskWrapKeyLookup:
        """From PSK key sets; Kpw is derived from Kpe and Kph (crypto.md §9.1) when not given."""
        return cls(
            {
                ks.identity: ks.wrap_key
                if ks.wrap_key is not None
                else derive_wrapping_key(ks.encryption_key, ks.hmac_key)
                for ks in key_sets
            }
        )

    def wrap_crypto_context(self, identity: str) -> CryptoContext | None:
        """The identity's Kpw context, or None when the identity has no PSK key set."""
        return self._contexts.get(identity)

    def identities(self) -> list[str]:
        """The identities with a wrapping key."""
        return list(self._contexts)

    def __repr__(self) -> str:
        return f"StaticPskWrapKeyLookup(identities={sorted(self._contexts)!r})"


def psk_lookup_from_keyfile(keys: KeyFile) -> StaticPskWrapKeyLookup:
    """The Kpw lookup over ``keys.psk``."""
    return StaticPskWrapKeyLookup.from_key_sets(keys.psk)
