"""``missile serve --metrics``'s ``/metrics`` route (src/missile/cli/observing.py): an
ASGI 3 application for uvicorn, answering ``GET /metrics`` itself and handing every
other request to the application."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("prometheus_client")
uvicorn_config = pytest.importorskip("uvicorn.config")

from missile.cli.observing import ENV_METRICS, with_metrics  # noqa: E402

Message = dict[str, Any]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 405, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": []}


def _call(app: Any, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    awaitable = app(scope, receive, send)
    asyncio.run(awaitable)
    return sent


def test_without_metrics_the_app_is_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_METRICS, raising=False)
    assert with_metrics(_app) is _app


def test_uvicorn_takes_the_route_for_asgi3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_METRICS, "1")
    wrapped = with_metrics(_app)
    assert asyncio.iscoroutinefunction(wrapped)
    config = uvicorn_config.Config(wrapped, proxy_headers=False, log_config=None)
    config.load()
    assert config.interface == "asgi3"
    assert config.loaded_app is wrapped  # not wrapped again in uvicorn's ASGI 2 adapter


def test_other_requests_go_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_METRICS, "1")
    wrapped = with_metrics(_app)
    for method, path in (("POST", "/"), ("GET", "/"), ("POST", "/metrics"), ("GET", "/metricsx")):
        sent = _call(wrapped, _scope(method, path))
        assert sent[0]["status"] == 405 and sent[1]["body"] == path.encode()


def test_get_metrics_answers_the_exposition(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    monkeypatch.setenv(ENV_METRICS, "1")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    sent = _call(with_metrics(_app), _scope("GET", "/metrics"))
    start, body = sent
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    assert int(headers[b"content-length"]) == len(body["body"])
    assert list(text_string_to_metric_families(body["body"].decode()))  # parses
