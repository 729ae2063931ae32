"""The observer interface and the observers built on it, without the engine: the
records a LogObserver writes (and JsonFormatter's lines), the samples a MetricsObserver
counts, the spans a TracingObserver opens and the context it carries."""

from __future__ import annotations

import json
import logging

import pytest

from missile.observe import (
    JsonFormatter,
    LogObserver,
    MessageObserved,
    Observer,
    Observers,
    RecoveryObserved,
    StateCallObserved,
)

EVENT = MessageObserved(
    role="server",
    kind="key_exchange",
    identity="client1",
    user="user1@foo.com",
    message_id=42,
    path="/notes",
    key_exchange="SYMMETRIC_WRAPPED",
    bytes_in=1200,
    bytes_out=1800,
    duration=0.0042,
)
ERROR = MessageObserved(role="server", kind="error", error="MESSAGE_REPLAYED", response_code="REPLAYED")


def test_log_observer_writes_one_info_record_with_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="missile"):
        LogObserver().message(EVENT)
    (record,) = caplog.records
    assert record.name == "missile.server" and record.levelno == logging.INFO
    fields = record.msl  # type: ignore[attr-defined]
    assert fields["identity"] == "client1" and fields["kind"] == "key_exchange"
    assert fields["key_exchange"] == "SYMMETRIC_WRAPPED" and fields["bytes_in"] == 1200
    assert "message_id=42" in record.getMessage() and "path=/notes" in record.getMessage()
    assert "error" not in fields  # absent fields are left out


def test_log_observer_costs_nothing_when_disabled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="missile"):
        LogObserver().message(EVENT)
        LogObserver().recovery(RecoveryObserved("MESSAGE_REPLAYED", "REPLAYED", "resend", 2, 12))
    assert caplog.records == []


def test_recovery_and_state_levels(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="missile"):
        observer = LogObserver()
        observer.recovery(RecoveryObserved("ENTITY_REAUTH", "ENTITY_REAUTH", "re-authenticate the entity", 3, 12))
        observer.state_call(StateCallObserved("RedisTokenState", "check_master_token", 0.0003, True))
        observer.state_call(StateCallObserved("RedisTokenState", "check_master_token", 1.0, False))
    levels = [(r.name, r.levelno) for r in caplog.records]
    assert levels == [
        ("missile.client", logging.DEBUG),
        ("missile.state", logging.DEBUG),
        ("missile.state", logging.WARNING),
    ]
    assert "message 3 of 12" in caplog.records[0].getMessage()


def test_json_formatter_writes_one_object_per_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="missile"):
        LogObserver().message(ERROR)
    line = JsonFormatter().format(caplog.records[0])
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["logger"] == "missile.server" and obj["level"] == "INFO"
    assert obj["error"] == "MESSAGE_REPLAYED" and obj["response_code"] == "REPLAYED"
    assert obj["time"].endswith("Z")


def test_observers_fan_out_in_order() -> None:
    seen: list[str] = []

    class Named(Observer):
        def __init__(self, name: str) -> None:
            self.name = name

        def message(self, event: MessageObserved) -> None:
            seen.append(self.name)

    both = Observers([Named("a"), Named("b")])
    both.message(EVENT)
    with both.span("client request", {}), both.extract({}):
        pass
    assert seen == ["a", "b"]


def test_metrics_observer_counts_into_its_registry() -> None:
    import prometheus_client

    from missile.observe.metrics import MetricsObserver, metrics_text

    registry = prometheus_client.CollectorRegistry()
    observer = MetricsObserver(registry)
    observer.message(EVENT)
    observer.message(ERROR)
    observer.state_call(StateCallObserved("SqliteTokenState", "check_master_token", 0.0002, True))

    def sample(name: str, **labels: str) -> float | None:
        value: float | None = registry.get_sample_value(name, labels)
        return value

    assert sample("missile_messages_total", role="server", kind="key_exchange") == 1
    assert sample("missile_errors_total", role="server", error="MESSAGE_REPLAYED", response_code="REPLAYED") == 1
    assert sample("missile_key_exchanges_total", scheme="SYMMETRIC_WRAPPED") == 1
    assert sample("missile_payload_bytes_total", direction="in") == 1200
    assert sample("missile_message_duration_seconds_count", role="server") == 2
    assert sample("missile_state_seconds_count", backend="SqliteTokenState", operation="check_master_token") == 1
    assert b"missile_messages_total" in metrics_text(registry)


def test_tracing_observer_spans_and_propagation() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from missile.observe.tracing import TracingObserver

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client, server = TracingObserver(provider), TracingObserver(provider)
    headers: dict[str, str] = {}
    with client.span("client request", {"msl.path": "/notes"}), client.span("client message", {}):
        client.inject(headers)
    assert "traceparent" in headers
    with server.extract(headers), server.span("server message", {}):
        server.message(ERROR)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, message, handled = spans["msl client request"], spans["msl client message"], spans["msl server message"]
    assert message.parent is not None and message.parent.span_id == request.context.span_id
    assert handled.context.trace_id == request.context.trace_id  # joined through traceparent
    assert handled.parent is not None and handled.parent.span_id == message.context.span_id
    assert handled.attributes is not None and handled.attributes["msl.error"] == "MESSAGE_REPLAYED"
    assert not handled.status.is_ok
