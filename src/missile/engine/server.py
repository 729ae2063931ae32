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
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.engine.body import MessageBody
from missile.engine.errors import ReadTimeout
from missile.engine.issuer import check_request, record_issued
from missile.engine.options import MessageOptions
from missile.engine.transport import Channel, TimedChannel
from missile.errors import MslError, MslException, MslInternalException
from missile.messages.builder import BuiltMessage, build_error_response, build_push, build_response
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.events import ErrorReceived, HeaderReceived, PayloadReceived
from missile.messages.header import MessageHeader
from missile.messages.reader import MessageReader, ReaderLimits
from missile.messages.writer import DEFAULT_CHUNK_SIZE, MessageWriter
from missile.tokens.service import ServiceToken
from missile.tokens.user import MslUser

__all__ = ["MslServer", "Reply", "Request", "RequestRejected"]

log = logging.getLogger("missile.server")


@dataclass(frozen=True)
class Request:
    """A verified request as the application sees it."""

    header: MessageHeader
    """The request header."""
    payload: bytes = field(default=b"", repr=False)
    """The application data (empty when the server streams: use :attr:`body`)."""
    body: MessageBody | None = None
    """With a streaming server: the payload, chunk by chunk as each one verifies."""

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


@dataclass
class Reply:
    """The application's answer."""

    data: bytes | AsyncIterable[bytes] = field(default=b"", repr=False)
    """Response application data: bytes, or an async iterable streamed chunk by chunk."""
    service_tokens: Sequence[ServiceToken] = ()
    """Service tokens to set (a token with empty data deletes the client's copy)."""
    options: MessageOptions | None = None
    """Protection the response requires (defaults to the server's options)."""
    respond: bool = True
    """False for a one-way request: nothing is sent back unless tokens must be issued."""
    pushes: Sequence[bytes] = ()
    """Extra server-initiated messages sent after the response on the same connection."""


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
    """An asyncio MSL responder for a trusted services network."""

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

    async def serve_channel(self, channel: Channel) -> None:
        """Read one request from ``channel``, respond, and finish the channel."""
        if self.read_timeout is not None:
            channel = TimedChannel(channel, self.read_timeout)
        idle = False
        try:
            await self._serve(channel)
        except ReadTimeout:
            idle = True  # no request started: the transport decides what to do
            raise
        finally:
            if not idle:
                await channel.finish()

    async def _serve(self, channel: Channel) -> None:
        reader = MessageReader(
            self.ctx,
            service_token_contexts=self.service_token_contexts,
            limits=self.reader_limits,
            single_message=True,
        )
        header: MessageHeader | None = None
        pending: list[bytes] = []
        try:
            header = await self._read_header(channel, reader, pending)
            if header is None:
                return
            await check_request(self.ctx, header)
            if not header.is_handshake and not self.streaming:
                body = MessageBody(reader, channel, pending)
                payload = await body.read(self.max_payload_size)
        except ReadTimeout as exc:
            if not reader.bytes_received:
                raise  # idle: no request started, so there is nothing to answer
            await self._send_error(channel, exc, header)
            return
        except MslException as exc:
            await self._send_error(channel, exc, header)
            return
        except Exception as exc:
            log.exception("unexpected failure reading a request")
            await self._send_error(channel, MslInternalException(cause=exc), header)
            return
        out = _TrackingChannel(channel)
        try:
            if header.is_handshake or (not self.streaming and reader.is_handshake):
                # control.md §4.2: answer a handshake automatically, no application data;
                # the message is closed normally (header + empty end-of-message chunk).
                built = build_response(self.ctx, header, capabilities=self.capabilities)
                await record_issued(self.ctx, header, built.header)
                await self._write(out, built, b"")
                return
            if self.streaming:
                request = Request(header, body=MessageBody(reader, channel, pending))
            else:
                request = Request(header, payload)
            result = await self.handler(request)
            reply = result if isinstance(result, Reply) else Reply(data=result or b"")
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
            pushes = [(build_push(self.ctx, header), push) for push in reply.pushes]
            for push_built, _ in pushes:
                # Pushes carry no key exchange: they are protected like the request was.
                push_encrypts, push_protects = _payload_protection(push_built)
                if options.integrity_protected and not push_protects:
                    raise MslException(MslError.RESPONSE_REQUIRES_INTEGRITY_PROTECTION, "push")
                if options.encrypted and not push_encrypts:
                    raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION, "push")
            await self._write(out, built, reply.data)
            for push_built, push in pushes:
                await self._write(out, push_built, push)
        except MslException as exc:
            await self._fail(out, exc, header)
        except Exception as exc:
            log.exception("unexpected failure answering a request")
            await self._fail(out, MslInternalException(cause=exc), header)

    async def _read_header(
        self, channel: Channel, reader: MessageReader, pending: list[bytes]
    ) -> MessageHeader | None:
        """Read up to the header; None when the peer sent nothing or an error message."""
        received = False
        while True:
            data = await channel.read()
            if not data and not received:
                return None  # the peer closed without sending a message
            received = True
            header: MessageHeader | None = None
            for event in reader.feed(data) if data else reader.end_of_stream():
                if isinstance(event, HeaderReceived):
                    header = event.header
                elif isinstance(event, PayloadReceived) and event.data:
                    pending.append(event.data)
                elif isinstance(event, ErrorReceived):
                    log.info("error message received: %s", event.error_header.error_code.name)
                    return None
            if header is not None:
                return header
            if not data:
                return None

    async def _fail(self, channel: _TrackingChannel, exc: MslException, header: MessageHeader | None) -> None:
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
        head = writer.header_bytes()
        if isinstance(data, bytes | bytearray | memoryview):
            view = memoryview(data)
            for start in range(0, len(view), self.chunk_size):
                out = writer.write(view[start : start + self.chunk_size])
                if out:
                    await channel.write(head + out if head else out)
                    head = b""
        else:
            async for piece in data:
                out = writer.write(piece)
                if out:
                    await channel.write(head + out if head else out)
                    head = b""
        await channel.write(head + writer.close())

    async def _send_error(self, channel: Channel, exc: MslException, header: MessageHeader | None) -> None:
        message_id = header.message_id if header is not None else exc.message_id
        languages: Sequence[str] = ()
        if header is not None and header.data.capabilities is not None:
            languages = header.data.capabilities.languages
        user_message = self.error_messages(exc.error, languages) if self.error_messages else None
        log.info("answering with %s", exc.error.name)
        try:
            error = build_error_response(self.ctx, exc, message_id, user_message=user_message)
        except MslException:
            log.exception("cannot build an error response")
            return
        await channel.write(error.encode())


class _TrackingChannel:
    """A channel that remembers whether a response has started."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self.started = False

    async def write(self, data: bytes) -> None:
        if data:
            self.started = True
        await self._channel.write(data)

    async def finish(self) -> None:
        await self._channel.finish()

    async def read(self, n: int = 65536) -> bytes:
        return await self._channel.read(n)

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
