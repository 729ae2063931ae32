"""The `missile` command through its real entry point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import vectorlib
from missile.cli import main

CLI = [sys.executable, "-m", "missile.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory = tmp_path_factory.mktemp("keys")
    subprocess.run([*CLI, "keygen", str(directory)], check=True, env=ENV, capture_output=True)
    for name in ("server.json", "client.json"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    port = _free_port()
    state = directory / "server-state.db"
    proc = subprocess.Popen(
        [*CLI, "serve", "--keys", str(directory / "server.json"), "--port", str(port), "--state", str(state)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port, proc)
        yield directory, f"http://127.0.0.1:{port}/any/path"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _send(url: str, keys: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, "send", url, "--keys", str(keys), *args], input=stdin, env=ENV, capture_output=True)


def test_send_data_and_stdin(deployment: Any) -> None:
    directory, url = deployment
    out = _send(url, directory / "client.json", "--data", "hello there")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hello there"
    payload = bytes(range(256)) * 1000
    out = _send(url, directory / "client.json", "--file", "-", stdin=payload)
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload


@pytest.mark.parametrize(
    ("scheme", "mechanism"),
    [("SYMMETRIC_WRAPPED", None), ("ASYMMETRIC_WRAPPED", "JWE_RSA"), ("DIFFIE_HELLMAN", None), ("JWE_LADDER", None)],
)
def test_send_with_each_key_exchange(deployment: Any, scheme: str, mechanism: str | None) -> None:
    directory, url = deployment
    args = ["--key-exchange", scheme, "--data", scheme, "-v"]
    if mechanism:
        args += ["--mechanism", mechanism]
    out = _send(url, directory / "client.json", *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout == scheme.encode()
    assert f"keyx={scheme}".encode() in out.stderr


def test_send_with_user_and_state_keeps_session(deployment: Any, tmp_path: Path) -> None:
    directory, url = deployment
    server = json.loads((directory / "server.json").read_text())
    user = server["users"][0]
    state = tmp_path / "client.db"
    first = _send(url, directory / "client.json", "--state", str(state), "--user", user["email"],
                  "--password", user["password"], "--data", "u", "-v")
    assert first.returncode == 0, first.stderr
    assert b"useridtoken=yes" in first.stderr
    assert b"keyx=JWK_LADDER" in first.stderr
    second = _send(url, directory / "client.json", "--state", str(state), "--data", "again", "-v")
    assert second.returncode == 0, second.stderr
    assert b"keyx=-" in second.stderr  # the session survived the client restart
    assert state.stat().st_mode & 0o777 == 0o600


def test_send_failure_exits_non_zero_with_msl_error(deployment: Any) -> None:
    directory, url = deployment
    out = _send(url, directory / "client.json", "--user", "user@example.com", "--password", "wrong", "--data", "x")
    assert out.returncode == 3  # an MSL error from the peer
    assert b"EMAILPASSWORD_INCORRECT" in out.stderr
    assert url.encode() in out.stderr
    out = _send("http://127.0.0.1:9/", directory / "client.json", "--data", "x")
    assert out.returncode == 4  # a communication failure
    assert b"MSL_COMMS_FAILURE" in out.stderr
    assert b"http://127.0.0.1:9/" in out.stderr


def _inspect(path: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["inspect", str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def _token_view(token: dict[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any] | None:
    return None if token is None else {k: token.get(k) for k in fields}


@pytest.mark.parametrize("stem", vectorlib.stems(1, 56))
def test_inspect_message_vectors(stem: str) -> None:
    vector = vectorlib.load(stem)
    expected = vector["expected"]
    got = _inspect(vectorlib.VECTOR_DIR / f"{stem}.json")
    assert got["kind"] == expected["kind"]
    if expected["kind"] == "error":
        for key in ("messageid", "errorcode", "internalcode"):
            assert got["errorheader"][key] == expected["errorheader"][key]
        return
    header, exp = got["header"], expected["header"]
    for key in ("messageid", "nonreplayableid", "renewable", "handshake"):
        assert header[key] == exp[key], key
    mt_fields = ("identity", "serialnumber", "sequencenumber")
    assert header["mastertoken"] == _token_view(exp["mastertoken"], mt_fields)
    assert header["useridtoken"] == _token_view(exp["useridtoken"], ("serialnumber", "mtserialnumber", "user"))
    if exp["keyresponsedata"] is None:
        assert header["keyresponsedata"] is None
    else:
        assert header["keyresponsedata"]["scheme"] == exp["keyresponsedata"]["scheme"]
        assert header["keyresponsedata"]["mastertoken"] == _token_view(exp["keyresponsedata"]["mastertoken"], mt_fields)
    wanted = sorted(({"name": t["name"], "data_b64": t["data_b64"]} for t in exp["servicetokens"]),
                    key=lambda t: t["name"])
    assert header["servicetokens"] == wanted
    assert got["payload_b64"] == (expected.get("payload_b64") or "")


@pytest.mark.parametrize("stem", vectorlib.stems(57, 63))
def test_inspect_token_vectors(stem: str) -> None:
    vector = vectorlib.load(stem)
    token_type = vector["token_type"]
    got = _inspect(vectorlib.VECTOR_DIR / f"{stem}.json", "--token", token_type)[token_type]
    exp = vector["expected"][token_type]
    for key, value in got.items():
        if key in exp:
            assert value == exp[key], key


def test_inspect_raw_capture_via_subprocess(tmp_path: Path) -> None:
    vector = vectorlib.load("01_a_psk_request_encrypted")
    capture = tmp_path / "capture.bin"
    capture.write_bytes(vectorlib.b64(vector["message_b64"]))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(vector["keys"]))
    out = subprocess.run([*CLI, "inspect", str(capture), "--keys", str(keys), "--json"], env=ENV, capture_output=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["header"]["messageid"] == vector["expected"]["header"]["messageid"]
    capture.write_bytes(b'{"headerdata":"AAAA","signature":""}')
    bad = subprocess.run([*CLI, "inspect", str(capture), "--keys", str(keys)], env=ENV, capture_output=True)
    assert bad.returncode == 3
    assert b"MESSAGE_ENTITY_NOT_FOUND" in bad.stderr
    assert str(capture).encode() in bad.stderr


def test_send_large_file_streams_without_deadlock(deployment: Any, tmp_path: Path) -> None:
    """Large enough to fill the TCP buffers both ways: the echo server reads the whole
    request (spooling it) before replying, so an HTTP/1.1 client that sends everything
    before reading cannot deadlock with it."""
    directory, url = deployment
    big = tmp_path / "big.bin"
    data = os.urandom(24 * 1024 * 1024)
    big.write_bytes(data)
    out = _send(url, directory / "client.json", "--file", str(big))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == data
