"""Structured logs: one record per message at INFO, recovery steps at DEBUG.

Loggers form one hierarchy: ``missile.server``, ``missile.client``, ``missile.peer``
(messages), ``missile.state`` (state calls, DEBUG; failures at WARNING) and
``missile.transport``. Each record's message is a readable line, and its fields are
also attributes of the record (``record.msl``, a dict), so a formatter can emit them as
structured data: :class:`JsonFormatter` writes one JSON object per line, with the
fields at the top level.

A server logs every message it answers, so the path from event to line is kept short
(benchmarks/bench_observability.py measures it per message): a record is built only
when its logger is enabled for its level (a disabled logger costs one cached check);
it is built with the logger's own ``makeRecord`` and handed to ``handle``, as
``logger.info`` would, minus the walk up the stack to find the caller (always this
module) and the keyword plumbing; the fields and the text are built in one pass over
the event; and :class:`JsonFormatter` formats each second's timestamp once and reuses
one JSON encoder. Filters, handlers, propagation, custom loggers and record factories
work as with any logging call.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from typing import Any

from missile.observe.base import MessageObserved, Observer, RecoveryObserved, StateCallObserved

__all__ = ["JsonFormatter", "LogObserver"]

_RECOVERY_FIELDS = tuple(f.name for f in fields(RecoveryObserved))
_STATE_FIELDS = tuple(f.name for f in fields(StateCallObserved))
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_STANDARD_OR_MSL = _STANDARD | {"msl"}
_INFO, _DEBUG, _WARNING = logging.INFO, logging.DEBUG, logging.WARNING


class LogObserver(Observer):
    """Logs every message at INFO, recovery steps at DEBUG and state calls at DEBUG
    (failed ones at WARNING), on the ``missile.*`` loggers."""

    def __init__(self) -> None:
        self._loggers = {role: logging.getLogger(f"missile.{role}") for role in ("server", "client", "peer", "state")}

    def message(self, event: MessageObserved) -> None:
        role = event.role
        log = self._loggers.get(role) or logging.getLogger(f"missile.{role}")
        if not log.isEnabledFor(_INFO):
            return
        record, text = _message_fields(event)
        _emit(log, _INFO, "%s message %s", (role, text), record, "message")

    def recovery(self, event: RecoveryObserved) -> None:
        log = self._loggers["client"]
        if log.isEnabledFor(_DEBUG):
            args = (event.error, event.response_code, event.action, event.message, event.budget)
            record = {name: getattr(event, name) for name in _RECOVERY_FIELDS}
            _emit(log, _DEBUG, "recovery: %s (%s): %s, message %d of %d", args, record, "recovery")

    def state_call(self, event: StateCallObserved) -> None:
        log = self._loggers["state"]
        level = _DEBUG if event.ok else _WARNING
        if log.isEnabledFor(level):
            args = (event.backend, event.operation, "ok" if event.ok else "failed", event.seconds)
            record = {name: getattr(event, name) for name in _STATE_FIELDS}
            _emit(log, level, "%s %s %s in %.6f s", args, record, "state_call")


def _message_fields(e: MessageObserved) -> tuple[dict[str, Any], str]:
    """The record's fields (absent ones left out) and its line, in one pass.

    Written out field by field rather than looped over ``dataclasses.fields``: this runs
    for every message, and the loop's lookups by name cost a third more
    (tests/observe/test_observers.py checks that every field is here).
    """
    record: dict[str, Any] = {"role": e.role, "kind": e.kind}
    text = f"kind={e.kind}"
    if (value := e.identity) is not None:
        record["identity"] = value
        text += f" identity={value}"
    if (value := e.user) is not None:
        record["user"] = value
        text += f" user={value}"
    if (message_id := e.message_id) is not None:
        record["message_id"] = message_id
        text += f" message_id={message_id}"
    if (value := e.path) is not None:
        record["path"] = value
        text += f" path={value}"
    if (value := e.key_exchange) is not None:
        record["key_exchange"] = value
        text += f" key_exchange={value}"
    if (value := e.error) is not None:
        record["error"] = value
        text += f" error={value}"
    if (value := e.response_code) is not None:
        record["response_code"] = value
        text += f" response_code={value}"
    record["bytes_in"] = e.bytes_in
    record["bytes_out"] = e.bytes_out
    duration = record["duration"] = round(e.duration, 6)
    return record, f"{text} bytes_in={e.bytes_in} bytes_out={e.bytes_out} duration={duration}"


def _emit(log: logging.Logger, level: int, msg: str, args: tuple[Any, ...], msl: dict[str, Any], func: str) -> None:
    """What ``log.log(level, msg, *args, extra={"msl": msl})`` does once the level is
    checked, without looking up the caller: it is this module, ``func``."""
    log.handle(log.makeRecord(log.name, level, __file__, _LINE, msg, args, None, func, {"msl": msl}))


_LINE = _emit.__code__.co_firstlineno


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's MSL
    fields (``record.msl``) and other extras at the top level."""

    # One encoder for every line (json.dumps with options builds one per call).
    _encoder = json.JSONEncoder(default=str, separators=(",", ":"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        msl = attributes.get("msl")
        if isinstance(msl, dict):
            out.update(msl)
        if not attributes.keys() <= _STANDARD_OR_MSL:  # extras other than msl: rare, in order
            for key, value in attributes.items():
                if key not in _STANDARD and key != "msl" and key not in out:
                    out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return self._encoder.encode(out)

    def _time(self, record: logging.LogRecord) -> str:
        """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC); the part up to the second is formatted
        once per second."""
        second = int(record.created)
        cached = self._second  # one attribute, replaced whole: safe when threads share the formatter
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{int(record.msecs):03d}Z"
