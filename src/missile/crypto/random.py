"""Injectable randomness.

Every random value missile draws (IVs, keys, message IDs, serial numbers) comes from a
:class:`RandomSource`, so tests can pin it and production uses the operating system's
CSPRNG (crypto.md §10).
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

MAX_LONG_VALUE = 2**53


@runtime_checkable
class RandomSource(Protocol):
    """A source of cryptographically secure random bytes."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes."""
        ...


class SystemRandom:
    """The default source: ``os.urandom``."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes."""
        return os.urandom(n)


DEFAULT_RANDOM: RandomSource = SystemRandom()


def random_long(source: RandomSource) -> int:
    """A uniform identifier in ``0 .. 2**53 - 1`` (message IDs, serial numbers)."""
    return int.from_bytes(source.random_bytes(8), "big") & (MAX_LONG_VALUE - 1)


def random_signed_long(source: RandomSource) -> int:
    """A uniform signed 64-bit integer (the JWE ladder wrapping key ``kid``)."""
    return int.from_bytes(source.random_bytes(8), "big", signed=True)
