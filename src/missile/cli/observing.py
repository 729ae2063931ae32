"""Logs and metrics for ``missile serve``: its logging configuration (``--log-level``,
``--log-format``, ``--access-log``), the observer each worker gives its server, and the
``/metrics`` endpoint (``--metrics``).

The command runs its workers in fresh processes (uvicorn spawns them), so what they
need travels in the environment, like the server's other settings. Metrics from several
workers are summed through prometheus_client's multiprocess mode: the command points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh private directory before the workers start, each
worker writes its samples there, and ``/metrics`` on any worker reads them all.

Both are buffered, because every message a server answers produces a record and half a
dozen counts: the records go out in batches of up to 4 KiB (one write instead of one
per record; :mod:`missile.observe.handlers`), and each worker adds its counts up in
memory and writes them to its multiprocess file every 100 ms (one locked write per
sample changed instead of one per count; :class:`~missile.observe.metrics.MetricsObserver`).
So ``/metrics`` lags by up to 100 ms, and a worker killed outright (SIGKILL) loses the
INFO records and counts of its last 100 ms; warnings and errors are written at once,
and a normal stop (SIGTERM, Ctrl-C) writes everything. ``MISSILE_LOG_BUFFER=0`` in the
environment of ``missile serve`` writes each record at once instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from missile.observe import JsonFormatter, LogObserver, Observer, Observers
from missile.transport.http import Receive, Scope, Send

__all__ = [
    "ENV_ACCESS_LOG",
    "ENV_LOG_BUFFER",
    "ENV_LOG_FORMAT",
    "ENV_LOG_LEVEL",
    "ENV_METRICS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "METRICS_FLUSH_S",
    "export",
    "ObserveOptions",
    "log_config",
    "server_observer",
    "with_metrics",
]

ENV_LOG_LEVEL = "MISSILE_LOG_LEVEL"
ENV_LOG_FORMAT = "MISSILE_LOG_FORMAT"
ENV_ACCESS_LOG = "MISSILE_ACCESS_LOG"
ENV_METRICS = "MISSILE_METRICS"
#: ``0`` turns the log buffer off (each record written at once); anything else or unset: on.
ENV_LOG_BUFFER = "MISSILE_LOG_BUFFER"
#: Seconds a worker holds its metric counts before writing them (``/metrics`` lags that much).
METRICS_FLUSH_S = 0.1

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def export(
    env: MutableMapping[str, str], *, level: str, fmt: str, access_log: bool, metrics: bool, workers: int
) -> str | None:
    """Put the settings in ``env`` for the workers; with ``metrics``, prepare a fresh
    multiprocess directory and return it (the caller removes it at exit)."""
    env[ENV_LOG_LEVEL] = level
    env[ENV_LOG_FORMAT] = fmt
    env[ENV_ACCESS_LOG] = "1" if access_log else ""
    env[ENV_METRICS] = "1" if metrics else ""
    if not metrics:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return None
    try:
        import prometheus_client  # noqa: F401 - checked before the workers need it
    except ImportError as exc:
        raise RuntimeError("--metrics needs prometheus_client: pip install 'missile[metrics]'") from exc
    directory = tempfile.mkdtemp(prefix="missile-metrics-")  # 0700, empty: no stale samples
    env["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def remove(directory: str | None) -> None:
    """Remove the multiprocess directory :func:`export` made."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class ObserveOptions:
    """What ``missile serve`` was asked to log and count."""

    level: str
    """Level of the ``missile`` loggers (``--log-level``)."""
    fmt: str
    """``text`` or ``json`` (``--log-format``)."""
    access_log: bool
    """Also log each HTTP request (``--access-log``)."""
    buffered: bool
    """Write records in batches (``--log-buffer``; see :func:`log_config`)."""
    metrics: bool
    """Serve ``GET /metrics`` (``--metrics``)."""


def log_config(level: str, fmt: str, access_log: bool, buffered: bool | None = None) -> dict[str, Any]:
    """uvicorn's ``log_config``: the ``missile`` loggers at ``level`` in ``fmt``, uvicorn's
    own errors at WARNING, its access log only when asked for; all to stderr, through a
    :class:`~missile.observe.handlers.BufferedStreamHandler` unless ``buffered`` is
    False (None: unless ``MISSILE_LOG_BUFFER`` is ``0``)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"class": "missile.observe.handlers.TextFormatter", "format": _TEXT_FORMAT, "datefmt": "%Y-%m-%dT%H:%M:%S"}
    )
    if buffered is None:
        buffered = os.environ.get(ENV_LOG_BUFFER, "").strip() != "0"
    handler = {
        "class": "missile.observe.handlers.BufferedStreamHandler" if buffered else "logging.StreamHandler",
        "formatter": "missile",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"missile": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "missile": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"level": "WARNING"},
            "uvicorn.access": {
                "handlers": ["stderr"] if access_log else [],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
        },
    }


def server_observer() -> Observer:
    """The observer a worker gives its server and token factory: logs, plus metrics
    with ``--metrics``."""
    if not os.environ.get(ENV_METRICS):
        return LogObserver()
    from missile.observe.metrics import MetricsObserver

    return Observers([LogObserver(), MetricsObserver(flush_interval=METRICS_FLUSH_S)])


def with_metrics(app: Any) -> Any:
    """``app`` with ``GET /metrics`` answered by the Prometheus exposition of every
    worker (when ``--metrics`` is on; otherwise ``app`` itself)."""
    if not os.environ.get(ENV_METRICS):
        return app
    from missile.observe.metrics import CONTENT_TYPE, metrics_text

    async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics" and scope["method"] == "GET":
            body = metrics_text()
            headers = [(b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return metrics_app
