"""``missile send``: one request to an MSL server over HTTP.

Everything that can be wrong before the first byte is sent (the key file, the state
file) is reported as a :class:`StartupError`: one line naming the file and what to do,
exit status 1, so a script or a person sees the cause instead of a traceback. MSL
failures during the exchange keep exit status 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import click

from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import key_request_factory
from missile.profiles import context_from_keyfile
from missile.stores.base import MslStore
from missile.transport.http import HttpTransport
from missile.userauth.email_password import EmailPasswordAuthData


@dataclass
class SendSettings:
    """What ``missile send`` was asked to do."""

    url: str
    keys_path: str
    state: str | None = None
    entity_auth: str | None = None
    identity: str | None = None
    key_exchange: str | None = None
    mechanism: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    encrypted: bool = True
    integrity_protected: bool = True
    non_replayable: bool = False
    verbose: bool = False


class StartupError(Exception):
    """A command cannot start; ``str()`` is the one line to print."""


def load_key_file(path: str, *, needs_entity_auth: bool = False) -> KeyFile:
    """The key file at ``path``, or a :class:`StartupError` saying what is wrong with it."""
    problem: str
    try:
        keys = KeyFile.load(path)
    except MslException as exc:
        # The parser's detail, without the path it may repeat (the line names the file).
        problem = (exc.detail or exc.error.name).replace(f"key file {path} ", "").removeprefix("key file ")
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror}"
    else:
        if not needs_entity_auth or keys.entity_auth.get("scheme"):
            return keys
        problem = "has no entity_auth scheme"
    raise StartupError(f"key file {path}: {problem}; fix it, or write a new pair with `missile keygen DIR`")


def _store(state: str | None) -> MslStore | None:
    if state is None:
        return None
    from missile.stores.sqlite import SqliteStore, StateFileError

    try:
        return SqliteStore(state)
    except StateFileError as exc:
        raise StartupError(str(exc)) from exc
    except MslException as exc:
        raise StartupError(f"state file {state} cannot be opened ({exc.detail or exc.error.name})") from exc


def check_state_rows(store: MslStore | None) -> None:
    """Read every stored session once, so a corrupt row is reported before sending."""
    if store is None:
        return
    from missile.stores.sqlite import StateFileError

    try:
        store.get_master_token()
    except StateFileError as exc:
        raise StartupError(str(exc)) from exc


async def run_send(settings: SendSettings, payload: bytes | memoryview, sink: Callable[[bytes], object]) -> None:
    """Send ``payload``; hand each piece of the response payload to ``sink`` as it verifies."""
    keys = load_key_file(settings.keys_path, needs_entity_auth=settings.entity_auth is None)
    keys.time_ms = None  # live traffic uses the wall clock
    if settings.entity_auth or settings.identity:
        auth = dict(keys.entity_auth)
        if settings.entity_auth:
            auth["scheme"] = settings.entity_auth
        if settings.identity:
            auth["identity"] = settings.identity
        keys.entity_auth = auth
        keys.raw = {**keys.raw, "entity_auth": auth}
    store = _store(settings.state)
    check_state_rows(store)
    try:
        built = context_from_keyfile(keys, role="client", store=store)
    except MslException as exc:
        raise StartupError(
            f"key file {settings.keys_path}: {exc.error.name} ({exc.detail or exc.error.message}); fix it"
        ) from exc
    ctx = built.ctx
    factory = key_request_factory(ctx, keys, settings.key_exchange, settings.mechanism)
    transport = HttpTransport(settings.url)
    client = MslClient(ctx, transport, key_requests=factory)
    options = MessageOptions(
        encrypted=settings.encrypted,
        integrity_protected=settings.integrity_protected,
        non_replayable=settings.non_replayable,
        service_token_contexts=keys.service_token_crypto_contexts(ctx.random),
    )
    if settings.user is not None and settings.password is not None:
        options.user_id = settings.user
        options.user_auth = EmailPasswordAuthData(settings.user, settings.password)
    try:
        async with await client.request_stream(payload, options) as response:
            async for chunk in response.body:
                sink(chunk)
    finally:
        await transport.aclose()
    if settings.verbose:
        data = response.header.data
        mt = response.master_token
        click.echo(
            f"messages={response.messages} keyx={data.key_response_data.scheme if data.key_response_data else '-'} "
            f"mastertoken=serial:{mt.serial_number if mt else '-'}/seq:{mt.sequence_number if mt else '-'} "
            f"useridtoken={'yes' if data.user_id_token else 'no'}",
            err=True,
        )
