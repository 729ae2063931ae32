"""Buffered observing: the log handler that writes records in batches, the text formatter
that formats each second once, the flush timer under both, and metrics added up in
memory between flushes. The real ``missile serve`` shutdown is in test_over_http.py."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from missile.observe import MessageObserved, StateCallObserved
from missile.observe.flushing import DelayedFlush
from missile.observe.handlers import BUFFER_CHARS, BufferedStreamHandler, TextFormatter

WAIT_S = 10.0
"""How long a test waits for a timer's flush before failing (a loaded machine)."""


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Recording(io.StringIO):
    """A text stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("missile.test_buffered")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()


def attach(log: logging.Logger, **kwargs: object) -> tuple[BufferedStreamHandler, Recording]:
    stream = Recording()
    handler = BufferedStreamHandler(stream, **kwargs)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    return handler, stream


def test_records_arrive_in_order_after_close(logger: logging.Logger) -> None:
    handler, stream = attach(logger, interval=3600)
    for i in range(100):
        logger.info("record %d", i)
    assert stream.getvalue() == ""  # 1,490 characters: all held
    handler.close()
    assert stream.getvalue().splitlines() == [f"INFO record {i}" for i in range(100)]
    assert len(stream.writes) == 1


def test_warning_goes_out_at_once_with_what_was_held_before(logger: logging.Logger) -> None:
    _, stream = attach(logger, interval=3600)
    logger.info("first")
    logger.debug("second")
    assert stream.getvalue() == ""
    logger.warning("third")
    assert stream.getvalue().splitlines() == ["INFO first", "DEBUG second", "WARNING third"]
    logger.error("fourth")
    assert stream.getvalue().splitlines()[-1] == "ERROR fourth"


def test_a_full_buffer_is_written_in_one_call_within_its_capacity(logger: logging.Logger) -> None:
    _, stream = attach(logger, interval=3600, capacity=100)
    for i in range(40):
        logger.info("a record of some length, number %02d", i)  # 45 characters with the newline
    assert stream.writes, "nothing written though the buffer filled"
    assert all(len(w) <= 100 and w.endswith("\n") for w in stream.writes)
    assert all(len(w.splitlines()) == 2 for w in stream.writes)  # two records fit, a third does not
    logger.info("x" * 250)  # longer than the capacity: alone
    assert stream.writes[-1] == "INFO " + "x" * 250 + "\n"


def test_the_default_capacity_keeps_a_batch_within_pipe_buf(logger: logging.Logger) -> None:
    assert BUFFER_CHARS <= 4096  # PIPE_BUF on Linux: writes of workers sharing a pipe are not interleaved
    _, stream = attach(logger, interval=3600)
    for i in range(200):
        logger.info("kind=application identity=client1 user=user1@example.com message_id=%d", i)
    assert stream.writes and all(len(w) <= BUFFER_CHARS for w in stream.writes)


def test_the_timer_writes_a_batch_that_does_not_fill(logger: logging.Logger) -> None:
    _, stream = attach(logger, interval=0.05)
    logger.info("alone")
    wait_for(lambda: stream.getvalue() == "INFO alone\n", "the timer's flush")
    logger.info("again")  # the next batch starts its own timer
    wait_for(lambda: stream.getvalue() == "INFO alone\nINFO again\n", "the second flush")
    assert len(stream.writes) == 2


def test_records_after_close_are_written_at_once(logger: logging.Logger) -> None:
    handler, stream = attach(logger, interval=3600)
    handler.close()
    handler.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 1, "late", (), None))
    assert stream.getvalue() == "INFO late\n"


def test_flush_writes_what_is_held(logger: logging.Logger) -> None:
    handler, stream = attach(logger, interval=3600)
    logger.info("one")
    logger.info("two")
    handler.flush()
    assert stream.writes == ["INFO one\nINFO two\n"]
    handler.flush()  # nothing held: no empty write
    assert len(stream.writes) == 1


def test_a_failing_stream_is_reported_not_raised(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    reported: list[logging.LogRecord] = []
    handler = BufferedStreamHandler(Broken(), interval=3600)
    monkeypatch.setattr(handler, "handleError", reported.append)
    logger.addHandler(handler)
    logger.info("lost")
    logger.error("also lost")  # written at once: fails, reported
    assert [r.getMessage() for r in reported] == ["also lost"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        BufferedStreamHandler(io.StringIO(), capacity=0)
    with pytest.raises(ValueError, match="interval"):
        BufferedStreamHandler(io.StringIO(), interval=0)


def test_the_log_config_of_serve_buffers_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from missile.cli.observing import ENV_LOG_BUFFER, log_config

    monkeypatch.delenv(ENV_LOG_BUFFER, raising=False)
    assert log_config("info", "text", False)["handlers"]["stderr"]["class"].endswith("BufferedStreamHandler")
    monkeypatch.setenv(ENV_LOG_BUFFER, "0")
    assert log_config("info", "text", False)["handlers"]["stderr"]["class"] == "logging.StreamHandler"
    assert log_config("info", "json", False, buffered=True)["handlers"]["stderr"]["class"].endswith(
        "BufferedStreamHandler"
    )


def test_the_log_config_of_serve_applies() -> None:
    """dictConfig builds the handler and formatter from their names, as uvicorn does (in
    a fresh process: dictConfig closes every handler of the process it runs in)."""
    code = (
        "import logging, logging.config, sys\n"
        "from missile.cli.observing import log_config\n"
        "from missile.observe.handlers import BufferedStreamHandler, TextFormatter\n"
        "logging.config.dictConfig(log_config('info', 'text', False, buffered=True))\n"
        "handler = logging.getLogger('missile').handlers[0]\n"
        "assert isinstance(handler, BufferedStreamHandler) and handler.stream is sys.stderr\n"
        "assert isinstance(handler.formatter, TextFormatter)\n"
        "for i in range(3): logging.getLogger('missile.server').info('held %d', i)\n"
        "sys.stderr.write('written at once\\n')\n"
    )  # the records are written at exit (logging.shutdown), after the line written at once
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "written at once"
    assert [line.split(" ", 1)[1] for line in lines[1:]] == [f"INFO missile.server: held {i}" for i in range(3)]


# -- the text formatter -----------------------------------------------------------------


@pytest.mark.parametrize("datefmt", ["%Y-%m-%dT%H:%M:%S", None])
def test_text_formatter_writes_what_the_stdlib_formatter_writes(datefmt: str | None) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    ours, stdlib = TextFormatter(fmt, datefmt), logging.Formatter(fmt, datefmt)
    base = 1_700_000_000.0
    # Within a second, across seconds, and back in time (records from several threads).
    for created in (base + 0.1, base + 0.9, base + 1.0, base + 1.5, base + 0.2, base + 86_400.25, base + 0.3):
        record = logging.makeLogRecord({"msg": "m %s", "args": ("x",), "levelno": 20, "levelname": "INFO"})
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == stdlib.format(record)
    gmt = TextFormatter(fmt, datefmt)
    gmt.converter = time.gmtime
    record.created = base
    assert gmt.format(record).startswith("2023-11-14" + ("T" if datefmt else " ") + "22:13:20")


# -- the flush timer --------------------------------------------------------------------


def test_delayed_flush_runs_once_per_batch_and_at_close() -> None:
    calls: list[float] = []
    timer = DelayedFlush(lambda: calls.append(time.monotonic()), 0.02, "test-flush")
    for _ in range(1000):
        timer.due()  # one batch
    wait_for(lambda: len(calls) == 1, "the first flush")
    timer.due()
    wait_for(lambda: len(calls) == 2, "the second flush")
    timer.close()
    assert len(calls) == 3  # close flushes once more
    timer.close()  # twice is harmless
    assert len(calls) == 4


def test_delayed_flush_starts_no_thread_until_work_is_due() -> None:
    timer = DelayedFlush(lambda: None, 0.02, "test-idle-flush")
    assert "test-idle-flush" not in {t.name for t in threading.enumerate()}
    timer.due()
    assert "test-idle-flush" in {t.name for t in threading.enumerate()}
    timer.close()
    assert "test-idle-flush" not in {t.name for t in threading.enumerate()}


def test_delayed_flush_in_a_forked_child_has_its_own_thread() -> None:
    code = (
        "import os, sys, time\n"
        "from missile.observe.flushing import DelayedFlush\n"
        "hits = []\n"
        "t = DelayedFlush(lambda: hits.append(1), 0.01, 'f')\n"
        "t.due()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    t.due()\n"
        "    deadline = time.monotonic() + 10\n"
        "    while not hits and time.monotonic() < deadline: time.sleep(0.005)\n"
        "    os._exit(0 if hits else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr


# -- metrics added up between flushes ---------------------------------------------------

EVENTS = [
    MessageObserved(role="server", kind="key_exchange", key_exchange="SYMMETRIC_WRAPPED", bytes_in=900,
                    bytes_out=1500, duration=0.004),
    MessageObserved(role="server", kind="application", bytes_in=400, bytes_out=420, duration=0.0003),
    MessageObserved(role="server", kind="application", bytes_in=400, bytes_out=420, duration=0.0005),  # a bound
    MessageObserved(role="server", kind="error", error="MESSAGE_REPLAYED", response_code="REPLAYED", duration=7.0),
    MessageObserved(role="client", kind="application", bytes_in=10, duration=0.02),
]  # fmt: skip
STATE = [StateCallObserved("SqliteTokenState", "check_master_token", s, True) for s in (0.00005, 0.0001, 0.3, 9.0)]


def _exposition(registry: object) -> list[str]:
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return [line for line in text.splitlines() if "_created" not in line]


def test_buffered_metrics_show_after_a_flush_what_direct_ones_show() -> None:
    from prometheus_client import CollectorRegistry

    from missile.observe.metrics import MetricsObserver

    direct_registry, buffered_registry = CollectorRegistry(), CollectorRegistry()
    direct = MetricsObserver(direct_registry)
    buffered = MetricsObserver(buffered_registry, flush_interval=3600)
    for observer in (direct, buffered):
        for event in EVENTS * 3:
            observer.message(event)
        for call in STATE:
            observer.state_call(call)
    # Held, not written: the series shows no count yet (it appears at the first flush:
    # the events are counted then).
    assert not buffered_registry.get_sample_value("missile_messages_total", {"role": "server", "kind": "error"})
    buffered.flush()
    assert _exposition(buffered_registry) == _exposition(direct_registry)
    buffered.flush()  # nothing new: nothing changes
    assert _exposition(buffered_registry) == _exposition(direct_registry)


def test_buffered_metrics_are_written_by_the_timer() -> None:
    from prometheus_client import CollectorRegistry

    from missile.observe.metrics import MetricsObserver

    registry = CollectorRegistry()
    observer = MetricsObserver(registry, flush_interval=0.02)
    observer.message(EVENTS[1])
    observer.state_call(STATE[0])
    labels = {"role": "server", "kind": "application"}
    wait_for(lambda: registry.get_sample_value("missile_messages_total", labels) == 1, "the metrics flush")
    state = {"backend": "SqliteTokenState", "operation": "check_master_token"}
    wait_for(lambda: registry.get_sample_value("missile_state_seconds_count", state) == 1, "the state flush")


def test_a_histogram_of_another_layout_is_written_through() -> None:
    from missile.observe.metrics import _tally_or_child

    class Other:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    other = Other()
    assert _tally_or_child(other, (0.1, 1.0)) is other


def test_buffered_metrics_in_multiprocess_mode(tmp_path: object) -> None:
    """In a fresh process with PROMETHEUS_MULTIPROC_DIR, as under ``missile serve``: the
    histograms are added up (the layout is the known one) and what the files hold after
    a flush is what direct counting writes."""
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from prometheus_client import CollectorRegistry, generate_latest, multiprocess\n"
        "from missile.observe.metrics import MetricsObserver, _Tally\n"
        "from test_buffered import EVENTS, STATE\n"
        "observer = MetricsObserver(CollectorRegistry(), flush_interval=3600)\n"
        "for e in EVENTS * 2: observer.message(e)\n"
        "for s in STATE: observer.state_call(s)\n"
        "observer.flush()\n"  # the held events are counted, into _Tally for the histograms
        "assert all(isinstance(t, _Tally) for t in observer._tallies) and len(observer._tallies) == 3\n"
        "registry = CollectorRegistry()\n"
        "multiprocess.MultiProcessCollector(registry)\n"
        "sys.stdout.write(generate_latest(registry).decode())\n"
    )
    outputs = []
    for directory in ("buffered", "direct"):
        path = os.path.join(str(tmp_path), directory)
        os.mkdir(path)
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=path)
        script = (
            code
            if directory == "buffered"
            else code.replace(", flush_interval=3600", "").replace("assert all", "assert not observer._tallies or all")
        )
        done = subprocess.run(
            [sys.executable, "-c", script, os.path.dirname(__file__)],
            env=env,
            timeout=60,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(sorted(done.stdout.splitlines()))
    assert outputs[0] == outputs[1]
    assert 'missile_message_duration_seconds_count{role="server"} 8.0' in outputs[0]


def test_closing_as_logging_shutdown_does_writes_everything(logger: logging.Logger) -> None:
    """logging.shutdown (at exit) holds the handler's lock around flush() and close()."""
    handler, stream = attach(logger, interval=0.01)
    for i in range(50):
        logger.info("record %d", i)
    handler.acquire()
    try:
        handler.flush()
        logger.info("after the flush")  # the same thread: the lock is reentrant
        handler.close()
    finally:
        handler.release()
    assert stream.getvalue().splitlines() == [f"INFO record {i}" for i in range(50)] + ["INFO after the flush"]


def test_delayed_flush_on_a_loop_runs_there_without_a_thread() -> None:
    """On a thread running an event loop (a server's worker), the flush is a callback of
    that loop: no thread is started, none has to take the GIL from the loop."""
    flushed_on: list[int] = []
    timer = DelayedFlush(lambda: flushed_on.append(threading.get_ident()), 0.01, "test-loop-flush")

    async def go() -> None:
        for _ in range(100):
            timer.due()  # one batch
        deadline = time.monotonic() + WAIT_S
        while not flushed_on:
            assert time.monotonic() < deadline, "timed out waiting for the loop's flush"
            await asyncio.sleep(0.005)
        timer.due()  # the next batch
        while len(flushed_on) < 2:
            assert time.monotonic() < deadline, "timed out waiting for the second flush"
            await asyncio.sleep(0.005)

    asyncio.run(go())
    assert flushed_on == [threading.get_ident()] * 2
    assert "test-loop-flush" not in {t.name for t in threading.enumerate()}
    timer.close()


def test_delayed_flush_whose_loop_stopped_falls_back_to_a_thread() -> None:
    """A flush scheduled on a loop that stopped before it ran is not waited for forever:
    after twice the interval, the next work schedules another (here on the thread)."""
    calls: list[str] = []
    timer = DelayedFlush(lambda: calls.append(threading.current_thread().name), 0.01, "test-fallback-flush")

    async def schedule_and_leave() -> None:
        timer.due()

    asyncio.run(schedule_and_leave())  # the loop closes before its flush runs
    assert calls == []

    def due_then_flushed() -> bool:
        timer.due()
        return bool(calls)

    wait_for(due_then_flushed, "the thread's flush")
    assert calls[0] == "test-fallback-flush"
    timer.close()


def test_lines_formatted_late_are_formatted_when_written_and_split_within_capacity(logger: logging.Logger) -> None:
    handler, stream = attach(logger, interval=3600, capacity=400)
    calls: list[int] = []

    def render(i: int, width: int) -> str:
        calls.append(i)
        return f"{i:02d}" + "y" * width

    handler.add_later(render, (0, 10), logging.INFO)  # counted as LATER_CHARS (256)
    logger.info("a record")
    assert calls == [] and stream.writes == []
    handler.add_later(render, (1, 150), logging.INFO)  # 270 + 256 > 400: what was held goes first
    assert calls == [0] and stream.writes == ["00" + "y" * 10 + "\nINFO a record\n"]
    for i, width in ((2, 150), (3, 60), (4, 60), (5, 60)):
        handler.add_later(render, (i, width), logging.INFO)  # counted 13 each now: the last batch's longest
    assert calls == [0]
    handler.flush()
    assert calls == [0, 1, 2, 3, 4, 5]
    # 495 characters in all, longer than counted: two calls, each within the capacity, lines whole.
    assert [len(w) for w in stream.writes[1:]] == [153 + 153 + 63, 63 + 63]
    lines = "".join(stream.writes).splitlines()
    assert [line[:2] for line in lines] == ["00", "IN", "01", "02", "03", "04", "05"]


def test_a_late_line_at_a_flush_level_or_after_close_is_written_at_once(logger: logging.Logger) -> None:
    handler, stream = attach(logger, interval=3600)
    handler.add_later(str.upper, ("held",), logging.INFO)
    handler.add_later(str.upper, ("warned",), logging.WARNING)
    assert stream.getvalue() == "HELD\nWARNED\n"
    handler.close()
    handler.add_later(str.upper, ("closed",), logging.INFO)
    assert stream.getvalue().endswith("CLOSED\n")


def test_a_late_line_that_fails_to_format_is_reported_not_raised(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, stream = attach(logger, interval=3600)
    reported: list[str] = []
    monkeypatch.setattr(handler, "handleError", lambda record: reported.append(record.getMessage()))

    def broken() -> str:
        raise ValueError("no")

    handler.add_later(broken, (), logging.INFO)
    logger.info("after")
    handler.flush()
    assert stream.getvalue() == "INFO after\n"
    assert reported == ["formatting a log record failed"]


def test_held_metric_events_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from missile.observe import metrics
    from missile.observe.metrics import MetricsObserver

    monkeypatch.setattr(metrics, "MAX_HELD_EVENTS", 3)
    observer = MetricsObserver(CollectorRegistry(), flush_interval=3600)
    for event in EVENTS[:2]:
        observer.message(event)
    observer.state_call(STATE[0])
    assert len(observer._held) == 0  # the third counted all three in memory (written at the next flush)
    observer.message(EVENTS[2])
    assert len(observer._held) == 1


def test_metrics_held_from_two_threads_are_all_counted() -> None:
    from prometheus_client import CollectorRegistry

    from missile.observe.metrics import MetricsObserver

    registry = CollectorRegistry()
    observer = MetricsObserver(registry, flush_interval=3600)

    def calls() -> None:
        for _ in range(2000):
            observer.state_call(STATE[0])

    thread = threading.Thread(target=calls)
    thread.start()
    for _ in range(20):
        for _ in range(100):
            observer.message(EVENTS[1])
        observer.flush()
    thread.join()
    observer.flush()
    labels = {"backend": "SqliteTokenState", "operation": "check_master_token"}
    assert registry.get_sample_value("missile_state_seconds_count", labels) == 2000
    assert registry.get_sample_value("missile_messages_total", {"role": "server", "kind": "application"}) == 2000
