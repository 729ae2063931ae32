"""Command-line care: keygen's overwrite guard, passwords kept out of argv, choices in
--help, no silent stdin, exit statuses, message capture for ``inspect``, inspection
without keys, progress on a terminal and ``-v`` after a handshake.

Each behaviour runs the real command against a real ``missile serve`` on loopback.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import vectorlib
from missile.cli import ENTITY_AUTH_SCHEMES, KEY_EXCHANGE_SCHEMES, MECHANISMS, main
from serve_helpers import CLI, ENV, start_serve, stop, write_keys

CLOSED_URL = "http://127.0.0.1:9/"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Keys and a server that also accepts NONE entity auth (to force a handshake)."""
    directory = write_keys(tmp_path_factory.mktemp("keys"))
    proc, url = start_serve(directory / "server.json", "--state", ":memory:", "--allow-insecure", "NONE")
    try:
        yield directory, url
    finally:
        stop(proc)


def _cli(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], input=stdin, env=env or ENV, capture_output=True, timeout=120)


def _user(directory: Path) -> dict[str, str]:
    user: dict[str, str] = json.loads((directory / "server.json").read_text())["users"][0]
    return user


# keygen


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert _cli("keygen", str(tmp_path)).returncode == 0
    before = (tmp_path / "server.json").read_bytes()
    out = _cli("keygen", str(tmp_path))
    assert out.returncode == 1
    err = out.stderr.decode()
    assert str(tmp_path / "server.json") in err and "--force" in err and "Traceback" not in err
    assert (tmp_path / "server.json").read_bytes() == before
    assert _cli("keygen", str(tmp_path), "--force").returncode == 0
    assert (tmp_path / "server.json").read_bytes() != before
    assert (tmp_path / "server.json").stat().st_mode & 0o777 == 0o600


def test_keygen_refuses_when_one_file_exists(tmp_path: Path) -> None:
    (tmp_path / "client.json").write_text("{}")
    out = _cli("keygen", str(tmp_path))
    assert out.returncode == 1
    assert str(tmp_path / "client.json") in out.stderr.decode()
    assert not (tmp_path / "server.json").exists()


# --help, choices


def test_help_lists_exit_statuses_and_choices() -> None:
    top = CliRunner().invoke(main, ["--help"])
    assert "Exit status" in top.output
    for line in ("1  local configuration", "2  usage", "3  MSL error", "4  communication failure"):
        assert line in top.output
    send = CliRunner().invoke(main, ["send", "--help"]).output
    for name in (*ENTITY_AUTH_SCHEMES, *KEY_EXCHANGE_SCHEMES, *MECHANISMS):
        assert name in send
    assert "MISSILE_PASSWORD" in send and "ps" in send


def test_choices_match_the_registries() -> None:
    from missile.entityauth import ENTITY_AUTH_SCHEMES as REGISTRY
    from missile.keyx.requests import KEY_EXCHANGE_SCHEMES as REQUESTS

    assert set(ENTITY_AUTH_SCHEMES) <= set(REGISTRY.names())
    assert KEY_EXCHANGE_SCHEMES == REQUESTS


def test_unknown_scheme_is_a_usage_error(tmp_path: Path) -> None:
    keys = write_keys(tmp_path) / "client.json"
    out = _cli("send", CLOSED_URL, "--keys", str(keys), "--key-exchange", "FOO", "--data", "x")
    assert out.returncode == 2
    assert b"JWK_LADDER" in out.stderr  # click lists the choices


# stdin


def test_stdin_is_never_read_silently(tmp_path: Path) -> None:
    keys = write_keys(tmp_path) / "client.json"
    out = _cli("send", CLOSED_URL, "--keys", str(keys), stdin=b"payload")
    assert out.returncode == 2
    assert b"--file -" in out.stderr
    assert out.stdout == b""


def test_file_dash_reads_stdin(deployment: tuple[Path, str]) -> None:
    directory, url = deployment
    out = _cli("send", url, "--keys", str(directory / "client.json"), "--file", "-", stdin=b"from stdin")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"from stdin"


# passwords


def test_password_from_environment(deployment: tuple[Path, str]) -> None:
    directory, url = deployment
    user = _user(directory)
    env = {**ENV, "MISSILE_PASSWORD": user["password"]}
    out = _cli("send", url, "--keys", str(directory / "client.json"), "--user", user["email"], "--data", "e", "-v",
               env=env)
    assert out.returncode == 0, out.stderr
    assert b"useridtoken=yes" in out.stderr


def test_password_from_prompt(deployment: tuple[Path, str]) -> None:
    directory, url = deployment
    user = _user(directory)
    result = CliRunner().invoke(
        main,
        ["send", url, "--keys", str(directory / "client.json"), "--user", user["email"], "--password-prompt",
         "--data", "p", "-v"],
        input=user["password"] + "\n",
        env={"MISSILE_PASSWORD": ""},
    )
    assert result.exit_code == 0, result.output
    assert "Password for" in result.output
    assert user["password"] not in result.output  # hidden input is not echoed
    assert "useridtoken=yes" in result.output


def test_user_without_password_is_a_usage_error_off_a_terminal(tmp_path: Path) -> None:
    keys = write_keys(tmp_path) / "client.json"
    env = {k: v for k, v in ENV.items() if k != "MISSILE_PASSWORD"}
    out = _cli("send", CLOSED_URL, "--keys", str(keys), "--user", "u@example.com", "--data", "x", stdin=b"",
               env=env)
    assert out.returncode == 2
    assert b"MISSILE_PASSWORD" in out.stderr


# exit statuses


def test_exit_statuses(deployment: tuple[Path, str], tmp_path: Path) -> None:
    directory, url = deployment
    keys = str(directory / "client.json")
    missing = tmp_path / "missing.json"
    config = _cli("send", url, "--keys", str(missing), "--data", "x")
    assert config.returncode == 1 and str(missing).encode() in config.stderr
    no_file = tmp_path / "nope.bin"
    payload = _cli("send", url, "--keys", keys, "--file", str(no_file))
    assert payload.returncode == 1 and str(no_file).encode() in payload.stderr
    assert _cli("send", url, "--keys", keys, "--no-such-option").returncode == 2
    msl = _cli("send", url, "--keys", keys, "--user", "user@example.com", "--password", "wrong", "--data", "x")
    assert msl.returncode == 3 and url.encode() in msl.stderr
    comms = _cli("send", CLOSED_URL, "--keys", keys, "--data", "x")
    assert comms.returncode == 4 and CLOSED_URL.encode() in comms.stderr


def test_unwritable_capture_file_is_a_configuration_error(deployment: tuple[Path, str], tmp_path: Path) -> None:
    directory, url = deployment
    target = tmp_path / "no" / "dir" / "response.bin"
    out = _cli("send", url, "--keys", str(directory / "client.json"), "--data", "x", "--save-response", str(target))
    assert out.returncode == 1
    assert f"capture file {target} cannot be written".encode() in out.stderr


# capture and inspect


def _inspect(path: Path, *args: str) -> dict[str, Any]:
    out = _cli("inspect", str(path), "--json", *args)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_saved_messages_inspect_with_and_without_keys(deployment: tuple[Path, str], tmp_path: Path) -> None:
    directory, url = deployment
    user = _user(directory)
    request, response = tmp_path / "request.msl", tmp_path / "response.msl"
    env = {**ENV, "MISSILE_PASSWORD": user["password"]}
    out = _cli("send", url, "--keys", str(directory / "client.json"), "--user", user["email"], "--data", "capture",
               "--save-request", str(request), "--save-response", str(response), env=env)
    assert out.returncode == 0, out.stderr

    bare = _inspect(request)
    assert bare["verified"] is False and "NOT VERIFIED" in bare["note"]
    assert bare["header"]["entityauthdata"] == {"scheme": "PSK", "authdata": {"identity": "client1"}}
    assert bare["header"]["headerdata"].startswith("encrypted (")
    text = _cli("inspect", str(request)).stdout.decode()
    assert text.splitlines()[0].startswith("*** NOT VERIFIED")

    server_keys = str(directory / "server.json")
    req = _inspect(request, "--keys", server_keys)
    assert req["verified"] is True
    assert req["header"]["sender"] == "client1"
    assert req["header"]["keyrequestdata"][0]["scheme"] == "JWK_LADDER"
    assert req["header"]["userauthdata"]["scheme"] == "EMAIL_PASSWORD"
    assert req["header"]["userauthdata"]["authdata"]["password"] == f"(hidden, {len(user['password'])} characters)"
    assert user["password"] not in json.dumps(req)
    assert base64_payload(req) == b"capture"

    resp = _inspect(response, "--keys", server_keys)
    header = resp["header"]
    assert header["sender"] == "server1"  # the server, not the client its master token names
    assert header["keyresponsedata"]["scheme"] == "JWK_LADDER"
    assert header["keyresponsedata"]["mastertoken"]["identity"] == "client1"
    assert header["useridtoken"]["user"] == user["user"]
    assert base64_payload(resp) == b"capture"


def base64_payload(result: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(result["payload_b64"])


def test_inspect_reads_stdin_with_dash(deployment: tuple[Path, str], tmp_path: Path) -> None:
    vector = vectorlib.load("01_a_psk_request_encrypted")
    out = _cli("inspect", "-", "--json", stdin=vectorlib.b64(vector["message_b64"]))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["header"]["entityauthdata"]["authdata"]["identity"] == "client1"


def test_inspect_token_without_keys(tmp_path: Path) -> None:
    vector = vectorlib.load("57_j_master_token")
    token = tmp_path / "mastertoken.bin"
    token.write_bytes(vectorlib.b64(vector["token_b64"]))
    got = _inspect(token, "--token", "mastertoken")
    assert got["verified"] is False
    tokendata = got["token"]["tokendata"]
    assert tokendata["serialnumber"] == vector["expected"]["mastertoken"]["serialnumber"]
    assert tokendata["sessiondata"].startswith("encrypted (")


def test_verbose_names_the_key_exchange_of_a_handshake(deployment: tuple[Path, str]) -> None:
    """NONE entity auth cannot encrypt: the client first sends a handshake and gets keys,
    then the request; the final answer carries no key response, -v still names it."""
    directory, url = deployment
    out = _cli("send", url, "--keys", str(directory / "client.json"), "--entity-auth", "NONE", "--data", "hs", "-v")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hs"
    line = out.stderr.decode().strip()
    assert line.startswith("messages=4 keyx=JWK_LADDER "), line


def test_progress_on_a_terminal_keeps_the_verbose_line_apart(deployment: tuple[Path, str], tmp_path: Path) -> None:
    directory, url = deployment
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*CLI, "send", url, "--keys", str(directory / "client.json"), "--file", str(big), "-v"],
            env=ENV, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
        )
        os.close(slave)
        slave = -1
        stdout, _ = proc.communicate(timeout=120)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert proc.returncode == 0, seen
    assert stdout == big.read_bytes()
    text = seen.decode().replace("\r\n", "\n")
    assert "\rsent " in text and "received " in text
    lines = text.split("\n")
    verbose = [line for line in lines if "messages=" in line]
    assert len(verbose) == 1
    assert verbose[0].startswith("messages="), text[-300:]
