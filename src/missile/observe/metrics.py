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
"""

from __future__ import annotations

import os
from typing import Any

from missile.observe.base import MessageObserved, Observer, StateCallObserved

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
# State calls are tens of microseconds to the one-second bound.
_STATE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0, 2.5)


class MetricsObserver(Observer):
    """Prometheus metrics for every message and state call, in ``registry`` (the
    process-wide default registry when None)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
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
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._state_children: dict[tuple[str, str], Any] = {}
        self._in = self.payload_bytes.labels("in")
        self._out = self.payload_bytes.labels("out")

    def message(self, event: MessageObserved) -> None:
        # Label children are cached: .labels() takes a lock and builds a key each time.
        key = (event.role, event.kind)
        counters = self._children.get(key)
        if counters is None:
            counters = self._children[key] = (self.messages.labels(*key), self.duration.labels(event.role))
        counters[0].inc()
        counters[1].observe(event.duration)
        if event.error is not None:
            self.errors.labels(event.role, event.error, event.response_code or "").inc()
        if event.key_exchange is not None:
            self.key_exchanges.labels(event.key_exchange).inc()
        if event.bytes_in:
            self._in.inc(event.bytes_in)
        if event.bytes_out:
            self._out.inc(event.bytes_out)

    def state_call(self, event: StateCallObserved) -> None:
        key = (event.backend, event.operation)
        child = self._state_children.get(key)
        if child is None:
            child = self._state_children[key] = self.state_seconds.labels(*key)
        child.observe(event.seconds)


def metrics_text(registry: CollectorRegistry | None = None) -> bytes:
    """The exposition text: of ``registry``; else, with ``PROMETHEUS_MULTIPROC_DIR``
    set, the sum over every process; else of the default registry."""
    if registry is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry if registry is not None else REGISTRY)
