"""OpenTelemetry traces (``missile[otel]``, the OpenTelemetry API).

:class:`TracingObserver` opens a span per client request, a child span per message of
its exchange (the handshake and recovery messages included), and a span per message a
server handles. The W3C ``traceparent`` header carries the context over HTTP, so a
server's span joins the client's trace. Spans carry the same fields as the log records
(identity, message ID, kind, key exchange, error), never keys or payloads. Which
exporter receives them is the application's choice (the OpenTelemetry SDK's
configuration); without an SDK the API makes every span a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from missile.observe.base import MessageObserved, Observer

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("tracing needs the OpenTelemetry API: pip install 'missile[otel]'") from exc

__all__ = ["TracingObserver"]


class TracingObserver(Observer):
    """Spans through ``tracer_provider`` (the global provider when None)."""

    traces = True

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("missile", tracer_provider=tracer_provider)

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, str | int]) -> Iterator[None]:
        with self._tracer.start_as_current_span(f"msl {name}", attributes=dict(attributes)):
            yield

    def message(self, event: MessageObserved) -> None:
        # The message's outcome, on the span open around it (see the engine's use).
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("msl.kind", event.kind)
        if event.identity is not None:
            span.set_attribute("msl.identity", event.identity)
        if event.message_id is not None:
            span.set_attribute("msl.message_id", event.message_id)
        if event.key_exchange is not None:
            span.set_attribute("msl.key_exchange", event.key_exchange)
        if event.error is not None:
            span.set_attribute("msl.error", event.error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, event.error))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        propagate.inject(headers)

    @contextmanager
    def extract(self, headers: Mapping[str, str]) -> Iterator[None]:
        token = otel_context.attach(propagate.extract(headers))
        try:
            yield
        finally:
            otel_context.detach(token)
