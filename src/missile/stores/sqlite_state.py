"""Server token state in SQLite (control.md §2.2, §7).

:class:`SqliteTokenState` keeps the issuer's state in one owner-only SQLite file that
survives restarts and is shared by any number of processes on one host (the default of
``missile serve``). Every update runs in a ``BEGIN IMMEDIATE`` transaction, so reading
the largest accepted non-replayable ID, checking and storing the new one is atomic
across processes, as are the sequence-number bump of a renewal and the newest-serial
switch of a creation.

The sqlite3 module blocks, so every call runs on one worker thread of this state's own:
the event loop never waits on the file lock of another process. One thread is enough,
because a process has one connection (SQLite serializes writers anyway), and it keeps a
burst of requests from occupying the default executor that applications share. Calls
that arrive while a transaction runs are group-committed in the next one, so concurrent
requests share one thread hop and one fsync (:mod:`missile.stores.batching`).

What a check costs is mostly Python around SQLite, not SQLite: so the worker is a plain
thread fed by a queue that wakes the event loop once per batch (an executor's futures
cost several callbacks and locks per hop), and a message's check is two statements (one
read of everything it needs, one upsert of an accepted ID), not one per table.

Creating a new master token for an identity also discards the replay window of the
identity's previous serial number, whose tokens are refused from then on (control.md §7
allows it); this keeps the state bounded by the number of identities.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from missile.errors import MslError, MslException
from missile.stores.batching import Batcher
from missile.stores.sqlite import SqliteDatabase
from missile.tokens.state import MasterTokenState, TokenState, check_non_replayable_id

__all__ = ["SqliteTokenState"]

#: Milliseconds a write waits for another process's lock. Longer than the engine's
#: per-call bound (1 s by default), so a request fails by that bound first, and short
#: enough that a worker thread stuck behind a crashed writer frees itself soon.
STATE_BUSY_TIMEOUT_MS = 5_000

#: SQLite's ``synchronous`` for the state: NORMAL. In WAL mode a commit then survives a
#: crash or restart of the server, and of the operating system, but the last commits
#: before a power loss may be lost, and with them the replay windows of those last
#: messages. That is the guarantee of Redis's default persistence (``appendfsync
#: everysec``), and it saves an fsync per non-replayable message (about 0.9 ms on the
#: benchmark machine, which at 8 clients cost 40 % of the request rate). "FULL" buys
#: power-loss durability back at that price.
STATE_SYNCHRONOUS = "NORMAL"

_T = TypeVar("_T")

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


#: An operation and whether it may write (a batch of reads only needs no write lock).
_Op = tuple[Callable[[sqlite3.Connection], Any], bool]


#: A job for the worker thread: the work, and the loop and future that await its result.
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class _Worker:
    """One thread of this process running jobs in order; each result wakes the awaiting
    event loop once (``call_soon_threadsafe``). A daemon thread: at interpreter exit a
    transaction it is running is rolled back by SQLite, never half applied."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="missile-sqlite-state", daemon=True)
        self._thread.start()

    async def call(self, work: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((work, loop, future))
        return await future

    def stop(self) -> None:
        """Let the thread end after the jobs queued so far."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            work, loop, future = job
            try:
                outcome: Any = work()
                ok = True
            except BaseException as exc:  # the awaiting caller must hear of it
                outcome, ok = exc, False
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_resolve, future, outcome, ok)


def _resolve(future: asyncio.Future[Any], outcome: Any, ok: bool) -> None:
    if future.done():
        return  # cancelled: the result is dropped
    if ok:
        future.set_result(outcome)
    else:
        future.set_exception(outcome)


class _Transactions(Batcher[_Op, Any]):
    """Runs each batch of operations in one write transaction on the worker thread."""

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__()
        self._db = db
        self._worker: _Worker | None = None
        self._pid = 0

    def worker(self) -> _Worker:
        # Threads do not survive fork: a forked child starts its own worker.
        if self._worker is None or self._pid != os.getpid():
            self._worker = _Worker()
            self._pid = os.getpid()
        return self._worker

    def shutdown(self) -> None:
        if self._worker is not None and self._pid == os.getpid():
            self._worker.stop()
        self._worker = None

    async def run_batch(self, ops: Sequence[_Op]) -> Sequence[Any]:
        return await self.worker().call(partial(self._transaction, ops))

    def _transaction(self, ops: Sequence[_Op]) -> list[Any]:
        # One transaction (and, when it writes, one fsync) for the whole batch: BEGIN
        # IMMEDIATE when any operation may write, else a plain read transaction that
        # other processes' writers do not wait for. An SQLite failure rolls everything
        # back and fails every operation (raised from here).
        results: list[Any] = []
        transaction = self._db.write() if any(write for _, write in ops) else self._db.read()
        with transaction as conn:
            for op, _ in ops:
                try:
                    results.append(op(conn))
                except MslException as exc:
                    results.append(exc)
        return results


class SqliteTokenState(TokenState):
    """Issuer state in a SQLite file (control.md §2.2): durable, shared by the
    processes of one host.

    Operations are group-committed (:mod:`missile.stores.batching`): those that arrive
    while a transaction runs share the next one, so concurrent requests share an fsync.
    A database failure makes every call raise :class:`~missile.errors.MslException`
    with ``INTERNAL_EXCEPTION``.
    """

    shared = True
    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = STATE_BUSY_TIMEOUT_MS,
        synchronous: str = STATE_SYNCHRONOUS,
    ) -> None:
        """``synchronous`` (:data:`STATE_SYNCHRONOUS`): "NORMAL" or "FULL"."""
        self._db = SqliteDatabase(path, _SCHEMA, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        self._batch = _Transactions(self._db)

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    def describe(self) -> str:
        return f"sqlite {self.path}"

    async def _run(self, op: Callable[..., _T], *args: object, write: bool = True) -> _T:
        result: _T = await self._batch.submit((partial(op, *args), write))
        return result

    async def aclose(self) -> None:
        await self._batch.worker().call(self._db.close)
        self.close()

    def close(self) -> None:
        """Close the database connection of this process (blocking)."""
        self._db.close()
        self._batch.shutdown()

    # -- the interface ----------------------------------------------------------------

    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        return await self._run(_master_token_state, identity, serial_number, write=False)

    async def check_master_token(
        self, identity: str, serial_number: int, non_replayable_id: int | None = None
    ) -> tuple[MasterTokenState, MslError | None]:
        return await self._run(
            _check_master_token, identity, serial_number, non_replayable_id, write=non_replayable_id is not None
        )

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        return await self._run(_accept_largest, identity, serial_number, candidate)

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        await self._run(_record_new_master_token, identity, serial_number)

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        return await self._run(_record_renewal, serial_number, old_sequence, new_sequence)

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        return await self._run(_user_id_token_revoked, user, serial_number, write=False)

    async def revoke_identity(self, identity: str) -> None:
        await self._run(_revoke, _IDENTITY, identity)

    async def revoke_master_token(self, serial_number: int) -> None:
        await self._run(_revoke, _SERIAL, str(serial_number))

    async def revoke_user(self, user: str) -> None:
        await self._run(_revoke, _USER, user)

    async def revoke_user_id_token(self, serial_number: int) -> None:
        await self._run(_revoke, _USER_ID_TOKEN, str(serial_number))

    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        await self._run(_forget, serial_number)


# -- operations (worker thread, inside a batch's transaction; ``conn`` comes last) ------


def _revoke(kind: str, value: str, conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR IGNORE INTO revoked (kind, value) VALUES (?, ?)", (kind, value))


def _forget(serial_number: int, conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM mt_sequence WHERE serial = ?", (serial_number,))


# Everything a message's check reads, in one statement (each sub-select is a primary key
# lookup): ?1 identity, ?2 serial, ?3 the serial as text, ?4 and ?5 the revocation kinds.
_CHECK_SQL = """SELECT
    (SELECT serial FROM mt_newest WHERE identity = ?1),
    (SELECT sequence FROM mt_sequence WHERE serial = ?2),
    EXISTS (SELECT 1 FROM revoked WHERE kind = ?4 AND value = ?1),
    EXISTS (SELECT 1 FROM revoked WHERE kind = ?5 AND value = ?3),
    (SELECT largest FROM non_replayable WHERE identity = ?1 AND serial = ?2)"""

_STORE_LARGEST_SQL = "INSERT OR REPLACE INTO non_replayable (identity, serial, largest) VALUES (?, ?, ?)"


def _read(identity: str, serial_number: int, conn: sqlite3.Connection) -> tuple[MasterTokenState, int]:
    newest, sequence, identity_revoked, serial_revoked, largest = conn.execute(
        _CHECK_SQL, (identity, serial_number, str(serial_number), _IDENTITY, _SERIAL)
    ).fetchone()
    state = MasterTokenState(
        identity_revoked=bool(identity_revoked),
        serial_revoked=bool(serial_revoked),
        newest_serial=None if newest is None else int(newest),
        sequence=None if sequence is None else int(sequence),
    )
    return state, 0 if largest is None else int(largest)


def _master_token_state(identity: str, serial_number: int, conn: sqlite3.Connection) -> MasterTokenState:
    return _read(identity, serial_number, conn)[0]


def _check_master_token(
    identity: str, serial_number: int, non_replayable_id: int | None, conn: sqlite3.Connection
) -> tuple[MasterTokenState, MslError | None]:
    state, largest = _read(identity, serial_number, conn)
    if non_replayable_id is None or state.newest_serial not in (None, serial_number):
        return state, None
    return state, _accept(identity, serial_number, largest, non_replayable_id, conn)


def _accept_largest(identity: str, serial_number: int, candidate: int, conn: sqlite3.Connection) -> MslError | None:
    return _accept(identity, serial_number, _read(identity, serial_number, conn)[1], candidate, conn)


def _accept(
    identity: str, serial_number: int, largest: int, candidate: int, conn: sqlite3.Connection
) -> MslError | None:
    error = check_non_replayable_id(largest, candidate)
    if error is None:
        conn.execute(_STORE_LARGEST_SQL, (identity, serial_number, candidate))
    return error


def _record_new_master_token(identity: str, serial_number: int, conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT serial FROM mt_newest WHERE identity = ?", (identity,)).fetchone()
    if row is not None:
        previous = int(row[0])
        conn.execute("DELETE FROM mt_sequence WHERE serial = ?", (previous,))
        conn.execute("DELETE FROM non_replayable WHERE identity = ? AND serial = ?", (identity, previous))
    conn.execute("INSERT OR REPLACE INTO mt_sequence (serial, sequence) VALUES (?, 0)", (serial_number,))
    conn.execute("INSERT OR REPLACE INTO mt_newest (identity, serial) VALUES (?, ?)", (identity, serial_number))


def _record_renewal(serial_number: int, old_sequence: int, new_sequence: int, conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT sequence FROM mt_sequence WHERE serial = ?", (serial_number,)).fetchone()
    if row is not None and int(row[0]) != old_sequence:
        return False
    conn.execute("INSERT OR REPLACE INTO mt_sequence (serial, sequence) VALUES (?, ?)", (serial_number, new_sequence))
    return True


def _user_id_token_revoked(user: str | None, serial_number: int, conn: sqlite3.Connection) -> bool:
    if user is not None and _is_revoked(conn, _USER, user):
        return True
    return _is_revoked(conn, _USER_ID_TOKEN, str(serial_number))


def _is_revoked(conn: sqlite3.Connection, kind: str, value: str) -> bool:
    return conn.execute("SELECT 1 FROM revoked WHERE kind = ? AND value = ?", (kind, value)).fetchone() is not None
