"""Peer-to-peer mode (README "MSL networks", control.md §3.5, §12).

Two entities authenticate each other and each issues a master token to the other.
Every message carries the sender's *primary* master token (issued to the sender by the
receiver, held in the sender's store with its session keys) and a *peer* master token
(issued by the sender to the receiver). Key response data in a message carries a
master token the sender just issued to the receiver; payloads are always protected with
the header's crypto context; exchanges continue on the same channel.

:class:`MslPeer` is both sides: :meth:`request` sends application data on a channel
and returns the reply; :meth:`serve_channel` answers requests arriving on a channel.
When the reply asks for keys (it is renewable with key request data) the requester
answers at once with a key-exchange message on the same channel, so after one round
both entities hold a master token issued by the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.random import random_long
from missile.encoding import next_id
from missile.engine.client import MAX_MESSAGES, Response
from missile.engine.errors import MslErrorResponse, MslMessageLimitExceeded
from missile.engine.issuer import check_request, record_issued
from missile.engine.options import MessageOptions
from missile.engine.server import Handler, Reply, Request
from missile.engine.transport import Channel
from missile.errors import MslError, MslException, MslInternalException, MslMessageException
from missile.keyx.base import KeyRequestData
from missile.messages.builder import build_error_response, exchange_keys
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.events import ErrorReceived, HeaderReceived, PayloadReceived
from missile.messages.header import HeaderData, MessageHeader
from missile.messages.reader import MessageReader, ReaderLimits
from missile.messages.writer import DEFAULT_CHUNK_SIZE, MessageWriter
from missile.tokens.master import MasterToken

__all__ = ["MslPeer"]


@dataclass
class _Received:
    header: MessageHeader | None
    error: ErrorHeader | None
    payload: bytes
    keyx_context: CryptoContext | None
    handshake: bool


class MslPeer:
    """One entity of a peer-to-peer MSL network."""

    def __init__(
        self,
        ctx: MslContext,
        *,
        handler: Handler | None = None,
        key_requests: Callable[[], Sequence[KeyRequestData]] | None = None,
        options: MessageOptions | None = None,
        capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reader_limits: ReaderLimits | None = None,
        max_messages: int = MAX_MESSAGES,
    ) -> None:
        if not ctx.peer_to_peer:
            raise ValueError("a peer needs a peer-to-peer context")
        if ctx.store is None or ctx.token_factory is None:
            raise ValueError("a peer needs a store and a token factory")
        self.ctx = ctx
        self.handler = handler
        self.key_requests = key_requests
        self.options = options or MessageOptions()
        self.capabilities = capabilities
        self.chunk_size = chunk_size
        self.reader_limits = reader_limits
        self.max_messages = max_messages
        self.issued: MasterToken | None = None
        """The newest master token this entity issued to the other peer."""
        self.remote_offset_ms: int | None = None

    # -- token bookkeeping ----------------------------------------------------------------

    @property
    def primary(self) -> MasterToken | None:
        """The newest master token the other peer issued to this entity."""
        assert self.ctx.store is not None
        return self.ctx.store.get_master_token()

    def _remote_now(self) -> int | None:
        return None if self.remote_offset_ms is None else self.ctx.clock() + self.remote_offset_ms

    def _note_issued(self, token: MasterToken | None) -> None:
        if token is not None and token.verified and (self.issued is None or token.is_newer_than(self.issued)):
            self.issued = token

    def _absorb(self, received: _Received, key_requests: Sequence[KeyRequestData]) -> None:
        header = received.header
        assert header is not None
        store = self.ctx.store
        assert store is not None
        data = header.data
        if data.timestamp is not None:
            self.remote_offset_ms = data.timestamp * 1000 - self.ctx.clock()
        # The sender's primary token is one we issued; its peer token was issued to us.
        self._note_issued(header.master_token)
        krd = data.key_response_data
        if krd is not None and received.keyx_context is not None:
            old = self.primary
            store.set_crypto_context(krd.master_token, received.keyx_context)
            if old is not None and old != krd.master_token and old.serial_number == krd.master_token.serial_number:
                store.remove_crypto_context(old)

    def _needs_keys(self) -> bool:
        primary = self.primary
        return primary is None or primary.is_renewable(self._remote_now()) or primary.is_expired(self._remote_now())

    # -- sending ----------------------------------------------------------------------------

    def _build(
        self,
        message_id: int,
        *,
        renewable: bool,
        handshake: bool = False,
        key_requests: Sequence[KeyRequestData] = (),
        respond_to: MessageHeader | None = None,
    ) -> tuple[MessageHeader, bool, bool]:
        """A header with our primary token (or entity auth), the token we issued as the
        peer token, and, when responding to a key request, a newly issued token."""
        ctx = self.ctx
        primary = self.primary
        ead = None if primary is not None else ctx.get_entity_auth_data()
        if primary is None and ead is None:
            raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND)
        keyx = exchange_keys(ctx, respond_to) if respond_to is not None else None
        if keyx is not None:
            self.issued = keyx.response.master_token
        peer_token = self.issued
        if peer_token is not None and keyx is not None and peer_token is keyx.response.master_token:
            # The newly issued token travels in the key response data.
            peer_token = None
        caps = self.capabilities
        if respond_to is not None and respond_to.data.capabilities is not None:
            caps = respond_to.data.capabilities.intersection(self.capabilities)
        data = HeaderData(
            message_id=message_id,
            timestamp=ctx.clock() // 1000,
            renewable=renewable or handshake,
            handshake=handshake,
            capabilities=caps,
            key_request_data=tuple(key_requests) if (renewable or handshake) else (),
            key_response_data=keyx.response if keyx is not None else None,
            peer_master_token=peer_token,
        )
        header = MessageHeader.create(ctx, data, master_token=primary, entity_auth_data=ead)
        encrypts = primary is not None or (ead is not None and ead.encrypts)
        protects = primary is not None or (ead is not None and ead.protects_integrity)
        return header, encrypts, protects

    async def _send(self, channel: Channel, header: MessageHeader, data: bytes | None) -> None:
        writer = MessageWriter(header, header.crypto_context, chunk_size=self.chunk_size)
        await channel.write(writer.header_bytes())
        if data is None or header.is_handshake:
            return
        view = memoryview(data)
        for start in range(0, len(data), self.chunk_size):
            out = writer.write(view[start : start + self.chunk_size])
            if out:
                await channel.write(out)
        await channel.write(writer.close())

    async def _receive(self, channel: Channel, key_requests: Sequence[KeyRequestData]) -> _Received | None:
        reader = MessageReader(self.ctx, key_requests=key_requests, limits=self.reader_limits)
        header: MessageHeader | None = None
        error: ErrorHeader | None = None
        keyx_context: CryptoContext | None = None
        payload: list[bytes] = []
        received = False
        while not reader.done:
            chunk = await channel.read()
            if not chunk and not received:
                return None
            received = True
            for event in reader.feed(chunk) if chunk else reader.end_of_stream():
                if isinstance(event, HeaderReceived):
                    header = event.header
                    keyx_context = event.key_exchange_crypto_context
                elif isinstance(event, ErrorReceived):
                    error = event.error_header
                elif isinstance(event, PayloadReceived):
                    payload.append(event.data)
            if header is not None and header.is_handshake:
                break
            if not chunk:
                break
        if header is not None:
            await check_request(self.ctx, header)
        return _Received(header, error, b"".join(payload), keyx_context, reader.is_handshake)

    # -- requesting -------------------------------------------------------------------------

    async def request(self, channel: Channel, data: bytes = b"", options: MessageOptions | None = None) -> Response:
        """Send ``data`` on ``channel`` and return the other peer's reply."""
        options = options or self.options
        message_id = random_long(self.ctx.random)
        used = 0
        while True:
            if used + 2 > self.max_messages:
                raise MslMessageLimitExceeded(None)
            used += 2
            renewable = self._needs_keys()
            key_requests = list(self.key_requests()) if renewable and self.key_requests else []
            header, encrypts, protects = self._build(message_id, renewable=renewable, key_requests=key_requests)
            handshake = (options.encrypted and not encrypts) or (options.integrity_protected and not protects)
            if handshake:
                if not key_requests:
                    raise MslMessageException(MslError.HANDSHAKE_DATA_MISSING, "no key request data")
                header, _, _ = self._build(message_id, renewable=True, handshake=True, key_requests=key_requests)
            await self._send(channel, header, None if handshake else data)
            received = await self._receive(channel, key_requests)
            if received is None or (received.header is None and received.error is None):
                raise MslException(MslError.MSL_COMMS_FAILURE, "the peer closed the channel")
            if received.error is not None:
                raise MslErrorResponse(received.error)
            reply = received.header
            assert reply is not None
            if reply.message_id != next_id(header.message_id):
                raise MslMessageException(MslError.UNEXPECTED_RESPONSE_MESSAGE_ID, str(reply.message_id))
            self._absorb(received, key_requests)
            if reply.data.renewable and reply.data.key_request_data:
                # The peer wants a master token from us: answer on the same channel
                # (control.md §3.5), a key-exchange message without application data.
                used += 1
                answer, _, _ = self._build(next_id(reply.message_id), renewable=False, respond_to=reply)
                await record_issued(self.ctx, reply, answer)
                await self._send(channel, answer, b"")
                if not handshake:
                    return Response(reply, received.payload, used)
                message_id = next_id(answer.message_id)
                continue
            if handshake:
                message_id = next_id(reply.message_id)
                continue
            return Response(reply, received.payload, used)

    # -- responding ---------------------------------------------------------------------------

    async def serve_channel(self, channel: Channel) -> None:
        """Answer requests arriving on ``channel`` until the other peer closes it."""
        while True:
            try:
                received = await self._receive(channel, ())
            except MslException as exc:
                await self._send_error(channel, exc, None)
                return
            if received is None:
                return
            if received.error is not None or received.header is None:
                continue
            request = received.header
            try:
                self._absorb(received, ())
                await self._respond(channel, request, received)
            except MslException as exc:
                await self._send_error(channel, exc, request)

    async def _respond(self, channel: Channel, request: MessageHeader, received: _Received) -> None:
        # A handshake gets key exchange only; a request gets the application's reply.
        reply_data = b""
        if not received.handshake and self.handler is not None:
            result = await self.handler(Request(request, received.payload))
            data = result.data if isinstance(result, Reply) else (result or b"")
            reply_data = data if isinstance(data, bytes) else b"".join([piece async for piece in data])
        renewable = self._needs_keys()
        key_requests = list(self.key_requests()) if renewable and self.key_requests else []
        header, encrypts, protects = self._build(
            next_id(request.message_id), renewable=renewable, key_requests=key_requests, respond_to=request
        )
        if not received.handshake:
            if self.options.integrity_protected and not protects:
                raise MslException(MslError.RESPONSE_REQUIRES_INTEGRITY_PROTECTION)
            if self.options.encrypted and not encrypts:
                raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION)
        await record_issued(self.ctx, request, header)
        await self._send(channel, header, reply_data)
        if key_requests:
            # The requester answers our key request on the same channel.
            answer = await self._receive(channel, key_requests)
            if answer is not None and answer.header is not None:
                self._absorb(answer, key_requests)

    async def _send_error(self, channel: Channel, exc: MslException, request: MessageHeader | None) -> None:
        try:
            error = build_error_response(self.ctx, exc, request.message_id if request is not None else None)
        except MslException:
            raise MslInternalException("cannot build an error response", cause=exc) from exc
        await channel.write(error.encode())
