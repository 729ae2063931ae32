"""Observability over real HTTP: a client's and a server's spans join through the W3C
``traceparent`` header; ``missile serve --workers 2 --metrics --log-format json`` logs
one JSON record per message and its ``/metrics`` are the sum over both workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import uvicorn
from prometheus_client import parser as prometheus_parser

from missile.engine.client import MslClient
from missile.engine.server import MslServer, Reply, Request
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.observe import MessageObserved, Observer
from missile.profiles import KeyFileContext, context_from_keyfile
from missile.transport.http import HttpTransport, MslAsgiApp
from missile.transport.pooled import PooledHttpTransport
from redis_helpers import free_port
from serve_helpers import (
    LOGS,
    client_context,
    error_code,
    non_replayable_message,
    start_serve,
    stop,
    write_keys,
)

WAIT_S = 10.0
"""How long a test waits for the metrics a server writes every 100 ms (a loaded machine)."""


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
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from missile.observe.tracing import TracingObserver

    url, keys, tracing = traced_server
    provider, exporter = cast(tuple[TracerProvider, InMemorySpanExporter], tracing)

    async def go() -> None:
        ctx = context_from_keyfile(keys).ctx
        transport = PooledHttpTransport(url)
        client = MslClient(
            ctx, transport, key_request_factory=key_request_factory(ctx, keys), observer=TracingObserver(provider)
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


class _Counting(Observer):
    """Counts the messages a client exchanged (each one a message the server handled)."""

    def __init__(self) -> None:
        self.messages = 0
        self.ids: list[int | None] = []

    def message(self, event: MessageObserved) -> None:
        self.messages += 1
        self.ids.append(event.message_id)


async def _establish_counted(built: KeyFileContext, url: str, counter: _Counting) -> None:
    """A new session on a connection of its own (a worker the previous one may not have
    reached), its messages counted."""
    transport = HttpTransport(url)
    key_requests = key_request_factory(built.ctx, built.keys, "SYMMETRIC_WRAPPED")
    client = MslClient(built.ctx, transport, key_request_factory=key_requests, observer=counter)
    await client.request(b"establish")


def _wait_for_count(url: str, expected: int) -> str:
    """The ``/metrics`` text once it counts ``expected`` messages: each worker writes its
    counts every 100 ms, so a scrape right after the last answer may lag."""
    deadline = time.monotonic() + WAIT_S
    while True:
        text = httpx.get(url + "metrics", timeout=30).text
        served = sum(v for (name, _), v in _samples(text).items() if name == "missile_messages_total")
        if served >= expected or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


def _stopped_log(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM ``proc`` (and its workers), as an operator stops it, and return its log."""
    log = LOGS[proc.pid]
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    finally:
        text = log.read_text(errors="replace")
        stop(proc)
    return text


def test_serve_metrics_sum_over_two_workers_and_logs_are_json(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys")
    metrics_home = tmp_path / "tmp"
    metrics_home.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TMPDIR": str(metrics_home)}
    proc, url = start_serve(
        keys / "server.json", "--workers", "2", "--state", str(tmp_path / "state.db"),
        "--metrics", "--log-format", "json", env=env,
    )  # fmt: skip
    counter = _Counting()
    try:
        built = client_context(keys)
        asyncio.run(_establish_counted(built, url, counter))  # a key exchange (and an application message)
        message = non_replayable_message(built)
        with httpx.Client(timeout=30) as http:
            assert error_code(built, http.post(url, content=message).content) is None
            assert error_code(built, http.post(url, content=message).content) is not None  # a replay: an error
        # More messages on fresh connections, so both workers answer some.
        for _ in range(3):
            for _ in range(20):
                asyncio.run(_establish_counted(built, url, counter))
            (directory,) = list(metrics_home.glob("missile-metrics-*"))
            if len({p.name.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")}) >= 2:
                break
        assert len(list(directory.glob("counter_*.db"))) >= 2, "one worker answered everything"
        sent = counter.messages + 2
        text = _wait_for_count(url, sent)
    finally:
        log_text = _stopped_log(proc)
    samples = _samples(text)
    messages = sum(v for (name, _), v in samples.items() if name == "missile_messages_total")
    records = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    handled = [r for r in records if r.get("logger") == "missile.server" and r.get("role") == "server"]
    assert messages == len(handled) == sent >= 23  # each counted once, whichever worker, each logged
    assert samples[("missile_key_exchanges_total", (("scheme", "SYMMETRIC_WRAPPED"),))] >= 1
    replayed = (("error", "MESSAGE_REPLAYED"), ("response_code", "REPLAYED"), ("role", "server"))
    assert samples[("missile_errors_total", replayed)] == 1
    assert any(r["kind"] == "key_exchange" and r["key_exchange"] == "SYMMETRIC_WRAPPED" for r in handled)
    assert any(r.get("error") == "MESSAGE_REPLAYED" for r in handled)
    state = [k for k in samples if k[0] == "missile_state_seconds_count"]
    assert state, "state calls are timed"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_writes_every_buffered_record_when_stopped(tmp_path: Path, workers: str) -> None:
    """The log records held in memory (INFO, text format) are all written when
    ``missile serve`` is stopped with SIGTERM right after its last answer, in order."""
    keys = write_keys(tmp_path / "keys")
    proc, url = start_serve(
        keys / "server.json", "--workers", workers, "--state", str(tmp_path / "state.db"), "--log-level", "info"
    )
    counter = _Counting()
    try:
        built = client_context(keys)

        async def many() -> None:
            transport = HttpTransport(url)
            key_requests = key_request_factory(built.ctx, built.keys, "SYMMETRIC_WRAPPED")
            client = MslClient(built.ctx, transport, key_request_factory=key_requests, observer=counter)
            for i in range(40):
                await client.request(b"note %d" % i)

        asyncio.run(many())
    finally:
        log_text = _stopped_log(proc)
    lines = [line for line in log_text.splitlines() if " INFO missile.server: server message " in line]
    assert len(lines) == counter.messages >= 40
    logged = [int(line.split("message_id=")[1].split()[0]) for line in lines]
    if workers == "1":  # one process: its records in the order it logged them
        assert [(i + 1) % 2**53 for i in logged] == counter.ids  # the client saw each answer's ID: the request's + 1
    else:
        assert sorted((i + 1) % 2**53 for i in logged) == sorted(i for i in counter.ids if i is not None)
