"""Observability over real HTTP: a client's and a server's spans join through the W3C
``traceparent`` header; ``missile serve --workers 2 --metrics --log-format json`` logs
one JSON record per message and its ``/metrics`` are the sum over both workers."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client import parser as prometheus_parser

from missile.engine.client import MslClient
from missile.engine.server import MslServer, Reply, Request
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.http import MslAsgiApp
from missile.transport.pooled import PooledHttpTransport
from redis_helpers import free_port
from serve_helpers import (
    LOGS,
    client_context,
    error_code,
    establish,
    non_replayable_message,
    start_serve,
    stop,
    write_keys,
)


async def _echo(request: Request) -> Reply:
    return Reply(request.payload)


@pytest.fixture
def traced_server(tmp_path: Path) -> Iterator[tuple[str, KeyFile, object]]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from missile.observe.tracing import TracingObserver

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    keys = write_keys(tmp_path)
    server_keys = KeyFile.load(keys / "server.json")
    server = MslServer(context_from_keyfile(server_keys).ctx, _echo, observer=TracingObserver(provider))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(MslAsgiApp(server), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/", KeyFile.load(keys / "client.json"), (provider, exporter)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_client_and_server_spans_join_through_traceparent(traced_server: tuple[str, KeyFile, object]) -> None:
    from missile.observe.tracing import TracingObserver

    url, keys, (provider, exporter) = traced_server  # type: ignore[misc]

    async def go() -> None:
        ctx = context_from_keyfile(keys).ctx
        transport = PooledHttpTransport(url)
        client = MslClient(
            ctx, transport, key_requests=key_request_factory(ctx, keys), observer=TracingObserver(provider)
        )
        try:
            await client.request(b"traced")
        finally:
            await transport.aclose()

    asyncio.run(go())
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.name == "msl client request"]
    messages = [s for s in spans if s.name == "msl client message"]
    handled = [s for s in spans if s.name == "msl server message"]
    assert messages and len(handled) == len(messages)
    for message in messages:
        assert message.parent is not None and message.parent.span_id == request.context.span_id
    for span in handled:
        # The server's span is a child of the client message span that sent it.
        assert span.context.trace_id == request.context.trace_id
        assert span.parent is not None and span.parent.span_id in {m.context.span_id for m in messages}
    assert handled[0].attributes is not None and handled[0].attributes["msl.kind"] == "key_exchange"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_serve_metrics_sum_over_two_workers_and_logs_are_json(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys")
    metrics_home = tmp_path / "tmp"
    metrics_home.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TMPDIR": str(metrics_home)}
    proc, url = start_serve(
        keys / "server.json", "--workers", "2", "--state", str(tmp_path / "state.db"),
        "--metrics", "--log-format", "json", env=env,
    )  # fmt: skip
    try:
        built = client_context(keys)
        asyncio.run(establish(built, url))  # a key exchange (and an application message)
        message = non_replayable_message(built)
        with httpx.Client(timeout=30) as http:
            assert error_code(built, http.post(url, content=message).content) is None
            assert error_code(built, http.post(url, content=message).content) is not None  # a replay: an error
        # More messages on fresh connections, so both workers answer some.
        for _ in range(3):
            for _ in range(20):
                asyncio.run(_one(built, url))
            (directory,) = list(metrics_home.glob("missile-metrics-*"))
            if len({p.name.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")}) >= 2:
                break
        assert len(list(directory.glob("counter_*.db"))) >= 2, "one worker answered everything"
        text = httpx.get(url + "metrics", timeout=30).text
    finally:
        stop_log = LOGS.get(proc.pid)
        log_text = stop_log.read_text() if stop_log is not None else ""
        stop(proc)
    samples = _samples(text)
    messages = sum(v for (name, _), v in samples.items() if name == "missile_messages_total")
    records = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    handled = [r for r in records if r.get("logger") == "missile.server" and r.get("role") == "server"]
    assert messages == len(handled) >= 23  # 3 + 20 at least, each counted once, whichever worker
    assert samples[("missile_key_exchanges_total", (("scheme", "SYMMETRIC_WRAPPED"),))] >= 1
    replayed = (("error", "MESSAGE_REPLAYED"), ("response_code", "REPLAYED"), ("role", "server"))
    assert samples[("missile_errors_total", replayed)] == 1
    assert any(r["kind"] == "key_exchange" and r["key_exchange"] == "SYMMETRIC_WRAPPED" for r in handled)
    assert any(r.get("error") == "MESSAGE_REPLAYED" for r in handled)
    state = [k for k in samples if k[0] == "missile_state_seconds_count"]
    assert state, "state calls are timed"


async def _one(built: object, url: str) -> None:
    client = await establish(built, url)  # type: ignore[arg-type]
    await client.transport.aclose()  # type: ignore[attr-defined]
