"""One timer bounding many calls (missile.deadlines): each call gets its
own bound, counted from its own start; overdue calls are cancelled and raise
TimeoutError; other cancellations pass through untouched."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from missile.deadlines import Deadlines

#: Slack for a loaded 2-core machine: a bound is checked to hold, never to be tight.
MARGIN_S = 2.0


class Hung:
    """An awaitable that never completes and notes its cancellation."""

    def __init__(self) -> None:
        self.cancelled = False

    async def wait(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def answer(value: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return value


def test_fast_calls_return_their_results() -> None:
    async def main() -> list[int]:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.5)
        return await asyncio.gather(*(deadlines.run(answer(i, 0.001 * (i % 3))) for i in range(50)))

    assert asyncio.run(main()) == list(range(50))


def test_a_hung_call_is_cancelled_after_its_bound() -> None:
    async def main() -> tuple[float, bool]:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.1)
        hung = Hung()
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await deadlines.run(hung.wait())
        return time.monotonic() - start, hung.cancelled

    elapsed, cancelled = asyncio.run(main())
    assert 0.1 <= elapsed < 0.1 + MARGIN_S
    assert cancelled


def test_each_call_is_bounded_from_its_own_start() -> None:
    """A hung call that starts after another (whose timer is the one armed) still gets
    its whole bound, and fails once it is past."""

    async def main() -> tuple[float, list[int]]:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.2)
        first = asyncio.ensure_future(deadlines.run(answer(1, 0.05)))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await deadlines.run(Hung().wait())
        elapsed = time.monotonic() - start
        later = await asyncio.gather(*(deadlines.run(answer(i)) for i in range(3)))
        return elapsed, [await first, *later]

    elapsed, results = asyncio.run(main())
    assert 0.2 <= elapsed < 0.2 + MARGIN_S
    assert results == [1, 0, 1, 2]


def test_only_the_overdue_calls_fail() -> None:
    async def main() -> list[object]:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.15)
        calls = [deadlines.run(Hung().wait() if i % 2 else answer(i, 0.01)) for i in range(10)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert [type(r) for r in results[1::2]] == [TimeoutError] * 5
    assert results[0::2] == [0, 2, 4, 6, 8]


def test_a_finished_call_never_cancels_its_task_later() -> None:
    """The timer armed for a call that finished early fires while the task does other
    work: the task must not be cancelled."""

    async def main() -> int:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.05)
        value = await deadlines.run(answer(7))
        await asyncio.sleep(0.2)  # past the first call's deadline, outside any call
        return value + await deadlines.run(answer(1))

    assert asyncio.run(main()) == 8


def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    async def main() -> tuple[bool, bool]:
        deadlines = Deadlines(asyncio.get_running_loop(), 5.0)
        hung = Hung()
        task = asyncio.ensure_future(deadlines.run(hung.wait()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled(), hung.cancelled

    assert asyncio.run(main()) == (True, True)


def test_outside_a_task_is_refused() -> None:
    async def main() -> None:
        deadlines = Deadlines(asyncio.get_running_loop(), 1.0)
        caught: list[BaseException] = []

        def drive_by_hand() -> None:
            coro = deadlines.run(asyncio.get_running_loop().create_future())
            try:
                coro.send(None)
            except BaseException as exc:  # the test inspects it
                caught.append(exc)
            coro.close()

        asyncio.get_running_loop().call_soon(drive_by_hand)
        await asyncio.sleep(0.01)
        assert len(caught) == 1 and isinstance(caught[0], RuntimeError)

    asyncio.run(main())


@pytest.mark.parametrize("bound", [0, -1.0, math.nan, math.inf])
def test_the_bound_must_be_positive_and_finite(bound: float) -> None:
    # NaN passes a "<= 0" check and infinity bounds nothing: both are refused like zero.
    async def main() -> None:
        with pytest.raises(ValueError, match="positive, finite"):
            Deadlines(asyncio.get_running_loop(), bound)

    asyncio.run(main())



def test_close_disarms_the_timer() -> None:
    """A closed Deadlines leaves no timer behind in the loop; used again, it re-arms."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop, 0.05)
        value = await deadlines.run(answer(1))
        deadlines.close()
        assert deadlines._timer is None
        with pytest.raises(TimeoutError):
            await deadlines.run(Hung().wait())
        return value

    assert asyncio.run(main()) == 1
