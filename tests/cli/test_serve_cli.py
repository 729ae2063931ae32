"""``missile serve`` start-up: durable state by default, refused option combinations,
the Redis persistence warning, and start-up errors as one line (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import httpx
import pytest
import redis

from missile.cli.keys import generate, write_private
from missile.encoding import EncoderFormat
from missile.errors import ResponseCode
from missile.messages import MessageWriter
from missile.messages.builder import build_request
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.profiles import KeyFileContext
from process_helpers import terminate, wait_listening
from redis_helpers import free_port, node_process, start_redis_cluster, stop_redis_cluster
from serve_helpers import client_context, error_code, establish, non_replayable_message

CLI = [sys.executable, "-m", "missile.cli"]
WAIT_S = 20.0
STARTED = "missile serve: "
BINARY_ID = EncoderFormat.MISSILE_CBOR.identifier
JSON_ONLY = MessageCapabilities.of(["GZIP", "LZW"], ["en-US"], ["JSON"])


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir()
    server, client = generate("server1", "client1")
    write_private(directory / "server.json", server)
    write_private(directory / "client.json", client)
    return directory


def _env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    """A private HOME (and no XDG_STATE_HOME unless given) so the default state path
    lands in the test's directory."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HOME": str(tmp_path / "home")}
    env.pop("XDG_STATE_HOME", None)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A ``missile serve`` expected to exit by itself (a refusal or a start-up error)."""
    return subprocess.run([*CLI, "serve", *args], env=env, capture_output=True, text=True, timeout=60)


@contextmanager
def _serving(keys: Path, env: dict[str, str], *args: str) -> Iterator[tuple[str, list[str]]]:
    """A running ``missile serve``; yields its URL and the stderr lines up to and
    including its start-up line."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--keys", str(keys / "server.json"), "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith(STARTED):
            line = proc.stderr.readline()  # bounded: the process prints or exits
            assert line, f"missile serve exited: {lines}"
            lines.append(line.rstrip("\n"))
        wait_listening(proc, port, lambda: "missile serve exited", WAIT_S)
        yield f"http://127.0.0.1:{port}/", lines
    finally:
        terminate(proc)


def _establish(built: KeyFileContext, url: str) -> None:
    asyncio.run(establish(built, url))


# -- durable state by default ---------------------------------------------------------------


def test_default_state_is_sqlite_and_a_replay_after_restart_is_refused(keys: Path, tmp_path: Path) -> None:
    env = _env(tmp_path, XDG_STATE_HOME=str(tmp_path / "xdg"))
    state = tmp_path / "xdg" / "missile" / "server-state.db"
    built = client_context(keys)
    with _serving(keys, env) as (url, lines):
        assert f"state sqlite {state}" in lines[-1]
        assert state.is_file()
        assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
        _establish(built, url)
        message = non_replayable_message(built)
        assert error_code(built, httpx.post(url, content=message, timeout=WAIT_S).content) is None
    with _serving(keys, env) as (url, _):
        replay = httpx.post(url, content=message, timeout=WAIT_S)
        assert error_code(built, replay.content) is ResponseCode.REPLAYED


def test_default_state_falls_back_to_home(keys: Path, tmp_path: Path) -> None:
    state = tmp_path / "home" / ".local" / "state" / "missile" / "server-state.db"
    with _serving(keys, _env(tmp_path)) as (_, lines):
        assert f"state sqlite {state}" in lines[-1]
        assert state.is_file()


def test_start_up_line_names_address_workers_state_and_insecure_schemes(keys: Path, tmp_path: Path) -> None:
    with _serving(keys, _env(tmp_path), "--state", ":memory:", "--allow-insecure", "NONE") as (url, lines):
        assert lines[-1] == (
            f"missile serve: {url}, 1 worker, state memory (lost on restart), insecure schemes allowed: NONE"
        )


def test_memory_state_with_several_workers_is_refused(keys: Path, tmp_path: Path) -> None:
    out = _run(["--keys", str(keys / "server.json"), "--state", ":memory:", "--workers", "2"], _env(tmp_path))
    assert out.returncode == 2
    assert "Usage:" in out.stderr
    assert "--state :memory:" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "backends",
    [("--state", "s.db", "--redis", "redis://127.0.0.1:1/0"), ("--state", "s.db", "--redis-cluster", "redis://h:1")],
)
def test_state_backends_are_exclusive(keys: Path, tmp_path: Path, backends: tuple[str, ...]) -> None:
    out = _run(["--keys", str(keys / "server.json"), *backends], _env(tmp_path))
    assert out.returncode == 2
    assert "exclusive" in out.stderr


# -- encoder format ---------------------------------------------------------------------------


def _first_byte_of_answer(built: KeyFileContext, url: str, capabilities: MessageCapabilities) -> int:
    request = build_request(built.ctx, encoder_format=EncoderFormat.JSON, capabilities=capabilities)
    writer = MessageWriter(request.header, request.payload_crypto_context)
    body = httpx.post(url, content=writer.header_bytes() + writer.write(b"hi") + writer.close(), timeout=WAIT_S)
    assert error_code(built, body.content) is None
    return body.content[0]


@pytest.mark.parametrize(
    ("option", "answer"), [((), BINARY_ID), (("--prefer-binary",), BINARY_ID), (("--prefer-json",), ord("{"))]
)
def test_answers_binary_to_clients_that_read_it_unless_told_json(
    keys: Path, tmp_path: Path, option: tuple[str, ...], answer: int
) -> None:
    built = client_context(keys)
    with _serving(keys, _env(tmp_path), "--state", ":memory:", *option) as (url, _):
        _establish(built, url)
        assert _first_byte_of_answer(built, url, DEFAULT_CAPABILITIES) == answer
        # A client that reads only JSON (the Java and JavaScript references) gets JSON.
        assert _first_byte_of_answer(built, url, JSON_ONLY) == ord("{")


# -- Redis ----------------------------------------------------------------------------------


def test_redis_without_persistence_is_warned_about(keys: Path, tmp_path: Path, redis_url: str) -> None:
    # The session's redis-server runs with --save "" --appendonly no.
    with _serving(keys, _env(tmp_path), "--redis", redis_url) as (_, lines):
        warnings = [line for line in lines if "persistence" in line]
        assert len(warnings) == 1
        assert warnings[0].startswith("missile: warning: Redis at ")
        assert f"state redis {redis_url}" in lines[-1]


def test_redis_persistence_on_or_unknown(keys: Path, tmp_path: Path, redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    try:
        # Append-only file on: nothing to warn about.
        admin.config_set("appendonly", "yes")
        with _serving(keys, _env(tmp_path), "--redis", redis_url) as (_, lines):
            assert not any("persistence" in line for line in lines)
        admin.config_set("appendonly", "no")
        # A user without CONFIG rights: persistence cannot be checked, and the line says so
        # (without the password).
        admin.acl_setuser("nocfg", enabled=True, passwords=["+pw-not-shown"], keys="*", commands=["+@all", "-config"])
        url = redis_url.replace("redis://", "redis://nocfg:pw-not-shown@")
        with _serving(keys, _env(tmp_path), "--redis", url) as (_, lines):
            unknown = [line for line in lines if "persistence" in line]
            assert len(unknown) == 1 and "could not check" in unknown[0]
            assert all("pw-not-shown" not in line for line in lines)
    finally:
        admin.config_set("appendonly", "no")
        admin.acl_deluser("nocfg")
        admin.close()


# -- Redis Cluster --------------------------------------------------------------------------


@contextmanager
def _cluster_nodes(cluster_url: str) -> Iterator[list[redis.Redis]]:
    """A plain client per node of the cluster at ``cluster_url``."""
    cluster = redis.RedisCluster.from_url(cluster_url, socket_timeout=5)
    try:
        nodes = [redis.Redis(host=node.host, port=node.port, socket_timeout=5) for node in cluster.get_nodes()]
    finally:
        cluster.close()
    try:
        yield nodes
    finally:
        for node in nodes:
            node.close()


def test_redis_cluster_without_persistence_is_warned_about(keys: Path, tmp_path: Path, redis_cluster_url: str) -> None:
    # The test cluster's nodes run with --save "" --appendonly no: every node is named.
    with _serving(keys, _env(tmp_path), "--redis-cluster", redis_cluster_url) as (_, lines):
        warnings = [line for line in lines if "persistence" in line]
        assert len(warnings) == 1
        assert warnings[0].startswith("missile: warning: Redis Cluster at ")
        assert "off on 3 node(s)" in warnings[0]
        assert f"state redis cluster {redis_cluster_url}" in lines[-1]


def test_redis_cluster_persistence_on_or_unknown(keys: Path, tmp_path: Path, redis_cluster_url: str) -> None:
    with _cluster_nodes(redis_cluster_url) as nodes:
        try:
            for node in nodes:
                node.config_set("appendonly", "yes")
            with _serving(keys, _env(tmp_path), "--redis-cluster", redis_cluster_url) as (_, lines):
                assert not any("persistence" in line for line in lines)
            # One node with persistence off again: that node alone is named.
            nodes[0].config_set("appendonly", "no")
            with _serving(keys, _env(tmp_path), "--redis-cluster", redis_cluster_url) as (_, lines):
                (warning,) = [line for line in lines if "persistence" in line]
                assert "off on 1 node(s)" in warning
                assert f":{nodes[0].get_connection_kwargs()['port']}" in warning
            # A user without CONFIG rights (ACLs are per node): not checkable, and said
            # so without the password.
            for node in nodes:
                node.acl_setuser("nocfg", enabled=True, passwords=["+pw-not-shown"], keys="*",
                                 commands=["+@all", "-config"])  # fmt: skip
            url = redis_cluster_url.replace("redis://", "redis://nocfg:pw-not-shown@")
            with _serving(keys, _env(tmp_path), "--redis-cluster", url) as (_, lines):
                (unknown,) = [line for line in lines if "persistence" in line]
                assert "could not check" in unknown and "on 3 node(s)" in unknown
                assert all("pw-not-shown" not in line for line in lines)
        finally:
            for node in nodes:
                node.config_set("appendonly", "no")
                node.acl_deluser("nocfg")


@pytest.mark.parametrize("option", ["--redis", "--redis-cluster"])
def test_malformed_redis_url_is_one_line_without_the_password(keys: Path, tmp_path: Path, option: str) -> None:
    # Too malformed to find the password in: the URL is not shown at all.
    url = "redis://:secret-pw@[::1"
    line = _one_line_error(_run(["--keys", str(keys / "server.json"), option, url], _env(tmp_path)))
    assert "bad Redis" in line and "<malformed URL>" in line
    assert "secret-pw" not in line


def test_unreachable_redis_cluster_is_one_line(keys: Path, tmp_path: Path) -> None:
    url = f"redis://:secret-pw@127.0.0.1:{free_port()}"
    line = _one_line_error(_run(["--keys", str(keys / "server.json"), "--redis-cluster", url], _env(tmp_path)))
    assert "cannot use Redis Cluster" in line
    assert "secret-pw" not in line


def test_a_redis_cluster_that_is_down_is_one_line(keys: Path, tmp_path: Path, redis_cluster_url: str) -> None:
    """A master stopped for longer than ``cluster-node-timeout`` (2 s here) and no
    replica to take over: the other nodes answer CLUSTERDOWN to every command, so the
    server refuses to start rather than answer every request with TRANSIENT_FAILURE."""
    procs, url = start_redis_cluster(tmp_path / "cluster")
    try:
        with _cluster_nodes(url) as nodes:
            url_node = next(node for node in nodes if str(node.get_connection_kwargs()["port"]) == url.rsplit(":")[-1])
            other = next(node for node in nodes if node is not url_node)
            stopped = node_process(procs, int(other.get_connection_kwargs()["port"]))
            os.kill(stopped.pid, signal.SIGSTOP)
            deadline = time.monotonic() + WAIT_S
            while b"cluster_state:ok" in url_node.execute_command("CLUSTER", "INFO"):
                assert time.monotonic() < deadline, "the cluster never noticed the stopped master"
                time.sleep(0.2)
        line = _one_line_error(_run(["--keys", str(keys / "server.json"), "--redis-cluster", url], _env(tmp_path)))
        assert "is down" in line
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        stop_redis_cluster(procs)


# -- start-up errors ------------------------------------------------------------------------


def _one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("missile: ")
    return lines[0]


def test_missing_key_file_is_one_line(tmp_path: Path) -> None:
    line = _one_line_error(_run(["--keys", str(tmp_path / "nope.json")], _env(tmp_path)))
    assert "not found" in line


def test_bad_key_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    assert "bad key file" in _one_line_error(_run(["--keys", str(bad)], _env(tmp_path)))
    bad.write_text('{"role": "server", "identity": 3}')
    assert "bad key file" in _one_line_error(_run(["--keys", str(bad)], _env(tmp_path)))


@pytest.mark.parametrize("where", ["directory", "missing-directory", "not-sqlite"])
def test_unusable_state_path_is_one_line(keys: Path, tmp_path: Path, where: str) -> None:
    if where == "directory":
        state = tmp_path / "a-directory"
        state.mkdir()
    elif where == "missing-directory":
        state = tmp_path / "no" / "such" / "state.db"
    else:
        state = tmp_path / "text.db"
        state.write_text("this is not a database, it is a text file of some length" * 50)
    line = _one_line_error(_run(["--keys", str(keys / "server.json"), "--state", str(state)], _env(tmp_path)))
    assert str(state) in line


def test_uncreatable_default_state_directory_is_one_line(keys: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".local").write_text("a file where the state directory should go")
    line = _one_line_error(_run(["--keys", str(keys / "server.json")], _env(tmp_path)))
    assert "cannot create state directory" in line


def test_an_address_in_use_is_one_line(keys: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--keys", str(keys / "server.json"), "--state", ":memory:", "--port", str(port)]
        line = _one_line_error(_run(args, _env(tmp_path)))
    assert line == f"missile: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_an_address_not_of_this_machine_is_one_line(keys: Path, tmp_path: Path) -> None:
    args = ["--keys", str(keys / "server.json"), "--state", ":memory:", "--host", "192.0.2.1"]  # TEST-NET-1
    assert "cannot listen on 192.0.2.1:8080" in _one_line_error(_run(args, _env(tmp_path)))


@pytest.mark.parametrize(
    ("option", "value"),
    [("--head-timeout", "nan"), ("--read-timeout", "nan"), ("--state-timeout", "inf"), ("--keep-alive-timeout", "0"),
     ("--renewal", "-1"), ("--expiration", "0"), ("--port", "0"), ("--port", "65536")],
)  # fmt: skip
def test_option_values_that_bound_nothing_are_usage_errors(keys: Path, tmp_path: Path, option: str, value: str) -> None:
    out = _run(["--keys", str(keys / "server.json"), "--state", ":memory:", option, value], _env(tmp_path))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and STARTED not in out.stderr
    assert option in out.stderr


def test_unreachable_redis_is_one_line(keys: Path, tmp_path: Path) -> None:
    url = f"redis://:secret-pw@127.0.0.1:{free_port()}/0"
    line = _one_line_error(_run(["--keys", str(keys / "server.json"), "--redis", url], _env(tmp_path)))
    assert "cannot reach Redis" in line
    assert "secret-pw" not in line


@pytest.mark.parametrize(
    ("flag", "handler"),
    [
        ((), "missile.observe.handlers.BufferedStreamHandler"),
        (("--log-buffer",), "missile.observe.handlers.BufferedStreamHandler"),
        (("--no-log-buffer",), "logging.StreamHandler"),
        (("MISSILE_LOG_BUFFER=0",), "logging.StreamHandler"),
    ],
)
def test_log_buffer_option_reaches_the_log_config(
    keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: tuple[str, ...], handler: str
) -> None:
    import uvicorn
    from click.testing import CliRunner

    from missile.cli import main

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    settings = dict(f.split("=", 1) for f in flag if "=" in f)
    options = [f for f in flag if "=" not in f]
    args = ["serve", "--keys", str(keys / "server.json"), "--state", str(tmp_path / "s.db"), *options]
    # serve exports its settings to the environment for the workers: restore it after.
    env = _env(tmp_path, MISSILE_LOG_BUFFER=settings.get("MISSILE_LOG_BUFFER"))
    with mock.patch.dict(os.environ, env, clear=True):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    log_config = seen["log_config"]
    assert isinstance(log_config, dict)
    assert log_config["handlers"]["stderr"]["class"] == handler
