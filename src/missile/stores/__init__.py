"""Client token stores and server token state: memory, SQLite, Redis, Redis Cluster."""

from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.stores.open import open_token_state
from missile.stores.redis_state import RedisTokenState
from missile.stores.sqlite import SqliteStore
from missile.stores.sqlite_state import SqliteTokenState
from missile.tokens.state import MemoryTokenState, TokenState

__all__ = [
    "InMemoryStore",
    "MemoryTokenState",
    "MslStore",
    "RedisTokenState",
    "SqliteStore",
    "SqliteTokenState",
    "TokenState",
    "open_token_state",
]
