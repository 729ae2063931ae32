"""Start-up errors of `missile send` and `missile inspect`: one line, non-zero exit, no traceback.

Each case runs the real entry point in a subprocess. The URL is a closed loopback port:
every case must fail before anything is sent.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from missile.stores.sqlite import SqliteStore

CLI = [sys.executable, "-m", "missile.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
URL = "http://127.0.0.1:9/"
VECTOR = Path(__file__).parent.parent / "vectors" / "01_a_psk_request_encrypted.json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    subprocess.run([*CLI, "keygen", str(directory)], check=True, env=ENV, capture_output=True)
    return directory / "client.json"


def _run(*args: str) -> str:
    """Run the command; return its single stderr line after checking the failure shape."""
    out = subprocess.run([*CLI, *args], env=ENV, capture_output=True, timeout=60)
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert "Traceback" not in err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("missile: "), err
    assert out.stdout == b""
    return lines[0]


BAD_KEY_FILES = {
    "not-json.json": (b"this is not JSON {", "is not JSON"),
    "array.json": (b"[1, 2]", "is not an object"),
    "no-entity-auth.json": (b'{"role": "client", "identity": "c"}', "has no entity_auth scheme"),
    "bad-psk.json": (b'{"identity": "c", "entity_auth": {"scheme": "PSK"}, "psk": [{"kpe": 7}]}', "key file"),
}


@pytest.mark.parametrize("name", sorted(BAD_KEY_FILES))
def test_send_with_bad_key_file(tmp_path: Path, name: str) -> None:
    content, expected = BAD_KEY_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    line = _run("send", URL, "--keys", str(path), "--data", "x")
    assert f"key file {path}" in line and expected in line


@pytest.mark.parametrize("name", ["not-json.json", "array.json"])
def test_inspect_with_bad_key_file(tmp_path: Path, name: str) -> None:
    content, expected = BAD_KEY_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    line = _run("inspect", str(VECTOR), "--keys", str(path))
    assert f"key file {path}" in line and expected in line


def test_inspect_with_malformed_capture(tmp_path: Path) -> None:
    capture = tmp_path / "capture.json"
    capture.write_text('{"message_b64": "%%%not base64"}')
    line = _run("inspect", str(capture), "--keys", str(VECTOR))
    assert str(capture) in line


def test_send_with_state_that_is_not_a_database(tmp_path: Path, keys: Path) -> None:
    state = tmp_path / "client.db"
    state.write_bytes(b"definitely not SQLite\n" * 100)
    line = _run("send", URL, "--keys", str(keys), "--state", str(state), "--data", "x")
    assert line.startswith(f"missile: state file {state} is corrupt (")
    assert line.endswith("delete it to start a new session")


def test_send_with_corrupt_state_row(tmp_path: Path, keys: Path) -> None:
    state = tmp_path / "client.db"
    SqliteStore(state).close()
    conn = sqlite3.connect(state)
    conn.execute(
        "INSERT INTO master_tokens (serial, sequence, expiration, token, verified, context_kind, key_id, "
        "signature_algorithm) VALUES (1, 0, 0, 'garbage', 0, 'session', 'k', 'HmacSHA256')"
    )
    conn.commit()
    conn.close()
    line = _run("send", URL, "--keys", str(keys), "--state", str(state), "--data", "x")
    assert line.startswith(f"missile: state file {state} is corrupt (unreadable master token row")
    assert "garbage" not in line


def test_send_with_missing_state_directory(tmp_path: Path, keys: Path) -> None:
    state = tmp_path / "no" / "such" / "client.db"
    line = _run("send", URL, "--keys", str(keys), "--state", str(state), "--data", "x")
    assert f"state file {state}" in line and "does not exist" in line
    assert not (tmp_path / "no").exists()


def test_send_with_symlinked_state(tmp_path: Path, keys: Path) -> None:
    target = tmp_path / "real.db"
    SqliteStore(target).close()
    link = tmp_path / "client.db"
    link.symlink_to(target)
    line = _run("send", URL, "--keys", str(keys), "--state", str(link), "--data", "x")
    assert line == f"missile: state file {link} is a symbolic link; give the real file's path"


@pytest.mark.parametrize("url", ["http://[::1", "ftp://127.0.0.1/", "127.0.0.1:8080", "http:///path"])
def test_send_with_a_bad_url_is_a_usage_error(keys: Path, url: str) -> None:
    out = subprocess.run([*CLI, "send", url, "--keys", str(keys), "--data", "x"], env=ENV, capture_output=True,
                         timeout=60)  # fmt: skip
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert "Traceback" not in err
    assert f"Invalid value for 'URL': '{url}'" in err
