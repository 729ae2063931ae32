"""Processes the tests start: wait until one listens, stop one for good."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable


def wait_listening(
    proc: subprocess.Popen[bytes] | subprocess.Popen[str], port: int, why_exited: Callable[[], str], timeout: float = 30
) -> None:
    """Return once something accepts on 127.0.0.1:``port``; raise (with ``why_exited()``)
    if ``proc`` exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(why_exited())
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def terminate(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
