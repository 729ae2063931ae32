"""Prometheus metrics (``missile[metrics]``, prometheus_client).

:class:`MetricsObserver` counts messages, errors, key exchanges and payload bytes and
times messages and state calls:

* ``missile_messages_total{role,kind}``
* ``missile_errors_total{role,error,response_code}``
* ``missile_key_exchanges_total{scheme}``
* ``missile_message_duration_seconds{role}`` (histogram)
* ``missile_payload_bytes_total{direction}`` (``in``, ``out``: message bytes)
* ``missile_state_seconds{backend,operation}`` (histogram)

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory) before
the workers import prometheus_client, and serve :func:`metrics_text`, which then sums
every worker's files (``missile serve --metrics`` does both).

In that mode every count is a locked write to a memory-mapped file, and a message makes
five (messages, the duration's sum and bucket, bytes in and out), a state call two.
With ``flush_interval`` the observer keeps the events instead (one append to a deque, without a lock) and,
every ``flush_interval`` seconds (on the event loop, else a daemon thread:
:mod:`missile.observe.flushing`) and at exit, counts them in one pass and writes one
update per sample that changed, whatever the traffic. Counting in one pass runs warm
(about 1 µs per message in a loop; the same lookups run once per request took three
times that inside a loaded server). The samples lag by up to ``flush_interval``, and a process killed
outright loses its last interval's counts; ``missile serve --metrics`` uses 0.1 s. A
series appears at the first flush after its first event. At most
:data:`MAX_HELD_EVENTS` are kept: one more counts them in memory at once (a late flush
holds bounded memory).

Adding a histogram's counts up writes to its sum and buckets directly
(prometheus_client's ``_sum`` and ``_buckets``; tests/observe/test_buffered.py checks
that the installed release has them); should a release lay them out otherwise, that
histogram is written through as before.
"""

from __future__ import annotations

import atexit
import bisect
import os
import threading
from collections import deque
from typing import Any, cast

from missile.observe.base import MessageObserved, Observer, StateCallObserved
from missile.observe.flushing import DelayedFlush

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client import multiprocess as _multiprocess
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("metrics need prometheus_client: pip install 'missile[metrics]'") from exc

__all__ = ["CONTENT_TYPE", "MetricsObserver", "metrics_text"]

#: The Content-Type of :func:`metrics_text`'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Message latencies are a few hundred microseconds to seconds (key exchange, retries).
_MESSAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Events held at most between two flushes; one more counts them at once. Bounds the
#: memory of a worker whose flush is late (its loop stuck): a few hundred bytes each.
MAX_HELD_EVENTS = 10_000

# State calls are tens of microseconds to the one-second bound.
_STATE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0, 2.5)


class _Count:
    """A counter child's increments, added up until the next flush."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.pending += amount


class _Tally:
    """A histogram child's observations, added up per bucket until the next flush."""

    __slots__ = ("bounds", "buckets", "counts", "sum", "total")

    def __init__(self, child: Any, buckets: tuple[float, ...]) -> None:
        self.bounds = (*buckets, float("inf"))
        self.sum = child._sum
        self.buckets = child._buckets
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        i = bisect.bisect_left(self.bounds, amount)  # the first bound >= amount, as observe() picks
        if i < len(self.counts):
            self.counts[i] += 1
            self.total += amount


def _tally_or_child(child: Any, buckets: tuple[float, ...]) -> Any:
    """A :class:`_Tally` of ``child`` if its layout is the known one, else ``child``."""
    parts = getattr(child, "_buckets", None)
    if hasattr(getattr(child, "_sum", None), "inc") and isinstance(parts, list) and len(parts) == len(buckets) + 1:
        return _Tally(child, buckets)
    return child


class MetricsObserver(Observer):
    """Prometheus metrics for every message and state call, in ``registry`` (the
    process-wide default registry when None); with ``flush_interval``, counted in memory
    and written every ``flush_interval`` seconds, on :meth:`flush` and at exit."""

    def __init__(self, registry: CollectorRegistry | None = None, *, flush_interval: float | None = None) -> None:
        target = registry if registry is not None else REGISTRY
        self.messages = Counter("missile_messages", "MSL messages handled.", ["role", "kind"], registry=target)
        self.errors = Counter(
            "missile_errors",
            "MSL error messages sent or received.",
            ["role", "error", "response_code"],
            registry=target,
        )
        self.key_exchanges = Counter("missile_key_exchanges", "Key exchanges performed.", ["scheme"], registry=target)
        self.duration = Histogram(
            "missile_message_duration_seconds",
            "Time to handle a message.",
            ["role"],
            buckets=_MESSAGE_BUCKETS,
            registry=target,
        )
        self.payload_bytes = Counter(
            "missile_payload_bytes", "MSL message bytes received and sent.", ["direction"], registry=target
        )
        self.state_seconds = Histogram(
            "missile_state_seconds",
            "Time of token state calls.",
            ["backend", "operation"],
            buckets=_STATE_BUCKETS,
            registry=target,
        )
        # Label children, bound once per label values: .labels() validates the values,
        # builds a key and takes a lock each time. The values come from small closed sets
        # (roles, kinds, MslError and response code names, schemes, state calls), so
        # these stay small.
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._error_children: dict[tuple[str, str, str], Any] = {}
        self._scheme_children: dict[str, Any] = {}
        self._state_children: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._counts: list[_Count] = []
        self._tallies: list[_Tally] = []
        self._wrapped: dict[int, Any] = {}
        self._held: deque[MessageObserved | StateCallObserved] = deque()
        self._timer: DelayedFlush | None = None
        if flush_interval is not None:
            self._timer = DelayedFlush(self.flush, flush_interval, "missile-metrics-flush")
            atexit.register(self.flush)
        self._in = self._counter(self.payload_bytes.labels("in"))
        self._out = self._counter(self.payload_bytes.labels("out"))

    def _counter(self, child: Any) -> Any:
        """``child``, or with ``flush_interval`` its :class:`_Count` (one per child)."""
        if self._timer is None:
            return child
        count = self._wrapped.get(id(child))  # children live as long as their metric
        if count is None:
            count = self._wrapped[id(child)] = _Count(child)
            self._counts.append(count)
        return count

    def _histogram(self, child: Any, buckets: tuple[float, ...]) -> Any:
        """``child``, or with ``flush_interval`` its :class:`_Tally` (one per child)."""
        if self._timer is None:
            return child
        tally = self._wrapped.get(id(child))
        if tally is None:
            tally = self._wrapped[id(child)] = _tally_or_child(child, buckets)
            if isinstance(tally, _Tally):
                self._tallies.append(tally)
        return tally

    def flush(self) -> None:
        """Write the counts held in memory (nothing without ``flush_interval``)."""
        with self._lock:
            self._add_up()
            counts = [(c.child, c.pending) for c in self._counts if c.pending]
            for c in self._counts:
                c.pending = 0.0
            tallies = [(t, t.total, t.counts[:]) for t in self._tallies if any(t.counts)]
            for t, _, _ in tallies:
                t.total = 0.0
                t.counts[:] = [0] * len(t.counts)
        for child, amount in counts:
            child.inc(amount)
        for t, total, per_bucket in tallies:
            t.sum.inc(total)
            for bucket, n in zip(t.buckets, per_bucket, strict=True):
                if n:
                    bucket.inc(n)

    def message(self, event: MessageObserved) -> None:
        timer = self._timer
        if timer is None:
            with self._lock:
                self._count_message(event)
            return
        self._held.append(event)  # inline, as in state_call(): this runs for every message
        if len(self._held) >= MAX_HELD_EVENTS:
            self._count_held()
        timer.due()

    def state_call(self, event: StateCallObserved) -> None:
        timer = self._timer
        if timer is None:
            with self._lock:  # state calls come from the state's own thread too
                self._count_state_call(event)
            return
        self._held.append(event)
        if len(self._held) >= MAX_HELD_EVENTS:
            self._count_held()
        timer.due()

    def _count_held(self) -> None:
        """Count the events held now, in memory (a flush that is late: the module's
        docstring says why they are held)."""
        with self._lock:
            self._add_up()

    def _add_up(self) -> None:
        """Count the events held (the caller holds the lock). Events are appended without
        the lock (a deque's append and popleft are each atomic): those appended while
        this runs are counted now or at the next call, never lost nor counted twice."""
        held = self._held
        for _ in range(len(held)):
            event = held.popleft()
            if type(event) is MessageObserved:
                self._count_message(event)
            else:
                self._count_state_call(cast(StateCallObserved, event))

    def _count_message(self, event: MessageObserved) -> None:
        role = event.role
        children = self._children.get((role, event.kind))
        if children is None:
            children = self._children[role, event.kind] = (
                self._counter(self.messages.labels(role, event.kind)),
                self._histogram(self.duration.labels(role), _MESSAGE_BUCKETS),
            )
        children[0].inc()
        children[1].observe(event.duration)
        if event.error is not None:
            self._error(role, event.error, event.response_code or "").inc()
        if event.key_exchange is not None:
            scheme = self._scheme_children.get(event.key_exchange)
            if scheme is None:
                scheme = self._scheme_children[event.key_exchange] = self._counter(
                    self.key_exchanges.labels(event.key_exchange)
                )
            scheme.inc()
        if event.bytes_in:
            self._in.inc(event.bytes_in)
        if event.bytes_out:
            self._out.inc(event.bytes_out)

    def _error(self, role: str, error: str, response_code: str) -> Any:
        key = (role, error, response_code)
        child = self._error_children.get(key)
        if child is None:
            child = self._error_children[key] = self._counter(self.errors.labels(*key))
        return child

    def _count_state_call(self, event: StateCallObserved) -> None:
        key = (event.backend, event.operation)
        child = self._state_children.get(key)
        if child is None:
            child = self._state_children[key] = self._histogram(self.state_seconds.labels(*key), _STATE_BUCKETS)
        child.observe(event.seconds)


def metrics_text(registry: CollectorRegistry | None = None) -> bytes:
    """The exposition text: of ``registry``; else, with ``PROMETHEUS_MULTIPROC_DIR``
    set, the sum over every process; else of the default registry."""
    if registry is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry if registry is not None else REGISTRY)
