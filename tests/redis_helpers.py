"""Real, throw-away Redis servers for the tests (and benchmarks) that need one.

:func:`start_redis` starts a single redis-server; :func:`start_redis_cluster` a Redis
Cluster of three masters (no replicas) from the same Debian package, created with
``redis-cli --cluster create``. Both pick ports themselves and retry when another
process took a port first: redis-server cannot be told to choose a free port.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import redis

from process_helpers import terminate

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

#: Masters of the test cluster: three is the smallest cluster redis-cli will create.
CLUSTER_MASTERS = 3
#: Whole-cluster start attempts (each with fresh ports) before giving up: a retry is
#: only needed when a port was taken between choosing it and binding it.
CLUSTER_ATTEMPTS = 5
#: Seconds for the nodes to answer PING, and then for every node to report
#: cluster_state:ok: both take well under a second on an idle machine.
CLUSTER_START_TIMEOUT_S = 30.0
#: Milliseconds before the other nodes count an unresponsive node as failing (Redis's
#: ``cluster-node-timeout``): short, so that the fault tests see the cluster react soon;
#: Redis's default is 15,000.
CLUSTER_NODE_TIMEOUT_MS = 2000
#: A cluster node also listens on its port + 10000 (the cluster bus, the only choice
#: before Redis 7), so node ports are drawn below 65535 - 10000, above the usual
#: privileged and registered ranges.
_NODE_PORTS = (20000, 55535)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    # redis-server cannot pick a free port itself: choose one, retry if it was taken.
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        ready = _wait_until(lambda: _is_process(client, proc), [proc], time.monotonic() + 10)  # noqa: B023
        client.close()
        if ready:
            return proc, url
        stop_redis(proc)
    raise RuntimeError("could not start redis-server")


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    terminate(proc)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_node_ports(count: int = CLUSTER_MASTERS) -> list[int]:
    """``count`` ports that are free right now, each with its cluster-bus port (+10000)."""
    ports: list[int] = []
    for _ in range(1000):
        port = random.randrange(*_NODE_PORTS)
        if port in ports or port + 10000 in ports or port - 10000 in ports:
            continue
        if _bindable(port) and _bindable(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free ports for a Redis Cluster")


def _start_cluster_node(port: int, directory: Path, node_timeout_ms: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            f"redis-{port}.log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_until(condition: Callable[[], bool], procs: list[subprocess.Popen[bytes]], deadline: float) -> bool:
    """Poll ``condition()`` until true; False once a process exited or the deadline passed."""
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            return False
        try:
            if condition():
                return True
        except redis.RedisError:
            pass
        time.sleep(0.05)
    return False


def _is_process(client: redis.Redis, proc: subprocess.Popen[bytes]) -> bool:
    """Whether the server answering ``client`` is ``proc`` (not another test's server that
    took the port first: then ``proc`` exits and the caller retries)."""
    return int(client.info("server")["process_id"]) == proc.pid


def _cluster_ok(clients: list[redis.Redis]) -> bool:
    for client in clients:
        info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]  # parsed into a dict
        if isinstance(info, bytes):
            info = dict(line.split(":", 1) for line in info.decode().split() if ":" in line)
        fields = {str(k): str(v) for k, v in info.items()}
        if fields.get("cluster_state") != "ok" or fields.get("cluster_known_nodes") != str(len(clients)):
            return False
    return True


def _try_start_cluster(directory: Path, node_timeout_ms: int) -> tuple[list[subprocess.Popen[bytes]], str] | None:
    ports = cluster_node_ports()
    directory.mkdir(parents=True, exist_ok=True)
    procs = [_start_cluster_node(port, directory, node_timeout_ms) for port in ports]
    clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=2, socket_connect_timeout=1) for p in ports]
    try:
        deadline = time.monotonic() + CLUSTER_START_TIMEOUT_S
        if not _wait_until(lambda: all(map(_is_process, clients, procs)), procs, deadline):
            stop_redis_cluster(procs)
            return None  # a node could not bind its port: retry with new ones
        created = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=CLUSTER_START_TIMEOUT_S, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            tail = created.stdout.decode(errors="replace")[-500:] + created.stderr.decode(errors="replace")[-500:]
            raise RuntimeError(f"redis-cli --cluster create failed: {tail}")
        if not _wait_until(lambda: _cluster_ok(clients), procs, time.monotonic() + CLUSTER_START_TIMEOUT_S):
            raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
    except BaseException:
        stop_redis_cluster(procs)
        raise
    finally:
        for client in clients:
            client.close()
    return procs, f"redis://127.0.0.1:{ports[0]}"


def start_redis_cluster(
    directory: Path, node_timeout_ms: int = CLUSTER_NODE_TIMEOUT_MS
) -> tuple[list[subprocess.Popen[bytes]], str]:
    """A running 3-master Redis Cluster on loopback: its processes and a node's URL.

    ``directory`` receives each attempt's node files (nodes-PORT.conf, redis-PORT.log).
    Every node reports ``cluster_state:ok`` and knows the others when this returns.
    """
    for attempt in range(CLUSTER_ATTEMPTS):
        started = _try_start_cluster(directory / f"cluster-{attempt}", node_timeout_ms)
        if started is not None:
            return started
    raise RuntimeError(f"could not start a Redis Cluster in {CLUSTER_ATTEMPTS} attempts")


def stop_redis_cluster(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every node (all are signalled first, so they stop in parallel)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        stop_redis(proc)


def on_two_masters(cluster_url: str, key_of: Callable[[int], str]) -> tuple[int, int, int]:
    """The first two ``i`` (0, 1, ...) whose keys ``key_of(i)`` the cluster keeps on
    different masters, and the port of the first one's master."""
    cluster = redis.RedisCluster.from_url(cluster_url, socket_timeout=5)
    try:
        first: dict[int, int] = {}
        for i in range(100):
            first.setdefault(cluster.get_node_from_key(key_of(i)).port, i)  # type: ignore[no-untyped-call]
            if len(first) == 2:
                (port, one), (_, other) = first.items()
                return one, other, port
    finally:
        cluster.close()
    raise RuntimeError("a hundred keys on one master")


def node_process(procs: Sequence[subprocess.Popen[bytes]], port: int) -> subprocess.Popen[bytes]:
    """The process of the cluster node listening on ``port``."""
    return next(proc for proc in procs if str(port) in cast(list[str], proc.args))
