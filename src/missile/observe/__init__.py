"""Observing missile: one small interface that logs, metrics and traces are built on.

The engine reports what happened as frozen event values: one :class:`MessageObserved`
per message a server answers or a client exchange sends and receives, one
:class:`RecoveryObserved` per step of a client's automatic error recovery, one
:class:`StateCallObserved` per call to the issuer's token state. It also asks the
observer for a tracing scope around each client request, each message of its exchange
and each message a server handles, and lets it carry the trace context in transport
headers.

An :class:`Observer` does nothing by default; subclass it and override what you need.
:class:`LogObserver` (the default of servers and clients), :class:`Observers` (several
at once) and, with their extras, :class:`missile.observe.metrics.MetricsObserver`
(``missile[metrics]``, prometheus_client) and
:class:`missile.observe.tracing.TracingObserver` (``missile[otel]``, OpenTelemetry)
are built on it. Events carry identities, user names, message IDs and sizes: never a
key, a token's contents, a password or payload data.
"""

from __future__ import annotations

from missile.observe.base import (
    CURRENT,
    KINDS,
    MessageObserved,
    Observer,
    Observers,
    RecoveryObserved,
    StateCallObserved,
    trace_headers,
)
from missile.observe.logs import JsonFormatter, LogObserver

__all__ = [
    "CURRENT",
    "KINDS",
    "JsonFormatter",
    "LogObserver",
    "MessageObserved",
    "Observer",
    "Observers",
    "RecoveryObserved",
    "StateCallObserved",
    "trace_headers",
]
