"""A real uvicorn server on a free loopback port, in a thread of the test process, for
the front-door tests (the blocking client runs its own loop thread beside it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from missile.cli.keys import generate, write_private
from redis_helpers import free_port


def write_keys(directory: Path) -> tuple[Path, Path]:
    """A fresh server.json/client.json pair in ``directory``; their paths."""
    server, client = generate("server1", "client1")
    write_private(directory / "server.json", server)
    write_private(directory / "client.json", client)
    return directory / "server.json", directory / "client.json"


@contextmanager
def serve(app: Any, timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1; yield its base URL ("http://127.0.0.1:PORT")."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    started = threading.Event()

    def wait() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.02)

    wait()
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
