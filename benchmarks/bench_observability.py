"""The cost of observing: ``missile serve`` with its per-message INFO log records and
Prometheus metrics, against the same server logging only warnings, over HTTP at 8
clients (the observability issue's target: at most 5 % slower, i.e. a ratio >= 0.95).

Both servers run side by side (2 workers each, SQLite state, the logs written to
/dev/null so the figure counts formatting them, not a terminal's speed), driven by the
same client stack as the ``http`` section in alternating rounds, the best of each kept.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from missile.cli.keys import generate, write_private
from missile.engine.client import MslClient
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.transport.pooled import PooledHttpTransport

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 8


def _serve(command: list[str], keys: Path, port: int, state: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [*command, "serve", "--keys", str(keys), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "--state", str(state), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def bench_observability(seconds: float, max_count: int, repeats: int) -> dict[str, Any]:
    """Requests/s at 8 clients with INFO logs and metrics, as a ratio to warnings only."""
    from run import _free_port, _load, _loop_factory, _stop, _wait_port

    missile_bin = Path(sys.executable).with_name("missile")
    command = [str(missile_bin)] if missile_bin.exists() else [sys.executable, "-m", "missile.cli"]
    payload = os.urandom(100)
    with tempfile.TemporaryDirectory() as tmp:
        server_keys, client_keys = generate("server1", "client1")
        write_private(Path(tmp) / "server.json", server_keys)
        quiet_port, observed_port = _free_port(), _free_port()
        quiet = _serve(command, Path(tmp) / "server.json", quiet_port, Path(tmp) / "a.db", "--log-level", "warning")
        observed = _serve(
            command, Path(tmp) / "server.json", observed_port, Path(tmp) / "b.db", "--log-level", "info", "--metrics"
        )
        try:
            _wait_port(quiet_port, quiet)
            _wait_port(observed_port, observed)

            async def measure() -> dict[str, Any]:
                keys = KeyFile.from_dict(client_keys)
                keys.time_ms = None
                clients = []
                for port in (quiet_port, observed_port):
                    ctx = context_from_keyfile(keys, role="client").ctx
                    transport = PooledHttpTransport(f"http://127.0.0.1:{port}/", max_idle=CLIENTS)
                    client = MslClient(ctx, transport, key_requests=key_request_factory(ctx, keys))
                    await client.request(payload)  # the session
                    clients.append((client, transport))

                def call(client: MslClient) -> Any:
                    async def one() -> None:
                        response = await client.request(payload)
                        assert len(response.payload) == 100

                    return one

                runs: dict[str, list[dict[str, Any]]] = {"quiet": [], "observed": []}
                try:
                    for _ in range(repeats):
                        for name, (client, _) in zip(("quiet", "observed"), clients, strict=True):
                            warmup = min(0.5, seconds / 4)
                            runs[name].append(await _load(call(client), CLIENTS, seconds, max_count, warmup=warmup))
                finally:
                    for _, transport in clients:
                        await transport.aclose()
                best = {name: max(r["req_per_s"] for r in results) for name, results in runs.items()}
                return {
                    "clients": CLIENTS,
                    "warnings_only_req_per_s": best["quiet"],
                    "info_logs_and_metrics_req_per_s": best["observed"],
                    "ratio": best["observed"] / best["quiet"],
                    "all_req_per_s": {name: [r["req_per_s"] for r in results] for name, results in runs.items()},
                }

            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(measure())
        finally:
            _stop(quiet)
            _stop(observed)
