"""Shared fixtures: the vectors helper on sys.path, a real throw-away redis-server (one
per session, and one per test to stop, kill or reconfigure) and Redis Cluster.

Hypothesis runs without its per-example deadline (200 ms by default): that is a timed
assertion, which on a shared CI machine fails at random when the host stalls (and
Hypothesis then reports the example as flaky); speed is the benchmarks' business."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

from redis_helpers import (
    REDIS_CLI,
    REDIS_SERVER,
    start_redis,
    start_redis_cluster,
    stop_redis,
    stop_redis_cluster,
)

settings.register_profile("missile", deadline=None)
settings.load_profile("missile")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server started for this test session."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"redis-server not installed ({REDIS_SERVER} missing); CI installs it")
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        stop_redis(proc)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, to stop (SIGSTOP), kill or reconfigure; its
    process and URL. Missing redis-server skips, except under CI (env CI set)."""
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI"):
            pytest.fail("redis-server missing in CI")
        pytest.skip("redis-server not installed")
    proc, url = start_redis(tmp_path)
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        stop_redis(proc)


def _require_cluster_binaries() -> None:
    """Skip when redis-server or redis-cli is missing, except under CI (env CI set),
    where a missing Redis must fail rather than silently skip the cluster tests."""
    missing = [path for path in (REDIS_SERVER, REDIS_CLI) if not os.path.exists(path)]
    if missing:
        message = f"Redis Cluster needs {' and '.join(missing)}; CI installs redis-server"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of one node of a private 3-master Redis Cluster started for this test session."""
    _require_cluster_binaries()
    procs, url = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield url
    finally:
        stop_redis_cluster(procs)


@pytest.fixture
def private_redis_cluster(tmp_path: Path) -> Iterator[tuple[list[subprocess.Popen[bytes]], str]]:
    """A 3-master Redis Cluster of this test's own, to stop (SIGSTOP) a node of: its
    processes and a node's URL. Its nodes count a peer as failing only after Redis's
    default 15 s (``cluster-node-timeout``), so a node stopped for a few seconds stays
    a member and the other masters keep serving their slots."""
    _require_cluster_binaries()
    procs, url = start_redis_cluster(tmp_path / "cluster", node_timeout_ms=15_000)
    try:
        yield procs, url
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        stop_redis_cluster(procs)
