"""``missile send``: one request to an MSL server over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import click

from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
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


def _store(state: str | None) -> MslStore | None:
    if state is None:
        return None
    from missile.stores.sqlite import SqliteStore

    return SqliteStore(state)


async def run_send(settings: SendSettings, payload: bytes | memoryview, sink: Callable[[bytes], object]) -> None:
    """Send ``payload``; hand each piece of the response payload to ``sink`` as it verifies."""
    keys = KeyFile.load(settings.keys_path)
    keys.time_ms = None  # live traffic uses the wall clock
    if settings.entity_auth or settings.identity:
        auth = dict(keys.entity_auth)
        if settings.entity_auth:
            auth["scheme"] = settings.entity_auth
        if settings.identity:
            auth["identity"] = settings.identity
        keys.entity_auth = auth
        keys.raw = {**keys.raw, "entity_auth": auth}
    built = context_from_keyfile(keys, role="client", store=_store(settings.state))
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
