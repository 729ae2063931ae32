"""The ``missile`` command: keygen, serve, send, inspect."""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import sys
from pathlib import Path

import click

from missile.errors import MslException

__all__ = ["main"]


@click.group()
@click.version_option(package_name="missile")
def main() -> None:
    """missile: the Message Security Layer for Python."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--server-identity", default="server1", show_default=True, help="Identity of the server entity.")
@click.option("--client-identity", default="client1", show_default=True, help="Identity of the PSK client entity.")
def keygen(directory: Path, server_identity: str, client_identity: str) -> None:
    """Write server.json and client.json key files (owner-only) into DIRECTORY.

    The server file holds the MSL token keys, an RSA and an EC key pair, the client's
    PSK key set, a user, a Diffie-Hellman group and service token keys; the client file
    holds the PSK keys, the server's RSA public key and the DH group.
    """
    from missile.cli.keys import generate, write_private

    directory.mkdir(parents=True, exist_ok=True)
    server, client = generate(server_identity, client_identity)
    write_private(directory / "server.json", server)
    write_private(directory / "client.json", client)
    click.echo(f"wrote {directory / 'server.json'} and {directory / 'client.json'}")


@main.command()
@click.option("--keys", "keys_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Key file.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--state", type=click.Path(dir_okay=False), help="SQLite file for the server's token state.")
@click.option("--redis", "redis_url", help="Redis URL for token state shared by several servers.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--renewal", default=86400, show_default=True, type=int, help="Token renewal window, seconds.")
@click.option("--expiration", default=7 * 86400, show_default=True, type=int, help="Token lifetime, seconds.")
@click.option(
    "--allow-insecure",
    "allow_insecure",
    multiple=True,
    type=click.Choice(["NONE", "NONE_SUFFIXED", "JWK_RSAES"]),
    help="Accept an insecure scheme from clients (refused by default); repeatable.",
)
@click.option(
    "--read-timeout", default=30.0, show_default=True, type=float, help="Seconds a stalled request may wait."
)
def serve(
    keys_path: str,
    host: str,
    port: int,
    state: str | None,
    redis_url: str | None,
    workers: int,
    renewal: int,
    expiration: int,
    allow_insecure: tuple[str, ...],
    read_timeout: float,
) -> None:
    """Run an MSL echo server over HTTP (POST at any path)."""
    import uvicorn

    from missile.cli import serving

    if state and redis_url:
        raise click.UsageError("--state and --redis are exclusive")
    os.environ[serving.ENV_KEYS] = os.path.abspath(keys_path)
    if state:
        os.environ[serving.ENV_STATE] = os.path.abspath(state)
    if redis_url:
        os.environ[serving.ENV_REDIS] = redis_url
    if expiration < renewal:
        raise click.UsageError("--expiration must not be shorter than --renewal")
    os.environ[serving.ENV_RENEWAL] = str(renewal)
    os.environ[serving.ENV_EXPIRATION] = str(expiration)
    os.environ[serving.ENV_INSECURE] = ",".join(allow_insecure)
    if read_timeout <= 0:
        raise click.UsageError("--read-timeout must be positive")
    os.environ[serving.ENV_READ_TIMEOUT] = str(read_timeout)
    serving.create_app()  # fail fast on a bad key file
    uvicorn.run(
        "missile.cli.serving:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # MSL authenticates entities itself: no per-request access log line, and no
        # rewriting of the client address from X-Forwarded-For headers.
        access_log=False,
        proxy_headers=False,
    )


@main.command()
@click.argument("url")
@click.option("--keys", "keys_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Key file.")
@click.option("--state", type=click.Path(dir_okay=False), help="SQLite file keeping the client's session.")
@click.option("--entity-auth", "entity_auth", help="Entity auth scheme (default: the key file's).")
@click.option("--identity", help="Entity identity (default: the key file's).")
@click.option("--key-exchange", "key_exchange", help="Key exchange scheme (default: the key file's key_request_data).")
@click.option("--mechanism", help="Key exchange mechanism (ASYMMETRIC_WRAPPED, ladders) or DH parameters ID.")
@click.option("--user", help="User email (EMAIL_PASSWORD).")
@click.option("--password", help="User password.")
@click.option("--no-encrypt", is_flag=True, help="Do not require encryption.")
@click.option("--no-integrity", is_flag=True, help="Do not require integrity protection.")
@click.option("--non-replayable", is_flag=True, help="Send a non-replayable message.")
@click.option("--data", help="Payload text.")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False), help="Payload file.")
@click.option("--verbose", "-v", is_flag=True, help="Describe the exchange on stderr.")
def send(
    url: str,
    keys_path: str,
    state: str | None,
    entity_auth: str | None,
    identity: str | None,
    key_exchange: str | None,
    mechanism: str | None,
    user: str | None,
    password: str | None,
    no_encrypt: bool,
    no_integrity: bool,
    non_replayable: bool,
    data: str | None,
    file_path: str | None,
    verbose: bool,
) -> None:
    """Send one message to URL and write the response payload to stdout."""
    from missile.cli.sending import SendSettings, run_send

    if data is not None and file_path is not None:
        raise click.UsageError("--data and --file are exclusive")
    if (user is None) != (password is None):
        raise click.UsageError("--user and --password go together")
    payload: bytes | memoryview
    if data is not None:
        payload = data.encode()
    elif file_path is not None:
        payload = _map_file(Path(file_path))
    else:
        payload = sys.stdin.buffer.read()
    settings = SendSettings(
        url=url,
        keys_path=keys_path,
        state=state,
        entity_auth=entity_auth,
        identity=identity,
        key_exchange=key_exchange,
        mechanism=mechanism,
        user=user,
        password=password,
        encrypted=not no_encrypt,
        integrity_protected=not no_integrity,
        non_replayable=non_replayable,
        verbose=verbose,
    )
    out = sys.stdout.buffer
    progress = _Progress() if sys.stderr.isatty() else None

    def sink(chunk: bytes) -> None:
        out.write(chunk)
        if progress is not None:
            progress.advance(len(chunk))

    try:
        asyncio.run(run_send(settings, payload, sink))
    except MslException as exc:
        click.echo(f"missile: {exc}", err=True)
        sys.exit(2)
    finally:
        out.flush()
        if progress is not None:
            progress.finish()


def _map_file(path: Path) -> bytes | memoryview:
    """The file's bytes, memory-mapped so a large file is not copied into memory."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b""
        return memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


class _Progress:
    """A byte counter on stderr for large responses (shown once past 1 MiB)."""

    THRESHOLD = 1024 * 1024

    def __init__(self) -> None:
        self.done = 0
        self.shown = False

    def advance(self, n: int) -> None:
        self.done += n
        if self.done >= self.THRESHOLD:
            self.shown = True
            click.echo(f"\rreceived {self.done / (1024 * 1024):.1f} MiB", err=True, nl=False)

    def finish(self) -> None:
        if self.shown:
            click.echo("", err=True)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--keys", "keys_path", type=click.Path(exists=True, dir_okay=False), help="Key file (or the vector's).")
@click.option("--time-ms", type=int, help="Clock to evaluate tokens at (milliseconds).")
@click.option(
    "--token", "token_type", type=click.Choice(["mastertoken", "useridtoken", "servicetoken"]), help="FILE is a token."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(file: str, keys_path: str | None, time_ms: int | None, token_type: str | None, as_json: bool) -> None:
    """Decode a captured message or token; with keys, verify and decrypt it."""
    from missile.cli.inspection import inspect_message, inspect_token, read_capture
    from missile.keyfile import KeyFile

    data, embedded_keys = read_capture(file)
    if keys_path is not None:
        keys = KeyFile.load(keys_path)
    elif embedded_keys is not None:
        keys = KeyFile.from_dict(embedded_keys)
    else:
        raise click.UsageError("--keys is required")
    if time_ms is not None:
        keys.time_ms = time_ms
    try:
        result = inspect_token(data, token_type, keys) if token_type else inspect_message(data, keys)
    except MslException as exc:
        click.echo(f"missile: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(result, indent=1, sort_keys=True))
    else:
        _print_tree(result)


def _print_tree(value: object, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                click.echo(f"{pad}{key}:")
                _print_tree(item, indent + 1)
            else:
                click.echo(f"{pad}{key}: {item}")
    elif isinstance(value, list):
        for item in value:
            click.echo(f"{pad}-")
            _print_tree(item, indent + 1)
    else:
        click.echo(f"{pad}{value}")
