"""Replay storms against real deployments (issue: deployment-safe server).

Each deployment is what an operator would run: two ``missile serve`` processes sharing
Redis, two sharing a 3-master Redis Cluster, and one ``missile serve --workers 2`` with
its default state. 200 concurrent copies of one captured non-replayable request are
accepted exactly once; 200 concurrent copies of one renewal request yield exactly one
renewed master token; and both still hold after every server process is restarted.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx
import pytest

from missile.encoding import EncoderFormat
from serve_helpers import (
    ENV,
    client_context,
    error_code,
    establish,
    non_replayable_message,
    renewal_message,
    start_serve,
    stop,
    write_keys,
)

COPIES = 200


@dataclass
class Deployment:
    keys: Path
    args: list[tuple[str, ...]]
    env: dict[str, str]
    procs: list[Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def start(self) -> None:
        for args in self.args:
            proc, url = start_serve(self.keys / "server.json", *args, env=self.env)
            self.procs.append(proc)
            self.urls.append(url)

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)
        self.procs.clear()
        self.urls.clear()

    def restart(self) -> None:
        self.stop()
        self.start()


# The renewal window opens a second after issue: the storms below renew.
LIFETIMES = ("--renewal", "1", "--expiration", "3600")


@pytest.fixture(params=["redis", "redis-cluster", "workers-default-state"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    keys = write_keys(tmp_path)
    env = dict(ENV)
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        db = f"{url.rsplit('/', 1)[0]}/{3 + os.getpid() % 10}"
        _flush(db)
        args = [("--redis", db, *LIFETIMES)] * 2
    elif request.param == "redis-cluster":
        cluster: str = request.getfixturevalue("redis_cluster_url")
        args = [("--redis-cluster", cluster, *LIFETIMES)] * 2
    else:
        # The default state: a SQLite file under XDG_STATE_HOME, shared by the workers.
        env["XDG_STATE_HOME"] = str(tmp_path / "state-home")
        args = [("--workers", "2", *LIFETIMES)]
    deployed = Deployment(keys, args, env)
    deployed.start()
    try:
        yield deployed
    finally:
        deployed.stop()


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


async def _storm(urls: list[str], message: bytes) -> list[bytes]:
    """``COPIES`` concurrent POSTs of ``message``, spread over ``urls``."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        responses = await asyncio.gather(*(http.post(urls[i % len(urls)], content=message) for i in range(COPIES)))
    for response in responses:
        assert response.status_code == 200
    return [response.content for response in responses]


# JSON is what the reference clients send; binary what missile's clients send by default.
FORMATS = pytest.mark.parametrize("fmt", [EncoderFormat.JSON, EncoderFormat.MISSILE_CBOR], ids=["json", "binary"])


def _in_format(message: bytes, fmt: EncoderFormat) -> bytes:
    """``message``, after checking that it really travels in ``fmt``."""
    assert message[0] == (ord("{") if fmt is EncoderFormat.JSON else fmt.identifier)
    return message


@FORMATS
def test_non_replayable_request_is_accepted_once_across_processes_and_restarts(
    deployment: Deployment, fmt: EncoderFormat
) -> None:
    built = client_context(deployment.keys)
    asyncio.run(establish(built, deployment.urls[0]))
    message = _in_format(non_replayable_message(built, encoder_format=fmt), fmt)
    answers = asyncio.run(_storm(deployment.urls, message))
    accepted = [body for body in answers if error_code(built, body) is None]
    assert len(accepted) == 1
    deployment.restart()
    answers = asyncio.run(_storm(deployment.urls, message))
    assert all(error_code(built, body) is not None for body in answers)


@FORMATS
def test_renewal_request_renews_once_across_processes_and_restarts(deployment: Deployment, fmt: EncoderFormat) -> None:
    built = client_context(deployment.keys)
    asyncio.run(establish(built, deployment.urls[0]))
    time.sleep(1.2)  # the master token's renewal window opens after one second
    message, key_requests = renewal_message(built, encoder_format=fmt)
    _in_format(message, fmt)
    answers = asyncio.run(_storm(deployment.urls, message))
    renewed = [body for body in answers if error_code(built, body, key_requests) is None]
    assert len(renewed) == 1
    deployment.restart()
    answers = asyncio.run(_storm(deployment.urls, message))
    assert all(error_code(built, body, key_requests) is not None for body in answers)
