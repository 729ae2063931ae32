"""The group-commit batcher behind the Redis and SQLite token states: operations that
arrive while a batch is in flight go out together, each keeps its own outcome, and an
operation a batch leaves behind (a future result) settles later without holding back
the next batch."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Sequence

import pytest

from missile.stores.batching import Batcher


class _Recorder(Batcher[str, str]):
    """Answers each operation with its upper case after ``gate`` opens; an operation
    named in ``late`` is left behind, settled by the test through ``pending``."""

    def __init__(self, late: Sequence[str] = ()) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.late = set(late)
        self.pending: dict[str, asyncio.Future[str]] = {}

    async def run_batch(self, ops: Sequence[str]) -> Sequence[str | BaseException | asyncio.Future[str]]:
        self.batches.append(list(ops))
        await self.gate.wait()
        out: list[str | BaseException | asyncio.Future[str]] = []
        for op in ops:
            if op in self.late:
                self.pending[op] = asyncio.get_running_loop().create_future()
                out.append(self.pending[op])
            elif op.startswith("fail"):
                out.append(ValueError(op))
            else:
                out.append(op.upper())
        return out


async def _until(condition: object, seconds: float = 1.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0)


def test_operations_that_arrive_during_a_batch_go_out_together() -> None:
    async def main() -> None:
        batcher = _Recorder()
        first = asyncio.ensure_future(batcher.submit("a"))
        await _until(lambda: batcher.batches)
        rest = [asyncio.ensure_future(batcher.submit(op)) for op in ("b", "c", "fail-d")]
        await asyncio.sleep(0)
        batcher.gate.set()
        assert await first == "A"
        assert await rest[0] == "B" and await rest[1] == "C"
        with pytest.raises(ValueError, match="fail-d"):
            await rest[2]
        assert batcher.batches == [["a"], ["b", "c", "fail-d"]]

    asyncio.run(main())


def test_an_operation_left_behind_settles_later_and_does_not_hold_the_next_batch() -> None:
    async def main() -> None:
        batcher = _Recorder(late=("slow", "slow-fails"))
        batcher.gate.set()
        slow = asyncio.ensure_future(batcher.submit("slow"))
        slow_fails = asyncio.ensure_future(batcher.submit("slow-fails"))
        fast = asyncio.ensure_future(batcher.submit("fast"))
        assert await fast == "FAST"
        assert await batcher.submit("next") == "NEXT"  # a batch of its own, while "slow" waits
        assert not slow.done() and not slow_fails.done()
        batcher.pending["slow"].set_result("late")
        batcher.pending["slow-fails"].set_exception(ConnectionError("node gone"))
        assert await slow == "late"
        with pytest.raises(ConnectionError, match="node gone"):
            await slow_fails
        assert ["next"] in batcher.batches

    asyncio.run(main())


def test_a_late_outcome_for_a_caller_that_gave_up_is_dropped_quietly() -> None:
    async def main() -> None:
        batcher = _Recorder(late=("slow",))
        batcher.gate.set()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await batcher.submit("slow")
        batcher.pending["slow"].set_exception(ConnectionError("node gone"))
        await asyncio.sleep(0)  # the late callback runs
        assert await batcher.submit("after") == "AFTER"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop_errors: list[dict[str, object]] = []
        with asyncio.Runner() as runner:
            runner.get_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
            runner.run(main())
            gc.collect()  # an exception never retrieved is reported when its future is collected
    assert loop_errors == []
    assert not [w for w in caught if "never retrieved" in str(w.message)]
