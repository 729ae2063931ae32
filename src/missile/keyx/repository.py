"""The requester's wrapping-key store for the ladder key exchanges (keyx.md §5 step 4, §7).

A ladder response carries opaque ``wrapdata`` naming the new wrapping key. The requester
keeps the crypto context of that key under the ``wrapdata`` bytes so that its next
request can use mechanism ``WRAP``; the entry of the previous key is then removed.
Applications persist the repository across restarts.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from missile.crypto.context import CryptoContext

__all__ = ["WrapCryptoContextRepository", "InMemoryWrapCryptoContextRepository"]


@runtime_checkable
class WrapCryptoContextRepository(Protocol):
    """Wrapping-key crypto contexts by ``wrapdata`` (compared by byte content, keyx.md §7)."""

    def add_crypto_context(self, wrapdata: bytes, crypto_context: CryptoContext) -> None:
        """Remember ``crypto_context`` for the wrapping key identified by ``wrapdata``."""
        ...

    def get_crypto_context(self, wrapdata: bytes) -> CryptoContext | None:
        """The context stored for ``wrapdata``, or None."""
        ...

    def remove_crypto_context(self, wrapdata: bytes) -> None:
        """Forget the context stored for ``wrapdata`` (no error when absent)."""
        ...


class InMemoryWrapCryptoContextRepository:
    """A thread-safe in-process :class:`WrapCryptoContextRepository`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[bytes, CryptoContext] = {}

    def add_crypto_context(self, wrapdata: bytes, crypto_context: CryptoContext) -> None:
        """Remember ``crypto_context`` for the wrapping key identified by ``wrapdata``."""
        with self._lock:
            self._contexts[bytes(wrapdata)] = crypto_context

    def get_crypto_context(self, wrapdata: bytes) -> CryptoContext | None:
        """The context stored for ``wrapdata``, or None."""
        with self._lock:
            return self._contexts.get(bytes(wrapdata))

    def remove_crypto_context(self, wrapdata: bytes) -> None:
        """Forget the context stored for ``wrapdata`` (no error when absent)."""
        with self._lock:
            self._contexts.pop(bytes(wrapdata), None)

    def wrapdata(self) -> list[bytes]:
        """The stored ``wrapdata`` values (e.g. to persist them)."""
        with self._lock:
            return list(self._contexts)

    def __len__(self) -> int:
        with self._lock:
            return len(self._contexts)

    def __contains__(self, wrapdata: object) -> bool:
        with self._lock:
            return isinstance(wrapdata, bytes | bytearray) and bytes(wrapdata) in self._contexts

    def __repr__(self) -> str:
        return f"InMemoryWrapCryptoContextRepository(entries={len(self)})"
