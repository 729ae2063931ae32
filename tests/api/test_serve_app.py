"""``missile serve --app package.module:server`` serves a user's missile.Server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import missile
from api.helpers import write_keys
from redis_helpers import free_port

APP = '''
import missile

server = missile.Server("server.json", state="server.db")


@server.route("/hello")
async def hello(request: missile.Request) -> bytes:
    return b"hello " + request.payload
'''


def run_serve(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("MISSILE_APP", None)
    return subprocess.Popen(
        [sys.executable, "-m", "missile.cli", "serve", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("missile serve did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    if proc.stderr is not None:
        proc.stderr.close()


def test_serve_app_serves_the_users_server(tmp_path: Path) -> None:
    write_keys(tmp_path)
    (tmp_path / "myservice.py").write_text(APP)
    port = free_port()
    proc = run_serve(tmp_path, "--app", "myservice:server", "--port", str(port))
    try:
        wait_listening(proc, port)
        with missile.Client(f"http://127.0.0.1:{port}", keys=tmp_path / "client.json") as client:
            assert client.request("/hello", b"you").payload == b"hello you"
    finally:
        stop(proc)
    assert (tmp_path / "server.db").exists()


def test_serve_app_startup_errors_are_one_line(tmp_path: Path) -> None:
    write_keys(tmp_path)
    (tmp_path / "memservice.py").write_text(APP.replace('"server.db"', '":memory:"'))
    cases = [
        (["--app", "nosuch:server"], "cannot import nosuch"),
        (["--app", "memservice:missing"], "has no attribute missing"),
        (["--app", "memservice:server", "--workers", "2"], "':memory:' gives each worker"),
        (["--app", "memservice:server", "--keys", "server.json"], "not both"),
        (["--app", "memservice:server", "--state", "x.db"], "--state"),
    ]
    for args, expected in cases:
        proc = run_serve(tmp_path, *args, "--port", str(free_port()))
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            stop(proc)
        assert proc.returncode != 0, args
        assert expected in err.decode(), (args, err.decode())
        assert "Traceback" not in err.decode()
