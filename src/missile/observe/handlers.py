"""Log output for a busy server: a buffered stream handler and a cheaper text formatter.

``missile serve`` logs one record per message. ``logging.StreamHandler`` writes and
flushes each record: a system call per record, and each call releases the GIL, which
can hand it to another thread (the SQLite state thread) and back, a switch each way.
:class:`BufferedStreamHandler` formats records into memory and writes them in one call
when one more would take them past :data:`BUFFER_CHARS`, :data:`FLUSH_INTERVAL_S` after
the first record of a batch (a callback on the logging thread's event loop, else a
daemon thread: :mod:`missile.observe.flushing`), at once for WARNING and above (with
what was held before, in order), and when it is flushed or closed (``logging.shutdown``
does both at interpreter exit; ``missile serve``'s workers exit that way on SIGTERM or
Ctrl-C).

The trade: a process killed outright (SIGKILL, a crash of the interpreter) loses the
INFO and DEBUG records of its last :data:`FLUSH_INTERVAL_S` at most; warnings and
errors are never held. Output written to the stream by other means (``print``, a
traceback Python prints itself) can come out before INFO records logged earlier.

Lines can also be handed over unformatted (:meth:`BufferedStreamHandler.add_later`: a
function and its arguments), to be formatted when the buffer is written: the log
observer's direct path does so for its per-message lines. Formatting a dozen or more
lines in one go runs the formatting code warm; run once per request, between the
request's own code, it ran three to five times slower than in a loop (timed inside a
loaded ``missile serve`` worker: 6 µs to build a message's fields there, 2.5 µs right
after, 1.6 µs in a loop).

The stdlib's ``logging.handlers.MemoryHandler`` holds records too, but hands each to
its target one by one (still a write per record) and has no timer, so a quiet server's
last records would wait for the next warning or for exit. Measured per record in one
process, to a line-buffered /dev/null: 9.5 µs with ``StreamHandler``, 8.8 µs through a
``MemoryHandler``, 8.3 µs with this handler, 7.5 µs with this handler and
:class:`TextFormatter`; in py-spy profiles of a loaded ``missile serve`` worker, the
handler's part of a record's cost fell from 42 % to 30 %.

:class:`TextFormatter` is ``logging.Formatter`` with the time formatted once per
second: ``time.strftime`` on every record is a sizeable part of formatting one.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from missile.observe.flushing import DelayedFlush

__all__ = ["BUFFER_CHARS", "FLUSH_INTERVAL_S", "LATER_CHARS", "LINE_FIELDS", "BufferedStreamHandler", "TextFormatter"]

#: Characters written at most in one call: PIPE_BUF on Linux, a dozen or more records. Several
#: workers share one stderr, often a pipe (systemd, containers), and only writes of up to
#: PIPE_BUF bytes to a pipe are never interleaved with other writers': bigger batches
#: could split lines (an ASCII line is as many bytes as characters; other text more).
#: Fifteen records per call already take away nearly all the per-record writes.
BUFFER_CHARS = 4096
#: Seconds a record waits at most before it is written (unless the process is killed):
#: short enough for someone watching the log, long enough to batch a busy second.
FLUSH_INTERVAL_S = 0.1
#: How many characters a line formatted late (:meth:`BufferedStreamHandler.add_later`) is
#: counted for until a batch shows their real length: more than a message record's line
#: in missile serve's text format (about 170), so the first batch stays in one write.
LATER_CHARS = 256


class BufferedStreamHandler(logging.Handler):
    """Writes formatted records to ``stream`` (``sys.stderr`` when None) in batches
    of up to ``capacity`` characters (a longer record alone), ``interval`` seconds after a batch starts, at once from
    ``flush_level`` up, and on :meth:`flush` and :meth:`close`."""

    terminator = "\n"

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        capacity: int = BUFFER_CHARS,
        interval: float = FLUSH_INTERVAL_S,
        flush_level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError("the buffer capacity must be at least one character")
        self.stream: IO[str] = stream if stream is not None else sys.stderr
        self.capacity = capacity
        self.flush_level = flush_level
        self._parts: list[str | tuple[Callable[..., str], tuple[Any, ...]]] = []
        self._later_chars = LATER_CHARS
        self._size = 0
        self._closed = False
        self._timer = DelayedFlush(self.flush, interval, "missile-log-flush")

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` into the buffer (``handle`` holds the lock); write the buffer
        before it would outgrow ``capacity``, and with ``record`` if it is at
        ``flush_level`` or above or the handler is closed."""
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._add(line, record.levelno, record)

    def add_line(self, line: str, levelno: int) -> None:
        """What :meth:`handle` does with a record whose formatted text is ``line``, for
        a handler without filters: the log observer's direct path
        (:mod:`missile.observe.logs`), which formats its lines without a record."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._add(line + self.terminator, levelno, None)

    def add_later(self, render: Callable[..., str], args: tuple[Any, ...], levelno: int) -> None:
        """:meth:`add_line` of ``render(*args)``, called when the buffer is written (at
        once from ``flush_level`` up or once closed). ``args`` must not change until then.

        A loaded server's worker runs the code that formats a line cold between
        requests, several times slower than in a loop; formatting the buffer's lines
        together, when it is written, runs it warm (the module's docstring has figures).
        The buffer counts such a line as long as the longest of the last batch (at first
        :data:`LATER_CHARS`) until it is formatted; the batch is then written in as many
        calls of at most ``capacity`` characters as its real lengths need."""
        with self.lock:  # type: ignore[union-attr]
            if levelno >= self.flush_level or self._closed:
                self._add(self._render((render, args)), levelno, None)
                return
            size = self._later_chars
            if self._size + size > self.capacity:
                self._write(None)
            self._parts.append((render, args))
            self._size += size
            if self._size >= self.capacity:
                self._write(None)
            else:
                self._timer.due()

    def _add(self, line: str, levelno: int, record: logging.LogRecord | None) -> None:
        if self._size + len(line) > self.capacity:
            self._write(None)
        self._parts.append(line)
        self._size += len(line)
        if self._size >= self.capacity or levelno >= self.flush_level or self._closed:
            self._write(record)
        else:
            self._timer.due()

    def flush(self) -> None:
        """Write what is buffered, in one call (more when lines formatted late came out
        longer than counted, each within ``capacity``)."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._write(None)

    def _write(self, record: logging.LogRecord | None) -> None:
        if not self._parts:
            return
        parts, self._parts, self._size = self._parts, [], 0
        later = 0
        lines: list[str] = []
        for part in parts:
            if isinstance(part, str):
                lines.append(part)
            else:
                line = self._render(part)
                later = max(later, len(line))
                lines.append(line)
        if later:
            self._later_chars = later
        try:
            for text in _chunks(lines, self.capacity):
                self.stream.write(text)
            self.stream.flush()
        except Exception:
            self.handleError(record or logging.makeLogRecord({"msg": "writing buffered log records failed"}))

    def _render(self, part: tuple[Callable[..., str], tuple[Any, ...]]) -> str:
        try:
            return part[0](*part[1]) + self.terminator
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "formatting a log record failed"}))
            return ""

    def close(self) -> None:
        """Write what is buffered and stop the timer; records handled later are written
        at once. The stream itself is left open (as ``StreamHandler`` leaves it)."""
        with self.lock:  # type: ignore[union-attr]
            self._closed = True
            # Not waiting for the timer's thread: its flush takes this lock, which
            # logging.shutdown holds around close(); writes happen under the lock anyway.
            self._timer.close(wait=False)
        super().close()

    def __repr__(self) -> str:
        name = getattr(self.stream, "name", "")
        return f"<{type(self).__name__} {name} ({logging.getLevelName(self.level)})>"


def _chunks(lines: list[str], capacity: int) -> Iterator[str]:
    """``lines`` joined into texts of at most ``capacity`` characters (a longer line alone)."""
    text = "".join(lines)
    if len(text) <= capacity:
        yield text
        return
    batch: list[str] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > capacity:
            yield "".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield "".join(batch)


class TextFormatter(logging.Formatter):
    """``logging.Formatter`` that formats each second's time once (the record's
    milliseconds are added to it, as the base class does, when there is no
    ``datefmt``), and can format a line from its parts (:meth:`line`) when its format
    uses only :data:`LINE_FIELDS`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str | None, str] = (-1, None, "")
        self._line_format = self._fields_only_format()
        self._line_time = self.usesTime()

    def _fields_only_format(self) -> str | None:
        """The ``%`` format string, when it names only :data:`LINE_FIELDS` and there are
        no defaults for missing fields: then :meth:`line` gives what :meth:`format` does."""
        style = self._style
        if type(style) is not logging.PercentStyle or getattr(style, "_defaults", None):
            return None
        fmt = style._fmt
        literal = fmt.replace("%%", "")
        if "%" in _CONVERSION.sub("", literal):  # a positional or malformed conversion
            return None
        return fmt if set(_FIELD_NAME.findall(literal)) <= LINE_FIELDS else None

    def writes_lines(self) -> bool:
        """Whether :meth:`line` can stand for :meth:`format` (the format was not changed
        since, and it names only :data:`LINE_FIELDS`)."""
        fmt = self._line_format
        return fmt is not None and self._style._fmt is fmt

    def line(self, name: str, levelno: int, levelname: str, created: float, msecs: float, message: str) -> str:
        """What :meth:`format` returns for a record of these attributes, without an
        exception or stack (only when :meth:`writes_lines`)."""
        assert self._line_format is not None
        values = {"name": name, "levelno": levelno, "levelname": levelname, "message": message}
        if self._line_time:
            values["asctime"] = self._asctime(created, msecs, self.datefmt)
        return self._line_format % values

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._asctime(record.created, record.msecs, datefmt)

    def _asctime(self, created: float, msecs: float, datefmt: str | None) -> str:
        second = int(created)
        cached = self._second  # one attribute, replaced whole: safe when threads share the formatter
        if cached[0] != second or cached[1] != datefmt:
            text = time.strftime(datefmt or self.default_time_format, self.converter(created))
            cached = self._second = (second, datefmt, text)
        if datefmt or not self.default_msec_format:
            return cached[2]
        return self.default_msec_format % (cached[2], msecs)


#: The record attributes :meth:`TextFormatter.line` knows (missile serve's format uses four).
LINE_FIELDS = frozenset({"asctime", "levelname", "levelno", "name", "message"})
_FIELD_NAME = re.compile(r"%\((\w+)\)")
_CONVERSION = logging.PercentStyle.validation_pattern  # one named conversion, as the stdlib checks them
