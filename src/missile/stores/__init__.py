"""Client token stores and server token state: memory, SQLite, Redis."""

from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.stores.redis_state import RedisTokenFactory
from missile.stores.sqlite import SqliteStore
from missile.stores.sqlite_state import SqliteTokenFactory

__all__ = ["InMemoryStore", "MslStore", "RedisTokenFactory", "SqliteStore", "SqliteTokenFactory"]
