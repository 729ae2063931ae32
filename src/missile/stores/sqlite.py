"""A persistent client store in SQLite (control.md §2.1, §7, §11).

:class:`SqliteStore` keeps what :class:`~missile.stores.memory.InMemoryStore` keeps,
with the same semantics, in one SQLite file that survives restarts and may be shared by
several processes:

* master tokens as their exact wire JSON plus, when the token was decrypted, its session
  fields; the session crypto context as its key ID, keys and signature algorithm (only
  :class:`~missile.crypto.symmetric.SessionCryptoContext` and plain
  :class:`~missile.crypto.symmetric.SymmetricCryptoContext` can be persisted);
* user ID tokens by local user ID, service tokens by (name, master token serial, user ID
  token serial) with their decrypted data, and the non-replayable ID counters.

Stored tokens are re-parsed with a verify-nothing context
(:class:`~missile.crypto.null.ClientMslCryptoContext`), so loading needs no MSL keys; the
stored decrypted fields are then restored. The file holds session keys: it is created
owner-only (0600), never through a symbolic link (a link could point the keys, or a
chmod, at another file), and only in an existing directory (a mistyped path is
reported, not silently created). It runs in WAL mode with a busy timeout, and every
multi-step update is one ``BEGIN IMMEDIATE`` transaction, so processes sharing the file
see consistent state and :meth:`SqliteStore.get_non_replayable_id` is atomic across
processes.

Processes sharing the file must also not race each other into key exchanges: an issuer
keeps one current master token serial per identity, so every new key exchange revokes
the master tokens the other processes just obtained, and they re-key in turn until
their message budgets run out. :meth:`SqliteStore.acquire_exchange_lock` is the
cross-process half of the client's renewal lock (control.md §3.2): an exclusive
``flock`` on a ``<file>-lock`` sidecar, held for one renewable exchange, released by
the kernel if its holder dies. Waiters then re-read the store and adopt the master
token the holder obtained instead of starting their own key exchange.

A file that is not SQLite, or a row that does not parse, raises
:class:`StateFileError`: one line naming the file and the remedy (delete it), never a
traceback, and never the row's contents (they hold session keys).

:class:`SqliteDatabase` (the private-file, WAL and transaction plumbing) is shared with
:mod:`missile.stores.sqlite_state`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from missile.clock import Clock, system_clock
from missile.crypto.context import CryptoContext
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.random import DEFAULT_RANDOM, RandomSource
from missile.crypto.symmetric import SessionCryptoContext, SymmetricCryptoContext
from missile.encoding import decode, encode, next_id, to_json_value
from missile.errors import MslError, MslException
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user import UserFactory, default_user_factory
from missile.tokens.user_id import UserIdToken

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process exchange lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["SqliteDatabase", "SqliteStore", "StateFileError", "create_private_file"]

#: How long a writer waits for another process's write transaction, and how long a
#: process waits for another's key exchange (one exchange is bounded by the transport's
#: own timeouts; a holder stuck longer than this is reported, not waited for forever).
DEFAULT_BUSY_TIMEOUT_MS = 30_000

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

# Serial numbers are 0 … 2^53; -1 marks "not bound" in the service token key columns
# (NULLs would be distinct in a UNIQUE constraint).
_UNBOUND = -1
_NEVER = -2

_CLIENT_MSL = ClientMslCryptoContext()

_R = TypeVar("_R")

# What parsing a damaged row can raise: the token parsers' typed errors, and the
# decoders' and rebuilders' plain ones (bad JSON or UTF-8, a wrong column type).
_ROW_ERRORS = (MslException, ValueError, TypeError, KeyError, IndexError, AssertionError)


class StateFileError(MslException):
    """A state file that cannot be used: not SQLite, a corrupt row, a symbolic link, a
    missing directory. ``str()`` is one line naming the file and what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, remedy: str, *, cause: BaseException | None = None):
        super().__init__(MslError.INTERNAL_EXCEPTION, f"state file {os.fspath(path)}: {problem}", cause=cause)
        self.path = os.fspath(path)
        self.line = f"state file {self.path} {problem}; {remedy}"

    def __str__(self) -> str:
        return self.line


def _corrupt(path: str | os.PathLike[str], what: str, cause: BaseException | None = None) -> StateFileError:
    return StateFileError(path, f"is corrupt ({what})", "delete it to start a new session", cause=cause)


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` owner-only (0600, whatever the umask); False if it already existed.

    A symbolic link at ``path`` (even a dangling one) and a missing directory raise
    :class:`StateFileError`.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        _tighten(path)
        return False
    except FileNotFoundError as exc:
        directory = os.path.dirname(os.path.abspath(path))
        raise StateFileError(
            path, f"cannot be created: directory {directory} does not exist", "create it (mode 0700) first", cause=exc
        ) from exc
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True


def _refuse_symlink(path: str | os.PathLike[str], cause: BaseException | None = None) -> StateFileError:
    return StateFileError(path, "is a symbolic link", "give the real file's path", cause=cause)


def _tighten(path: str | os.PathLike[str]) -> None:
    """An existing file that group or others can read is made owner-only, if it is ours.

    It holds session keys: a file created by another tool with a lax umask is not left
    readable. Files owned by someone else are left alone (chmod would fail anyway). The
    file is opened with ``O_NOFOLLOW`` and changed through that descriptor, so a
    symbolic link (or one swapped in between a check and the chmod) is refused, never
    followed to whatever it points at.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise _refuse_symlink(path, exc) from exc
        raise StateFileError(path, f"cannot be opened ({exc.strerror})", "check its permissions", cause=exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateFileError(path, "is not a regular file", "give the path of a file")
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    if _NOFOLLOW == 0 and os.path.islink(path):  # pragma: no cover - platforms without O_NOFOLLOW
        raise _refuse_symlink(path)


class SqliteDatabase:
    """One SQLite file opened owner-only in WAL mode, with transaction helpers.

    A connection is opened per process (re-opened after ``fork``) and shared by the
    threads of that process under a lock. SQLite failures (e.g. the lock still held after
    the busy timeout) surface as :class:`~missile.errors.MslException` with
    ``INTERNAL_EXCEPTION`` (response code TRANSIENT_FAILURE).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: Sequence[str],
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        synchronous: str = "FULL",
        page_size: int | None = None,
    ) -> None:
        """``synchronous``: SQLite's PRAGMA of that name, FULL (an fsync per commit: a
        commit survives power loss) or NORMAL (WAL: a commit survives the process, and the
        operating system, but not a power loss: the last ones before it may be lost).
        ``page_size``: the page size of a new file (SQLite's default when None; an
        existing file keeps its own)."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = os.fspath(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._page_size = page_size
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        # Connections inherited through fork are never used nor closed by the child.
        self._inherited: list[sqlite3.Connection] = []
        create_private_file(self.path)
        try:
            with self.write() as conn:
                for statement in schema:
                    conn.execute(statement)
        except MslException as exc:
            cause = exc.__cause__
            # "file is not a database", "database disk image is malformed": a
            # DatabaseError that is not a (transient) OperationalError such as "locked".
            if isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, sqlite3.OperationalError):
                self.close()
                raise _corrupt(self.path, str(cause), cause) from cause
            raise

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is None or self._pid != pid:
            if self._conn is not None:
                self._inherited.append(self._conn)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            if self._page_size is not None:  # takes effect only in a file that is still empty
                conn.execute(f"PRAGMA page_size = {int(self._page_size)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._conn, self._pid = conn, pid
        return self._conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                conn = self._connection()
                conn.execute(begin)
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise MslException(MslError.INTERNAL_EXCEPTION, "state database failure", cause=exc) from exc

    def autocommit(self, statement: Callable[..., _R], *args: Any) -> _R:
        """``statement(*args, conn)`` outside a transaction, where each statement is its
        own transaction: atomic, and a writing one holds the write lock from its start (as
        ``BEGIN IMMEDIATE`` would). For operations of one statement (several would be
        as many transactions), which must be stepped to its end (``fetchall``) to
        commit and release the lock: it saves the ``BEGIN`` and ``COMMIT`` round trips
        through the sqlite3 module."""
        with self._lock:
            try:
                return statement(*args, self._connection())
            except sqlite3.Error as exc:
                raise MslException(MslError.INTERNAL_EXCEPTION, "state database failure", cause=exc) from exc

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: holds the database write lock throughout."""
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: one consistent snapshot."""
        return self._transaction("BEGIN")

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


_STORE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS master_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        serial INTEGER NOT NULL,
        sequence INTEGER NOT NULL,
        expiration INTEGER NOT NULL,
        token BLOB NOT NULL,
        verified INTEGER NOT NULL,
        identity TEXT,
        mt_encryption_key BLOB,
        mt_signature_key BLOB,
        mt_encryption_algorithm TEXT,
        mt_signature_algorithm TEXT,
        issuer_data TEXT,
        context_kind TEXT NOT NULL,
        key_id TEXT NOT NULL,
        encryption_key BLOB,
        signature_key BLOB,
        wrap_key BLOB,
        signature_algorithm TEXT NOT NULL,
        UNIQUE (serial, sequence, expiration)
    )""",
    "CREATE INDEX IF NOT EXISTS master_tokens_serial ON master_tokens (serial)",
    """CREATE TABLE IF NOT EXISTS non_replayable (
        serial INTEGER PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS user_id_tokens (
        user_id TEXT PRIMARY KEY,
        serial INTEGER NOT NULL,
        mt_serial INTEGER NOT NULL,
        token BLOB NOT NULL,
        verified INTEGER NOT NULL,
        user TEXT,
        issuer_data TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS service_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        mt_serial INTEGER NOT NULL,
        uit_serial INTEGER NOT NULL,
        token BLOB NOT NULL,
        verified INTEGER NOT NULL,
        data BLOB,
        UNIQUE (name, mt_serial, uit_serial)
    )""",
    # The encoder formats the server last advertised (docs/binary-format.md §8): one row.
    """CREATE TABLE IF NOT EXISTS peer_encoder_formats (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        formats TEXT NOT NULL
    )""",
)

_MT_DATA_COLUMNS = (
    "token, verified, identity, mt_encryption_key, mt_signature_key, mt_encryption_algorithm, "
    "mt_signature_algorithm, issuer_data, context_kind, key_id, encryption_key, signature_key, wrap_key, "
    "signature_algorithm"
)
_MT_COLUMNS = f"id, {_MT_DATA_COLUMNS}"
_UIT_COLUMNS = "token, mt_serial, verified, user, issuer_data"
_ST_COLUMNS = "token, mt_serial, uit_serial, verified, data"


def _dump_json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(to_json_value(value), separators=(",", ":"))


def _load_json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def _stub_master_token(serial_number: int) -> MasterToken:
    """A placeholder carrying only a serial number, for binding checks while re-parsing."""
    return MasterToken(
        renewal_window=0,
        expiration=0,
        sequence_number=0,
        serial_number=serial_number,
        tokendata=b"",
        signature=b"",
        verified=False,
    )


def _stub_user_id_token(serial_number: int) -> UserIdToken:
    return UserIdToken(
        renewal_window=0,
        expiration=0,
        mt_serial_number=0,
        serial_number=serial_number,
        tokendata=b"",
        signature=b"",
        verified=False,
    )


def _context_columns(crypto_context: CryptoContext) -> tuple[str, str, bytes | None, bytes | None, bytes | None, str]:
    """(kind, key ID, encryption key, signature key, wrap key, signature algorithm)."""
    if type(crypto_context) is SessionCryptoContext:
        kind = "session"
    elif type(crypto_context) is SymmetricCryptoContext:
        kind = "symmetric"
    else:
        raise TypeError(
            f"SqliteStore can only persist SessionCryptoContext or SymmetricCryptoContext, "
            f"not {type(crypto_context).__name__}"
        )
    return (
        kind,
        crypto_context.key_id,
        crypto_context.encryption_key,
        crypto_context.signature_key,
        crypto_context.wrap_key,
        crypto_context.signature_algorithm.value,
    )


def _rebuild_context(
    kind: str,
    key_id: str,
    encryption_key: bytes | None,
    signature_key: bytes | None,
    wrap_key: bytes | None,
    signature_algorithm: str,
    random: RandomSource,
) -> CryptoContext:
    if kind == "symmetric":
        return SymmetricCryptoContext(
            key_id, encryption_key, signature_key, wrap_key, signature_algorithm=signature_algorithm, random=random
        )
    if kind != "session" or encryption_key is None or signature_key is None:
        raise ValueError("corrupt crypto context row in the store")
    # The session key ID is "<identity>_<sequence number>", or the number alone.
    head, sep, tail = key_id.rpartition("_")
    identity: str | None
    if sep and tail.isdecimal() and str(int(tail)) == tail:
        identity, sequence = head, int(tail)
    elif key_id.isdecimal():
        identity, sequence = None, int(key_id)
    else:
        raise ValueError("corrupt session key ID in the store")
    context = SessionCryptoContext(
        identity, sequence, encryption_key, signature_key, signature_algorithm, random=random
    )
    if context.key_id != key_id:
        raise ValueError("corrupt session key ID in the store")
    return context


def _nothing() -> None:
    return None


class _Release:
    """Releases an exchange lock once (closing the descriptor drops the ``flock``)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def __call__(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class SqliteStore:
    """A persistent :class:`~missile.stores.base.MslStore` in one SQLite file (control.md §2.1).

    ``clock`` becomes the clock of loaded tokens, ``random`` the random source of loaded
    crypto contexts, ``user_factory`` rebuilds the users of decrypted user ID tokens.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock = system_clock,
        random: RandomSource = DEFAULT_RANDOM,
        user_factory: UserFactory = default_user_factory,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self._clock = clock
        self._random = random
        self._user_factory = user_factory
        self._busy_timeout_ms = busy_timeout_ms
        self._db = SqliteDatabase(path, _STORE_SCHEMA, busy_timeout_ms=busy_timeout_ms)
        # Master token rows are immutable (replacing one inserts a new row id), so the
        # parsed token and context can be cached by row id.
        self._cache_lock = threading.Lock()
        self._cache: dict[int, tuple[MasterToken, CryptoContext]] = {}

    @property
    def path(self) -> str:
        """The database file."""
        return self._db.path

    def close(self) -> None:
        """Close the database connection of this process."""
        self._db.close()

    # -- cross-process exchange lock ---------------------------------------------------

    async def acquire_exchange_lock(self) -> Callable[[], None]:
        """Wait until no other process (or store object) holds this file's exchange lock,
        take it and return the function releasing it (see the module docstring).

        Waiting happens in a daemon thread, so the event loop keeps running and a
        cancelled waiter never leaves the lock taken. Raises ``INTERNAL_EXCEPTION``
        (a transient failure) after the busy timeout.
        """
        if fcntl is None:  # pragma: no cover - not POSIX
            return _nothing
        fd = self._open_lock_file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await self._wait_for_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        return _Release(fd)

    def _open_lock_file(self) -> int:
        lock_path = self.path + "-lock"
        create_private_file(lock_path)
        try:
            return os.open(lock_path, os.O_RDWR | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            raise StateFileError(lock_path, f"cannot be opened ({exc.strerror})", "check it", cause=exc) from exc

    async def _wait_for_lock(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        locked: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if locked.cancelled():
                os.close(fd)  # the waiter gave up: the lock dies with its descriptor
            elif error is not None:
                locked.set_exception(error)
            else:
                locked.set_result(None)

        def wait() -> None:
            error: BaseException | None = None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(settle, error)
            except RuntimeError:  # the loop is gone
                os.close(fd)

        threading.Thread(target=wait, name="missile-state-lock", daemon=True).start()
        try:
            await asyncio.wait_for(locked, self._busy_timeout_ms / 1000)
        except TimeoutError as exc:
            raise MslException(
                MslError.INTERNAL_EXCEPTION, "another process holds the state file's exchange lock", cause=exc
            ) from exc
        except OSError as exc:
            os.close(fd)
            raise MslException(MslError.INTERNAL_EXCEPTION, "state file lock failure", cause=exc) from exc

    # -- row conversion ---------------------------------------------------------------

    def _master_row(self, row: Sequence[Any]) -> tuple[MasterToken, CryptoContext]:
        row_id = int(row[0])
        with self._cache_lock:
            cached = self._cache.get(row_id)
        if cached is not None:
            return cached
        try:
            entry = self._parse_master_row(row)
        except _ROW_ERRORS as exc:
            raise _corrupt(self.path, f"unreadable master token row: {type(exc).__name__}", exc) from exc
        with self._cache_lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[row_id] = entry
        return entry

    def _parse_master_row(self, row: Sequence[Any]) -> tuple[MasterToken, CryptoContext]:
        token = MasterToken.parse(decode(row[1]), _CLIENT_MSL, clock=self._clock)
        if row[3] is not None:
            token = replace(
                token,
                verified=bool(row[2]),
                identity=row[3],
                encryption_key=row[4],
                signature_key=row[5],
                encryption_algorithm=row[6],
                signature_algorithm=row[7],
                issuer_data=_load_json(row[8]),
            )
        context = _rebuild_context(row[9], row[10], row[11], row[12], row[13], row[14], self._random)
        return token, context

    def _user_id_token_row(self, row: Sequence[Any]) -> UserIdToken:
        try:
            return self._parse_user_id_token_row(row)
        except _ROW_ERRORS as exc:
            raise _corrupt(self.path, f"unreadable user ID token row: {type(exc).__name__}", exc) from exc

    def _parse_user_id_token_row(self, row: Sequence[Any]) -> UserIdToken:
        token = UserIdToken.parse(decode(row[0]), _CLIENT_MSL, _stub_master_token(row[1]), clock=self._clock)
        if row[3] is not None:
            token = replace(
                token, verified=bool(row[2]), user=self._user_factory(row[3]), issuer_data=_load_json(row[4])
            )
        return token

    def _service_token_row(self, row: Sequence[Any]) -> ServiceToken:
        try:
            return self._parse_service_token_row(row)
        except _ROW_ERRORS as exc:
            raise _corrupt(self.path, f"unreadable service token row: {type(exc).__name__}", exc) from exc

    @staticmethod
    def _parse_service_token_row(row: Sequence[Any]) -> ServiceToken:
        mt_serial, uit_serial = int(row[1]), int(row[2])
        token = ServiceToken.parse(
            decode(row[0]),
            {},
            _stub_master_token(mt_serial) if mt_serial != _UNBOUND else None,
            _stub_user_id_token(uit_serial) if uit_serial != _UNBOUND else None,
        )
        return replace(token, verified=bool(row[3]), data=row[4])

    # -- master tokens ----------------------------------------------------------------

    def set_crypto_context(self, master_token: MasterToken, crypto_context: CryptoContext | None) -> None:
        """Store a master token with its session context (None removes it)."""
        if crypto_context is None:
            self.remove_crypto_context(master_token)
            return
        context = _context_columns(crypto_context)
        decrypted = master_token.decrypted
        with self._db.write() as conn:
            # REPLACE deletes an equal token and inserts a new row: it becomes the most
            # recently stored, as in InMemoryStore.
            conn.execute(
                f"INSERT OR REPLACE INTO master_tokens (serial, sequence, expiration, {_MT_DATA_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    master_token.serial_number,
                    master_token.sequence_number,
                    master_token.expiration,
                    encode(master_token.to_msl()),
                    int(master_token.verified),
                    master_token.identity,
                    master_token.encryption_key if decrypted else None,
                    master_token.signature_key if decrypted else None,
                    master_token.encryption_algorithm if decrypted else None,
                    master_token.signature_algorithm if decrypted else None,
                    _dump_json(master_token.issuer_data) if decrypted else None,
                    *context,
                ),
            )

    def get_crypto_context(self, master_token: MasterToken) -> CryptoContext | None:
        """The session context stored for ``master_token``."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_MT_COLUMNS} FROM master_tokens WHERE serial = ? AND sequence = ? AND expiration = ?",
                master_token.key,
            ).fetchone()
        return None if row is None else self._master_row(row)[1]

    def get_master_token(self) -> MasterToken | None:
        """The newest stored master token."""
        with self._db.read() as conn:
            rows = conn.execute(f"SELECT {_MT_COLUMNS} FROM master_tokens ORDER BY id").fetchall()
        newest: MasterToken | None = None
        for row in rows:
            token = self._master_row(row)[0]
            if newest is None or token.is_newer_than(newest):
                newest = token
        return newest

    def get_non_replayable_id(self, master_token: MasterToken) -> int:
        """The next non-replayable ID for the master token's serial number (1, 2, …)."""
        serial = master_token.serial_number
        with self._db.write() as conn:
            row = conn.execute("SELECT value FROM non_replayable WHERE serial = ?", (serial,)).fetchone()
            value = next_id(int(row[0]) if row is not None else 0)
            conn.execute("INSERT OR REPLACE INTO non_replayable (serial, value) VALUES (?, ?)", (serial, value))
        return value

    def remove_crypto_context(self, master_token: MasterToken) -> None:
        """Remove a master token and, if no other token shares its serial, what is bound to it."""
        serial = master_token.serial_number
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM master_tokens WHERE serial = ? AND sequence = ? AND expiration = ?", master_token.key
            )
            if conn.execute("SELECT 1 FROM master_tokens WHERE serial = ? LIMIT 1", (serial,)).fetchone():
                return
            conn.execute("DELETE FROM non_replayable WHERE serial = ?", (serial,))
            conn.execute(
                "DELETE FROM service_tokens WHERE uit_serial IN "
                "(SELECT serial FROM user_id_tokens WHERE mt_serial = ?)",
                (serial,),
            )
            conn.execute("DELETE FROM user_id_tokens WHERE mt_serial = ?", (serial,))
            conn.execute("DELETE FROM service_tokens WHERE mt_serial = ?", (serial,))

    def clear_crypto_contexts(self) -> None:
        """Remove everything."""
        with self._db.write() as conn:
            for table in ("master_tokens", "non_replayable", "user_id_tokens", "service_tokens"):
                conn.execute(f"DELETE FROM {table}")

    # -- encoder formats ----------------------------------------------------------------

    def set_peer_encoder_formats(self, formats: Sequence[str]) -> None:
        """Remember the encoder format names the server advertised (docs/binary-format.md §8).

        Every response tells them, and they hardly ever change: an unchanged list is not
        written again (a write transaction, and with ``synchronous=FULL`` an fsync, per
        response). The comparison reads the file, not a copy in memory, so a list
        another process wrote in between is still replaced."""
        value = ",".join(formats)
        with self._db.read() as conn:
            row = conn.execute("SELECT formats FROM peer_encoder_formats WHERE id = 1").fetchone()
        if row is not None and row[0] == value:
            return
        with self._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO peer_encoder_formats (id, formats) VALUES (1, ?)", (value,))

    def get_peer_encoder_formats(self) -> tuple[str, ...] | None:
        """The encoder format names the server last advertised, or None if never heard."""
        with self._db.read() as conn:
            row = conn.execute("SELECT formats FROM peer_encoder_formats WHERE id = 1").fetchone()
        if row is None:
            return None
        return tuple(name for name in str(row[0]).split(",") if name)

    # -- user ID tokens -----------------------------------------------------------------

    def add_user_id_token(self, user_id: str, user_id_token: UserIdToken) -> None:
        """Store a user ID token under a local user ID."""
        user = user_id_token.user.encode() if user_id_token.user is not None else None
        with self._db.write() as conn:
            if not conn.execute(
                "SELECT 1 FROM master_tokens WHERE serial = ? LIMIT 1", (user_id_token.mt_serial_number,)
            ).fetchone():
                raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_NOT_FOUND, user_id)
            conn.execute(
                f"INSERT OR REPLACE INTO user_id_tokens (user_id, serial, {_UIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    user_id_token.serial_number,
                    encode(user_id_token.to_msl()),
                    user_id_token.mt_serial_number,
                    int(user_id_token.verified),
                    user,
                    _dump_json(user_id_token.issuer_data) if user is not None else None,
                ),
            )

    def get_user_id_token(self, user_id: str) -> UserIdToken | None:
        """The user ID token stored under ``user_id``."""
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_UIT_COLUMNS} FROM user_id_tokens WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else self._user_id_token_row(row)

    def remove_user_id_token(self, user_id_token: UserIdToken) -> None:
        """Remove a user ID token and the service tokens bound to it."""
        key = (user_id_token.serial_number, user_id_token.mt_serial_number)
        with self._db.write() as conn:
            deleted = conn.execute("DELETE FROM user_id_tokens WHERE serial = ? AND mt_serial = ?", key).rowcount
            if deleted:
                conn.execute("DELETE FROM service_tokens WHERE uit_serial = ?", (user_id_token.serial_number,))

    def clear_user_id_tokens(self) -> None:
        """Remove every user ID token and their bound service tokens."""
        with self._db.write() as conn:
            conn.execute("DELETE FROM service_tokens WHERE uit_serial IN (SELECT serial FROM user_id_tokens)")
            conn.execute("DELETE FROM user_id_tokens")

    # -- service tokens -----------------------------------------------------------------

    def add_service_tokens(self, tokens: Iterable[ServiceToken]) -> None:
        """Store service tokens (all or nothing)."""
        tokens = list(tokens)
        with self._db.write() as conn:
            for st in tokens:
                if (
                    st.mt_serial_number is not None
                    and not conn.execute(
                        "SELECT 1 FROM master_tokens WHERE serial = ? LIMIT 1", (st.mt_serial_number,)
                    ).fetchone()
                ):
                    raise MslException(MslError.SERVICETOKEN_MASTERTOKEN_NOT_FOUND, st.name)
                if (
                    st.uit_serial_number is not None
                    and not conn.execute(
                        "SELECT 1 FROM user_id_tokens WHERE serial = ? LIMIT 1", (st.uit_serial_number,)
                    ).fetchone()
                ):
                    raise MslException(MslError.SERVICETOKEN_USERIDTOKEN_NOT_FOUND, st.name)
            for st in tokens:
                # Newest data wins; an existing token keeps its position (control.md §2.1 note).
                conn.execute(
                    f"INSERT INTO service_tokens (name, {_ST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name, mt_serial, uit_serial) DO UPDATE SET "
                    "token = excluded.token, verified = excluded.verified, data = excluded.data",
                    (
                        st.name,
                        encode(st.to_msl()),
                        _UNBOUND if st.mt_serial_number is None else st.mt_serial_number,
                        _UNBOUND if st.uit_serial_number is None else st.uit_serial_number,
                        int(st.verified),
                        st.data,
                    ),
                )

    def get_service_tokens(
        self, master_token: MasterToken | None, user_id_token: UserIdToken | None
    ) -> list[ServiceToken]:
        """Unbound tokens plus those bound to the given tokens."""
        if user_id_token is not None:
            if master_token is None:
                raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_NULL)
            if not user_id_token.is_bound_to(master_token):
                raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
        mt = master_token.serial_number if master_token is not None else _NEVER
        uit = user_id_token.serial_number if user_id_token is not None else _NEVER
        uit_mt = user_id_token.mt_serial_number if user_id_token is not None else _NEVER
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_ST_COLUMNS} FROM service_tokens WHERE "
                "(mt_serial = :unbound AND uit_serial = :unbound) "
                "OR (uit_serial = :unbound AND mt_serial = :mt) "
                "OR (uit_serial = :uit AND (mt_serial = :unbound OR mt_serial = :uit_mt)) "
                "ORDER BY id",
                {"unbound": _UNBOUND, "mt": mt, "uit": uit, "uit_mt": uit_mt},
            ).fetchall()
        return [self._service_token_row(row) for row in rows]

    def remove_service_tokens(
        self,
        name: str | None,
        master_token: MasterToken | None,
        user_id_token: UserIdToken | None,
    ) -> None:
        """Remove service tokens by name and/or binding."""
        if user_id_token is not None and master_token is not None and not user_id_token.is_bound_to(master_token):
            raise MslException(MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH)
        clauses: list[str] = []
        params: list[Any] = []
        if name is not None:
            clauses.append("name = ?")
            params.append(name)
        if user_id_token is not None:
            clauses.append("uit_serial = ?")
            params.append(user_id_token.serial_number)
        elif master_token is not None:
            clauses.append("mt_serial = ?")
            params.append(master_token.serial_number)
        else:
            clauses.append("mt_serial = ? AND uit_serial = ?")
            params.extend((_UNBOUND, _UNBOUND))
        with self._db.write() as conn:
            conn.execute(f"DELETE FROM service_tokens WHERE {' AND '.join(clauses)}", params)
