"""Tests of the state benchmark's scheduling helpers (benchmarks/bench_state.py).

The state section runs its redis-servers as batch tasks, prints how often each server
was preempted, and compares each run with the in-memory runs around it; its figures are
only worth reading if the helpers really set every thread's policy, read the kernel's
count and pair the runs they say they pair.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_state

linux_only = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH") or not Path("/proc/self/task").exists(), reason="Linux scheduling only"
)

#: A child with a second thread, both alive until its stdin closes.
_CHILD = """
import sys, threading
threading.Thread(target=sys.stdin.read, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


@linux_only
def test_every_thread_of_each_process_becomes_a_batch_task() -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        threads = [int(t) for child in children for t in os.listdir(f"/proc/{child.pid}/task")]
        assert len(threads) == 4
        assert all(os.sched_getscheduler(t) == os.SCHED_OTHER for t in threads)

        assert bench_state._as_batch_tasks([child.pid for child in children]) is True

        assert all(os.sched_getscheduler(t) == os.SCHED_BATCH for t in threads)
    finally:
        for child in children:
            child.communicate("", timeout=10)


@linux_only
def test_a_process_that_is_gone_is_reported_not_raised() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=10)
    assert bench_state._as_batch_tasks([child.pid]) is False
    assert bench_state._preemptions(child.pid) is None


@linux_only
def test_read_calls_are_counted_for_every_process_together() -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        before = bench_state._total([os.getpid(), child.pid], bench_state._read_calls)
        assert before is not None
        for _ in range(5):
            with open("/proc/self/stat", "rb", buffering=0) as stat:
                stat.read(100)
        after = bench_state._total([os.getpid(), child.pid], bench_state._read_calls)
        assert after is not None and after >= before + 5
    finally:
        child.communicate("", timeout=10)
    assert bench_state._total([child.pid], bench_state._read_calls) is None  # gone
    assert bench_state._total([], bench_state._read_calls) == 0  # a backend without processes of its own


@linux_only
def test_preemptions_are_the_kernels_involuntary_context_switches() -> None:
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    counted = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
    assert bench_state._preemptions(os.getpid()) >= counted


def test_the_report_says_how_redis_ran_and_how_often_each_server_was_preempted() -> None:
    figure = {"req_per_s": 900.0, "ceiling_req_per_s": 1000.0, "ratio": 0.9, "server_preempted_per_request": 0.02,
              "redis_trips_per_request": 0.284}  # fmt: skip
    memory = {"req_per_s": 1000.0, "ratio": 1.0, "server_preempted_per_request": 0.01}
    state = {
        "redis_servers": "batch tasks",
        "backends": {"memory": {"clients_8": memory}, "redis": {"clients_8": figure}},
    }
    rows = bench_state.state_rows(state, lambda value: f"{value:,.0f}")
    assert rows[0][0] == "state: the redis-servers run as batch tasks"
    assert ("... server preempted per request, redis / memory", "0.02", "0.01", "", "switches") in rows
    assert not any("preempted" in row[0] and "memory / memory" in row[0] for row in rows)
    assert ("... round trips to Redis per request, redis", "0.28", "", "", "trips") in rows
    assert sum("round trips" in row[0] for row in rows) == 1  # none for in-memory state


def test_every_other_backend_runs_between_two_in_memory_runs() -> None:
    assert bench_state._run_order(["memory", "sqlite", "redis"], 2) == [
        "memory", "sqlite", "memory", "redis", "memory", "sqlite", "memory", "redis", "memory",
    ]  # fmt: skip
    assert bench_state._run_order(["sqlite", "redis"], 2) == ["sqlite", "redis", "sqlite", "redis"]


def test_a_run_is_compared_with_the_mean_of_the_in_memory_runs_around_it() -> None:
    def run(req_per_s: float, cpu: float | None = 200.0) -> dict[str, float | None]:
        return {"req_per_s": req_per_s, "server_cpu_us_per_request": cpu, "all_cpu_us_per_request": 400.0}

    timeline = [
        ("memory", run(4000.0)),
        ("redis", run(3000.0)),
        ("memory", run(5000.0, cpu=None)),  # its CPU figure unreadable
        ("sqlite", run(2000.0)),
        ("sqlite", run(1000.0)),  # the memory run between them failed
    ]
    bench_state._bracket(timeline)
    redis, first_sqlite, last_sqlite = timeline[1][1], timeline[3][1], timeline[4][1]
    assert redis["baseline"] == {"req_per_s": 4500.0, "all_cpu_us_per_request": 400.0}
    assert first_sqlite["baseline"] == {"req_per_s": 5000.0, "all_cpu_us_per_request": 400.0}
    assert last_sqlite["baseline"] == first_sqlite["baseline"]
    assert "baseline" not in timeline[0][1]

    rounds = [redis, first_sqlite, {"req_per_s": 10.0}]  # a run without a baseline counts for nothing
    assert bench_state._median_to_baseline(rounds, "req_per_s") == (3000 / 4500 + 2000 / 5000) / 2
    assert bench_state._median_to_baseline(rounds, "all_cpu_us_per_request", invert=True) == 1.0
    assert bench_state._median_to_baseline(rounds, "server_cpu_us_per_request") is None
