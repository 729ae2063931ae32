"""The ``state`` section of benchmarks/run.py: what each server token-state backend costs.

Every MSL request under a master token asks the issuer's state whether the token is
revoked, and a non-replayable request also records its ID (control.md §7). With the
state in Redis each of those is a network round trip; a server that blocked its event
loop on them would serve one request per round trip. This section measures requests/s
over HTTP against ``missile serve`` with each backend, as a ratio to in-memory state
measured in the same run:

- ``memory`` (``--state :memory:``): the ceiling, no I/O at all;
- ``sqlite`` (``--state FILE``);
- ``redis`` (``--redis URL``): a private redis-server on loopback;
- ``redis_cluster`` (``--redis-cluster URL``): a private 3-master Redis Cluster;
- ``redis_1ms``: the same redis-server behind tests/latency_proxy.py, which delays every
  command by 1 ms (a network hop); its ratio is to ``redis`` (target: >= 0.5 at 64
  clients), showing that waits on Redis overlap.

Choices, and why:

- Every server runs ``--workers 1``: in-memory state cannot be shared between worker
  processes (``missile serve`` accepts ``:memory:`` with one worker only), and a ratio is
  only fair between servers with the same number of workers.
- Every request is non-replayable, so every request reads and writes the state.
- Each concurrent client is its own entity (a PSK identity of its own, its own
  :class:`MslClient` and session): non-replayable IDs of one master token must arrive
  in order, which concurrent requests sharing one session cannot guarantee (out-of-order
  IDs are refused as replays and retried, which would measure recovery, not state).
- Backends are measured in short runs, in alternation (``ROUNDS_PER_REPEAT`` rounds per
  repeat, sharing the repeat's seconds), and every run of a persistent backend sits
  between two runs of in-memory state (:func:`_run_order`). A backend's ratio is the
  median over its runs of its figure over the mean of those two in-memory runs (and
  likewise the CPU ratios; the 1 ms proxy's ratio to Redis pairs the two by round). On
  the shared 2-core machine the speed of the host drifts by 30 % between runs a minute
  apart, and a ratio of best-of runs taken at different moments moved by as much (e.g.
  Redis Cluster at 8 clients 0.61 and 0.81 in two runs ten minutes apart). A noisy host
  also changes speed within seconds: paired with one in-memory run at the start of each
  round (up to three runs earlier), single runs ranged from 0.55 to 1.24 of in-memory
  state and the medians of nine moved by 0.1 between runs; the runs just before and
  after are the closest measure of the host's speed at that moment, and shorter runs
  halve the time between them and give the median more pairs. Thirty runs per backend
  (ten rounds per repeat, 0.4 s each in the full run): with fifteen, the median itself
  was noise at the 0.8 line (seven full runs in a row gave SQLite at 8 clients
  0.80-0.87, a standard deviation of 0.025 between runs, near the 0.019 that the spread
  of single runs predicts for a median of fifteen); twice the pairs cut that by about
  30 %. The requests/s shown are each backend's best run.
- Next to requests/s, each run measures CPU per request: the server's (its ratio is
  what a CPU-bound server would reach), and that of every process the requests keep busy
  (this load generator, the server, the state's own redis-servers) with the cores they
  kept busy. Client, server and Redis share the machine's two cores, so requests/s
  cannot beat the all-process ratio times the share of cores kept busy: the row
  ``bound: CPU per request, all processes`` says which of the two a miss comes from.
- Every redis-server runs as a batch task (Linux ``SCHED_BATCH``, :func:`_as_batch_tasks`),
  as docs/guides/deployment.md advises for a Redis on the server's own host. Here it
  shares two cores with the server and this load generator. As an ordinary task it is
  woken onto the server's core by each command and preempts the server there: about one
  involuntary context switch of the server per Redis trip (0.33-0.50 per request at 8
  clients, 0.01-0.02 with in-memory state), after which the server runs on cold caches.
  In three pairs of quick runs that held Redis to 0.73-0.85 of in-memory state, against
  0.88-1.00 as a batch task (Cluster 0.67-0.79 against 0.84-0.88). A Redis on its own
  host, as a fleet has it, never preempts the server; a batch task keeps its full share
  of CPU but waits for a free core or the end of a time slice instead of preempting, so
  the figures measure missile's cost of Redis rather than this machine's packing. The
  row ``server preempted per request`` shows each server's involuntary context
  switches, so a run shows whether anything still preempts it.
- The row ``round trips to Redis per request`` counts redis-server's reads: requests
  whose checks overlap share a trip, and a Redis Cluster's batch costs a trip to each
  master its identities hash to.
- A backend whose server does not start (e.g. an option not supported by this build)
  or whose infrastructure is missing (no redis-server) is skipped with the reason
  printed and recorded, not fatal to the whole run.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import ROOT, _free_port, _load, _loop_factory, _stop, _wait_port

sys.path.insert(0, str(ROOT / "tests"))

from missile.cli.keys import generate, write_private
from missile.crypto.derivation import derive_wrapping_key
from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.pooled import PooledHttpTransport

BACKENDS = ("memory", "sqlite", "redis", "redis_cluster", "redis_1ms")
#: Ratio to in-memory state each persistent backend should reach.
TARGET_RATIO = 0.8
#: Ratio of Redis with 1 ms per command to Redis without, at the largest level.
TARGET_LATENCY_RATIO = 0.5
#: Delay the latency proxy adds to every command: a same-zone network round trip.
LATENCY_S = 0.001
PAYLOAD_BYTES = 100
#: Seconds for a server to listen, and for the proxy to report its port.
START_TIMEOUT_S = 30.0
#: Seconds one request may take before the run counts the backend as failed: far
#: above any healthy latency here, so only a hung server reaches it.
REQUEST_TIMEOUT_S = 30.0

NON_REPLAYABLE = MessageOptions(non_replayable=True)
#: Rounds per repeat: more, shorter rounds give the median more pairs, each closer in time.
ROUNDS_PER_REPEAT = 10


@dataclass
class Backend:
    name: str
    args: list[str] | None = None
    """``missile serve`` options; None when the backend was skipped."""
    skipped: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    """The server's stderr (its tail explains a failure under load)."""
    results: dict[str, Any] = field(default_factory=dict)
    state_pids: list[int] = field(default_factory=list)
    """The state's own processes (redis-server), whose CPU counts in the all-process figure."""


# -- keys: one PSK entity per concurrent client --------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def entity_keys(count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A server key file trusting ``count`` PSK clients, and their key files."""
    server, template = generate("server1", "client0")
    clients = []
    server["psk"] = []
    for i in range(count):
        enc, mac = os.urandom(16), os.urandom(32)
        psk = {"identity": f"client{i}", "encryption_b64": _b64(enc), "hmac_b64": _b64(mac),
               "wrap_b64": _b64(derive_wrapping_key(enc, mac))}  # fmt: skip
        client = copy.deepcopy(template)
        client["identity"] = client["entity_auth"]["identity"] = psk["identity"]
        client["psk"] = [psk]
        server["psk"].append(psk)
        clients.append(client)
    return server, clients


# -- infrastructure ---------------------------------------------------------------------------


@contextmanager
def _redis(tmp: Path, skips: dict[str, str], pids: dict[str, list[int]]) -> Iterator[str | None]:
    from redis_helpers import REDIS_SERVER, start_redis, stop_redis

    if not os.path.exists(REDIS_SERVER):
        skips["redis"] = skips["redis_1ms"] = f"{REDIS_SERVER} not installed"
        yield None
        return
    try:
        proc, url = start_redis(tmp)
    except RuntimeError as exc:
        skips["redis"] = skips["redis_1ms"] = str(exc)
        yield None
        return
    pids["redis"] = [proc.pid]
    try:
        yield url.rsplit("/", 1)[0]
    finally:
        stop_redis(proc)


@contextmanager
def _redis_cluster(tmp: Path, skips: dict[str, str], pids: dict[str, list[int]]) -> Iterator[str | None]:
    from redis_helpers import REDIS_CLI, REDIS_SERVER, start_redis_cluster, stop_redis_cluster

    if not (os.path.exists(REDIS_SERVER) and os.path.exists(REDIS_CLI)):
        skips["redis_cluster"] = f"{REDIS_SERVER} or {REDIS_CLI} not installed"
        yield None
        return
    try:
        procs, url = start_redis_cluster(tmp)
    except RuntimeError as exc:
        skips["redis_cluster"] = str(exc)
        yield None
        return
    pids["redis_cluster"] = [proc.pid for proc in procs]
    try:
        yield url
    finally:
        stop_redis_cluster(procs)


def _as_batch_tasks(pids: Sequence[int]) -> bool:
    """Make every thread of ``pids`` a batch task (see the module docstring); False where
    Linux's ``SCHED_BATCH`` is missing or refused, which leaves them as they were."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return False
    try:
        for pid in pids:
            for thread in os.listdir(f"/proc/{pid}/task"):
                os.sched_setscheduler(int(thread), policy, os.sched_param(0))
    except OSError:
        return False
    return True


@contextmanager
def _latency_proxy(redis_url: str | None, skips: dict[str, str]) -> Iterator[str | None]:
    """The redis-server behind a latency proxy in its own process (a thread of this one
    would compete for the GIL with the load generator and add delay of its own)."""
    if redis_url is None:
        yield None
        return
    host, port = redis_url.removeprefix("redis://").rsplit(":", 1)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "latency_proxy.py"), host, port, "--delay-ms", str(LATENCY_S * 1000)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""  # "port N", or "" if the proxy died
        if not line.startswith("port "):
            skips["redis_1ms"] = "the latency proxy did not start"
            yield None
        else:
            yield f"redis://127.0.0.1:{int(line.split()[1])}"
    finally:
        _stop(proc)  # type: ignore[arg-type]


def _start_server(backend: Backend, keys: Path, tmp: Path) -> None:
    """Start ``missile serve`` for ``backend``; on failure record why and skip it."""
    assert backend.args is not None
    missile_bin = Path(sys.executable).with_name("missile")
    command = [str(missile_bin)] if missile_bin.exists() else [sys.executable, "-m", "missile.cli"]
    backend.port = _free_port()
    log = backend.log = tmp / f"serve-{backend.name}.log"
    with log.open("wb") as err:
        backend.proc = subprocess.Popen(
            [*command, "serve", "--keys", str(keys), "--host", "127.0.0.1", "--port", str(backend.port),
             "--workers", "1", "--log-level", "warning", *backend.args],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        _wait_port(backend.port, backend.proc, timeout=START_TIMEOUT_S)
    except RuntimeError as exc:
        _stop(backend.proc)
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        backend.skipped = f"{exc}: {' | '.join(tail)}" if tail else str(exc)
        backend.proc = None


def _log_tail(log: Path, lines: int = 5) -> str:
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f" [server log: {' | '.join(tail)}]" if tail else ""


# -- load ---------------------------------------------------------------------------------------


class _Entities:
    """``count`` MslClients, one per entity, each used by one request at a time."""

    def __init__(self, client_keys: Sequence[dict[str, Any]], port: int, count: int) -> None:
        self.transport = PooledHttpTransport(f"http://127.0.0.1:{port}/", max_idle=count, max_connections=count)
        self.idle: list[MslClient] = []
        for data in client_keys[:count]:
            keys = KeyFile.from_dict(copy.deepcopy(data))
            keys.time_ms = None
            ctx = context_from_keyfile(keys, role="client").ctx
            self.idle.append(MslClient(ctx, self.transport, key_request_factory=key_request_factory(ctx, keys)))
        self.payload = os.urandom(PAYLOAD_BYTES)

    async def sessions(self) -> None:
        """A key exchange per entity (not measured)."""
        replies = await asyncio.gather(*(client.request(self.payload) for client in self.idle))
        assert all(reply.master_token is not None for reply in replies)

    async def call(self) -> None:
        client = self.idle.pop()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                reply = await client.request(self.payload, NON_REPLAYABLE)
            assert reply.payload == self.payload
        finally:
            self.idle.append(client)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _preemptions(pid: int) -> int | None:
    """How often process ``pid``'s main thread was switched out while it could run (its
    involuntary context switches), None off Linux."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split(":")[1])
    return None


def _read_calls(pid: int) -> int | None:
    """Read system calls of process ``pid``, None off Linux. redis-server reads a
    client's socket once per batch of commands that arrived together, so over a run its
    reads count the server's round trips to Redis (and a few of the cluster bus)."""
    try:
        io = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    return int(io.split("syscr:")[1].split()[0])


def _total(pids: Sequence[int], of: Callable[[int], float | None]) -> float | None:
    """``of(pid)`` summed over ``pids`` (None if any cannot be read; 0 for no process)."""
    total = 0.0
    for pid in pids:
        value = of(pid)
        if value is None:
            return None
        total += value
    return total


async def _load_with_cpu(
    backend: Backend, entities: _Entities, level: int, seconds: float, max_count: int, warmup: float
) -> dict[str, Any]:
    """:func:`_load`, plus CPU time per request over every request of the run (warm-up
    included): the server's, and that of every process the requests keep busy (this
    load generator, the server and the state's own processes), with the cores that
    kept busy on average. Unlike requests/s, CPU per request hardly moves when other
    work shares the machine, so it compares backends (and versions) on a busy host; the
    all-process figure bounds requests/s when the cores are saturated."""
    done = 0

    async def call() -> None:
        nonlocal done
        await entities.call()
        done += 1

    assert backend.proc is not None
    before, preempted_before = _cpu_seconds(backend.proc.pid), _preemptions(backend.proc.pid)
    state = backend.state_pids
    state_before, mine_before, start = _total(state, _cpu_seconds), time.process_time(), time.perf_counter()
    reads_before = _total(state, _read_calls) if state else None
    result = await _load(call, level, seconds, max_count, warmup)
    state_after, mine_after, elapsed = _total(state, _cpu_seconds), time.process_time(), time.perf_counter() - start
    reads_after = _total(state, _read_calls) if state else None
    if reads_before is not None and reads_after is not None and done:
        result["redis_trips_per_request"] = (reads_after - reads_before) / done
    after, preempted_after = _cpu_seconds(backend.proc.pid), _preemptions(backend.proc.pid)
    if preempted_before is not None and preempted_after is not None and done:
        result["server_preempted_per_request"] = (preempted_after - preempted_before) / done
    if before is not None and after is not None and done:
        result["server_cpu_us_per_request"] = (after - before) / done * 1e6
        if state_before is not None and state_after is not None:
            total = (after - before) + (state_after - state_before) + (mine_after - mine_before)
            result["all_cpu_us_per_request"] = total / done * 1e6
            result["cores_busy"] = total / elapsed
    return result


async def _measure(
    backends: list[Backend], client_keys: list[dict[str, Any]], levels: Sequence[int], seconds: float,
    max_count: int, repeats: int,
) -> None:  # fmt: skip
    rounds = repeats * ROUNDS_PER_REPEAT
    seconds /= ROUNDS_PER_REPEAT
    warmup = min(0.5, seconds / 4)
    for level in levels:
        entities: dict[str, _Entities] = {}
        try:
            for backend in backends:
                if backend.skipped is None:
                    entities[backend.name] = _Entities(client_keys, backend.port, level)
                    try:
                        await entities[backend.name].sessions()
                    except Exception as exc:  # the backend fails to serve: skip it
                        backend.skipped = f"sessions failed: {type(exc).__name__}: {exc}"
            runs: dict[str, list[dict[str, Any]]] = {b.name: [] for b in backends}
            timeline: list[tuple[str, dict[str, Any]]] = []
            by_name = {backend.name: backend for backend in backends}
            for name in _run_order([b.name for b in backends], rounds):  # see the module docstring
                backend = by_name[name]
                if backend.skipped is not None:
                    continue
                try:
                    result = await _load_with_cpu(backend, entities[name], level, seconds, max_count, warmup)
                except Exception as exc:
                    backend.skipped = f"failed under load: {type(exc).__name__}: {exc}"
                    continue
                runs[name].append(result)
                timeline.append((name, result))
            _bracket(timeline)
            for backend in backends:
                if backend.skipped is None and runs[backend.name]:
                    best = dict(max(runs[backend.name], key=lambda r: r["req_per_s"]))
                    cpu_keys = ("server_cpu_us_per_request", "all_cpu_us_per_request", "cores_busy",
                                "server_preempted_per_request", "redis_trips_per_request")  # fmt: skip
                    best.pop("baseline", None)
                    best["rounds"] = [
                        {"req_per_s": r["req_per_s"], **{k: r.get(k) for k in (*cpu_keys, "baseline")}}
                        for r in runs[backend.name]
                    ]
                    for k in cpu_keys:  # shown as the median of the rounds, like the ratios
                        values = [r[k] for r in best["rounds"] if r[k] is not None]
                        if values:
                            best[k] = statistics.median(values)
                    backend.results[f"clients_{level}"] = best
        finally:
            for group in entities.values():
                await group.transport.aclose()


#: The figures of a run that are compared with the in-memory runs around it.
_COMPARED = ("req_per_s", "server_cpu_us_per_request", "all_cpu_us_per_request")


def _run_order(names: Sequence[str], rounds: int) -> list[str]:
    """Which backend runs when: in each round every backend once, each between two runs
    of in-memory state (``memory``, A, ``memory``, B, ..., ``memory``)."""
    others = [name for name in names if name != "memory"]
    if len(others) == len(names):
        return others * rounds
    order = [run for _ in range(rounds) for name in others for run in ("memory", name)]
    return [*order, "memory"]


def _bracket(timeline: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Give each run of another backend a ``baseline``: the mean figures of the
    in-memory runs just before and just after it (one of them at either end)."""
    memory_at = [i for i, (name, _) in enumerate(timeline) if name == "memory"]
    for i, (name, result) in enumerate(timeline):
        if name == "memory":
            continue
        before = [j for j in memory_at if j < i][-1:]
        after = [j for j in memory_at if j > i][:1]
        around = [timeline[j][1] for j in before + after]
        baseline = {}
        for key in _COMPARED:
            values = [run[key] for run in around if run.get(key)]
            if values and len(values) == len(around):
                baseline[key] = statistics.mean(values)
        if baseline:
            result["baseline"] = baseline


def _median_to_baseline(rounds: Sequence[dict[str, Any]], key: str, invert: bool = False) -> float | None:
    """The median over runs of ``run[key]`` over its baseline's (see :func:`_paired_median`)."""
    return _paired_median(rounds, [run.get("baseline") or {} for run in rounds], key, invert)


def _paired_median(
    mine: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], key: str, invert: bool = False
) -> float | None:
    """The median over rounds of ``mine[i][key] / base[i][key]`` (its inverse with
    ``invert``: CPU per request, where less is better); None without a full pair."""
    ratios = []
    for a, b in zip(mine, base, strict=False):
        x, y = a.get(key), b.get(key)
        if x and y:
            ratios.append(y / x if invert else x / y)
    return statistics.median(ratios) if ratios else None


def _ratios(out: dict[str, Any], levels: Sequence[int]) -> None:
    """Each backend's paired-median ratio to in-memory state (see the module docstring);
    ``redis_1ms`` also to ``redis``."""
    backends = out["backends"]
    for level in levels:
        key = f"clients_{level}"
        memory = backends.get("memory", {}).get(key)
        redis_plain = backends.get("redis", {}).get(key)
        for name, figures in backends.items():
            figure = figures.get(key)
            if figure is None:
                continue
            if memory is not None:
                figure["ceiling_req_per_s"] = memory["req_per_s"]
            if name == "memory":
                figure["ratio"] = figure["cpu_ratio"] = figure["all_cpu_ratio"] = 1.0
            elif memory is not None:
                figure["ratio"] = _median_to_baseline(figure["rounds"], "req_per_s")
                # memory's CPU per request over this backend's: the throughput ratio a
                # CPU-bound server would reach, measured without most of the host's noise
                figure["cpu_ratio"] = _median_to_baseline(figure["rounds"], "server_cpu_us_per_request", invert=True)
                # the same over every process the requests keep busy: the ratio the
                # backend can reach when the machine's cores are saturated
                figure["all_cpu_ratio"] = _median_to_baseline(figure["rounds"], "all_cpu_us_per_request", invert=True)
            if name == "redis_1ms" and redis_plain is not None:
                figure["no_latency_req_per_s"] = redis_plain["req_per_s"]
                figure["ratio_to_redis"] = _paired_median(figure["rounds"], redis_plain["rounds"], "req_per_s")


def bench_state(levels: Sequence[int], seconds: float, max_count: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "workers": 1,
        "payload_bytes": PAYLOAD_BYTES,
        "non_replayable": True,
        "levels": list(levels),
        "entities": max(levels),
        "latency_ms": LATENCY_S * 1000,
        "client": "one MslClient per entity, PooledHttpTransport",
        "client_loop": "uvloop" if _loop_factory() else "asyncio",
        "backends": {},
    }
    skips: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        server_keys, client_keys = entity_keys(max(levels))
        keys_path = tmp / "server.json"
        write_private(keys_path, server_keys)
        pids: dict[str, list[int]] = {}
        redis_url = stack.enter_context(_redis(tmp, skips, pids))
        cluster_url = stack.enter_context(_redis_cluster(tmp, skips, pids))
        slow_url = stack.enter_context(_latency_proxy(redis_url, skips))
        redis_pids = [pid for name in ("redis", "redis_cluster") for pid in pids.get(name, [])]
        if redis_pids:
            out["redis_servers"] = "batch tasks" if _as_batch_tasks(redis_pids) else "ordinary tasks (no SCHED_BATCH)"
        # Separate databases: the two Redis backends must not see each other's tokens.
        args: dict[str, list[str] | None] = {
            "memory": ["--state", ":memory:"],
            "sqlite": ["--state", str(tmp / "state.db")],
            "redis": ["--redis", f"{redis_url}/1"] if redis_url else None,
            "redis_cluster": ["--redis-cluster", cluster_url] if cluster_url else None,
            "redis_1ms": ["--redis", f"{slow_url}/2"] if slow_url else None,
        }
        backends = [Backend(name, args[name], skips.get(name), state_pids=pids.get(name, [])) for name in BACKENDS]
        try:
            for backend in backends:
                if backend.skipped is None:
                    _start_server(backend, keys_path, tmp)
            time.sleep(1.0)  # let every server finish its start-up work
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(_measure(backends, client_keys, levels, seconds, max_count, repeats))
        finally:
            for backend in backends:
                if backend.proc is not None:
                    _stop(backend.proc)
                    if backend.skipped is not None and backend.log is not None:
                        backend.skipped += _log_tail(backend.log)
    for backend in backends:
        if backend.skipped is not None:
            print(f"state: {backend.name} skipped: {backend.skipped}", file=sys.stderr)
            out["backends"][backend.name] = {"skipped": backend.skipped}
        else:
            out["backends"][backend.name] = {"serve_options": backend.args, **backend.results}
    _ratios(out, levels)
    return out


# -- reporting (called by run.py) ---------------------------------------------------------------


def state_rows(state: dict[str, Any], fmt: Callable[[float], str]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    if "redis_servers" in state:  # see the module docstring
        rows.append((f"state: the redis-servers run as {state['redis_servers']}", "", "", "", ""))
    for name, figures in state["backends"].items():
        if "skipped" in figures:
            rows.append((f"state {name}: skipped ({figures['skipped'][:60]})", "", "", "", ""))
            continue
        for key, figure in figures.items():
            if not key.startswith("clients_"):
                continue
            level = key.split("_")[1]
            if name == "redis_1ms":
                if figure.get("ratio_to_redis") is not None:
                    rows.append((f"state redis +1 ms/command, {level} clients, vs redis (>={TARGET_LATENCY_RATIO})",
                                 fmt(figure["req_per_s"]), fmt(figure["no_latency_req_per_s"]),
                                 f"{figure['ratio_to_redis']:.2f}", "req/s"))  # fmt: skip
                continue
            target = f" (>={TARGET_RATIO})" if name != "memory" else ""
            ceiling = fmt(figure["ceiling_req_per_s"]) if "ceiling_req_per_s" in figure else ""
            ratio = f"{figure['ratio']:.2f}" if figure.get("ratio") is not None else ""
            rows.append((f"state {name}, {level} clients, vs memory{target}", fmt(figure["req_per_s"]),
                         ceiling, ratio, "req/s"))  # fmt: skip
            if figure.get("cpu_ratio") is not None:
                memory_cpu = state["backends"]["memory"][key]["server_cpu_us_per_request"]
                rows.append((f"... server CPU per request, memory / {name}", fmt(figure["server_cpu_us_per_request"]),
                             fmt(memory_cpu), f"{figure['cpu_ratio']:.2f}", "us"))  # fmt: skip
            if figure.get("server_preempted_per_request") is not None and name != "memory":
                rows.append((f"... server preempted per request, {name} / memory",
                             f"{figure['server_preempted_per_request']:.2f}",
                             f"{state['backends']['memory'][key].get('server_preempted_per_request', 0):.2f}", "",
                             "switches"))  # fmt: skip
            if figure.get("redis_trips_per_request") is not None:
                rows.append((f"... round trips to Redis per request, {name}",
                             f"{figure['redis_trips_per_request']:.2f}", "", "", "trips"))  # fmt: skip
            if figure.get("all_cpu_ratio") is not None and name != "memory":
                base = state["backends"]["memory"][key]
                busy = f"cores busy {figure['cores_busy']:.2f} / {base['cores_busy']:.2f}"
                rows.append((f"... bound: CPU per request, all processes ({busy})",
                             fmt(figure["all_cpu_us_per_request"]), fmt(base["all_cpu_us_per_request"]),
                             f"{figure['all_cpu_ratio']:.2f}", "us"))  # fmt: skip
    return rows


def state_targets(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, figures in state["backends"].items():
        for key, figure in figures.items():
            if not key.startswith("clients_"):
                continue
            if name == "redis_1ms":
                if key == f"clients_{state['levels'][-1]}" and figure.get("ratio_to_redis") is not None:
                    value = figure["ratio_to_redis"]
                    out[f"state_{name}_{key}"] = {"value": value, "target": TARGET_LATENCY_RATIO,
                                                  "met": value >= TARGET_LATENCY_RATIO}  # fmt: skip
            elif name != "memory" and figure.get("ratio") is not None:
                value = figure["ratio"]
                out[f"state_{name}_{key}"] = {"value": value, "target": TARGET_RATIO, "met": value >= TARGET_RATIO}
    return out
