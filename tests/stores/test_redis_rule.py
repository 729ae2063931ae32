"""The Redis check script applies exactly the non-replayable ID rule of
:func:`missile.tokens.state.check_non_replayable_id` (it is written in Lua so that a
message costs one round trip): a property test over the whole ID range, against a
real Redis."""

from __future__ import annotations

import asyncio

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError
from missile.stores.redis_state import RedisTokenState
from missile.tokens.state import NON_REPLAYABLE_WINDOW, check_non_replayable_id

IDS = st.one_of(
    st.integers(0, MAX_LONG_VALUE),
    st.integers(0, 2 * NON_REPLAYABLE_WINDOW),
    st.integers(MAX_LONG_VALUE - 2 * NON_REPLAYABLE_WINDOW, MAX_LONG_VALUE),
)


# The key is reset for every example, so the function-scoped fixtures are safe to share.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(largest=IDS, candidate=IDS)
def test_check_script_agrees_with_the_rule(redis_url: str, redis_prefix: str, largest: int, candidate: int) -> None:
    seed = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}{{{b'id'.hex()}}}"
    try:
        seed.delete(key)
        if largest:
            seed.hset(key, "nr:7", str(largest))
        verdict = asyncio.run(_accept(redis_url, redis_prefix, candidate))
        assert verdict is check_non_replayable_id(largest, candidate)
        stored = int(seed.hget(key, "nr:7") or 0)
        assert stored == (candidate if verdict is None else largest)
    finally:
        seed.close()


async def _accept(url: str, prefix: str, candidate: int) -> object:
    state = RedisTokenState(url, prefix=prefix)
    try:
        return await state.accept_non_replayable_id("id", 7, candidate)
    finally:
        await state.aclose()


def test_scripts_are_loaded_again_after_redis_forgets_them(redis_url: str, redis_prefix: str) -> None:
    """A restarted or flushed Redis answers NOSCRIPT: the state loads its scripts again
    and sends only the commands that did not run, so no ID is checked twice."""

    async def go() -> None:
        state = RedisTokenState(redis_url, prefix=redis_prefix)
        try:
            assert await state.accept_non_replayable_id("id", 7, 1) is None
            await state.client.script_flush()
            assert await state.accept_non_replayable_id("id", 7, 2) is None  # ran exactly once
            assert await state.accept_non_replayable_id("id", 7, 2) is MslError.MESSAGE_REPLAYED
            await state.client.script_flush()
            await state.record_new_master_token("id", 8)
            snapshot, verdict = await state.check_master_token("id", 8, 1)
            assert (snapshot.newest_serial, snapshot.sequence, verdict) == (8, 0, None)
        finally:
            await state.aclose()

    asyncio.run(go())
