"""The ``missile`` command: keygen, serve, send, inspect."""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import sys
from pathlib import Path
from typing import NoReturn

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
@click.option("--keys", "keys_path", required=True, help="Key file.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--state",
    help="SQLite file for the server's token state [default: $XDG_STATE_HOME/missile/server-state.db]; "
    "':memory:' keeps it in memory (one worker only, forgotten on restart).",
)
@click.option("--redis", "redis_url", help="Redis URL for token state shared by several servers.")
@click.option("--redis-cluster", "redis_cluster_url", help="Redis Cluster URL for shared token state.")
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
@click.option(
    "--state-timeout",
    default=1.0,
    show_default=True,
    type=float,
    help="Seconds one token-state call may take (then the request gets TRANSIENT_FAILURE).",
)
@click.option(
    "--head-timeout", default=10.0, show_default=True, type=float, help="Seconds for a request head to arrive."
)
@click.option(
    "--keep-alive-timeout", default=5, show_default=True, type=int, help="Seconds an idle connection stays open."
)
@click.option(
    "--max-connections", default=2048, show_default=True, type=int, help="Open connections per worker (beyond: 503)."
)
@click.option("--max-head-size", default="16K", show_default=True, help="Request head bytes (beyond: 431).")
@click.option(
    "--max-spool-size", default="256M", show_default=True, help="Request payload bytes spooled to disk per request."
)
def serve(
    keys_path: str,
    host: str,
    port: int,
    state: str | None,
    redis_url: str | None,
    redis_cluster_url: str | None,
    workers: int,
    renewal: int,
    expiration: int,
    allow_insecure: tuple[str, ...],
    read_timeout: float,
    state_timeout: float,
    head_timeout: float,
    keep_alive_timeout: int,
    max_connections: int,
    max_head_size: str,
    max_spool_size: str,
) -> None:
    """Run an MSL echo server over HTTP (POST at any path).

    Token state is kept in SQLite at the default path unless --state, --redis or
    --redis-cluster says otherwise. Start-up problems are one line on stderr.
    """
    import uvicorn

    from missile.cli import serving
    from missile.stores.open import MEMORY
    from missile.transport.http_server import ConnectionLimits, fit_open_file_limit

    if sum(x is not None for x in (state, redis_url, redis_cluster_url)) > 1:
        raise click.UsageError("--state, --redis and --redis-cluster are exclusive")
    if state == MEMORY and workers > 1:
        raise click.UsageError(
            "--state :memory: gives each worker its own state (a replay refused by one is accepted by another); "
            "use a state file or --redis with --workers > 1"
        )
    if workers < 1:
        raise click.UsageError("--workers must be at least 1")
    if expiration < renewal:
        raise click.UsageError("--expiration must not be shorter than --renewal")
    if read_timeout <= 0:
        raise click.UsageError("--read-timeout must be positive")
    if state_timeout <= 0:
        raise click.UsageError("--state-timeout must be positive")
    try:
        limits = ConnectionLimits(
            head_timeout=head_timeout,
            keep_alive_timeout=keep_alive_timeout,
            max_head_size=serving.parse_size(max_head_size),
            max_connections=max_connections,
        )
        max_spool = serving.parse_size(max_spool_size)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc

    def say(message: str) -> None:
        click.echo(f"missile: {' '.join(message.split())}", err=True)

    try:
        serving.load_keys_checked(keys_path)
        backend = serving.resolve_state(state, redis_url, redis_cluster_url, warn=say)
        fitted = fit_open_file_limit(limits)
        if fitted.max_connections < limits.max_connections:
            say(f"warning: --max-connections lowered to {fitted.max_connections} (open-file limit)")
        serving.ServeSettings(
            keys_path=os.path.abspath(keys_path),
            state=backend.state,
            redis_url=redis_url,
            redis_cluster_url=redis_cluster_url,
            renewal_s=renewal,
            expiration_s=expiration,
            allow_insecure=allow_insecure,
            read_timeout=read_timeout,
            max_spool=max_spool,
            limits=fitted,
            state_timeout=state_timeout,
        ).export(os.environ)
        serving.check_app()
    except serving.StartupError as exc:
        say(str(exc))
        sys.exit(1)
    insecure = ",".join(allow_insecure) or "none"
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(
        f"missile serve: http://{shown_host}:{port}/, {workers} worker{'s' if workers > 1 else ''}, "
        f"state {backend.description}, "
        f"insecure schemes allowed: {insecure}",
        err=True,
    )
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
        # The limits of missile.transport.http_server (head deadline and size, a
        # connection cap at accept); MSL needs no WebSocket upgrades.
        http="missile.cli.serving:ServeHttpProtocol",
        ws="none",
        timeout_keep_alive=keep_alive_timeout,
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
    from missile.cli.sending import SendSettings, StartupError, run_send

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
    except StartupError as exc:
        _fail_start(exc)
    except MslException as exc:
        if _is_state_file_error(exc):
            _fail_start(exc)  # a row found corrupt mid-exchange is still the file's fault
        click.echo(f"missile: {exc}", err=True)
        sys.exit(2)
    finally:
        out.flush()
        if progress is not None:
            progress.finish()


def _fail_start(exc: Exception) -> NoReturn:
    """A start-up failure: one line on stderr, exit status 1."""
    click.echo(f"missile: {exc}", err=True)
    sys.exit(1)


def _is_state_file_error(exc: Exception) -> bool:
    from missile.stores.sqlite import StateFileError

    return isinstance(exc, StateFileError)


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
    from missile.cli.sending import StartupError, load_key_file
    from missile.keyfile import KeyFile

    try:
        data, embedded_keys = read_capture(file)
        if keys_path is not None:
            keys = load_key_file(keys_path)
        elif embedded_keys is not None:
            keys = KeyFile.from_dict(embedded_keys)
        else:
            raise click.UsageError("--keys is required")
    except StartupError as exc:
        _fail_start(exc)
    except (MslException, OSError, ValueError) as exc:
        _fail_start(StartupError(f"{file}: not a capture or vector file ({_reason(exc)})"))
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, MslException):
        return exc.detail or exc.error.name
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


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
