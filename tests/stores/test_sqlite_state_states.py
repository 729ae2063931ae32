"""The token states the SQLite state builds from its rows (``sqlite_state._state``): one
object per distinct row, equal to the state built field by field, in a bounded table,
and a state that changes (a revocation, a renewal) is read as changed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from missile.stores import sqlite_state
from missile.stores.sqlite_state import SqliteTokenState
from missile.tokens.state import MasterTokenState


def _built(row: tuple[Any, ...]) -> MasterTokenState:
    newest, sequence, identity_revoked, serial_revoked = row[:4]
    return MasterTokenState(
        identity_revoked=bool(identity_revoked),
        serial_revoked=bool(serial_revoked),
        newest_serial=None if newest is None else int(newest),
        sequence=None if sequence is None else int(sequence),
    )


def test_each_row_gives_the_state_built_field_by_field() -> None:
    rows = [
        (None, None, 0, 0, None),
        (7, None, 0, 1, 3),
        (7, 0, 1, 0, 0),
        (7, 2**53, 1, 1, 12),
        (8, 0, 0, 0, None),
        (0, 0, 0, 0, 5),
    ]
    for row in rows:
        first = sqlite_state._state(row)
        assert first == _built(row)
        again = sqlite_state._state((*row[:4], "other fifth column"))
        assert again is first  # only the first four columns make the state
    assert len({sqlite_state._state(row) for row in rows}) == len(rows)


def test_the_table_of_states_stays_bounded() -> None:
    for serial in range(sqlite_state._STATES_MAX + 50):
        assert sqlite_state._state((serial, 1, 0, 0)).newest_serial == serial
        assert len(sqlite_state._states) <= sqlite_state._STATES_MAX


def test_a_changed_token_state_is_read_as_changed(tmp_path: Path) -> None:
    async def run() -> None:
        state = SqliteTokenState(tmp_path / "state.db")
        try:
            await state.record_new_master_token("alice", 10)
            before, verdict = await state.check_master_token("alice", 10, 1)
            assert verdict is None
            assert before == MasterTokenState(False, False, 10, 0)
            assert await state.record_renewal("alice", 10, 0, 1)
            renewed, _ = await state.check_master_token("alice", 10, 2)
            assert renewed == MasterTokenState(False, False, 10, 1)
            await state.revoke_master_token(10)
            revoked, _ = await state.check_master_token("alice", 10, 3)
            assert revoked == MasterTokenState(False, True, 10, 1)
            await state.revoke_identity("alice")
            assert await state.master_token_state("alice", 10) == MasterTokenState(True, True, 10, 1)
            assert (await state.check_master_token("alice", 10, 3))[1] is not None  # a replay still is one
        finally:
            await state.aclose()

    asyncio.run(run())
