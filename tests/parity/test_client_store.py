"""Client store cases the reference probes (SimpleMslStoreTest) beyond tests/stores:
the non-replayable ID counter wrapping at 2^53 (@Ignore'd in the reference), replacing a
master token's crypto context, and refusing counters that left the valid range. Both
store implementations are checked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslInternalException
from missile.stores.base import MslStore
from missile.stores.memory import InMemoryStore
from missile.stores.sqlite import SqliteStore
from stores.test_sqlite_store import held, session


def _set_counter(store: MslStore, path: Path, serial: int, value: int) -> None:
    if isinstance(store, InMemoryStore):
        store._non_replayable[serial] = value
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT OR REPLACE INTO non_replayable (serial, value) VALUES (?, ?)", (serial, value))


@pytest.fixture(params=["memory", "sqlite"])
def store_and_path(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[MslStore, Path]:
    path = tmp_path / "store.db"
    return (InMemoryStore() if request.param == "memory" else SqliteStore(path)), path


def test_wrapped_non_replayable_id(store_and_path: tuple[MslStore, Path]) -> None:
    """wrappedNonReplayableId: after 2^53 the counter continues at 0."""
    store, path = store_and_path
    mt = held(1)
    _set_counter(store, path, mt.serial_number, MAX_LONG_VALUE - 1)
    assert [store.get_non_replayable_id(mt) for _ in range(3)] == [MAX_LONG_VALUE, 0, 1]


def test_out_of_range_counter_is_refused(store_and_path: tuple[MslStore, Path]) -> None:
    """A corrupted counter never yields an out-of-range non-replayable ID."""
    store, path = store_and_path
    mt = held(1)
    _set_counter(store, path, mt.serial_number, MAX_LONG_VALUE + 5)
    with pytest.raises(MslInternalException):
        store.get_non_replayable_id(mt)


def test_replace_crypto_context(store_and_path: tuple[MslStore, Path]) -> None:
    """replaceCryptoContext / replaceTwoCryptoContexts: the newest context for a token wins."""
    store, _ = store_and_path
    mt = held(1)
    first, second = session(mt, "first"), session(mt, "second")
    store.set_crypto_context(mt, first)
    store.set_crypto_context(mt, second)
    stored = store.get_crypto_context(mt)
    assert stored is not None and stored.key_id == second.key_id
    assert store.get_master_token() == mt
