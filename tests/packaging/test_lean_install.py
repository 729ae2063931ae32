"""The lean base install: a client works without the ``server`` and ``redis`` extras.

A device client installs ``missile`` without extras, so nothing it imports may import
uvicorn, uvloop, redis, prometheus_client or opentelemetry at import time. Uninstalling
packages from the shared virtual environment is not an option, so each case runs in a
subprocess whose ``sitecustomize`` puts a ``sys.meta_path`` finder in front of the
import system that refuses those names, as if they were not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve_helpers import CLI, start_serve, stop, write_keys

#: What the base install does not bring (the server, redis, metrics and otel extras).
EXTRAS_ONLY = ("uvicorn", "uvloop", "redis", "prometheus_client", "opentelemetry")

_BLOCKER = f'''
import importlib.abc
import sys

BLOCKED = {EXTRAS_ONLY!r}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture
def lean_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import the extras' packages."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "ignore"}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def test_the_blocker_blocks(lean_env: dict[str, str]) -> None:
    out = _run(lean_env, sys.executable, "-c", "import uvicorn")
    assert out.returncode == 1
    assert "blocked by the test" in out.stderr


def test_client_imports_without_extras(lean_env: dict[str, str]) -> None:
    script = f"""
import sys
import missile, missile.cli, missile.stores, missile.engine.client, missile.transport.http
import missile.transport.pooled, missile.profiles, missile.keyfile
from missile.stores import RedisTokenState, open_token_state
try:
    RedisTokenState("redis://127.0.0.1:9")
except ImportError as exc:
    print("import-error:", exc)
try:
    open_token_state("redis://127.0.0.1:9")
except ValueError as exc:
    print("value-error:", exc)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {EXTRAS_ONLY!r})
print("loaded:", loaded)
"""
    out = _run(lean_env, sys.executable, "-c", script)
    assert out.returncode == 0, out.stderr
    assert "loaded: []" in out.stdout
    assert "import-error: Redis token state needs the redis package: pip install 'missile[redis]'" in out.stdout
    assert "value-error: Redis token state needs the redis package" in out.stdout


def test_client_sends_without_extras(lean_env: dict[str, str], tmp_path: Path) -> None:
    """``missile --version`` and a real exchange with ``missile send`` (the server runs
    with every extra, in its own process)."""
    keys = write_keys(tmp_path)
    version = _run(lean_env, *CLI, "--version")
    assert version.returncode == 0, version.stderr
    assert "version" in version.stdout
    proc, url = start_serve(keys / "server.json", "--state", ":memory:")
    try:
        out = _run(lean_env, *CLI, "send", url, "--keys", str(keys / "client.json"), "--data", "lean", "-v")
    finally:
        stop(proc)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "lean"
    assert "keyx=JWK_LADDER" in out.stderr


def test_serve_without_redis(tmp_path: Path, lean_env: dict[str, str]) -> None:
    """``missile[server]`` without ``missile[redis]``: serving with SQLite state works."""
    keys = write_keys(tmp_path)
    site = Path(lean_env["PYTHONPATH"].split(os.pathsep)[0])
    text = (site / "sitecustomize.py").read_text().replace(repr(EXTRAS_ONLY), repr(("redis",)))
    (site / "sitecustomize.py").write_text(text)
    proc, url = start_serve(keys / "server.json", "--state", str(tmp_path / "state.db"), env=lean_env)
    try:
        out = _run(os.environ.copy(), *CLI, "send", url, "--keys", str(keys / "client.json"), "--data", "sqlite")
    finally:
        stop(proc)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "sqlite"
