"""A hung Redis (SIGSTOP) against a real ``missile serve``: the server keeps accepting
and answering, requests that need the state fail with TRANSIENT_FAILURE within the
state bound, nothing is accepted unchecked, and service resumes after SIGCONT."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from subprocess import Popen

import httpx

from missile.errors import ResponseCode
from serve_helpers import client_context, error_code, establish, non_replayable_message, start_serve, stop, write_keys

#: The server's per-call state bound (the default).
STATE_TIMEOUT = 1.0


async def _timed_post(http: httpx.AsyncClient, url: str, body: bytes) -> tuple[float, bytes]:
    start = time.monotonic()
    response = await http.post(url, content=body)
    assert response.status_code == 200
    return time.monotonic() - start, response.content


async def _timed_get(http: httpx.AsyncClient, url: str) -> float:
    await asyncio.sleep(0.2)  # while the MSL requests wait on Redis
    start = time.monotonic()
    response = await http.get(url)
    assert response.status_code == 405  # answered: MSL is POST only
    return time.monotonic() - start


def test_hung_redis_fails_requests_transiently_and_never_freezes_the_server(
    tmp_path: Path, private_redis: tuple[Popen[bytes], str]
) -> None:
    redis_proc, redis_url = private_redis
    keys = write_keys(tmp_path)
    server, url = start_serve(keys / "server.json", "--redis", redis_url)
    try:
        built = client_context(keys)
        asyncio.run(establish(built, url))
        messages = [non_replayable_message(built, b"during the freeze %d" % i) for i in range(4)]
        os.kill(redis_proc.pid, signal.SIGSTOP)
        try:

            async def frozen() -> tuple[list[tuple[float, bytes]], float]:
                async with httpx.AsyncClient(timeout=30) as http:
                    posts = [_timed_post(http, url, m) for m in messages]
                    *answers, get_seconds = await asyncio.gather(*posts, _timed_get(http, url))
                return answers, get_seconds

            answers, get_seconds = asyncio.run(frozen())
        finally:
            os.kill(redis_proc.pid, signal.SIGCONT)
        assert get_seconds < 0.5
        for seconds, body in answers:
            assert error_code(built, body) is ResponseCode.TRANSIENT_FAILURE
            assert seconds < STATE_TIMEOUT + 1.0
        # Service resumes. A check sent before the freeze may still run when Redis wakes
        # (burning that message's ID: a refused message is never needed again), but no
        # message is ever accepted twice, and new messages are served.
        with httpx.Client(timeout=30) as http:
            for message in messages:
                first = error_code(built, http.post(url, content=message).content)
                assert first in (None, ResponseCode.REPLAYED)
                assert error_code(built, http.post(url, content=message).content) is ResponseCode.REPLAYED
            fresh = non_replayable_message(built, b"after the freeze")
            assert error_code(built, http.post(url, content=fresh).content) is None
    finally:
        stop(server)
