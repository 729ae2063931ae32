"""Structured logs: one record per message at INFO, recovery steps at DEBUG.

Loggers form one hierarchy: ``missile.server``, ``missile.client``, ``missile.peer``
(messages), ``missile.state`` (state calls, DEBUG; failures at WARNING) and
``missile.transport``. Each record's message is a readable line, and its fields are
also attributes of the record (``record.msl``, a dict), so a formatter can emit them as
structured data: :class:`JsonFormatter` writes one JSON object per line, with the
fields at the top level. A record is built only when its logger is enabled for its
level, so a disabled logger costs one check per message.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, fields
from typing import Any

from missile.observe.base import MessageObserved, Observer, RecoveryObserved, StateCallObserved

__all__ = ["JsonFormatter", "LogObserver"]

_MESSAGE_FIELDS = tuple(f.name for f in fields(MessageObserved) if f.name not in ("role", "duration"))
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class LogObserver(Observer):
    """Logs every message at INFO, recovery steps at DEBUG and state calls at DEBUG
    (failed ones at WARNING), on the ``missile.*`` loggers."""

    def __init__(self) -> None:
        self._loggers = {role: logging.getLogger(f"missile.{role}") for role in ("server", "client", "peer", "state")}

    def message(self, event: MessageObserved) -> None:
        log = self._loggers.get(event.role) or logging.getLogger(f"missile.{event.role}")
        if not log.isEnabledFor(logging.INFO):
            return
        # Built by hand rather than with dataclasses.asdict: this runs for every message.
        fields: dict[str, Any] = {"role": event.role}
        for name in _MESSAGE_FIELDS:
            value = getattr(event, name)
            if value is not None:
                fields[name] = value
        fields["duration"] = round(event.duration, 6)
        text = " ".join([f"{k}={v}" for k, v in fields.items() if k != "role"])
        log.info("%s message %s", event.role, text, extra={"msl": fields})

    def recovery(self, event: RecoveryObserved) -> None:
        log = self._loggers["client"]
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "recovery: %s (%s): %s, message %d of %d",
                event.error,
                event.response_code,
                event.action,
                event.message,
                event.budget,
                extra={"msl": asdict(event)},
            )

    def state_call(self, event: StateCallObserved) -> None:
        log = self._loggers["state"]
        level = logging.DEBUG if event.ok else logging.WARNING
        if log.isEnabledFor(level):
            log.log(
                level,
                "%s %s %s in %.6f s",
                event.backend,
                event.operation,
                "ok" if event.ok else "failed",
                event.seconds,
                extra={"msl": asdict(event)},
            )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's MSL
    fields (``record.msl``) and other extras at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "msl", None)
        if isinstance(fields, dict):
            out.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key != "msl" and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))
