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


FULL = MessageObserved(
    role="server",
    kind="error",
    identity="client1",
    user="user1@foo.com",
    message_id=7,
    path="/notes",
    key_exchange="SYMMETRIC_WRAPPED",
    error="ENTITYAUTH_VERIFICATION_FAILED",
    response_code="ENTITYDATA_REAUTH",
    bytes_in=10,
    bytes_out=20,
    duration=1.23456789,
)


def test_every_event_field_is_in_the_record_and_the_line(caplog: pytest.LogCaptureFixture) -> None:
    # The record's fields are written out one by one (for speed): none may be forgotten.
    import dataclasses

    with caplog.at_level(logging.INFO, logger="missile"):
        LogObserver().message(FULL)
    (record,) = caplog.records
    names = [f.name for f in dataclasses.fields(MessageObserved)]
    assert list(record.msl) == names  # type: ignore[attr-defined]
    line = " ".join(f"{name}={getattr(FULL, name)}" for name in names if name not in ("role", "duration"))
    assert record.getMessage() == f"server message {line} duration=1.234568"
    assert record.funcName == "message" and record.pathname.endswith("logs.py") and record.lineno > 0


def test_json_line_keeps_its_fields_names_and_order(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="missile"):
        LogObserver().message(EVENT)
    record = caplog.records[0]
    record.created, record.msecs = 1_700_000_000.25, 250.0
    obj = json.loads(JsonFormatter().format(record))
    assert list(obj) == [
        "time", "level", "logger", "message", "role", "kind", "identity", "user", "message_id", "path",
        "key_exchange", "bytes_in", "bytes_out", "duration",
    ]  # fmt: skip
    assert obj["time"] == "2023-11-14T22:13:20.250Z"
    assert obj["message_id"] == 42 and obj["duration"] == 0.0042 and obj["bytes_out"] == 1800


def test_json_time_is_right_whichever_order_the_seconds_come_in() -> None:
    formatter = JsonFormatter()
    stamps = []
    for created, msecs in (
        (1_700_000_000.5, 500.0),
        (1_700_000_000.9, 900.0),
        (1_600_000_000.0, 0.0),
        (1_700_000_001.0, 1.0),
    ):
        record = logging.makeLogRecord({"msg": "m", "created": created, "msecs": msecs})
        stamps.append(json.loads(formatter.format(record))["time"])
    assert stamps == [
        "2023-11-14T22:13:20.500Z",
        "2023-11-14T22:13:20.900Z",
        "2020-09-13T12:26:40.000Z",
        "2023-11-14T22:13:21.001Z",
    ]


def test_json_formatter_keeps_other_extras_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.getLogger("other").makeRecord(
        "other", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info, extra={"request_id": "r1", "count": 2}
    )
    obj = json.loads(JsonFormatter().format(record))
    assert obj["message"] == "failed x" and obj["request_id"] == "r1" and obj["count"] == 2
    assert "ValueError: boom" in obj["exception"]


def test_recovery_and_state_records_carry_their_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="missile"):
        LogObserver().recovery(RecoveryObserved("ENTITY_REAUTH", "ENTITY_REAUTH", "re-authenticate", 3, 12))
        LogObserver().state_call(StateCallObserved("SqliteTokenState", "record_issued", 0.5, False))
    recovery, state = caplog.records
    assert recovery.msl == {  # type: ignore[attr-defined]
        "error": "ENTITY_REAUTH",
        "response_code": "ENTITY_REAUTH",
        "action": "re-authenticate",
        "message": 3,
        "budget": 12,
    }
    assert state.msl == {"backend": "SqliteTokenState", "operation": "record_issued", "seconds": 0.5, "ok": False}  # type: ignore[attr-defined]
    assert state.getMessage() == "SqliteTokenState record_issued failed in 0.500000 s"


def test_records_go_through_filters_and_the_record_factory(caplog: pytest.LogCaptureFixture) -> None:
    # Built without logger.info, the records still honour logging's extension points.
    made: list[str] = []
    standard = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = standard(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(factory)
    server = logging.getLogger("missile.server")

    def drop_errors(record: logging.LogRecord) -> bool:
        return "error" not in record.msl  # type: ignore[attr-defined]

    server.addFilter(drop_errors)
    try:
        with caplog.at_level(logging.INFO, logger="missile"):
            LogObserver().message(EVENT)
            LogObserver().message(ERROR)
    finally:
        server.removeFilter(drop_errors)
        logging.setLogRecordFactory(standard)
    assert made == ["missile.server", "missile.server"]
    assert [r.msl["kind"] for r in caplog.records] == ["key_exchange"]  # type: ignore[attr-defined]


def test_metrics_count_each_error_and_scheme_apart() -> None:
    import prometheus_client

    from missile.observe.metrics import MetricsObserver

    registry = prometheus_client.CollectorRegistry()
    observer = MetricsObserver(registry)
    other = MessageObserved(
        role="client", kind="error", error="MESSAGE_REPLAYED", response_code="REPLAYED_UNRECOVERABLE"
    )
    for event in (ERROR, ERROR, other, EVENT, EVENT):
        observer.message(event)

    def sample(name: str, **labels: str) -> float | None:
        value: float | None = registry.get_sample_value(name, labels)
        return value

    assert sample("missile_errors_total", role="server", error="MESSAGE_REPLAYED", response_code="REPLAYED") == 2
    replayed = {"role": "client", "error": "MESSAGE_REPLAYED", "response_code": "REPLAYED_UNRECOVERABLE"}
    assert sample("missile_errors_total", **replayed) == 1
    assert sample("missile_key_exchanges_total", scheme="SYMMETRIC_WRAPPED") == 2
    assert sample("missile_messages_total", role="client", kind="error") == 1
