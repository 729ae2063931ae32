"""A client SQLite store shared by several processes, and state files that cannot be used.

Eight real ``missile send`` processes share one ``--state`` file against a real
``missile serve``: the store's cross-process exchange lock must let exactly one of them
establish the session and the others adopt it (without it, each ran its own key
exchange, revoking the others' master tokens until their message budgets ran out).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from missile.errors import MslError, MslException
from missile.stores.sqlite import SqliteStore, StateFileError

CLI = [sys.executable, "-m", "missile.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
PROCESSES = 8
ROUNDS = 5
SEND_TIMEOUT_S = 120


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    directory = tmp_path_factory.mktemp("shared")
    subprocess.run([*CLI, "keygen", str(directory)], check=True, env=ENV, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--keys", str(directory / "server.json"), "--port", str(port),
         "--state", str(directory / "server-state.db"), "--log-level", "warning"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port, proc)
        yield directory, f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_eight_processes_share_one_state_file(server: tuple[Path, str], tmp_path: Path) -> None:
    directory, url = server
    state = tmp_path / "client.db"
    serials: set[str] = set()
    for round_number in range(ROUNDS):
        procs = [
            subprocess.Popen(
                [*CLI, "send", url, "--keys", str(directory / "client.json"), "--state", str(state),
                 "--non-replayable", "-v", "--data", f"{round_number}-{i}"],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(PROCESSES)
        ]
        for i, proc in enumerate(procs):
            out, err = proc.communicate(timeout=SEND_TIMEOUT_S)
            assert proc.returncode == 0, err.decode()
            assert out == f"{round_number}-{i}".encode()
            match = re.search(rb"mastertoken=serial:(\d+)", err)
            assert match is not None, err.decode()
            serials.add(match.group(1).decode())
    # One session for all 40 sends: no process ran a key exchange of its own.
    assert len(serials) == 1
    assert state.stat().st_mode & 0o777 == 0o600


# -- state files that cannot be used ------------------------------------------------------


def _insert_garbage(path: Path, table: str) -> None:
    conn = sqlite3.connect(path)
    if table == "master_tokens":
        conn.execute(
            "INSERT INTO master_tokens (serial, sequence, expiration, token, verified, context_kind, key_id, "
            "signature_algorithm) VALUES (1, 0, 0, x'00ff11', 0, 'session', 'k', 'HmacSHA256')"
        )
    elif table == "user_id_tokens":
        conn.execute(
            "INSERT INTO user_id_tokens (user_id, serial, mt_serial, token, verified) VALUES ('u', 1, 1, 'garbage', 0)"
        )
    else:
        conn.execute(
            "INSERT INTO service_tokens (name, mt_serial, uit_serial, token, verified) VALUES ('n', -1, -1, '{', 0)"
        )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("table", ["master_tokens", "user_id_tokens", "service_tokens"])
def test_corrupt_row_names_the_file(tmp_path: Path, table: str) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    _insert_garbage(path, table)
    store = SqliteStore(path)
    with pytest.raises(StateFileError) as info:
        if table == "master_tokens":
            store.get_master_token()
        elif table == "user_id_tokens":
            store.get_user_id_token("u")
        else:
            store.get_service_tokens(None, None)
    line = str(info.value)
    assert line.startswith(f"state file {path} is corrupt (unreadable ")
    assert line.endswith("); delete it to start a new session")
    assert "\n" not in line and "garbage" not in line
    assert info.value.error is MslError.INTERNAL_EXCEPTION


@pytest.mark.parametrize("content", [b"not a database at all\n", b"SQLite format 3\x00" + b"\xff" * 200])
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=r"is corrupt \(.*\); delete it to start a new session"):
        SqliteStore(path)


def test_missing_directory_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "state.db"
    with pytest.raises(StateFileError, match="does not exist; create it"):
        SqliteStore(path)
    assert not path.parent.exists()


@pytest.mark.parametrize("dangling", [False, True])
def test_symlinked_state_file_is_refused_and_never_chmodded(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "elsewhere.db"
    if not dangling:
        SqliteStore(target).close()
        target.chmod(0o644)  # a lax file _tighten would make owner-only, were it followed
    link = tmp_path / "state.db"
    link.symlink_to(target)
    with pytest.raises(StateFileError, match="is a symbolic link"):
        SqliteStore(link)
    if dangling:
        assert not target.exists()  # nothing was created through the link
    else:
        assert target.stat().st_mode & 0o777 == 0o644


# -- the exchange lock --------------------------------------------------------------------


def test_exchange_lock_excludes_other_stores_until_released(tmp_path: Path) -> None:
    path = tmp_path / "state.db"

    async def go() -> None:
        first = SqliteStore(path)
        second = SqliteStore(path, busy_timeout_ms=200)
        release = await first.acquire_exchange_lock()
        with pytest.raises(MslException) as info:
            await second.acquire_exchange_lock()
        assert info.value.error is MslError.INTERNAL_EXCEPTION
        waiter = asyncio.ensure_future(SqliteStore(path).acquire_exchange_lock())
        release()
        release()  # idempotent
        (await asyncio.wait_for(waiter, 30))()

    asyncio.run(go())
    assert (tmp_path / "state.db-lock").stat().st_mode & 0o777 == 0o600


_HOLDER = """
import asyncio, sys
from missile.stores.sqlite import SqliteStore
async def main():
    await SqliteStore(sys.argv[1]).acquire_exchange_lock()
    print("held", flush=True)
    sys.stdin.read()
asyncio.run(main())
"""


def test_exchange_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"

        async def blocked() -> None:
            with pytest.raises(MslException):
                await SqliteStore(path, busy_timeout_ms=200).acquire_exchange_lock()

        asyncio.run(blocked())
    finally:
        holder.kill()
        holder.wait(timeout=10)

    async def free() -> None:
        release = await SqliteStore(path).acquire_exchange_lock()
        release()

    asyncio.run(free())
