"""The responding side of the protocol engine for a trusted services network
(control.md §4).

:class:`MslServer` reads a request from a channel with every check of the message
layer and of the issuer's state (awaited and bounded in time, :mod:`missile.engine.issuer`),
answers handshakes by itself, hands the application the
payload with the authenticated entity and user, and responds with key response data,
renewed tokens and service tokens, or with the right error message when anything fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.deadlines import check_seconds_or_none
from missile.engine.body import MessageBody
from missile.engine.errors import ReadTimeout
from missile.engine.issuer import check_request, record_issued
from missile.engine.message_io import read_head, read_rest, write_message
from missile.engine.options import MessageOptions
from missile.engine.transport import Channel, TimedChannel
from missile.errors import MslError, MslException, MslInternalException
from missile.messages.builder import BuiltMessage, build_error_response, build_push, build_response
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader, ReaderLimits
from missile.messages.writer import DEFAULT_CHUNK_SIZE, MessageWriter
from missile.observe.base import MessageObserved, Observer
from missile.observe.logs import LogObserver
from missile.tokens.service import ServiceToken
from missile.tokens.user import MslUser

__all__ = ["MslServer", "Origin", "Reply", "Request", "RequestRejected"]

log = logging.getLogger("missile.server")


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the transport knows it (nothing here is authenticated)."""

    path: str = "/"
    """The request path relative to where the application is mounted (always starts with "/")."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Transport headers (HTTP), names lower-cased; repeated headers joined with ", "."""
    client: tuple[str, int] | None = None
    """The peer's address (host, port), when the transport knows it."""


_NO_ORIGIN = Origin()


@dataclass(frozen=True)
class Request:
    """A verified request as the application sees it."""

    header: MessageHeader
    """The request header."""
    payload: bytes = field(default=b"", repr=False)
    """The application data (empty when the server streams: use :attr:`body`)."""
    body: MessageBody | None = None
    """With a streaming server: the payload, chunk by chunk as each one verifies."""
    origin: Origin = _NO_ORIGIN
    """Path, transport headers and client address (unauthenticated: MSL protects the
    payload, not the HTTP envelope around it)."""

    @property
    def path(self) -> str:
        """The request path relative to the mount point ("/" over non-HTTP transports)."""
        return self.origin.path

    @property
    def headers(self) -> Mapping[str, str]:
        """The transport's headers (HTTP), names lower-cased; unauthenticated."""
        return self.origin.headers

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer's (host, port), when known; unauthenticated."""
        return self.origin.client

    @property
    def message_id(self) -> int:
        """The request's message ID."""
        return self.header.message_id

    @property
    def non_replayable(self) -> bool:
        """True when the request was non-replayable (and its ID was checked against replays)."""
        return self.header.data.non_replayable_id is not None

    @property
    def identity(self) -> str | None:
        """The authenticated entity identity."""
        return self.header.identity

    @property
    def user(self) -> MslUser | None:
        """The authenticated user, if any."""
        return self.header.user

    @property
    def service_tokens(self) -> tuple[ServiceToken, ...]:
        """The service tokens the request carried."""
        return self.header.data.service_tokens


@dataclass(init=False)
class Reply:
    """The application's answer."""

    payload: bytes | AsyncIterable[bytes] = field(default=b"", repr=False)
    """Response application data: bytes, or an async iterable streamed chunk by chunk."""
    service_tokens: Sequence[ServiceToken] = ()
    """Service tokens to set (a token with empty data deletes the client's copy)."""
    options: MessageOptions | None = None
    """Protection the response requires (defaults to the server's options)."""
    respond: bool = True
    """False for a one-way request: nothing is sent back unless tokens must be issued."""
    pushes: Sequence[bytes] = ()
    """Extra server-initiated messages sent after the response on the same connection."""

    def __init__(
        self,
        payload: bytes | AsyncIterable[bytes] = b"",
        service_tokens: Sequence[ServiceToken] = (),
        options: MessageOptions | None = None,
        respond: bool = True,
        pushes: Sequence[bytes] = (),
        *,
        data: bytes | AsyncIterable[bytes] | None = None,
    ) -> None:
        """``data`` is the former name of ``payload``, kept for existing callers."""
        self.payload = data if data is not None else payload
        self.service_tokens = service_tokens
        self.options = options
        self.respond = respond
        self.pushes = pushes

    @property
    def data(self) -> bytes | AsyncIterable[bytes]:
        """Former name of :attr:`payload`."""
        return self.payload


class RequestRejected(MslException):
    """Raised by a handler to reject the entity or user (control.md §4 ``error``)."""

    def __init__(self, *, entity: bool = False, user: bool = False, request: Request | None = None) -> None:
        header = request.header if request is not None else None
        if entity:
            error = (
                MslError.MASTERTOKEN_REJECTED_BY_APP
                if header is not None and header.master_token is not None
                else MslError.ENTITY_REJECTED_BY_APP
            )
        elif user:
            error = (
                MslError.USERIDTOKEN_REJECTED_BY_APP
                if header is not None and header.data.user_id_token is not None
                else MslError.USER_REJECTED_BY_APP
            )
        else:
            error = MslError.NONE
        super().__init__(error)


Handler = Callable[[Request], Awaitable[Reply | bytes | None]]


@dataclass
class MslServer:
    """An asyncio MSL responder for a trusted services network.

    The issuer's state lives in ``ctx.token_factory.state``. Servers in several
    processes (``uvicorn --workers``, several hosts) must share it: a
    :class:`~missile.stores.SqliteTokenState` file on one host, or
    :class:`~missile.stores.RedisTokenState` (Redis or Redis Cluster). Otherwise each
    process keeps its own replay windows and accepts a replayed message once per process.
    The in-memory default refuses to be used by a forked process for that reason, and it
    forgets everything on restart: use it only for tests and single-process tools.
    """

    ctx: MslContext
    """The server's context (token keys, token factory, schemes)."""
    handler: Handler
    """The application: request in, reply out."""
    options: MessageOptions = field(default_factory=MessageOptions)
    """Default protection required for responses."""
    service_token_contexts: Mapping[str, CryptoContext] = field(default_factory=dict)
    """Crypto contexts for service tokens by name ("" is the default)."""
    capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES
    """The server's capabilities."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Payload chunk size for responses."""
    reader_limits: ReaderLimits | None = None
    """Limits for reading requests."""
    error_messages: Callable[[MslError, Sequence[str]], str | None] | None = None
    """Optional user-facing message for an error, given the request's languages."""
    max_payload_size: int = 64 * 1024 * 1024
    """Largest request payload buffered for a non-streaming handler (bytes); a larger one
    is refused with MESSAGE_FORMAT_ERROR. Streaming handlers see chunks and set their own."""
    streaming: bool = False
    """Hand the handler the request payload as it arrives (``Request.body``) instead of
    buffering it; a failure after the response started can then only abort it. Over
    HTTP/1.1, clients send the whole request before reading the response: a handler
    should read the request to its end before it starts its reply (spooling a large
    one), or a client with a full send buffer and a server with a full one deadlock."""

    read_timeout: float | None = 30.0
    """Seconds a read from the requester may wait for data (None: forever). A request
    that stalls midway is answered with MSL_COMMS_FAILURE; a channel on which no request
    starts in time raises :class:`~missile.engine.errors.ReadTimeout` from
    :meth:`serve_channel`, so a connection transport can close it."""

    observer: Observer = field(default_factory=LogObserver)
    """Told of every message (kind, identity, error, sizes, duration) and asked for a
    tracing scope around it (:mod:`missile.observe`)."""

    def __post_init__(self) -> None:
        check_seconds_or_none(self.read_timeout, "read_timeout")

    async def serve_channel(self, channel: Channel, origin: Origin = _NO_ORIGIN) -> None:
        """Read one request from ``channel``, respond, and finish the channel. ``origin``
        (path, headers, client address) is handed to the handler with the request."""
        timed = TimedChannel(channel, self.read_timeout) if self.read_timeout is not None else None
        served = _ServedChannel(channel, timed if timed is not None else channel)
        observer = self.observer
        if not observer.traces and not observer.observes("server"):
            # Nothing would be traced or told (the default observer with INFO off): no scopes.
            await self._serve_channel(served, timed, origin, observed=False)
            return
        if not observer.traces:  # the scopes are for tracing only
            await self._serve_channel(served, timed, origin, observed=True)
            return
        with observer.extract(origin.headers), observer.span("server message", {"msl.path": origin.path}):
            await self._serve_channel(served, timed, origin, observed=True)

    async def _serve_channel(
        self, channel: _ServedChannel, timed: TimedChannel | None, origin: Origin, *, observed: bool
    ) -> None:
        outcome = _Outcome(time.perf_counter())
        idle = False
        try:
            await self._serve(channel, origin, outcome)
        except ReadTimeout:
            idle = True  # no request started: the transport decides what to do
            raise
        finally:
            if timed is not None:
                timed.disarm()
            if not idle:
                await channel.finish()
                if observed and outcome.reader is not None and outcome.reader.bytes_received:
                    self._observe(outcome, channel.sent, origin)

    def _observe(self, outcome: _Outcome, sent: int, origin: Origin) -> None:
        header = outcome.header
        user = header.user if header is not None else None
        try:
            self.observer.message(
                MessageObserved(
                    role="server",
                    kind=outcome.kind,
                    identity=header.identity if header is not None else None,
                    user=user.encode() if user is not None else None,
                    message_id=header.message_id if header is not None else None,
                    path=origin.path,
                    key_exchange=outcome.key_exchange,
                    error=outcome.error.error.name if outcome.error is not None else None,
                    response_code=outcome.error.error.response_code.name if outcome.error is not None else None,
                    bytes_in=outcome.reader.bytes_received if outcome.reader is not None else 0,
                    bytes_out=sent,
                    duration=time.perf_counter() - outcome.start,
                )
            )
        except Exception:
            log.exception("an observer failed")

    async def _serve(self, channel: _ServedChannel, origin: Origin, outcome: _Outcome) -> None:
        reader = MessageReader(
            self.ctx,
            service_token_contexts=self.service_token_contexts,
            limits=self.reader_limits,
            single_message=True,
        )
        outcome.reader = reader
        header: MessageHeader | None = None
        pending: list[bytes] = []
        try:
            header = await self._read_header(channel, reader, pending)
            if header is None:
                return
            outcome.header = header
            await check_request(self.ctx, header)
            if not header.is_handshake and not self.streaming:
                payload = await read_rest(channel, reader, pending, self.max_payload_size)
        except ReadTimeout as exc:
            if not reader.bytes_received:
                raise  # idle: no request started, so there is nothing to answer
            await self._send_error(channel, outcome.failed(exc), header)
            return
        except MslException as exc:
            await self._send_error(channel, outcome.failed(exc), header)
            return
        except Exception as exc:
            log.exception("unexpected failure reading a request")
            await self._send_error(channel, outcome.failed(MslInternalException(cause=exc)), header)
            return
        out = channel  # nothing was written to it yet: it tracks whether the response started
        try:
            if header.is_handshake or (not self.streaming and reader.is_handshake):
                # control.md §4.2: answer a handshake automatically, no application data;
                # the message is closed normally (header + empty end-of-message chunk).
                built = build_response(self.ctx, header, capabilities=self.capabilities)
                await record_issued(self.ctx, header, built.header)
                outcome.answered(built, handshake=True)
                await self._write(out, built, b"")
                return
            if self.streaming:
                request = Request(header, body=MessageBody(reader, channel, pending), origin=origin)
            else:
                request = Request(header, payload, origin=origin)
            result = await self.handler(request)
            reply = result if isinstance(result, Reply) else Reply(result or b"")
            if not reply.respond and not _needs_response(header):
                return
            options = reply.options or self.options
            built = build_response(
                self.ctx, header, service_tokens=reply.service_tokens, capabilities=self.capabilities
            )
            encrypts, protects = _payload_protection(built)
            if options.integrity_protected and not protects:
                raise MslException(MslError.RESPONSE_REQUIRES_INTEGRITY_PROTECTION)
            if options.encrypted and not encrypts:
                raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION)
            await record_issued(self.ctx, header, built.header)
            outcome.answered(built)
            pushes = [(build_push(self.ctx, header), push) for push in reply.pushes]
            for push_built, _ in pushes:
                # Pushes carry no key exchange: they are protected like the request was.
                push_encrypts, push_protects = _payload_protection(push_built)
                if options.integrity_protected and not push_protects:
                    raise MslException(MslError.RESPONSE_REQUIRES_INTEGRITY_PROTECTION, "push")
                if options.encrypted and not push_encrypts:
                    raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION, "push")
            await self._write(out, built, reply.payload)
            for push_built, push in pushes:
                await self._write(out, push_built, push)
        except MslException as exc:
            await self._fail(out, outcome.failed(exc), header)
        except Exception as exc:
            log.exception("unexpected failure answering a request")
            await self._fail(out, outcome.failed(MslInternalException(cause=exc)), header)

    async def _read_header(self, channel: Channel, reader: MessageReader, pending: list[bytes]) -> MessageHeader | None:
        """Read up to the header; None when the peer sent nothing or an error message."""
        if not await read_head(channel, reader, pending):
            return None  # the peer closed without sending a message
        if reader.error_header is not None:
            log.info("error message received: %s", reader.error_header.error_code.name)
        return reader.header

    async def _fail(self, channel: _ServedChannel, exc: MslException, header: MessageHeader | None) -> None:
        if channel.started:
            # The response is under way: it can only be cut short, which the requester
            # sees as a truncated message.
            log.warning("aborting a response under way: %s", exc.error.name)
            return
        await self._send_error(channel, exc, header)

    async def _write(self, channel: Channel, built: BuiltMessage, data: bytes | AsyncIterable[bytes]) -> None:
        writer = MessageWriter(built.header, built.payload_crypto_context, chunk_size=self.chunk_size)
        # The header goes out with the first chunk: if producing the data fails before
        # that, nothing has been sent and the requester still gets a proper error message.
        await write_message(channel, writer, data, self.chunk_size)

    async def _send_error(self, channel: Channel, exc: MslException, header: MessageHeader | None) -> None:
        message_id = header.message_id if header is not None else exc.message_id
        languages: Sequence[str] = ()
        if header is not None and header.data.capabilities is not None:
            languages = header.data.capabilities.languages
        # An exception may carry its own user message (the front door's unknown route does).
        user_message = exc.user_message
        if user_message is None and self.error_messages is not None:
            user_message = self.error_messages(exc.error, languages)
        log.info("answering with %s", exc.error.name)
        try:
            error = build_error_response(self.ctx, exc, message_id, user_message=user_message)
        except MslException:
            log.exception("cannot build an error response")
            return
        await channel.write(error.encode())


class _Outcome:
    """What became of one request, for the observer."""

    __slots__ = ("error", "header", "key_exchange", "kind", "reader", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.reader: MessageReader | None = None
        self.header: MessageHeader | None = None
        self.kind = "application"
        self.key_exchange: str | None = None
        self.error: MslException | None = None

    def answered(self, built: BuiltMessage, handshake: bool = False) -> None:
        keyx = built.key_exchange
        if keyx is not None:
            self.key_exchange = keyx.response.scheme
        if handshake:
            self.kind = "handshake"
        elif keyx is not None:
            renewing = self.header is not None and self.header.master_token is not None
            self.kind = "renewal" if renewing else "key_exchange"

    def failed(self, exc: MslException) -> MslException:
        self.kind, self.error = "error", exc
        return exc


class _ServedChannel:
    """The channel a request is served on, in one layer: reads go through the read
    timeout (when there is one), writes straight to the transport's channel, counting
    the bytes sent (for the observer) and noting whether a response has started."""

    __slots__ = ("_channel", "_reads", "sent", "started")

    def __init__(self, channel: Channel, reads: Channel) -> None:
        self._channel = channel
        self._reads = reads
        self.sent = 0
        """Bytes written so far."""
        self.started = False
        """True once a response has begun (a non-empty write)."""

    @property
    def one_exchange(self) -> bool:
        """The wrapped channel's."""
        return self._channel.one_exchange

    async def read(self, n: int = 65536) -> bytes:
        return await self._reads.read(n)

    async def write(self, data: bytes) -> None:
        if data:
            self.started = True
            self.sent += len(data)
        await self._channel.write(data)

    async def finish(self) -> None:
        await self._channel.finish()

    async def close(self) -> None:
        await self._channel.close()


def _needs_response(request: MessageHeader) -> bool:
    """A one-way request still gets a response when it asked for tokens (control.md §3.4)."""
    data = request.data
    return data.renewable and (bool(data.key_request_data) or data.user_auth_data is not None)


def _payload_protection(built: BuiltMessage) -> tuple[bool, bool]:
    header = built.header
    if built.key_exchange is not None or header.master_token is not None:
        return True, True
    ead = header.entity_auth_data
    assert ead is not None
    return ead.encrypts, ead.protects_integrity
