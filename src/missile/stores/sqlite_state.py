"""Server token state in SQLite (control.md §2.2, §7).

:class:`SqliteTokenState` keeps the issuer's state in one owner-only SQLite file that
survives restarts and is shared by any number of processes on one host (the default of
``missile serve``). Every check that writes holds the database write lock from its first
read to its write, so reading the largest accepted non-replayable ID, checking and
storing the new one is atomic across processes, as are the sequence-number bump of a
renewal and the newest-serial switch of a creation.

The sqlite3 module blocks, so every call runs on one worker thread of this state's own:
the event loop never waits on the file lock of another process. One thread is enough,
because a process has one connection (SQLite serializes writers anyway), and it keeps a
burst of requests from occupying the default executor that applications share.

What a check costs is mostly the trip to the worker and back (two thread wake-ups) and
Python around SQLite, not SQLite, plus a hand-off of the GIL around every statement (the
sqlite3 module releases it while SQLite runs, and a busy event loop holds it). So:

* calls made in one pass of an event loop go to the worker together; the worker takes
  every call queued by the time it is free as one batch (group commit: concurrent
  requests share one thread hop and, with ``synchronous=FULL``, one fsync; no timer, so
  an idle state adds no latency), and wakes each event loop once per batch to settle
  all its calls;
* a batch of one call that is a single statement runs in autocommit mode, where the
  statement is its own transaction: a writing statement takes the write lock before it
  reads, exactly like ``BEGIN IMMEDIATE``, so no ``BEGIN`` and ``COMMIT`` are needed.
  A message's check is one such statement: an upsert that stores the new
  non-replayable ID only if the rule of control.md §7 accepts it (compare-and-set) and
  returns the token's state. When it stores nothing (a replay, a superseded serial),
  the check runs again the long way, in a write transaction, to tell which refusal it
  is: an upsert that wrote nothing changed nothing, so the verdict is the one of that
  transaction, as if the check had run only there. Alone, a check so costs two
  statement steps instead of five, and about a quarter less CPU in all;
* a batch of checks of distinct tokens (each concurrent client has its own) is one
  such statement for all of them, a row per check: one statement step, one commit and
  one release of the GIL per batch instead of two statements per check between a
  ``BEGIN`` and a ``COMMIT``. The checks touch distinct rows, so each row's verdict is
  the one it would get alone; the checks it stores nothing for run again the long way,
  together, in one write transaction. Per check, batches of two or three checks (8
  concurrent clients) cost 12.5 / 9.5 us of SQLite work instead of 15 / 12 (the
  worker's CPU per request in ``missile serve``: about 25 us instead of 28);
* any other batch of several calls runs in one transaction, in plain statements (there
  the write lock is held already, and a read and a write cost less than ``RETURNING``).

The compare-and-set needs ``RETURNING`` (SQLite 3.35); with an older SQLite library every
call takes the transaction path, with the same results.

Creating a new master token for an identity also discards the replay window of the
identity's previous serial number, whose tokens are refused from then on (control.md §7
allows it); this keeps the state bounded by the number of identities.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError, MslException
from missile.stores.sqlite import SqliteDatabase
from missile.tokens.state import (
    NON_REPLAYABLE_CATCHUP,
    NON_REPLAYABLE_WINDOW,
    MasterTokenState,
    TokenState,
    check_non_replayable_id,
)

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

#: Bytes per database page of a new state file (an existing file keeps its own). Every
#: commit appends each page it changed, whole and checksummed, to the write-ahead log,
#: and a check changes one row of a few dozen bytes: 1 KiB pages instead of SQLite's
#: 4 KiB cut the CPU of a check's commit by about 2.5 us (13 %). Rows stay far smaller
#: than a page, so lookups stay a few pages deep.
STATE_PAGE_SIZE = 1024

#: Most calls in one batch: bounds the work (and the write lock's hold time) of one
#: transaction, so other processes sharing the file wait for one batch at most this long.
MAX_BATCH = 256

#: Most checks in one compare-and-set statement. Each row count is a statement of its
#: own in the connection's statement cache (128 statements), so larger batches of checks
#: take several statements rather than crowd the cache; 3 parameters per row stay far
#: below SQLite's oldest limit of 999.
CHECK_ROWS = 32

#: Whether this SQLite library has ``RETURNING`` (3.35), which the single-statement
#: compare-and-set needs; without it every call runs in a transaction.
COMPARE_AND_SET = sqlite3.sqlite_version_info >= (3, 35, 0)

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

#: What a single-statement operation returns when it wrote nothing and its caller needs
#: the operation's transactional form to learn why (it then runs in a write transaction).
_RETRY: Any = object()


@dataclass(frozen=True, slots=True)
class _Operation:
    """What the worker runs for one kind of call: ``run(*args, conn)``.

    ``single``: ``run`` is one statement, so a call alone in its batch runs it in
    autocommit mode; when it returns :data:`_RETRY` it wrote nothing and ``fallback``
    runs in a write transaction. ``rows``: one such statement for several calls
    (``rows(calls, conn)``, a result or :data:`_RETRY` each) when their ``key`` s
    differ, so that no call's row is another's. In a transaction (a batch of several
    calls, or ``single`` False) ``fallback`` runs when there is one, else ``run``: a write
    transaction when any call of the batch may ``write``, else a read one (one
    consistent snapshot that writers do not wait for). ``fallback`` does in plain
    statements what ``run`` does in one: inside a transaction, where the write lock is
    held already, that is cheaper than ``RETURNING``, and an SQLite without
    ``RETURNING`` needs it.
    """

    run: Callable[..., Any]
    write: bool
    single: bool = False
    fallback: Callable[..., Any] | None = None
    rows: Callable[[Sequence[tuple[Any, ...]], sqlite3.Connection], list[Any]] | None = None
    key: Callable[[tuple[Any, ...]], object] | None = None


#: A call for the worker thread: the operation, its arguments, and the loop and future
#: that await its result.
_Job = tuple[_Operation | None, tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class _Worker:
    """One thread of this process running calls in order, in batches; each batch wakes
    each awaiting event loop once (``call_soon_threadsafe``) to settle all its calls.

    Calls made in one pass of an event loop go to the thread together, after the pass
    (``call_soon``), in one queue item: one wake-up of the thread for all of them. (Handing
    each call over at once woke the thread while the loop was still busy with the pass,
    to wait for the GIL: in ``missile serve`` at 8 clients, about 2.8 context switches
    per request instead of 0.9, and no less CPU.) The
    thread takes every item queued by the time it is free, up to :data:`MAX_BATCH`
    calls per transaction. A daemon thread: at interpreter exit a transaction it is
    running is rolled back by SQLite, never half applied."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        # Calls of this pass of each event loop, not yet handed to the thread.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._thread = threading.Thread(target=self._serve, name="missile-sqlite-state", daemon=True)
        self._thread.start()

    def call(self, operation: _Operation | None, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue a call (``operation`` None: ``args[0]()``, outside any transaction)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._send, loop)
        pending.append((operation, args, loop, future))
        return future

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        self._jobs.put(self._pending.pop(loop))

    def stop(self) -> None:
        """Let the thread end after the calls queued so far."""
        self._jobs.put(None)

    def _serve(self) -> None:
        _yield_on_wake()
        jobs = self._jobs
        running = True
        while running:
            first = jobs.get()
            if first is None:
                return
            batch = first
            while len(batch) < MAX_BATCH and not jobs.empty():  # the only reader: get() will not block
                more = jobs.get()
                if more is None:
                    running = False
                    break
                batch = batch + more
            # A future already done was cancelled by its caller (its time bound): its
            # call is skipped. Read from this thread, done() may lag; then the call runs
            # and its result is dropped, as when it is cancelled while running.
            live = [job for job in batch if not job[3].done()]
            for chunk in _chunks(live):
                try:
                    results = self._execute(chunk)
                except Exception as exc:  # a bug must reach the callers, not end the thread
                    results = [exc] * len(chunk)
                _wake(chunk, results)

    def _execute(self, batch: list[_Job]) -> list[Any]:
        """One result or exception per call. An SQLite failure fails the whole batch."""
        if len(batch) == 1:
            operation, args, _, _ = batch[0]
            if operation is None:
                return [_outcome(args[0])]
            if operation.single and (COMPARE_AND_SET or operation.fallback is None):
                return [self._single(operation, args)]
        elif COMPARE_AND_SET and _one_statement(batch):
            return self._rows(batch)
        operations: list[tuple[_Operation, tuple[Any, ...]]] = []
        for operation, args, _, _ in batch:
            assert operation is not None  # such calls run alone (_chunks)
            operations.append((operation, args))
        write = any(operation.write for operation, _ in operations)
        results: list[Any] = []
        try:
            with self._db.write() if write else self._db.read() as conn:
                for operation, args in operations:
                    results.append(_in_transaction(operation, args, conn))
        except MslException as exc:
            return [exc] * len(batch)
        return results

    def _rows(self, batch: list[_Job]) -> list[Any]:
        """The calls of ``batch`` (see :func:`_one_statement`) in statements of
        :data:`CHECK_ROWS` rows, each its own transaction; those they wrote nothing for
        then in one write transaction, in order. A failure fails the calls of its
        statement or transaction."""
        operation = batch[0][0]
        assert operation is not None and operation.rows is not None and operation.fallback is not None
        calls = [job[1] for job in batch]
        results: list[Any] = []
        for start in range(0, len(calls), CHECK_ROWS):
            part = calls[start : start + CHECK_ROWS]
            try:
                results += self._db.autocommit(operation.rows, part)
            except MslException as exc:  # this statement stored nothing; earlier ones did
                results += [exc] * len(part)
        again = [index for index, result in enumerate(results) if result is _RETRY]
        if again:
            try:
                with self._db.write() as conn:
                    for index in again:
                        results[index] = _in_transaction(operation, calls[index], conn)
            except MslException as exc:  # rolled back: no answer of it stands
                for index in again:
                    results[index] = exc
        return results

    def _single(self, operation: _Operation, args: tuple[Any, ...]) -> Any:
        try:
            result = self._db.autocommit(operation.run, *args)
            if result is _RETRY:
                assert operation.fallback is not None
                with self._db.write() as conn:
                    result = operation.fallback(*args, conn)
        except MslException as exc:
            return exc
        return result


def _yield_on_wake() -> None:
    """Schedule the calling thread as a batch thread (Linux ``SCHED_BATCH``; elsewhere,
    or where it is not allowed, nothing changes).

    Handing a call to the worker wakes it; as an ordinary thread it then preempts the
    event loop's thread on a busy CPU, and the loop waits through two context switches
    and a GIL hand-off per call. A batch thread is never woken ahead of the running one:
    it runs when a CPU is free or the loop's time slice ends, so the loop keeps its CPU
    and the calls queued meanwhile go in the same batch. Its share of CPU is unchanged
    (same weight as any thread), so it is never starved; every call keeps its time
    bound. Measured with ``missile serve`` and 8 clients on 2 cores: about 10-20% more
    requests per second, and half the system time per request."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))


def _one_statement(batch: list[_Job]) -> bool:
    """Whether ``batch`` is calls of one operation with a statement for several calls
    (``rows``), each on a ``key`` of its own."""
    operation = batch[0][0]
    if operation is None or operation.rows is None or operation.key is None:
        return False
    key = operation.key
    return all(job[0] is operation for job in batch) and len({key(job[1]) for job in batch}) == len(batch)


def _chunks(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """The batches of ``jobs``, in order: runs of at most :data:`MAX_BATCH` calls, and
    each call that runs outside any transaction (``operation`` None) alone."""
    start = 0
    while start < len(jobs):
        end = start + 1
        if jobs[start][0] is not None:
            while end < len(jobs) and end - start < MAX_BATCH and jobs[end][0] is not None:
                end += 1
        yield jobs[start:end]
        start = end


def _in_transaction(operation: _Operation, args: tuple[Any, ...], conn: sqlite3.Connection) -> Any:
    try:
        return (operation.fallback or operation.run)(*args, conn)
    except MslException as exc:
        return exc


def _outcome(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except Exception as exc:  # the awaiting caller must hear of it
        return exc


def _wake(batch: list[_Job], results: list[Any]) -> None:
    """Settle the batch's futures: one callback per event loop (almost always one)."""
    loop = batch[0][2]
    if all(job[2] is loop for job in batch):
        _notify(loop, batch, results)
        return
    for each in {job[2] for job in batch}:  # calls from the event loops of several threads
        mine = [index for index, job in enumerate(batch) if job[2] is each]
        _notify(each, [batch[index] for index in mine], [results[index] for index in mine])


def _notify(loop: asyncio.AbstractEventLoop, batch: list[_Job], results: list[Any]) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
        loop.call_soon_threadsafe(_settle, batch, results)


def _settle(batch: list[_Job], results: list[Any]) -> None:
    for job, result in zip(batch, results, strict=True):
        future = job[3]
        if future.done():
            continue  # cancelled: the result is dropped
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class SqliteTokenState(TokenState):
    """Issuer state in a SQLite file (control.md §2.2): durable, shared by the
    processes of one host.

    Calls are group-committed: those that arrive while a batch runs share the next one
    (see the module documentation). A database failure makes every call raise
    :class:`~missile.errors.MslException` with ``INTERNAL_EXCEPTION``.
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
        self._db = SqliteDatabase(
            path, _SCHEMA, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, page_size=STATE_PAGE_SIZE
        )
        self._worker: _Worker | None = None
        self._pid = 0

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def _thread(self) -> _Worker:
        # Threads do not survive fork: a forked child starts its own worker.
        if self._worker is None or self._pid != os.getpid():
            self._worker = _Worker(self._db)
            self._pid = os.getpid()
        return self._worker

    def _call(self, operation: _Operation, *args: object) -> asyncio.Future[Any]:
        return self._thread().call(operation, args)

    async def _run(self, op: Callable[..., _T], *args: object, write: bool = True) -> _T:
        """Run ``op(*args, conn)`` in a transaction of its batch."""
        result: _T = await self._call(_Operation(op, write), *args)
        return result

    async def aclose(self) -> None:
        await self._thread().call(None, (self._db.close,))
        self.close()

    def close(self) -> None:
        """Close the database connection of this process (blocking)."""
        self._db.close()
        if self._worker is not None and self._pid == os.getpid():
            self._worker.stop()
        self._worker = None

    # -- the interface ----------------------------------------------------------------

    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        state: MasterTokenState = await self._call(_STATE, identity, serial_number)
        return state

    async def check_master_token(
        self, identity: str, serial_number: int, non_replayable_id: int | None = None
    ) -> tuple[MasterTokenState, MslError | None]:
        if non_replayable_id is None:
            return await self._call(_STATE_AND_NO_VERDICT, identity, serial_number)  # type: ignore[no-any-return]
        return await self._call(_CHECK, identity, serial_number, non_replayable_id)  # type: ignore[no-any-return]

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        verdict: MslError | None = await self._call(_ACCEPT, identity, serial_number, candidate)
        return verdict

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        await self._call(_NEW_MASTER_TOKEN, identity, serial_number)

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        renewed: bool = await self._call(_RENEWAL, serial_number, old_sequence, new_sequence)
        return renewed

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        revoked: bool = await self._call(_USER_ID_TOKEN_REVOKED, user, str(serial_number))
        return revoked

    async def revoke_identity(self, identity: str) -> None:
        await self._call(_REVOKE, _IDENTITY, identity)

    async def revoke_master_token(self, serial_number: int) -> None:
        await self._call(_REVOKE, _SERIAL, str(serial_number))

    async def revoke_user(self, user: str) -> None:
        await self._call(_REVOKE, _USER, user)

    async def revoke_user_id_token(self, serial_number: int) -> None:
        await self._call(_REVOKE, _USER_ID_TOKEN, str(serial_number))

    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        await self._call(_FORGET, serial_number)


# -- operations (worker thread; ``conn`` comes last) ------------------------------------
#
# Statement parameters: ?1 identity, ?2 serial (the compare-and-set: three per call).


def _state_columns(identity: str, serial: str) -> str:
    """The state of the token ``identity``, ``serial`` (SQL expressions) in four
    columns: newest serial, sequence number, identity revoked, serial revoked (each
    sub-select a primary key lookup; revocations are keyed by text)."""
    return f"""(SELECT serial FROM mt_newest WHERE identity = {identity}),
    (SELECT sequence FROM mt_sequence WHERE serial = {serial}),
    EXISTS (SELECT 1 FROM revoked WHERE kind = '{_IDENTITY}' AND value = {identity}),
    EXISTS (SELECT 1 FROM revoked WHERE kind = '{_SERIAL}' AND value = CAST({serial} AS TEXT))"""


_LARGEST = "(SELECT largest FROM non_replayable WHERE identity = ?1 AND serial = ?2)"

# Everything a message's check reads, in one statement.
_READ_SQL = f"SELECT {_state_columns('?1', '?2')}, {_LARGEST}"


def _accepts(largest: str, candidate: str) -> str:
    """``check_non_replayable_id(largest, candidate) is None`` in SQL (integers are
    64-bit: every term stays within ±2^54). Tests compare both on every edge of the rule."""
    return (
        f"(NOT ({candidate} > {largest} - {NON_REPLAYABLE_CATCHUP} AND {candidate} <= {largest}) "
        f"AND {candidate} - {NON_REPLAYABLE_WINDOW} <= {largest} "
        f"AND NOT ({candidate} < {largest} AND {candidate} >= {largest} - {MAX_LONG_VALUE - NON_REPLAYABLE_WINDOW}))"
    )


def _upsert(rows: int, current: str, returning: str) -> str:
    """The compare-and-set of ``rows`` calls, each (identity, serial, ID) in three
    parameters: store each call's ID as the largest accepted one of its (identity,
    serial) if the rule accepts it against the stored largest (0 when none) and
    ``current`` holds for it; return ``returning`` for each row stored (its columns are
    the stored row's). Nothing stored for a call: no row for it.

    A new row is inserted only if the rule accepts the ID against 0; an existing row is
    updated only if it accepts the ID against the row's largest (the conflict's WHERE,
    which reads the row in place: cheaper than looking it up in a sub-select first).
    ``current`` and the first WHERE name the call's columns ``c.identity``, ``c.serial``
    and ``c.id``."""
    values = ", ".join(["(?, ?, ?)"] * rows)
    return (
        f"WITH c (identity, serial, id) AS (VALUES {values}) "
        "INSERT INTO non_replayable (identity, serial, largest) SELECT identity, serial, id FROM c "
        f"WHERE {current} AND ({_accepts('0', 'c.id')} OR EXISTS {_ROW}) "
        "ON CONFLICT (identity, serial) DO UPDATE SET largest = excluded.largest "
        f"WHERE {_accepts('largest', 'excluded.largest')} "
        f"RETURNING {returning}"
    )


_ROW = "(SELECT 1 FROM non_replayable AS r WHERE r.identity = c.identity AND r.serial = c.serial)"

# The stored row's token and its state.
_ROW_STATE = "non_replayable.identity, non_replayable.serial, " + _state_columns(
    "non_replayable.identity", "non_replayable.serial"
)


@functools.lru_cache(maxsize=CHECK_ROWS)
def _check_sql(rows: int) -> str:
    """A check stores an ID only under the identity's newest serial (or an unknown
    identity); each row stored returns its identity, serial and token state."""
    current = "coalesce((SELECT serial FROM mt_newest WHERE identity = c.identity), c.serial) = c.serial"
    return _upsert(rows, current, _ROW_STATE)


_ACCEPT_SQL = _upsert(1, "1", "1")

_STORE_LARGEST_SQL = "INSERT OR REPLACE INTO non_replayable (identity, serial, largest) VALUES (?, ?, ?)"


def _one(cursor: sqlite3.Cursor) -> Any:
    """The first row or None, having stepped the statement to its end: in autocommit
    mode that is what commits it and releases its locks."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


#: Most distinct token states :func:`_state` keeps (cleared when full, about 1 MiB
#: at most): one per identity's current token, so a server's active clients all fit.
#: Shared by the worker threads of every state of the process: each operation on the
#: dict is atomic, and a state built twice by two threads is the same value.
_STATES_MAX = 4096
_states: dict[tuple[Any, ...], MasterTokenState] = {}


def _state(row: Sequence[Any]) -> MasterTokenState:
    """The state of a row's first four columns. States are immutable and a handful of
    values repeat for every message of a token, so one object per distinct row serves
    them all (building a frozen dataclass costs the worker thread about a microsecond,
    with the GIL held, per check)."""
    key = tuple(row[:4])
    state = _states.get(key)
    if state is None:
        newest, sequence, identity_revoked, serial_revoked = key
        state = MasterTokenState(
            identity_revoked=bool(identity_revoked),
            serial_revoked=bool(serial_revoked),
            newest_serial=None if newest is None else int(newest),
            sequence=None if sequence is None else int(sequence),
        )
        if len(_states) >= _STATES_MAX:
            _states.clear()
        _states[key] = state
    return state


def _read(identity: str, serial_number: int, conn: sqlite3.Connection) -> tuple[MasterTokenState, int]:
    row = _one(conn.execute(_READ_SQL, (identity, serial_number)))
    return _state(row), 0 if row[4] is None else int(row[4])


def _master_token_state(identity: str, serial_number: int, conn: sqlite3.Connection) -> MasterTokenState:
    return _read(identity, serial_number, conn)[0]


def _state_and_no_verdict(
    identity: str, serial_number: int, conn: sqlite3.Connection
) -> tuple[MasterTokenState, MslError | None]:
    return _read(identity, serial_number, conn)[0], None


def _check_fast(
    identity: str, serial_number: int, candidate: int, conn: sqlite3.Connection
) -> tuple[MasterTokenState, MslError | None]:
    result: tuple[MasterTokenState, MslError | None] = _check_rows([(identity, serial_number, candidate)], conn)[0]
    return result


def _check_rows(calls: Sequence[tuple[Any, ...]], conn: sqlite3.Connection) -> list[Any]:
    """The checks ``calls`` (identity, serial, ID; distinct (identity, serial) each) in
    one statement: (token state, None) for each whose ID was stored, :data:`_RETRY`
    for the others. Rows come back in no set order, so they are matched by token."""
    params = [value for call in calls for value in call]
    rows = conn.execute(_check_sql(len(calls)), params).fetchall()  # to the end: that commits
    stored = {(row[0], row[1]): row for row in rows}
    return [_RETRY if (row := stored.get(call[:2])) is None else (_state(row[2:]), None) for call in calls]


def _token(call: tuple[Any, ...]) -> object:
    return call[:2]


def _check_master_token(
    identity: str, serial_number: int, candidate: int, conn: sqlite3.Connection
) -> tuple[MasterTokenState, MslError | None]:
    state, largest = _read(identity, serial_number, conn)
    if state.newest_serial not in (None, serial_number):
        return state, None
    return state, _accept(identity, serial_number, largest, candidate, conn)


def _accept_fast(identity: str, serial_number: int, candidate: int, conn: sqlite3.Connection) -> MslError | None:
    row = _one(conn.execute(_ACCEPT_SQL, (identity, serial_number, candidate)))
    return _RETRY if row is None else None


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


# Set the sequence if the serial is unknown or still at ?2; a row back when set.
_RENEWAL_SQL = (
    "INSERT INTO mt_sequence (serial, sequence) VALUES (?1, ?3) "
    "ON CONFLICT (serial) DO UPDATE SET sequence = excluded.sequence WHERE sequence = ?2 RETURNING 1"
)


def _renewal_fast(serial_number: int, old_sequence: int, new_sequence: int, conn: sqlite3.Connection) -> bool:
    return _one(conn.execute(_RENEWAL_SQL, (serial_number, old_sequence, new_sequence))) is not None


def _record_renewal(serial_number: int, old_sequence: int, new_sequence: int, conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT sequence FROM mt_sequence WHERE serial = ?", (serial_number,)).fetchone()
    if row is not None and int(row[0]) != old_sequence:
        return False
    conn.execute("INSERT OR REPLACE INTO mt_sequence (serial, sequence) VALUES (?, ?)", (serial_number, new_sequence))
    return True


_USER_ID_TOKEN_REVOKED_SQL = (
    f"SELECT (?1 IS NOT NULL AND EXISTS (SELECT 1 FROM revoked WHERE kind = '{_USER}' AND value = ?1)) "
    f"OR EXISTS (SELECT 1 FROM revoked WHERE kind = '{_USER_ID_TOKEN}' AND value = ?2)"
)


def _user_id_token_revoked(user: str | None, serial: str, conn: sqlite3.Connection) -> bool:
    row = _one(conn.execute(_USER_ID_TOKEN_REVOKED_SQL, (user, serial)))
    return row is not None and bool(row[0])


def _revoke(kind: str, value: str, conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR IGNORE INTO revoked (kind, value) VALUES (?, ?)", (kind, value))


def _forget(serial_number: int, conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM mt_sequence WHERE serial = ?", (serial_number,))


_STATE = _Operation(_master_token_state, write=False, single=True)
_STATE_AND_NO_VERDICT = _Operation(_state_and_no_verdict, write=False, single=True)
_CHECK = _Operation(_check_fast, write=True, single=True, fallback=_check_master_token, rows=_check_rows, key=_token)
_ACCEPT = _Operation(_accept_fast, write=True, single=True, fallback=_accept_largest)
_NEW_MASTER_TOKEN = _Operation(_record_new_master_token, write=True)
_RENEWAL = _Operation(_renewal_fast, write=True, single=True, fallback=_record_renewal)
_USER_ID_TOKEN_REVOKED = _Operation(_user_id_token_revoked, write=False, single=True)
_REVOKE = _Operation(_revoke, write=True, single=True)
_FORGET = _Operation(_forget, write=True, single=True)
