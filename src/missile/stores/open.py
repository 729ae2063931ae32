"""Server token state from one string, as ``missile serve`` and configuration files
name it: ``:memory:``, a SQLite path, ``redis://…`` / ``rediss://…`` (Redis), or the
same URL with ``cluster=True`` (Redis Cluster, any node)."""

from __future__ import annotations

import os

from missile.tokens.state import MemoryTokenState, TokenState

__all__ = ["MEMORY", "open_token_state"]

#: The location that asks for in-memory state (one process, lost on restart).
MEMORY = ":memory:"

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_token_state(location: str | os.PathLike[str], *, cluster: bool = False) -> TokenState:
    """The token state at ``location``; raises ValueError for a location it cannot use."""
    text = os.fspath(location)
    if text.startswith(_REDIS_SCHEMES):
        from missile.stores.redis_state import RedisTokenState

        try:
            return RedisTokenState(text, cluster=cluster)
        except ImportError as exc:  # the redis extra is not installed
            raise ValueError(str(exc)) from exc
    if cluster:
        raise ValueError(f"a Redis Cluster is named by a redis:// URL, not {text!r}")
    if text == MEMORY:
        return MemoryTokenState()
    if "://" in text:
        raise ValueError(f"unsupported token state URL scheme: {text.split('://', 1)[0]}://")
    from missile.stores.sqlite_state import SqliteTokenState

    return SqliteTokenState(text)
