"""A flush that runs a short while after work becomes pending: on the event loop of
the thread that made the work, else on a daemon thread.

``missile serve`` writes its per-message log records and counts its metrics in memory
and hands them on in batches (:class:`missile.observe.handlers.BufferedStreamHandler`,
:class:`missile.observe.metrics.MetricsObserver` with ``flush_interval``): one write per
batch instead of one per record or count. Something must write a batch that never
fills, and that is this timer.

When :meth:`DelayedFlush.due` is called on a thread running an event loop (a server's
worker, where records and counts come from), the flush is a ``call_later`` callback on
that loop: it runs between two requests, on the thread that was running anyway. A
daemon thread woken for every batch (ten times a second per timer under load) measured
40 to 55 µs more server CPU per request on the 2-core benchmark machine, more than the
records and counts themselves cost: each wake-up takes the GIL from the busy loop
thread and gives it back. Elsewhere (a thread without a loop, such as a state's worker
thread or uvicorn's supervisor process, or before a worker's loop starts) the timer is
a daemon thread, started on first use, sleeping on an event while nothing is pending.
A loop that is stuck holds its batch until it runs again, the process stops, or a
warning is logged (the log handler writes warnings at once).

The owner calls :meth:`DelayedFlush.due` whenever it adds work (a clock read when a
flush is already scheduled), and :meth:`DelayedFlush.close` at the end, which stops the
thread and flushes what is left. A process forked from the owner's starts its own
thread when it needs one (the parent's is not copied).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["DelayedFlush"]

_INSTANCES: weakref.WeakSet[DelayedFlush] = weakref.WeakSet()

#: How long :meth:`DelayedFlush.close` waits for the thread's flush in progress: a write
#: to a pipe nobody reads could block forever, and closing must not.
CLOSE_TIMEOUT_S = 2.0


class DelayedFlush:
    """Calls ``flush`` ``interval`` seconds after :meth:`due` is first called since the
    last flush: on the caller's event loop, else on a daemon thread named ``name``
    (started when first needed)."""

    def __init__(self, flush: Callable[[], None], interval: float, name: str) -> None:
        if not interval > 0:
            raise ValueError("the flush interval must be positive")
        self._flush = flush
        self.interval = interval
        self._name = name
        self._reset()
        _INSTANCES.add(self)

    def _reset(self) -> None:
        self._deadline = 0.0
        self._due = threading.Event()
        self._closing = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def due(self) -> None:
        """Work is pending: flush it within ``interval`` seconds."""
        now = time.monotonic()
        if now < self._deadline:
            return  # a flush is scheduled
        # A scheduled flush that has not run within twice the interval is taken as lost
        # (its loop stopped or is stuck) and another one is scheduled: on this thread's
        # loop, or on the thread when this thread has none. Two threads may both get here
        # and schedule one each, which costs an empty flush.
        self._deadline = now + 2 * self.interval
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._thread is None:
                self._start()
            self._due.set()
        else:
            loop.call_later(self.interval, self._fire)

    def _fire(self) -> None:
        self._deadline = 0.0  # cleared first: work added during the flush schedules the next one
        self._flush()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closing.is_set():
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._closing.wait(self.interval):
                return  # close() flushes what is left
            self._due.clear()
            self._fire()

    def close(self, wait: bool = True) -> None:
        """Stop the thread and flush once more; with ``wait``, after the thread's flush in
        progress, if any (without: when ``flush`` serializes itself, and the caller may
        hold what the thread's flush waits for, as ``logging.shutdown`` holds a
        handler's lock around its ``close``)."""
        self._closing.set()
        self._due.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_TIMEOUT_S)
        self._flush()


def _after_fork_in_child() -> None:
    for flusher in list(_INSTANCES):
        flusher._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
