"""Real ``missile serve`` processes for the tests, and what a test does to them: key
files, a session, a captured message, reading the answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from missile.cli.keys import generate, write_private
from missile.encoding import EncoderFormat
from missile.engine.client import MslClient
from missile.errors import ResponseCode
from missile.keyfile import KeyFile
from missile.keyx.base import KeyRequestData
from missile.keyx.requests import key_request_factory
from missile.messages import ErrorReceived, MessageReader, MessageWriter
from missile.messages.builder import build_request
from missile.profiles import KeyFileContext, context_from_keyfile
from missile.transport.http import HttpTransport
from process_helpers import wait_listening
from redis_helpers import free_port

CLI = [sys.executable, "-m", "missile.cli"]
#: Each running server's log file, by pid.
LOGS: dict[int, Path] = {}
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def write_keys(directory: Path) -> Path:
    """A fresh server.json/client.json pair in ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    server, client = generate("server1", "client1")
    write_private(directory / "server.json", server)
    write_private(directory / "client.json", client)
    return directory


def start_serve(
    keys: Path, *extra: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[subprocess.Popen[bytes], str]:
    """``missile serve`` on a free loopback port (own process group); its URL once it listens."""
    port = free_port()
    # The server logs a line per message: into a file, never a pipe nobody drains.
    log = tempfile.NamedTemporaryFile(prefix="missile-serve-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [*CLI, "serve", "--keys", str(keys), "--port", str(port), *extra],
        env=dict(env) if env is not None else ENV,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    LOGS[proc.pid] = Path(log.name)
    try:
        wait_listening(proc, port, lambda: LOGS[proc.pid].read_text(errors="replace"), timeout)
    except RuntimeError:
        stop(proc)
        raise
    return proc, f"http://127.0.0.1:{port}/"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and its workers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = LOGS.pop(proc.pid, None)
    if log is not None:
        log.unlink(missing_ok=True)


def client_context(directory: Path) -> KeyFileContext:
    """The client of ``directory``'s key pair, with an in-memory store."""
    return context_from_keyfile(KeyFile.load(directory / "client.json"))


async def establish(built: KeyFileContext, url: str) -> MslClient:
    """A client with a session (master token) at ``url``."""
    client = MslClient(
        built.ctx,
        HttpTransport(url),
        key_request_factory=key_request_factory(built.ctx, built.keys, "SYMMETRIC_WRAPPED"),
    )
    await client.request(b"establish")
    return client


def non_replayable_message(
    built: KeyFileContext, payload: bytes = b"pay once", encoder_format: EncoderFormat | None = None
) -> bytes:
    """A complete non-replayable request under the client's master token, in
    ``encoder_format`` (None: the one the client's store says the server reads)."""
    built_msg = build_request(built.ctx, non_replayable=True, encoder_format=encoder_format)
    writer = MessageWriter(built_msg.header, built_msg.payload_crypto_context)
    return writer.header_bytes() + writer.write(payload) + writer.close()


def renewal_message(
    built: KeyFileContext, encoder_format: EncoderFormat | None = None
) -> tuple[bytes, Sequence[KeyRequestData]]:
    """A renewable request with key request data under the client's master token, and
    the key requests it carries (to read the answer); ``encoder_format`` as above."""
    requests = key_request_factory(built.ctx, built.keys, "SYMMETRIC_WRAPPED")()
    built_msg = build_request(built.ctx, key_request_data=requests, renewable=True, encoder_format=encoder_format)
    writer = MessageWriter(built_msg.header, built_msg.payload_crypto_context)
    return writer.header_bytes() + writer.write(b"renew me") + writer.close(), requests


def error_code(built: KeyFileContext, body: bytes, key_requests: Sequence[KeyRequestData] = ()) -> ResponseCode | None:
    """The response code of an error answer; None for a message."""
    reader = MessageReader(built.ctx, key_request_data=key_requests, single_message=True)
    events = [*reader.feed(body), *reader.end_of_stream()]
    first = events[0]
    return first.error_header.error_code if isinstance(first, ErrorReceived) else None
