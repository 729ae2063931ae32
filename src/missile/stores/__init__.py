"""Client token stores and server token state."""

from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore

__all__ = ["InMemoryStore", "MslStore"]
