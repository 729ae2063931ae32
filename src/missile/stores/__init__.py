"""Client token stores and server token state: memory, SQLite, Redis, Redis Cluster.

:class:`RedisTokenState` is imported on first use (a module ``__getattr__``): the
``redis`` package is an extra (``missile[redis]``), and a client that only needs a
:class:`SqliteStore` must be able to import this package without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.stores.open import open_token_state
from missile.stores.sqlite import SqliteStore
from missile.stores.sqlite_state import SqliteTokenState
from missile.tokens.state import MemoryTokenState, TokenState

if TYPE_CHECKING:
    from missile.stores.redis_state import RedisTokenState

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


def __getattr__(name: str) -> Any:
    """Import the Redis-backed names on first use (they need the ``redis`` extra)."""
    if name == "RedisTokenState":
        from missile.stores.redis_state import RedisTokenState

        return RedisTokenState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
