"""Client token stores and server token state."""

from missile.stores.base import MslStore

__all__ = ["MslStore"]
