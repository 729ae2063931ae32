"""Time bounds for awaited calls: one timer for many calls.

The engine bounds everything a peer or a store can stall: each read of a request
(``MslServer(read_timeout=)``), each call to the token state (``state_timeout``). Past
its bound a call is cancelled and fails, never left waiting. ``asyncio.timeout`` does
this, but it costs about 6 us per call on this project's benchmark machine (a context
manager object, a timer armed and disarmed in the event loop, its state machine), paid
by every message, several times over.

All calls bounded by one :class:`Deadlines` share one bound, so their deadlines come in
the order the calls start. It keeps the calls in that order and arms a single timer, for
the oldest unfinished call; a finished call only marks itself. When the timer fires it
cancels the overdue calls' tasks (exactly as ``asyncio.timeout`` does, with the same
``uncancel`` bookkeeping, so a cancellation from elsewhere still propagates as one) and
re-arms for the next unfinished call. A call so costs an append and a mark.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Deadlines", "check_seconds", "check_seconds_or_none"]

_T = TypeVar("_T")


def check_seconds(value: float, what: str) -> float:
    """``value`` when it is a usable bound: positive and finite. NaN passes ``<= 0`` and
    infinity is no bound at all, so both are refused like zero (ValueError naming ``what``)."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive, finite number of seconds")
    return value


def check_seconds_or_none(value: float | None, what: str) -> float | None:
    """:func:`check_seconds`, where None (no bound at all, asked for explicitly) is allowed."""
    return None if value is None else check_seconds(value, what)


class _Call:
    __slots__ = ("cancelling", "deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[object] | None, deadline: float, cancelling: int) -> None:
        self.task = task  # None once the call has finished
        self.deadline = deadline
        self.cancelling = cancelling
        self.expired = False


class Deadlines:
    """Bounds awaited calls to ``timeout`` seconds each, on the event loop ``loop``."""

    __slots__ = ("_calls", "_loop", "_timeout", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        check_seconds(timeout, "timeout")
        self._loop = loop
        self._timeout = timeout
        self._calls: deque[_Call] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        """Disarm the timer (when no call is under way: one would lose its bound)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop whose calls these are."""
        return self._loop

    @property
    def timeout(self) -> float:
        """Seconds each call may take."""
        return self._timeout

    async def run(self, call: Awaitable[_T]) -> _T:
        """Await ``call`` in the current task; raise :class:`TimeoutError` (and cancel
        it) when it takes longer than the bound."""
        task = asyncio.current_task(self._loop)
        if task is None:  # a coroutine driven by hand: there is no task to cancel
            raise RuntimeError("a bounded call must run in an asyncio task")
        entry = _Call(task, self._loop.time() + self._timeout, task.cancelling())
        calls = self._calls
        calls.append(entry)
        if self._timer is None:
            self._timer = self._loop.call_at(entry.deadline, self._expire)
        try:
            return await call
        except asyncio.CancelledError:
            if entry.expired and task.uncancel() <= entry.cancelling:
                raise TimeoutError from None
            raise
        finally:
            entry.task = None
            while calls and calls[0].task is None:
                calls.popleft()

    def _expire(self) -> None:
        """Cancel every overdue call; re-arm for the oldest one left."""
        self._timer = None
        calls = self._calls
        now = self._loop.time()
        while calls:
            entry = calls[0]
            if entry.task is None:
                calls.popleft()
                continue
            if entry.deadline > now:
                self._timer = self._loop.call_at(entry.deadline, self._expire)
                return
            calls.popleft()
            entry.expired = True
            entry.task.cancel()
