"""Server token-factory state in SQLite (control.md §2.2, §7).

:class:`SqliteTokenFactory` is the :class:`~missile.tokens.factory.BaseTokenFactory`
policy (identical to :class:`~missile.tokens.factory.InMemoryTokenFactory`) with its
state in one owner-only SQLite file shared by any number of processes on one host.
Every update runs in a ``BEGIN IMMEDIATE`` transaction, so reading the largest accepted
non-replayable ID, checking and storing the new one is atomic across processes, as are
the sequence-number bump of a renewal and the newest-serial switch of a creation.

Creating a new master token for an identity also discards the replay window of the
identity's previous serial number, whose tokens are refused from then on (control.md §7
allows it); this keeps the state bounded by the number of identities.
"""

from __future__ import annotations

import os
import sqlite3

from missile.errors import MslError
from missile.stores.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SqliteDatabase
from missile.tokens.factory import DAY_MS, BaseTokenFactory, MasterTokenState, check_non_replayable_id

__all__ = ["SqliteTokenFactory"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mt_sequence (
        serial INTEGER PRIMARY KEY,
        sequence INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS mt_newest (
        identity TEXT PRIMARY KEY,
        serial INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS non_replayable (
        identity TEXT NOT NULL,
        serial INTEGER NOT NULL,
        largest INTEGER NOT NULL,
        PRIMARY KEY (identity, serial)
    )""",
    """CREATE TABLE IF NOT EXISTS revoked (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    )""",
)

_IDENTITY = "identity"
_SERIAL = "serial"
_USER = "user"
_USER_ID_TOKEN = "uit"


class SqliteTokenFactory(BaseTokenFactory):
    """A token factory whose state lives in a SQLite file (control.md §2.2).

    A database failure makes every check and issue method raise
    :class:`~missile.errors.MslException` with ``INTERNAL_EXCEPTION``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        master_token_renewal_ms: int = DAY_MS,
        master_token_expiration_ms: int = 7 * DAY_MS,
        user_id_token_renewal_ms: int = DAY_MS,
        user_id_token_expiration_ms: int = 7 * DAY_MS,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        super().__init__(
            master_token_renewal_ms=master_token_renewal_ms,
            master_token_expiration_ms=master_token_expiration_ms,
            user_id_token_renewal_ms=user_id_token_renewal_ms,
            user_id_token_expiration_ms=user_id_token_expiration_ms,
        )
        self._db = SqliteDatabase(path, _SCHEMA, busy_timeout_ms=busy_timeout_ms)

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    def close(self) -> None:
        """Close the database connection of this process."""
        self._db.close()

    # -- revocation -----------------------------------------------------------------------

    def _revoke(self, kind: str, value: str) -> None:
        with self._db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO revoked (kind, value) VALUES (?, ?)", (kind, value))

    def revoke_identity(self, identity: str) -> None:
        self._revoke(_IDENTITY, identity)

    def revoke_master_token(self, serial_number: int) -> None:
        self._revoke(_SERIAL, str(serial_number))

    def revoke_user(self, user: str) -> None:
        self._revoke(_USER, user)

    def revoke_user_id_token(self, serial_number: int) -> None:
        self._revoke(_USER_ID_TOKEN, str(serial_number))

    def forget_master_token(self, serial_number: int) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM mt_sequence WHERE serial = ?", (serial_number,))

    # -- state primitives ---------------------------------------------------------------

    def _master_token_state(self, identity: str | None, serial_number: int) -> MasterTokenState:
        with self._db.read() as conn:
            identity_revoked = identity is not None and _is_revoked(conn, _IDENTITY, identity)
            serial_revoked = _is_revoked(conn, _SERIAL, str(serial_number))
            newest = conn.execute("SELECT serial FROM mt_newest WHERE identity = ?", (identity or "",)).fetchone()
            sequence = conn.execute("SELECT sequence FROM mt_sequence WHERE serial = ?", (serial_number,)).fetchone()
        return MasterTokenState(
            identity_revoked=identity_revoked,
            serial_revoked=serial_revoked,
            newest_serial=int(newest[0]) if newest is not None else None,
            sequence=int(sequence[0]) if sequence is not None else None,
        )

    def _accept_largest(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT largest FROM non_replayable WHERE identity = ? AND serial = ?", (identity, serial_number)
            ).fetchone()
            error = check_non_replayable_id(int(row[0]) if row is not None else 0, candidate)
            if error is None:
                conn.execute(
                    "INSERT OR REPLACE INTO non_replayable (identity, serial, largest) VALUES (?, ?, ?)",
                    (identity, serial_number, candidate),
                )
        return error

    def _record_new_master_token(self, identity: str, serial_number: int) -> None:
        with self._db.write() as conn:
            row = conn.execute("SELECT serial FROM mt_newest WHERE identity = ?", (identity,)).fetchone()
            if row is not None:
                previous = int(row[0])
                conn.execute("DELETE FROM mt_sequence WHERE serial = ?", (previous,))
                conn.execute("DELETE FROM non_replayable WHERE identity = ? AND serial = ?", (identity, previous))
            conn.execute("INSERT OR REPLACE INTO mt_sequence (serial, sequence) VALUES (?, 0)", (serial_number,))
            conn.execute("INSERT OR REPLACE INTO mt_newest (identity, serial) VALUES (?, ?)", (identity, serial_number))

    def _record_renewal(self, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        with self._db.write() as conn:
            row = conn.execute("SELECT sequence FROM mt_sequence WHERE serial = ?", (serial_number,)).fetchone()
            if row is not None and int(row[0]) != old_sequence:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO mt_sequence (serial, sequence) VALUES (?, ?)", (serial_number, new_sequence)
            )
        return True

    def _user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        with self._db.read() as conn:
            if user is not None and _is_revoked(conn, _USER, user):
                return True
            return _is_revoked(conn, _USER_ID_TOKEN, str(serial_number))


def _is_revoked(conn: sqlite3.Connection, kind: str, value: str) -> bool:
    return conn.execute("SELECT 1 FROM revoked WHERE kind = ? AND value = ?", (kind, value)).fetchone() is not None
