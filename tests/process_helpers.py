"""Processes the tests start: wait until one listens, stop one for good, collect the
results of racing children."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any


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


def results_of(procs: Sequence[BaseProcess], results: Any, timeout: float = 120) -> list[Any]:
    """Start ``procs`` (multiprocessing children that each put one result on the queue
    ``results``), return the results, and see every child end: joined, or killed if it
    hangs. Fails unless every child exited cleanly."""
    for proc in procs:
        proc.start()
    try:
        out = [results.get(timeout=timeout) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return out
