"""README.md stays true: its first Python example (a service and a client, using only
``import missile``, keys from ``missile keygen``) runs as written from an empty folder
outside the checkout: with the installed package, and from a freshly built wheel in a
fresh virtual environment."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from redis_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


def readme_examples() -> tuple[str, str]:
    """The service and the client of "Using missile from Python"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Using missile from Python") :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return blocks[0], blocks[1]


def run_example(python: str, folder: Path) -> str:
    """keygen, ``missile serve --app service:server``, then the client; the client's output."""
    service, client = readme_examples()
    assert "import missile\n" in service and "import missile\n" in client
    assert not re.search(r"^(from|import) (?!missile\b)", service + client, flags=re.M)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MISSILE_APP")}
    env["PYTHONWARNINGS"] = "ignore"
    cli = [python, "-c", "from missile.cli import main; main()"]
    subprocess.run([*cli, "keygen", "keys"], cwd=folder, env=env, check=True, capture_output=True, timeout=60)
    (folder / "service.py").write_text(service, encoding="utf-8")
    port = free_port()
    (folder / "client.py").write_text(client.replace("127.0.0.1:8080", f"127.0.0.1:{port}"), encoding="utf-8")
    server = subprocess.Popen(
        [*cli, "serve", "--app", "service:server", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        out = subprocess.run([python, "client.py"], cwd=folder, env=env, capture_output=True, timeout=120)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
        if server.stderr is not None:
            server.stderr.close()
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return out.stdout.decode()


def check_output(stdout: str) -> None:
    lines = stdout.splitlines()
    assert lines[0] == "hello client1: hi"
    assert lines[1] == "hello client1: again 2"  # one message each way: the session was reused


def test_readme_example_runs_with_the_installed_package(tmp_path: Path) -> None:
    check_output(run_example(sys.executable, tmp_path))


def test_readme_example_runs_from_a_built_wheel(tmp_path: Path) -> None:
    """Build a wheel, install it into a fresh venv whose only other packages are this
    environment's dependencies (a .pth line, so nothing is downloaded), run the example.
    The editable checkout is not on that venv's path: only the wheel's files are."""
    if os.environ.get("MISSILE_SKIP_WHEEL_TEST"):
        pytest.skip("MISSILE_SKIP_WHEEL_TEST set")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(wheels)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("missile-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    folder = tmp_path / "empty"
    folder.mkdir()
    where = subprocess.run(
        [python, "-c", "import missile; print(missile.__file__)"], cwd=folder, capture_output=True, text=True
    )
    assert where.stdout.startswith(site), where.stdout + where.stderr
    check_output(run_example(python, folder))
