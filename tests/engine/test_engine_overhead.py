"""The engine's cheaper plumbing keeps its behaviour: the shared read timer of
:class:`TimedChannel`, the in-memory pipe, and skipping observation nobody sees
(:meth:`Observer.observes`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from tests.engine.harness import make_pair, run

from missile.engine.errors import ReadTimeout
from missile.engine.transport import TimedChannel, channel_pair
from missile.errors import MslError
from missile.observe.base import MessageObserved, Observer, Observers
from missile.observe.logs import LogObserver

CLIENT_LOG = logging.getLogger("missile.client")


# -- TimedChannel ---------------------------------------------------------------------


def test_a_stalled_read_times_out() -> None:
    async def go() -> None:
        _, server_end = channel_pair()
        timed = TimedChannel(server_end, 0.05)
        with pytest.raises(ReadTimeout) as info:
            await timed.read()
        assert info.value.error is MslError.MSL_COMMS_FAILURE
        timed.disarm()

    asyncio.run(asyncio.wait_for(go(), 10))


def test_each_read_gets_the_whole_timeout() -> None:
    """The timer armed by the first read fires at its deadline while the second read,
    started later, still has time: it must sleep on and let the data arrive."""

    async def go() -> None:
        client_end, server_end = channel_pair()
        timed = TimedChannel(server_end, 1.0)
        await client_end.write(b"first")
        assert await timed.read() == b"first"
        await asyncio.sleep(0.6)  # the second read starts well after the first
        loop = asyncio.get_running_loop()
        # The data comes after the first read's deadline and before the second's.
        loop.call_later(0.6, client_end._out.put_nowait, b"second")
        assert await timed.read() == b"second"
        timed.disarm()

    asyncio.run(asyncio.wait_for(go(), 20))


def test_a_read_after_a_slow_one_still_times_out() -> None:
    async def go() -> None:
        client_end, server_end = channel_pair()
        timed = TimedChannel(server_end, 0.3)
        asyncio.get_running_loop().call_later(0.2, client_end._out.put_nowait, b"late")
        assert await timed.read() == b"late"
        with pytest.raises(ReadTimeout):
            await timed.read()
        await timed.close()

    asyncio.run(asyncio.wait_for(go(), 10))


def test_a_cancellation_from_outside_is_not_a_timeout() -> None:
    async def go() -> None:
        _, server_end = channel_pair()
        timed = TimedChannel(server_end, 30.0)
        reading = asyncio.ensure_future(timed.read())
        await asyncio.sleep(0)  # let the read start and wait
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert reading.cancelled()
        timed.disarm()

    asyncio.run(asyncio.wait_for(go(), 10))


def test_the_task_is_not_left_cancelled_after_a_timeout() -> None:
    """As with asyncio.timeout, the timer withdraws the cancellation it requested: the
    task goes on normally after handling the ReadTimeout."""

    async def go() -> None:
        _, server_end = channel_pair()
        timed = TimedChannel(server_end, 0.05)
        with pytest.raises(ReadTimeout):
            await timed.read()
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await asyncio.sleep(0.01)  # not cancelled
        timed.disarm()

    asyncio.run(asyncio.wait_for(go(), 10))


def test_the_pipe_delivers_in_order_and_ends() -> None:
    async def go() -> None:
        a, b = channel_pair()
        reading = asyncio.ensure_future(b.read())
        await asyncio.sleep(0)
        await a.write(b"one")
        await a.write(b"two")
        await a.finish()
        assert await reading == b"one"
        assert await b.read(2) == b"tw"
        assert await b.read() == b"o"
        assert await b.read() == b""
        assert await b.read() == b""

    asyncio.run(asyncio.wait_for(go(), 10))


# -- observers that observe nothing ------------------------------------------------------


@contextmanager
def _client_log_level(level: int) -> Iterator[None]:
    before = CLIENT_LOG.level
    CLIENT_LOG.setLevel(level)
    try:
        yield
    finally:
        CLIENT_LOG.setLevel(before)


def test_the_default_observer_observes_only_while_its_logger_takes_info() -> None:
    observer = LogObserver()
    with _client_log_level(logging.WARNING):
        assert not observer.observes("client")
    with _client_log_level(logging.INFO):
        assert observer.observes("client")


def test_observers_observe_unless_they_say_otherwise() -> None:
    """The base class answers True (a subclass overriding message() gets every event),
    and a group observes what any of its members observes."""

    class Counting(Observer):
        def message(self, event: MessageObserved) -> None:
            pass

    with _client_log_level(logging.WARNING):
        assert Observer().observes("client")
        assert Counting().observes("client")
        assert not Observers([LogObserver()]).observes("client")
        assert Observers([LogObserver(), Counting()]).observes("client")


class _Declared(Observer):
    """Records what the engine tells it; ``observing`` is what it declares."""

    def __init__(self, observing: bool) -> None:
        self.observing = observing
        self.events: list[MessageObserved] = []

    def observes(self, role: str) -> bool:
        return self.observing

    def message(self, event: MessageObserved) -> None:
        self.events.append(event)


@pytest.mark.parametrize("observing", [True, False])
def test_the_engine_builds_events_only_for_an_observer_that_observes(observing: bool) -> None:
    """Both ends: an observer that declares it observes nothing is told nothing (the
    engine skipped the event), one that observes is told of each message."""
    client_observer, server_observer = _Declared(observing), _Declared(observing)

    async def go() -> None:
        p = make_pair("PSK", "SYMMETRIC_WRAPPED", server_kwargs={"observer": server_observer},
                      client_kwargs={"observer": client_observer})  # fmt: skip
        assert (await p.client.request(b"first")).payload.endswith(b"first (client1/-)")
        assert (await p.client.request(b"second")).payload.endswith(b"second (client1/-)")

    run(go())
    assert len(client_observer.events) == (2 if observing else 0)
    assert len(server_observer.events) == (2 if observing else 0)
