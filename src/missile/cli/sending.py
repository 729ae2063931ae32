"""``missile send``: one request to an MSL server over HTTP.

Everything that can be wrong before the first byte is sent (the key file, the state
file, a capture file that cannot be written) is reported as a :class:`StartupError`:
one line naming the file and what to do, exit status 1, so a script or a person sees
the cause instead of a traceback. Failures during the exchange are MSL errors (the
server answered with one, or its answer failed MSL's checks) or communication failures;
the command gives each its own exit status (see ``missile --help``).

The transport is wrapped by :class:`ObservedTransport`, which sees every byte of every
message of the exchange: it drives the progress display and writes the messages a user
asked to capture (``--save-request``, ``--save-response``) for ``missile inspect``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from missile.engine.client import MslClient
from missile.engine.options import MessageOptions
from missile.engine.transport import Channel
from missile.errors import MslException
from missile.keyfile import KeyFile
from missile.keyx.requests import default_scheme, key_request_factory
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
    save_request: str | None = None
    save_response: str | None = None


@dataclass
class SendReport:
    """What the exchange did, for ``-v``."""

    messages: int
    key_exchange: str | None
    """The key exchange scheme of a key response seen during the exchange (the final
    response's, or the one a handshake or a renewal got before it), else None."""
    master_token_serial: int | None
    master_token_sequence: int | None
    user_id_token: bool

    def line(self) -> str:
        """The one ``-v`` line."""
        serial = "-" if self.master_token_serial is None else self.master_token_serial
        sequence = "-" if self.master_token_sequence is None else self.master_token_sequence
        return (
            f"messages={self.messages} keyx={self.key_exchange or '-'} "
            f"mastertoken=serial:{serial}/seq:{sequence} useridtoken={'yes' if self.user_id_token else 'no'}"
        )


class Observer(Protocol):
    """Told about the bytes of each message: what the progress display and the capture
    files need."""

    def new_message(self) -> None:
        """A new request starts (a handshake, a renewal or a retry sends another one)."""

    def sent(self, data: bytes) -> None:
        """Bytes of the request went out."""

    def received(self, data: bytes) -> None:
        """Bytes of the response came in."""


class CaptureFiles(Observer):
    """Writes the last request and the last response of the exchange to files, as they
    travel: a large message is never held in memory for it."""

    def __init__(self, request_path: str | None, response_path: str | None) -> None:
        self._paths = (request_path, response_path)
        self._request = self._open(request_path)
        self._response = self._open(response_path)
        self._fresh = False

    @staticmethod
    def _open(path: str | None) -> BinaryIO | None:
        if path is None:
            return None
        try:
            return open(path, "wb")
        except OSError as exc:
            raise StartupError(f"capture file {path} cannot be written: {exc.strerror}") from exc

    def new_message(self) -> None:
        self._fresh = True

    def _restart(self) -> None:
        # Only the last message is kept: the one the application's answer came in.
        if self._fresh:
            self._fresh = False
            for fh in (self._request, self._response):
                if fh is not None:
                    fh.seek(0)
                    fh.truncate()

    def sent(self, data: bytes) -> None:
        self._restart()
        if self._request is not None:
            self._request.write(data)

    def received(self, data: bytes) -> None:
        self._restart()
        if self._response is not None:
            self._response.write(data)

    def close(self) -> None:
        """Flush and close both files."""
        for fh in (self._request, self._response):
            if fh is not None:
                fh.close()


class _Observers(Observer):
    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def new_message(self) -> None:
        for o in self.observers:
            o.new_message()

    def sent(self, data: bytes) -> None:
        for o in self.observers:
            o.sent(data)

    def received(self, data: bytes) -> None:
        for o in self.observers:
            o.received(data)


class _ObservedChannel:
    def __init__(self, channel: Channel, observer: Observer) -> None:
        self._channel = channel
        self._observer = observer

    @property
    def one_exchange(self) -> bool:
        return self._channel.one_exchange

    async def write(self, data: bytes) -> None:
        await self._channel.write(data)
        self._observer.sent(data)

    async def finish(self) -> None:
        await self._channel.finish()

    async def read(self, n: int = 65536) -> bytes:
        data = await self._channel.read(n)
        if data:
            self._observer.received(data)
        return data

    async def close(self) -> None:
        await self._channel.close()


class ObservedTransport:
    """An HTTP transport whose channels report their bytes to an :class:`Observer`."""

    def __init__(self, transport: HttpTransport, observer: Observer) -> None:
        self.transport = transport
        self.observer = observer

    async def connect(self) -> Channel:
        """A channel of the wrapped transport, observed."""
        channel = await self.transport.connect()
        self.observer.new_message()
        return _ObservedChannel(channel, self.observer)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.transport.aclose()


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


async def run_send(
    settings: SendSettings,
    payload: bytes | memoryview,
    sink: Callable[[bytes], object],
    observer: Observer | None = None,
) -> SendReport:
    """Send ``payload``; hand each piece of the response payload to ``sink`` as it verifies.

    ``observer`` sees the bytes of every message (progress display); the capture files
    of ``settings`` are written as the messages travel.
    """
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
    scheme = settings.key_exchange or default_scheme(keys)[0]
    captures = CaptureFiles(settings.save_request, settings.save_response)
    observers: list[Observer] = [captures] if observer is None else [captures, observer]
    transport = ObservedTransport(HttpTransport(settings.url), _Observers(observers))
    client = MslClient(ctx, transport, key_request_factory=factory)
    before = _newest(ctx.store)
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
        captures.close()
        await transport.aclose()
    data = response.header.data
    mt = response.master_token
    if data.key_response_data is not None:
        exchanged: str | None = data.key_response_data.scheme
    else:
        # A handshake (or a renewal before a retry) may have exchanged keys before the
        # final answer: the store then holds a master token it did not hold before.
        exchanged = scheme if _newest(ctx.store) != before else None
    return SendReport(
        messages=response.messages,
        key_exchange=exchanged,
        master_token_serial=mt.serial_number if mt else None,
        master_token_sequence=mt.sequence_number if mt else None,
        user_id_token=data.user_id_token is not None,
    )


def _newest(store: MslStore | None) -> tuple[int, int] | None:
    """The store's newest master token as (serial, sequence), to see a key exchange."""
    mt = store.get_master_token() if store is not None else None
    return None if mt is None else (mt.serial_number, mt.sequence_number)
