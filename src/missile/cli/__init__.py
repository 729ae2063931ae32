"""The ``missile`` command: keygen, serve, send, inspect.

Each failure has its own exit status (the ``EXIT_*`` constants, listed in ``missile
--help``), so a script can tell a mistake in its own configuration from an MSL error
the peer sent and from a network that is down.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

import click

from missile.errors import MslException

if TYPE_CHECKING:
    from missile.cli.observing import ObserveOptions

__all__ = ["EXIT_COMMS", "EXIT_CONFIG", "EXIT_MSL", "EXIT_OK", "EXIT_USAGE", "exit_status", "main"]


#: Exit statuses of every command (documented in ``missile --help`` and the README).
EXIT_OK = 0
#: Local configuration: a key file, state file, capture or payload file is missing,
#: unreadable or wrong; ``keygen`` would overwrite keys. Nothing was sent.
EXIT_CONFIG = 1
#: Usage: an unknown option, a missing argument, options that do not go together (click's own status).
EXIT_USAGE = 2
#: MSL: the peer answered with an MSL error, or a message failed MSL's checks.
EXIT_MSL = 3
#: Communication: the peer could not be reached, the connection broke, or it timed out.
EXIT_COMMS = 4

_EPILOG = f"""\b
Exit status:
  {EXIT_OK}  success
  {EXIT_CONFIG}  local configuration (key, state, capture or payload file; keygen refusing to overwrite)
  {EXIT_USAGE}  usage (unknown option, missing argument, options that do not go together)
  {EXIT_MSL}  MSL error (the peer answered with one, or a message failed MSL's checks)
  {EXIT_COMMS}  communication failure (peer unreachable, connection broken, timeout)
"""


@click.group(epilog=_EPILOG)
@click.version_option(package_name="missile")
def main() -> None:
    """missile: the Message Security Layer for Python."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--server-identity", default="server1", show_default=True, help="Identity of the server entity.")
@click.option("--client-identity", default="client1", show_default=True, help="Identity of the PSK client entity.")
@click.option("--force", is_flag=True, help="Overwrite existing key files (every session they issued dies).")
def keygen(directory: Path, server_identity: str, client_identity: str, force: bool) -> None:
    """Write server.json and client.json key files (owner-only) into DIRECTORY.

    The server file holds the MSL token keys, an RSA and an EC key pair, the client's
    PSK key set, a user, a Diffie-Hellman group and service token keys; the client file
    holds the PSK keys, the server's RSA public key and the DH group. Existing files are
    kept unless --force is given: new token keys end every session the old ones issued.
    """
    from missile.cli.keys import generate, write_private

    targets = (directory / "server.json", directory / "client.json")
    existing = [str(path) for path in targets if path.exists() or path.is_symlink()]
    if existing and not force:
        _fail_start(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                    "keep them, or give --force to replace them (ending every session they issued)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        server, client = generate(server_identity, client_identity)
        write_private(targets[0], server)
        write_private(targets[1], client)
    except OSError as exc:
        _fail_start(f"{exc.filename or directory}: cannot write key files ({exc.strerror})")
    click.echo(f"wrote {targets[0]} and {targets[1]}")


@main.command()
@click.option("--keys", "keys_path", help="Key file (the echo server; not with --app).")
@click.option(
    "--app",
    "app_ref",
    help="Serve your missile.Server instead of the echo server: package.module:attribute "
    "(imported from the current directory, as uvicorn does); its keys and state are its own.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--state",
    help="SQLite file for the server's token state [default: $XDG_STATE_HOME/missile/server-state.db]; "
    "':memory:' keeps it in memory (one worker only, forgotten on restart).",
)
@click.option("--redis", "redis_url", help="Redis URL for token state shared by several servers.")
@click.option("--redis-cluster", "redis_cluster_url", help="Redis Cluster URL for shared token state.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--renewal", default=86400, show_default=True, type=click.IntRange(min=0), help="Token renewal window, seconds."
)
@click.option(
    "--expiration", default=7 * 86400, show_default=True, type=click.IntRange(min=1), help="Token lifetime, seconds."
)
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
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Level of the missile loggers (one record per message at info).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or one JSON object per line.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Also log each HTTP request (the per-message MSL record already says what happened).",
)
@click.option(
    "--log-buffer/--no-log-buffer",
    default=True,
    show_default=True,
    envvar="MISSILE_LOG_BUFFER",
    help="Write log records in batches (4 KiB or 100 ms; warnings at once). "
    "A worker killed outright loses at most its last 100 ms of INFO records.",
)
@click.option("--metrics", is_flag=True, help="Serve Prometheus metrics at GET /metrics (missile[metrics]).")
@click.option(
    "--prefer-binary/--prefer-json",
    default=True,
    show_default=True,
    help="Answer clients that read both in the binary format (missile.cbor.v1), or in JSON. "
    "Clients that read only JSON always get JSON.",
)
def serve(
    keys_path: str | None,
    app_ref: str | None,
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
    log_level: str,
    log_format: str,
    access_log: bool,
    log_buffer: bool,
    metrics: bool,
    prefer_binary: bool,
) -> None:
    """Run an MSL echo server over HTTP (POST at any path), or your own missile.Server (--app).

    Token state is kept in SQLite at the default path unless --state, --redis or
    --redis-cluster says otherwise. Start-up problems are one line on stderr.
    """
    try:
        import uvicorn  # noqa: F401 - checked first: serving needs the server extra
    except ImportError:
        click.echo("missile: serving needs uvicorn: pip install 'missile[server]'", err=True)
        sys.exit(1)
    from missile.cli import serving
    from missile.deadlines import check_seconds
    from missile.stores.open import MEMORY
    from missile.transport.http_server import ConnectionLimits, fit_open_file_limit

    if (keys_path is None) == (app_ref is None):
        raise click.UsageError("give --keys (the echo server) or --app package.module:server, not both")
    if app_ref is not None:
        given = [name for name, value in (("--state", state), ("--redis", redis_url),
                 ("--redis-cluster", redis_cluster_url)) if value is not None]  # fmt: skip
        if given or allow_insecure:
            raise click.UsageError(
                f"{', '.join(given or ['--allow-insecure'])}: with --app, the Server's own options decide"
            )
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
    bounds = (("--read-timeout", read_timeout), ("--state-timeout", state_timeout),
              ("--head-timeout", head_timeout), ("--keep-alive-timeout", keep_alive_timeout))  # fmt: skip
    for option, seconds in bounds:
        try:
            check_seconds(seconds, option)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
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

    from missile.cli.observing import ObserveOptions

    observe = ObserveOptions(log_level, log_format, access_log, log_buffer, metrics)

    if app_ref is not None:
        try:
            description = serving.check_user_app(app_ref, workers)
            fitted = fit_open_file_limit(limits)
            serving.export_user_app(app_ref, fitted, os.environ)
            serving.check_listen(host, port)
        except serving.StartupError as exc:
            say(str(exc))
            sys.exit(1)
        click.echo(f"missile serve: {app_ref} at http://{host}:{port}/, {description}", err=True)
        _run_uvicorn(host, port, workers, keep_alive_timeout, observe, say)
        return
    assert keys_path is not None
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
            prefer_binary=prefer_binary,
        ).export(os.environ)
        serving.check_app()
        serving.check_listen(host, port)
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
    _run_uvicorn(host, port, workers, keep_alive_timeout, observe, say)



def _run_uvicorn(
    host: str,
    port: int,
    workers: int,
    keep_alive_timeout: int,
    observe: ObserveOptions,
    say: Callable[[str], None],
) -> None:
    import uvicorn

    from missile.cli import observing

    try:
        metrics_dir = observing.export(
            os.environ,
            level=observe.level,
            fmt=observe.fmt,
            access_log=observe.access_log,
            metrics=observe.metrics,
            workers=workers,
        )
    except RuntimeError as exc:
        say(str(exc))
        sys.exit(1)
    try:
        uvicorn.run(
            "missile.cli.serving:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=observing.log_config(observe.level, observe.fmt, observe.access_log, observe.buffered),
            access_log=observe.access_log,
            # MSL authenticates entities itself: no rewriting of the client address from
            # X-Forwarded-For headers.
            proxy_headers=False,
            # The limits of missile.transport.http_server (head deadline and size, a
            # connection cap at accept); MSL needs no WebSocket upgrades.
            http="missile.cli.serving:ServeHttpProtocol",
            ws="none",
            timeout_keep_alive=keep_alive_timeout,
        )
    finally:
        observing.remove(metrics_dir)

#: Entity auth schemes a key file can give its own entity (``--entity-auth``; see entityauth.config).
ENTITY_AUTH_SCHEMES = ("PSK", "PSK_PROFILE", "RSA", "NONE", "NONE_SUFFIXED", "PROVISIONED")
#: Key exchange schemes (``--key-exchange``); the same as missile.keyx.requests.KEY_EXCHANGE_SCHEMES.
KEY_EXCHANGE_SCHEMES = ("ASYMMETRIC_WRAPPED", "SYMMETRIC_WRAPPED", "DIFFIE_HELLMAN", "JWE_LADDER", "JWK_LADDER")
#: Mechanisms: ASYMMETRIC_WRAPPED's, SYMMETRIC_WRAPPED's key IDs, the ladders' PSK and WRAP.
MECHANISMS = ("RSA", "ECC", "JWE_RSA", "JWEJS_RSA", "JWK_RSA", "JWK_RSAES", "PSK", "SESSION", "WRAP")
#: The environment variable ``missile send`` reads the user's password from.
PASSWORD_ENV = "MISSILE_PASSWORD"


def _http_url(ctx: click.Context, param: click.Parameter, url: str) -> str:
    """``url`` when it is an absolute http:// or https:// URL, else a usage error."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise click.BadParameter(f"{url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"{url!r}: give http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH")
    return url


@main.command()
@click.argument("url", callback=_http_url)
@click.option("--keys", "keys_path", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("--state", type=click.Path(dir_okay=False), help="SQLite file keeping the client's session.")
@click.option(
    "--entity-auth",
    "entity_auth",
    type=click.Choice(ENTITY_AUTH_SCHEMES),
    help="Entity auth scheme (default: the key file's).",
)
@click.option("--identity", help="Entity identity (default: the key file's).")
@click.option(
    "--key-exchange",
    "key_exchange",
    type=click.Choice(KEY_EXCHANGE_SCHEMES),
    help="Key exchange scheme (default: the key file's key_request_data).",
)
@click.option(
    "--mechanism",
    type=click.Choice(MECHANISMS),
    help="ASYMMETRIC_WRAPPED mechanism, SYMMETRIC_WRAPPED key ID, or ladder mechanism.",
)
@click.option("--dh-parameters", "dh_parameters", metavar="ID", help="DIFFIE_HELLMAN parameters ID of the key file.")
@click.option("--user", help="User email (EMAIL_PASSWORD).")
@click.option(
    "--password-prompt",
    "password_prompt",
    is_flag=True,
    help=f"Ask for the user's password on the terminal (the default with --user when {PASSWORD_ENV} is unset "
    "and stdin is a terminal).",
)
@click.option(
    "--password",
    help=f"User password. On the command line it is visible to every local user (ps); prefer ${PASSWORD_ENV} "
    "(read when --user is given) or --password-prompt.",
)
@click.option("--no-encrypt", is_flag=True, help="Do not require encryption.")
@click.option("--no-integrity", is_flag=True, help="Do not require integrity protection.")
@click.option("--non-replayable", is_flag=True, help="Send a non-replayable message.")
@click.option("--data", help="Payload text.")
@click.option("--file", "file_path", type=click.Path(dir_okay=False, allow_dash=True), help="Payload file; - is stdin.")
@click.option(
    "--save-request",
    type=click.Path(dir_okay=False),
    help="Write the request message to this file (the last one, after a handshake), for `missile inspect`.",
)
@click.option(
    "--save-response",
    type=click.Path(dir_okay=False),
    help="Write the response message to this file (the last one), for `missile inspect`.",
)
@click.option("--verbose", "-v", is_flag=True, help="Describe the exchange on stderr.")
def send(
    url: str,
    keys_path: str,
    state: str | None,
    entity_auth: str | None,
    identity: str | None,
    key_exchange: str | None,
    mechanism: str | None,
    dh_parameters: str | None,
    user: str | None,
    password_prompt: bool,
    password: str | None,
    no_encrypt: bool,
    no_integrity: bool,
    non_replayable: bool,
    data: str | None,
    file_path: str | None,
    save_request: str | None,
    save_response: str | None,
    verbose: bool,
) -> None:
    """Send one message to URL and write the response payload to stdout.

    The payload is --data, or the file --file names (--file - reads stdin). With --user,
    the password comes from $MISSILE_PASSWORD, --password-prompt, a prompt when stdin is
    a terminal, or --password. On a terminal, the bytes sent and received are shown as
    they travel; -v prints one line about the exchange after it.
    """
    from missile.cli.sending import SendSettings, StartupError, run_send

    if data is not None and file_path is not None:
        raise click.UsageError("--data and --file are exclusive")
    if data is None and file_path is None:
        raise click.UsageError("give the payload with --data TEXT or --file PATH (--file - reads stdin)")
    if dh_parameters is not None:
        if key_exchange not in (None, "DIFFIE_HELLMAN") or mechanism is not None:
            raise click.UsageError("--dh-parameters goes with --key-exchange DIFFIE_HELLMAN, without --mechanism")
        mechanism = dh_parameters
    password = _password(user, password, password_prompt, stdin_payload=file_path == "-")
    payload: bytes | memoryview
    if data is not None:
        payload = data.encode()
    elif file_path == "-":
        payload = sys.stdin.buffer.read()
    else:
        assert file_path is not None
        try:
            payload = _map_file(Path(file_path))
        except OSError as exc:
            _fail_start(f"payload file {file_path} cannot be read: {exc.strerror}")
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
        save_request=save_request,
        save_response=save_response,
    )
    out = sys.stdout.buffer
    progress = _Progress(len(payload)) if sys.stderr.isatty() else None
    report = None
    try:
        report = asyncio.run(run_send(settings, payload, out.write, progress))
    except StartupError as exc:
        _finish(out, progress)
        _fail_start(str(exc))
    except MslException as exc:
        _finish(out, progress)
        if _is_state_file_error(exc):
            _fail_start(str(exc))  # a row found corrupt mid-exchange is still the file's fault
        click.echo(f"missile: {url}: {exc}", err=True)
        sys.exit(exit_status(exc))
    _finish(out, progress)
    if verbose and report is not None:
        click.echo(report.line(), err=True)


def exit_status(exc: MslException) -> int:
    """:data:`EXIT_COMMS` for a communication failure, else :data:`EXIT_MSL`."""
    from missile.engine.errors import MslErrorResponse, MslMessageLimitExceeded
    from missile.errors import MslError

    if isinstance(exc, MslMessageLimitExceeded) and exc.last_error is not None:
        return exit_status(exc.last_error)
    if isinstance(exc, MslErrorResponse):
        return EXIT_MSL
    return EXIT_COMMS if exc.error is MslError.MSL_COMMS_FAILURE else EXIT_MSL


def _password(user: str | None, password: str | None, prompt: bool, *, stdin_payload: bool) -> str | None:
    """The user's password: given (option or $MISSILE_PASSWORD), or asked for."""
    if user is None:
        if password is not None or prompt:
            raise click.UsageError("--password and --password-prompt need --user")
        return None
    if password is not None and prompt:
        raise click.UsageError("--password and --password-prompt are exclusive")
    if password is not None:
        return password
    if not prompt and os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if stdin_payload:
        raise click.UsageError(f"--file - reads the payload from stdin: give the password in ${PASSWORD_ENV}")
    if prompt or sys.stdin.isatty():
        entered: str = click.prompt(f"Password for {user}", hide_input=True, err=True)
        return entered
    raise click.UsageError(f"--user needs a password: set ${PASSWORD_ENV}, or use --password-prompt on a terminal")


def _finish(out: BinaryIO, progress: _Progress | None) -> None:
    out.flush()
    if progress is not None:
        progress.finish()


def _fail_start(message: str | Exception) -> NoReturn:
    """A local configuration failure: one line on stderr, exit status 1."""
    click.echo(f"missile: {message}", err=True)
    sys.exit(EXIT_CONFIG)


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
    """Bytes sent and received, on one terminal line of stderr that rewrites itself
    (shown once a message passes 1 MiB, redrawn at most every 64 KiB). ``finish`` ends
    the line, so that whatever is printed next (-v, an error) starts on its own line."""

    THRESHOLD = 1024 * 1024
    STEP = 64 * 1024

    def __init__(self, payload_size: int) -> None:
        self.payload_size = payload_size
        self.sent_bytes = 0
        self.received_bytes = 0
        self.shown = False
        self._drawn_at = 0

    def new_message(self) -> None:
        """A new request of the exchange starts: its counts start again."""
        self.sent_bytes = self.received_bytes = 0
        self._drawn_at = 0

    def sent(self, data: bytes) -> None:
        """Count request bytes."""
        self.sent_bytes += len(data)
        self._draw()

    def received(self, data: bytes) -> None:
        """Count response bytes."""
        self.received_bytes += len(data)
        self._draw()

    def _draw(self) -> None:
        total = self.sent_bytes + self.received_bytes
        if max(self.sent_bytes, self.received_bytes) < self.THRESHOLD or total - self._drawn_at < self.STEP:
            return
        self._drawn_at = total
        self.shown = True
        mib = 1024 * 1024
        click.echo(
            f"\rsent {self.sent_bytes / mib:.1f} MiB (payload {self.payload_size / mib:.1f} MiB), "
            f"received {self.received_bytes / mib:.1f} MiB",
            err=True,
            nl=False,
        )

    def finish(self) -> None:
        """End the progress line, if one was drawn."""
        if self.shown:
            self.shown = False
            click.echo("", err=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--keys",
    "keys_path",
    type=click.Path(dir_okay=False),
    help="Key file of the receiver, to verify and decrypt (a vector file's own keys are used when given none).",
)
@click.option("--time-ms", type=int, help="Clock to evaluate tokens at (milliseconds).")
@click.option(
    "--token", "token_type", type=click.Choice(["mastertoken", "useridtoken", "servicetoken"]), help="FILE is a token."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(file: str, keys_path: str | None, time_ms: int | None, token_type: str | None, as_json: bool) -> None:
    """Decode a captured message or token (FILE; - reads stdin).

    Without keys, everything that travels in the clear is shown (entity auth data, the
    master token's plain fields, unencrypted header data, key request and response data,
    user auth data and payload chunks), marked NOT VERIFIED: anyone could have written
    it. With --keys (the receiver's key file), the message is verified and decrypted as
    its receiver would read it. Capture messages with `missile send --save-request FILE
    --save-response FILE`.
    """
    from missile.cli.inspection import (
        UNVERIFIED_NOTE,
        inspect_message,
        inspect_token,
        read_capture,
        unverified_message,
        unverified_token,
    )
    from missile.cli.sending import StartupError, load_key_file
    from missile.keyfile import KeyFile

    keys: KeyFile | None = None
    try:
        data, embedded_keys = read_capture(file)
        if keys_path is not None:
            keys = load_key_file(keys_path)
        elif embedded_keys is not None:
            keys = KeyFile.from_dict(embedded_keys)
    except StartupError as exc:
        _fail_start(exc)
    except (MslException, OSError, ValueError) as exc:
        _fail_start(f"{file}: not a capture or vector file ({_reason(exc)})")
    try:
        if keys is None:
            result = unverified_token(data) if token_type else unverified_message(data)
        else:
            if time_ms is not None:
                keys.time_ms = time_ms
            result = inspect_token(data, token_type, keys) if token_type else inspect_message(data, keys)
    except MslException as exc:
        click.echo(f"missile: {file}: {exc}", err=True)
        sys.exit(EXIT_MSL)
    if as_json:
        click.echo(json.dumps(result, indent=1, sort_keys=True))
    else:
        if keys is None:
            click.echo(f"*** {UNVERIFIED_NOTE} ***")
            result = {k: v for k, v in result.items() if k not in ("note", "verified")}
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
