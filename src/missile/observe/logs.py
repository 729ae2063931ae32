"""Structured logs: one record per message at INFO, recovery steps at DEBUG.

Loggers form one hierarchy: ``missile.server``, ``missile.client``, ``missile.peer``
(messages), ``missile.state`` (state calls, DEBUG; failures at WARNING) and
``missile.transport``. Each record's message is a readable line, and its fields are
also attributes of the record (``record.msl``, a dict), so a formatter can emit them as
structured data: :class:`JsonFormatter` writes one JSON object per line, with the
fields at the top level.

A server logs every message it answers, so the path from event to line is kept short
(benchmarks/bench_observability.py measures it per message): a record is built only
when its logger is enabled for its level (a disabled logger costs one cached check).
When only missile's own :class:`~missile.observe.handlers.BufferedStreamHandler` and
formatters would see it (``missile serve``'s setup: :func:`_line_handlers` says exactly
when), no ``LogRecord`` is built: the line is formatted from the event, the time and the
logger's name, as the formatter would format the record, and a message's line only
when the handler's buffer is written, with the other lines of its batch. In a loaded
``missile serve`` worker, whose code runs cold between requests, that took the logs'
part of the server CPU per request from about 25 µs to about 16 µs (10 µs in the
request, 6 µs formatting the line with its batch). In the request, a message's line is
the clock's reading (read as ``LogRecord`` reads it: each line keeps its own time) and
the event, handed to the handler; the reading becomes ``created`` and ``msecs``, and the
level its name, with the batch. Otherwise the record is built with the logger's own
``makeRecord`` and handed to ``handle``, as ``logger.info`` would, minus the walk up
the stack to find the caller (always this module) and the keyword plumbing: filters,
handlers, propagation, custom loggers and record factories work as with any logging
call. Both paths write the same text (tests/observe/test_direct_path.py checks it over
generated events and formats); the fields and the text are built in one pass over the event; :class:`JsonFormatter`
formats each second's timestamp once and reuses one JSON encoder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from typing import Any, cast

from missile.observe.base import MessageObserved, Observer, RecoveryObserved, StateCallObserved
from missile.observe.handlers import BufferedStreamHandler, TextFormatter

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

    def observes(self, role: str) -> bool:
        """Whether a message of ``role`` would be logged: its logger takes INFO records."""
        log = self._loggers.get(role) or logging.getLogger(f"missile.{role}")
        return log.isEnabledFor(_INFO)

    def message(self, event: MessageObserved) -> None:
        role = event.role
        log = self._loggers.get(role) or logging.getLogger(f"missile.{role}")
        if not log.isEnabledFor(_INFO):
            return
        handlers = _line_handlers(log, _INFO)
        if handlers is None:
            record, text = _message_fields(event)
            _handle(log, _INFO, _MESSAGE, (role, text), record, "message")
            return
        stamp = time.time_ns() if _NS else time.time()  # as _now(), inline: this runs for every message
        for handler in handlers:
            handler.add_later(_message_line, (handler.formatter, log.name, stamp, event), _INFO)

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
    """The record's fields (absent ones left out) and its line (:func:`_message_text`).

    Written out field by field rather than looped over ``dataclasses.fields``: this runs
    for every message, and the loop's lookups by name cost a third more
    (tests/observe/test_observers.py checks that every field is here).
    """
    record: dict[str, Any] = {"role": e.role, "kind": e.kind}
    if (value := e.identity) is not None:
        record["identity"] = value
    if (value := e.user) is not None:
        record["user"] = value
    if (message_id := e.message_id) is not None:
        record["message_id"] = message_id
    if (value := e.path) is not None:
        record["path"] = value
    if (value := e.key_exchange) is not None:
        record["key_exchange"] = value
    if (value := e.error) is not None:
        record["error"] = value
    if (value := e.response_code) is not None:
        record["response_code"] = value
    record["bytes_in"] = e.bytes_in
    record["bytes_out"] = e.bytes_out
    record["duration"] = round(e.duration, 6)
    return record, _message_text(e)


def _quoted(value: str) -> str:
    """``value`` as a text line shows it: as it is when printable without spaces or
    quotes, else JSON-quoted. The identity, user and path come from the peer: written
    raw, a newline would start a forged line and a space a forged field."""
    if value.isprintable() and " " not in value and '"' not in value:
        return value
    return json.dumps(value)


_MESSAGE = "%s message %s"


def _message_line(formatter: logging.Formatter, name: str, stamp: float, event: MessageObserved) -> str:
    """The line ``formatter`` writes for the record of ``event`` made at ``stamp``
    (:func:`_now`): the direct path, at the time its handler's buffer is written."""
    created, msecs = _record_time(stamp)
    levelname = logging.getLevelName(_INFO)
    if isinstance(formatter, JsonFormatter):
        msl, text = _message_fields(event)
        return formatter.line(name, levelname, created, msecs, _MESSAGE % (event.role, text), msl)
    message = _MESSAGE % (event.role, _message_text(event))
    return cast(TextFormatter, formatter).line(name, _INFO, levelname, created, msecs, message)


def _line(
    formatter: logging.Formatter,
    name: str,
    level: int,
    levelname: str,
    created: float,
    msecs: float,
    message: str,
    msl: dict[str, Any],
) -> str:
    if isinstance(formatter, JsonFormatter):
        return formatter.line(name, levelname, created, msecs, message, msl)
    return cast(TextFormatter, formatter).line(name, level, levelname, created, msecs, message)


def _message_text(e: MessageObserved) -> str:
    """The readable line of a message's fields (peer-controlled values :func:`_quoted`):
    one f-string, which formats a message's line a tenth faster than appending field by
    field (it runs for every message, with its batch)."""
    identity, user, message_id, path = e.identity, e.user, e.message_id, e.path
    key_exchange, error, response_code = e.key_exchange, e.error, e.response_code
    return (
        f"kind={e.kind}"
        f"{'' if identity is None else ' identity=' + _quoted(identity)}"
        f"{'' if user is None else ' user=' + _quoted(user)}"
        f"{'' if message_id is None else f' message_id={message_id}'}"
        f"{'' if path is None else ' path=' + _quoted(path)}"
        f"{'' if key_exchange is None else f' key_exchange={key_exchange}'}"
        f"{'' if error is None else f' error={error}'}"
        f"{'' if response_code is None else f' response_code={response_code}'}"
        f" bytes_in={e.bytes_in} bytes_out={e.bytes_out} duration={_seconds(e.duration)}"
    )


def _seconds(value: float) -> str:
    """``str(round(value, 6))``, half the cost in the usual range: from 1e-4 (below,
    ``repr`` turns to exponents) up to 1e9 (where a float's spacing nears 1e-6), the
    shortest text of the rounded float is its six decimals without trailing zeros, as
    both round the exact binary value the same way (tests/observe/test_direct_path.py
    checks it over generated floats)."""
    if 1e-4 <= value < 1e9:
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return str(round(value, 6))


def _emit(log: logging.Logger, level: int, msg: str, args: tuple[Any, ...], msl: dict[str, Any], func: str) -> None:
    """What ``log.log(level, msg, *args, extra={"msl": msl})`` does once the level is
    checked, without looking up the caller (it is this module, ``func``); directly
    (:func:`_line_handlers`) when nothing but missile's own handlers and formatters
    would see the record."""
    handlers = _line_handlers(log, level)
    if handlers is None:
        _handle(log, level, msg, args, msl, func)
        return
    created, msecs = _record_time(_now())
    message = msg % args  # what LogRecord.getMessage() returns: msg is a str, args never empty
    levelname = logging.getLevelName(level)
    for handler in handlers:
        try:
            line = _line(
                cast(logging.Formatter, handler.formatter), log.name, level, levelname, created, msecs, message, msl
            )
        except Exception:
            handler.handleError(log.makeRecord(log.name, level, __file__, _LINE, msg, args, None, func, {"msl": msl}))
            continue
        handler.add_line(line, level)


def _handle(log: logging.Logger, level: int, msg: str, args: tuple[Any, ...], msl: dict[str, Any], func: str) -> None:
    """A record built and handled as ``logger.log`` would, minus the walk up the stack
    to find the caller: it is this module, ``func``."""
    log.handle(log.makeRecord(log.name, level, __file__, _LINE, msg, args, None, func, {"msl": msl}))


_LINE = _handle.__code__.co_firstlineno
_PLAIN_LOGGERS = (logging.Logger, logging.RootLogger)


def _line_handlers(log: logging.Logger, level: int) -> list[BufferedStreamHandler] | None:
    """The handlers a record of ``level`` from ``log`` would reach, when the direct path
    writes exactly what they would: else None (then a record is built and handled).

    The direct path formats each line from the record's parts and hands it to
    :meth:`BufferedStreamHandler.add_line` (a message's line to ``add_later``): no
    ``LogRecord``, no ``handle`` chain. In a loaded ``missile serve`` worker, building
    and handling the record took about 25 µs per message (timed in the worker; 5 µs in
    a tight loop: the logging code runs cold between requests); the direct path about
    10 µs in the request and 6 µs when the batch is written. It is taken only when nothing else could see
    the record or change the line: the default record factory; loggers of the stdlib's
    own classes, without filters, up to the first that does not propagate; every
    handler on the way a :class:`BufferedStreamHandler` (not a subclass) without
    filters, formatting with a :class:`JsonFormatter` or a :class:`TextFormatter` whose
    format names only the fields it knows (not subclasses); at least one handler (else
    the stdlib's last-resort handler applies). Any user handler, filter, factory or
    formatter of their own gets a real record, as before.

    The walk is not cached: a cache would have to check the same attributes to stay
    right when a handler, filter, level or formatter changes (``Logger.addHandler`` and
    ``Handler.setFormatter`` tell nobody), and the walk takes 0.4 µs in a loop.
    tests/observe/test_observers.py checks, over generated events and formats, that both
    paths write the same text.
    """
    if logging.getLogRecordFactory() is not logging.LogRecord or _CLOCK is None:
        return None
    chosen: list[BufferedStreamHandler] = []
    found = False
    current: logging.Logger | None = log
    while current is not None:
        if type(current) not in _PLAIN_LOGGERS or current.filters:
            return None
        for handler in current.handlers:
            found = True
            if type(handler) is not BufferedStreamHandler or handler.filters:
                return None
            formatter = handler.formatter
            kind = type(formatter)
            if kind is not JsonFormatter and not (kind is TextFormatter and formatter.writes_lines()):  # type: ignore[union-attr]
                return None
            if level >= handler.level:
                chosen.append(handler)
        current = current.parent if current.propagate else None
    return chosen if found else None


def _which_clock() -> str | None:
    """How this Python's ``LogRecord`` reads the time: ``time.time()`` (up to 3.12) or
    ``time.time_ns()`` (3.13 on); None if neither (then records are always built)."""
    names = logging.LogRecord.__init__.__code__.co_names
    if "time_ns" in names:
        return "ns"
    return "float" if "time" in names else None


_CLOCK = _which_clock()


_NS = _CLOCK == "ns"


def _now() -> float:
    """The clock's reading a record is made at, as this Python's ``LogRecord`` reads it:
    turned into ``created`` and ``msecs`` by :func:`_record_time` (for a message's line,
    when its batch is written)."""
    return time.time_ns() if _NS else time.time()


def _record_time(stamp: float) -> tuple[float, float]:
    """``created`` and ``msecs`` as this Python's ``LogRecord`` sets them from the clock's
    reading ``stamp`` (:data:`_now`)."""
    if _CLOCK == "ns":
        ns = int(stamp)
        created = ns / 1e9
        msecs = (ns % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ns // 1_000_000_000:
            msecs = 0.0  # the float rounded up to the next second
        return created, msecs
    return stamp, int((stamp - int(stamp)) * 1000) + 0.0


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
            "time": self._time(record.created, record.msecs),
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

    def line(self, name: str, levelname: str, created: float, msecs: float, message: str, msl: dict[str, Any]) -> str:
        """What :meth:`format` returns for a record of these attributes with ``msl`` as
        its only extra, without an exception."""
        out: dict[str, Any] = {"time": self._time(created, msecs), "level": levelname, "logger": name}
        out["message"] = message
        out.update(msl)
        return self._encoder.encode(out)

    def _time(self, created: float, msecs: float) -> str:
        """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC); the part up to the second is formatted
        once per second."""
        second = int(created)
        cached = self._second  # one attribute, replaced whole: safe when threads share the formatter
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{int(msecs):03d}Z"
