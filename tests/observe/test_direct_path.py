"""The log observer's direct path (missile.observe.logs): with only missile's own
handler and formatters on the way, message records are formatted without a LogRecord,
and late (when the handler's buffer is written). Checked against the general path (a
real record through ``Logger.handle``) over generated events, formats and times: the
same text, in the same order; anything of the user's on the way gets a real record."""

from __future__ import annotations

import io
import logging
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.observe import JsonFormatter, LogObserver, MessageObserved, RecoveryObserved, StateCallObserved, logs
from missile.observe.handlers import BufferedStreamHandler, TextFormatter

SERVE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""missile serve's text format (src/missile/cli/observing.py)."""

TEXT_FORMATS = [
    (SERVE_FORMAT, "%Y-%m-%dT%H:%M:%S"),
    (SERVE_FORMAT, None),  # the stdlib's default time format, with milliseconds
    ("%(levelno)d|%(name)s|%(message)s %%(asctime)s 100%%", None),
    ("%(message)s", None),
    ("[%(levelname)-8s] %(message)r", "%d/%m %H:%M"),
]

_text = st.text(max_size=40)
_optional = st.none() | _text
EVENTS = st.builds(
    MessageObserved,
    role=st.sampled_from(["server", "client", "peer"]),
    kind=st.sampled_from(["handshake", "key_exchange", "renewal", "application", "error"]),
    identity=_optional,
    user=_optional,
    message_id=st.none() | st.integers(min_value=0, max_value=2**53),
    path=_optional,
    key_exchange=_optional,
    error=_optional,
    response_code=_optional,
    bytes_in=st.integers(min_value=0, max_value=2**40),
    bytes_out=st.integers(min_value=0, max_value=2**40),
    duration=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
RECOVERIES = st.builds(RecoveryObserved, _text, _text, _text, st.integers(0, 12), st.integers(0, 12))
STATE_CALLS = st.builds(StateCallObserved, _text, _text, st.floats(0, 10, allow_nan=False), st.booleans())
# Whole seconds, milliseconds near 0 and 999 (the rounding edges), across years.
TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False)


def _write(
    log: logging.Logger, formatter: logging.Formatter, direct: bool, created: float, events: list[object]
) -> str:
    """What a BufferedStreamHandler with ``formatter`` writes for ``events``, logged at
    ``created``: by the direct path, or (``direct`` False) through the general one (a
    filter that keeps everything is on the way: the stdlib handles a real record)."""
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=3600)
    handler.setFormatter(formatter)
    log.handlers[:] = [handler]
    keep = logging.Filter()  # an empty name: keeps every record
    if not direct:
        log.addFilter(keep)
    observer = LogObserver()
    try:
        with mock.patch("time.time", return_value=created), mock.patch("time.time_ns", return_value=int(created * 1e9)):
            for event in events:
                if isinstance(event, MessageObserved):
                    observer.message(event)
                elif isinstance(event, RecoveryObserved):
                    observer.recovery(event)
                else:
                    assert isinstance(event, StateCallObserved)
                    observer.state_call(event)
        handler.flush()
    finally:
        log.removeFilter(keep)
        handler.close()
    return stream.getvalue()


def _formatters() -> st.SearchStrategy[logging.Formatter]:
    text = st.sampled_from(TEXT_FORMATS).map(lambda f: TextFormatter(f[0], f[1]))
    return text | st.just(None).map(lambda _: JsonFormatter())


# The fixture only isolates the logger: _write sets its handler and filter every time.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    formatter=_formatters(),
    created=TIMES,
    events=st.lists(EVENTS | RECOVERIES | STATE_CALLS, min_size=1, max_size=6),
)
def test_the_direct_path_writes_what_the_general_path_writes(
    missile_logger: logging.Logger, formatter: logging.Formatter, created: float, events: list[object]
) -> None:
    general = _write(missile_logger, formatter, False, created, events)
    direct = _write(missile_logger, formatter, True, created, events)
    assert direct == general
    assert direct.count("\n") >= len(events)  # a line each (field values may hold newlines too)


FORGERY = MessageObserved(
    "server",
    "application",
    identity="evil\n2026-01-01T00:00:00 INFO missile.server: server message kind=renewal",
    user='someone error=none "quoted"',
    path="/a\rb\u2028c",
    bytes_in=1,
)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "general"])
def test_peer_controlled_values_cannot_forge_lines_or_fields(missile_logger: logging.Logger, direct: bool) -> None:
    import json

    text = _write(missile_logger, TextFormatter(SERVE_FORMAT, None), direct, 1e9, [FORGERY])
    assert text.count("\n") == 1 and "\r" not in text and "\u2028" not in text
    assert f" identity={json.dumps(FORGERY.identity)} " in text
    assert f" user={json.dumps(FORGERY.user)} " in text
    as_json = _write(missile_logger, JsonFormatter(), direct, 1e9, [FORGERY])
    assert as_json.count("\n") == 1
    fields = json.loads(as_json)
    assert (fields["identity"], fields["user"], fields["path"]) == (FORGERY.identity, FORGERY.user, FORGERY.path)


@given(st.text(max_size=30))
def test_plain_values_are_written_as_they_are(value: str) -> None:
    line = logs._message_text(MessageObserved("server", "application", identity=value))
    shown = line.split(" identity=", 1)[1].rsplit(" bytes_in=", 1)[0]
    if value.isprintable() and " " not in value and '"' not in value:
        assert shown == value
    else:
        import json

        assert json.loads(shown) == value and "\n" not in shown


@given(
    st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=0, max_value=2e9)
    | st.floats(min_value=5e-5, max_value=2e-4)
    | st.sampled_from([0.0, 1e-4, 9.9999995e-5, 0.0001000005, 0.0000005, 1e9, 999999999.9999995, 0.5e-6, 2.5e-6])
)
def test_durations_are_written_as_rounded_to_the_microsecond(value: float) -> None:
    # The line shows str(round(duration, 6)), the text of the JSON record's field.
    assert logs._seconds(value) == str(round(value, 6))


def test_the_direct_path_builds_no_record(missile_logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=3600)
    handler.setFormatter(TextFormatter(SERVE_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    missile_logger.handlers[:] = [handler]
    event = MessageObserved(role="server", kind="application", identity="client1", bytes_in=1, bytes_out=2)
    with mock.patch.object(logging.Logger, "makeRecord", side_effect=AssertionError("a record was built")):
        LogObserver().message(event)
        LogObserver().state_call(StateCallObserved("MemoryTokenState", "check_master_token", 0.001, True))
        assert stream.getvalue() == ""  # held: formatted when the buffer is written
        handler.flush()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(" INFO missile.server: server message kind=application identity=client1 bytes_in=1 "
                              "bytes_out=2 duration=0.0")  # fmt: skip
    assert lines[1].endswith(" DEBUG missile.state: MemoryTokenState check_master_token ok in 0.001000 s")


class _Mine(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _MyFormatter(TextFormatter):
    pass


class _MyHandler(BufferedStreamHandler):
    pass


@pytest.mark.parametrize(
    "change",
    ["user handler", "handler subclass", "formatter subclass", "other fields", "handler filter", "factory", "root"],
)
def test_anything_of_the_users_gets_a_real_record(missile_logger: logging.Logger, change: str) -> None:
    """Each of these puts the message through ``Logger.handle`` (and every record
    reaches what it reached before)."""
    stream = io.StringIO()
    handler: BufferedStreamHandler = (
        _MyHandler(stream) if change == "handler subclass" else BufferedStreamHandler(stream)
    )
    formatter = {
        "formatter subclass": _MyFormatter("%(message)s"),
        "other fields": TextFormatter("%(process)d %(message)s"),
    }.get(change, TextFormatter("%(message)s"))
    handler.setFormatter(formatter)
    missile_logger.handlers[:] = [handler]
    mine = _Mine()
    if change == "user handler":
        missile_logger.addHandler(mine)
    if change == "handler filter":
        handler.addFilter(logging.Filter())
    root = logging.getLogger()
    if change == "root":  # missile propagates to the root logger, which has the user's handler
        missile_logger.propagate = True
        root.addHandler(mine)
    standard = logging.getLogRecordFactory()
    if change == "factory":
        logging.setLogRecordFactory(lambda *a, **k: standard(*a, **k))
    handled: list[str] = []
    real = logs._handle

    def counted(log: logging.Logger, *args: object) -> None:
        handled.append(log.name)
        real(log, *args)  # type: ignore[arg-type]

    try:
        with mock.patch.object(logs, "_handle", counted):
            LogObserver().message(MessageObserved(role="server", kind="application"))
    finally:
        logging.setLogRecordFactory(standard)
        root.removeHandler(mine)
    handler.flush()
    assert handled == ["missile.server"]
    assert "server message kind=application" in stream.getvalue()
    if change in ("user handler", "root"):
        assert [r.name for r in mine.records] == ["missile.server"]


def test_records_and_late_lines_keep_their_order(missile_logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, interval=3600)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    missile_logger.handlers[:] = [handler]
    server = logging.getLogger("missile.server")
    LogObserver().message(MessageObserved(role="server", kind="handshake"))
    server.info("between")
    LogObserver().message(MessageObserved(role="server", kind="application"))
    server.warning("a warning writes everything held, in order")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[:4] for line in lines] == [
        ["INFO", "server", "message", "kind=handshake"],
        ["INFO", "between"],
        ["INFO", "server", "message", "kind=application"],
        ["WARNING", "a", "warning", "writes"],
    ]
