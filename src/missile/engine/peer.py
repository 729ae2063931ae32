"""Peer-to-peer mode (README "MSL networks", control.md §3.5, §12).

Two entities authenticate each other and each issues tokens to the other. Every message
carries the sender's *primary* token set (the master token, user ID token and service
tokens the receiver issued to the sender, held in the sender's store with their session
keys) and a *peer* token set (``peermastertoken``, ``peeruseridtoken``,
``peerservicetokens``: what the sender issued to the receiver). Key response data carries
a master token the sender just issued to the receiver; payloads are always protected with
the header's crypto context; exchanges continue on the same channel.

:class:`MslPeer` is both sides: :meth:`MslPeer.request` sends application data on a
channel and returns the reply; :meth:`MslPeer.serve_channel` answers requests arriving on
a channel. When the reply asks for keys (it is renewable with key request data) the
requester answers at once with a key-exchange message on the same channel, so after one
round both entities hold a master token issued by the other. That answer gets no reply,
so the requester's next message may follow it in the same TCP segment: every message is
read through one :class:`~missile.engine.message_io.MessageStream` per connection, which
keeps the bytes after a message for the next one.

Users work as on the reference: the requester sends user authentication data (only in an
encrypted header) until it holds a user ID token for the user; the responder
authenticates the user and issues the token in ``peeruseridtoken``, bound to the master
token it issued to the requester, and renews it when a renewable request presents it in
its renewal window. The requester stores it under ``MessageOptions.user_id`` and sends it
with later requests. Service tokens the application sets travel the same way
(``Reply.service_tokens`` in ``peerservicetokens``, stored by the requester and sent back
in ``servicetokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.random import random_long
from missile.encoding import next_id
from missile.engine import choice
from missile.engine.client import MAX_MESSAGES, Response
from missile.engine.errors import MslErrorResponse, MslMessageLimitExceeded, ReadTimeout
from missile.engine.issuer import check_request, record_issued
from missile.engine.message_io import Message, MessageStream, read_message, write_message
from missile.engine.options import MessageOptions
from missile.engine.server import Handler, Reply, Request
from missile.engine.transport import Channel
from missile.errors import MslError, MslException, MslInternalException, MslMessageException
from missile.keyx.base import KeyExchangeResult, KeyRequestData
from missile.messages.builder import build_error_response, exchange_keys
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.header import HeaderData, MessageHeader
from missile.messages.reader import MessageReader, ReaderLimits
from missile.messages.writer import DEFAULT_CHUNK_SIZE, MessageWriter
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import UserAuthData

__all__ = ["MslPeer", "PeerResponse"]

#: Largest request or reply payload a peer buffers (bytes); a larger one is refused with
#: MESSAGE_FORMAT_ERROR so that a hostile peer cannot make it hold unbounded data.
MAX_PAYLOAD_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Tokens:
    """What one outgoing message carries besides its master tokens."""

    user_id_token: UserIdToken | None = None
    user_auth_data: UserAuthData | None = None
    service_tokens: tuple[ServiceToken, ...] = ()
    peer_user_id_token: UserIdToken | None = None
    peer_service_tokens: tuple[ServiceToken, ...] = ()
    non_replayable: bool = False


class PeerResponse(Response):
    """A peer's reply as a :class:`~missile.engine.client.Response`, its tokens read from
    the peer slots: a reply's own master and user ID tokens are the ones the requester
    issued, and the ones it issued to the requester travel in ``peermastertoken`` and
    ``peeruseridtoken`` (or, new, in the key response data)."""

    @property
    def master_token(self) -> MasterToken | None:
        """The master token the other peer issued to this one, now in use."""
        krd = self.header.data.key_response_data
        return krd.master_token if krd is not None else self.header.data.peer_master_token

    @property
    def user_id_token(self) -> UserIdToken | None:
        """The user ID token the other peer issued (or renewed) for the request's user."""
        return self.header.data.peer_user_id_token


def _stream(channel: Channel) -> MessageStream:
    return channel if isinstance(channel, MessageStream) else MessageStream(channel)


class MslPeer:
    """One entity of a peer-to-peer MSL network."""

    def __init__(
        self,
        ctx: MslContext,
        *,
        handler: Handler | None = None,
        key_request_factory: Callable[[], Sequence[KeyRequestData]] | None = None,
        options: MessageOptions | None = None,
        capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reader_limits: ReaderLimits | None = None,
        max_messages: int = MAX_MESSAGES,
        max_payload_size: int = MAX_PAYLOAD_SIZE,
        service_token_contexts: Mapping[str, CryptoContext] | None = None,
    ) -> None:
        """``service_token_contexts`` open the service tokens this entity issued (by
        name, "" the default) when the other peer sends them back."""
        if not ctx.peer_to_peer:
            raise ValueError("a peer needs a peer-to-peer context")
        if ctx.store is None or ctx.token_factory is None:
            raise ValueError("a peer needs a store and a token factory")
        self.ctx = ctx
        self.handler = handler
        self.key_request_factory = key_request_factory
        self.options = options or MessageOptions()
        self.capabilities = capabilities
        self.chunk_size = chunk_size
        self.reader_limits = reader_limits
        self.max_messages = max_messages
        self.max_payload_size = max_payload_size
        self.service_token_contexts = dict(service_token_contexts or {})
        self.issued: MasterToken | None = None
        """The newest master token this entity issued to the other peer."""
        self.remote_offset_ms: int | None = None

    # -- token bookkeeping ----------------------------------------------------------------

    @property
    def primary(self) -> MasterToken | None:
        """The newest master token the other peer issued to this entity."""
        assert self.ctx.store is not None
        return self.ctx.store.get_master_token()

    def user_id_token(self, user_id: str) -> UserIdToken | None:
        """The stored user ID token the other peer issued for ``user_id``, while it is
        bound to the current primary master token."""
        store = self.ctx.store
        assert store is not None
        token = store.get_user_id_token(user_id)
        primary = self.primary
        return token if token is not None and primary is not None and token.is_bound_to(primary) else None

    def _remote_now(self) -> int | None:
        return None if self.remote_offset_ms is None else self.ctx.clock() + self.remote_offset_ms

    def _note_issued(self, token: MasterToken | None) -> None:
        if token is not None and token.verified and (self.issued is None or token.is_newer_than(self.issued)):
            self.issued = token

    def _absorb(self, received: Message, user_id: str | None = None) -> None:
        """Take what a received header gives this entity: the clock offset, a master
        token issued to it (with its keys), and its peer user ID and service tokens."""
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
        if krd is not None and received.key_exchange_crypto_context is not None:
            old = self.primary
            store.set_crypto_context(krd.master_token, received.key_exchange_crypto_context)
            if old is not None and old != krd.master_token and old.serial_number == krd.master_token.serial_number:
                store.remove_crypto_context(old)
        uit = data.peer_user_id_token
        if uit is not None and user_id is not None:
            store.add_user_id_token(user_id, uit)
        for token in data.peer_service_tokens:
            if token.deleted:
                store.remove_service_tokens(
                    token.name,
                    self.primary if token.is_master_token_bound else None,
                    uit if token.is_user_id_token_bound else None,
                )
            else:
                store.add_service_tokens([token])

    def _held_primary(self) -> choice.Held[MasterToken] | None:
        """The primary master token with its state at the remote time."""
        return choice.held(self.primary, self._remote_now())

    def _needs_keys(self) -> bool:
        return choice.keys_due(self._held_primary())

    def _outgoing_tokens(
        self, user_id_token: UserIdToken | None, extra: Iterable[ServiceToken] = ()
    ) -> tuple[ServiceToken, ...]:
        """The stored service tokens the other peer issued to us (and ``extra``) that
        fit the primary token set of the next message."""
        store = self.ctx.store
        assert store is not None
        primary = self.primary
        tokens: dict[tuple[str, int | None, int | None], ServiceToken] = {}
        for token in (*store.get_service_tokens(primary, user_id_token), *extra):
            tokens[token.key] = token
        return _bound(tokens.values(), primary, user_id_token)

    # -- sending ----------------------------------------------------------------------------

    def _build(
        self,
        message_id: int,
        *,
        renewable: bool,
        handshake: bool = False,
        key_request_data: Sequence[KeyRequestData] = (),
        keyx: KeyExchangeResult | None = None,
        respond_to: MessageHeader | None = None,
        tokens: _Tokens = _Tokens(),
    ) -> tuple[MessageHeader, bool, bool]:
        """A header with our primary token (or entity auth), the token we issued as the
        peer token (or, in ``keyx``, the one we just issued), and ``tokens``."""
        ctx = self.ctx
        primary = self.primary
        ead = None if primary is not None else ctx.get_entity_auth_data()
        if primary is None and ead is None:
            raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND)
        encrypts = primary is not None or (ead is not None and ead.encrypts)
        protects = primary is not None or (ead is not None and ead.protects_integrity)
        if keyx is not None:
            self.issued = keyx.response.master_token
        peer_token = self.issued
        if respond_to is not None and respond_to.master_token is not None and respond_to.master_token.verified:
            # Answer with the token the other peer uses: a newer one may be on its way.
            peer_token = respond_to.master_token
        if keyx is not None:
            peer_token = None  # the newly issued token travels in the key response data
        # A non-replayable ID counts per master token; a handshake is never non-replayable.
        non_replayable_id = None
        if tokens.non_replayable and primary is not None and not handshake:
            assert ctx.store is not None
            non_replayable_id = ctx.store.get_non_replayable_id(primary)
        caps = self.capabilities
        if respond_to is not None and respond_to.data.capabilities is not None:
            caps = respond_to.data.capabilities.intersection(self.capabilities)
        data = HeaderData(
            message_id=message_id,
            timestamp=ctx.clock() // 1000,
            renewable=renewable or handshake,
            handshake=handshake,
            non_replayable_id=non_replayable_id,
            capabilities=caps,
            key_request_data=tuple(key_request_data) if (renewable or handshake) else (),
            key_response_data=keyx.response if keyx is not None else None,
            user_auth_data=tokens.user_auth_data if encrypts else None,
            user_id_token=tokens.user_id_token if primary is not None else None,
            service_tokens=tokens.service_tokens if primary is not None else (),
            peer_master_token=peer_token,
            peer_user_id_token=tokens.peer_user_id_token,
            peer_service_tokens=tokens.peer_service_tokens,
        )
        header = MessageHeader.create(ctx, data, master_token=primary, entity_auth_data=ead)
        return header, encrypts, protects

    async def _send(self, channel: Channel, header: MessageHeader, data: bytes | None) -> None:
        writer = MessageWriter(header, header.crypto_context, chunk_size=self.chunk_size)
        await write_message(channel, writer, None if header.is_handshake else (data or b""), self.chunk_size)

    async def _receive(self, channel: Channel, key_request_data: Sequence[KeyRequestData]) -> Message | None:
        reader = MessageReader(
            self.ctx,
            service_token_contexts=self.service_token_contexts,
            key_request_data=key_request_data,
            limits=self.reader_limits,
        )
        received = await read_message(channel, reader, max_payload=self.max_payload_size)
        if received is not None and received.header is not None:
            await check_request(self.ctx, received.header)
        return received

    # -- requesting -------------------------------------------------------------------------

    def _request_tokens(self, options: MessageOptions) -> tuple[_Tokens, bool]:
        """The user and service tokens of a request, and whether it asks for a user ID
        token (or its renewal)."""
        user_id_token = self.user_id_token(options.user_id) if options.user_id is not None else None
        user_auth = None
        if options.user_id is not None and user_id_token is None:
            user_auth = options.user_auth_data(None)
        wants = user_auth is not None or (user_id_token is not None and user_id_token.is_renewable(self._remote_now()))
        service_tokens = self._outgoing_tokens(user_id_token, options.service_tokens)
        return _Tokens(user_id_token, user_auth, service_tokens, non_replayable=options.non_replayable), wants

    async def request(self, channel: Channel, data: bytes = b"", options: MessageOptions | None = None) -> Response:
        """Send ``data`` on ``channel`` and return the other peer's reply.

        Pass a :class:`~missile.engine.message_io.MessageStream` (as
        :func:`missile.transport.tcp.connect_peer_tcp` returns) when several requests
        share a connection, so nothing the other peer sent early is lost between them.
        """
        stream = _stream(channel)
        options = options or self.options
        message_id = random_long(self.ctx.random)
        used = 0
        while True:
            if used + 2 > self.max_messages:
                raise MslMessageLimitExceeded(None)
            used += 2
            primary = self._held_primary()
            needs_keys = choice.keys_due(primary)
            tokens, wants_user_token = self._request_tokens(options)
            renewable = needs_keys or wants_user_token or options.requesting_tokens
            key_request_data = list(self.key_request_factory()) if needs_keys and self.key_request_factory else []
            keys_first = False
            if key_request_data and not data:
                # Empty data with key requests reads as a legacy handshake (messages.md §9)
                # and would never reach the handler: the client's rule decides instead.
                keys_first = choice.handshake_for_empty(primary)
                if not keys_first:
                    key_request_data = []
            header, encrypts, protects = self._build(
                message_id, renewable=renewable, key_request_data=key_request_data, tokens=tokens
            )
            handshake = keys_first or choice.needs_handshake(
                choice.Protection(encrypts, protects),
                choice.Needs.of(options, empty=not data),
                master_token=primary is not None,
                user_auth=tokens.user_auth_data is not None,
            )
            if handshake:
                if not key_request_data:
                    raise MslMessageException(MslError.HANDSHAKE_DATA_MISSING, "no key request data")
                header, _, _ = self._build(
                    message_id, renewable=True, handshake=True, key_request_data=key_request_data
                )
            await self._send(stream, header, None if handshake else data)
            received = await self._receive(stream, key_request_data)
            if received is None or (received.header is None and received.error is None):
                raise MslException(MslError.MSL_COMMS_FAILURE, "the peer closed the channel")
            if received.error is not None:
                raise MslErrorResponse(received.error)
            reply = received.header
            assert reply is not None
            if reply.message_id != next_id(header.message_id):
                raise MslMessageException(MslError.UNEXPECTED_RESPONSE_MESSAGE_ID, str(reply.message_id))
            self._absorb(received, options.user_id)
            if reply.data.renewable and reply.data.key_request_data:
                # The peer wants a master token from us: answer on the same channel
                # (control.md §3.5), a key-exchange message without application data.
                used += 1
                keyx = exchange_keys(self.ctx, reply)
                answer, _, _ = self._build(next_id(reply.message_id), renewable=False, keyx=keyx, respond_to=reply)
                await record_issued(self.ctx, reply, answer)
                await self._send(stream, answer, b"")
                if not handshake:
                    return PeerResponse(reply, received.payload, used)
                message_id = next_id(answer.message_id)
                continue
            if handshake:
                message_id = next_id(reply.message_id)
                continue
            return PeerResponse(reply, received.payload, used)

    # -- responding ---------------------------------------------------------------------------

    async def serve_channel(self, channel: Channel) -> None:
        """Answer requests arriving on ``channel`` until the other peer closes it.

        A :class:`~missile.engine.errors.ReadTimeout` of the channel is raised as it is:
        the transport closes the connection (there is nobody to answer)."""
        stream = _stream(channel)
        while True:
            try:
                received = await self._receive(stream, ())
            except ReadTimeout:
                raise
            except MslException as exc:
                await self._send_error(stream, exc, None)
                return
            if received is None:
                return
            if received.error is not None or received.header is None:
                continue
            request = received.header
            try:
                self._absorb(received)
                await self._respond(stream, request, received)
            except MslException as exc:
                await self._send_error(stream, exc, request)

    async def _respond(self, channel: MessageStream, request: MessageHeader, received: Message) -> None:
        # A handshake gets key exchange only; a request gets the application's reply.
        reply = Reply()
        if not received.handshake and self.handler is not None:
            result = await self.handler(Request(request, received.payload))
            reply = result if isinstance(result, Reply) else Reply(data=result or b"")
        data = reply.data
        reply_data = data if isinstance(data, bytes) else b"".join([piece async for piece in data])
        keyx = exchange_keys(self.ctx, request)
        renewable = self._needs_keys()
        key_request_data = list(self.key_request_factory()) if renewable and self.key_request_factory else []
        header, encrypts, protects = self._build(
            next_id(request.message_id),
            renewable=renewable,
            key_request_data=key_request_data,
            keyx=keyx,
            respond_to=request,
            tokens=self._response_tokens(request, keyx, reply.service_tokens),
        )
        if not received.handshake:
            options = reply.options or self.options
            if options.integrity_protected and not protects:
                raise MslException(MslError.RESPONSE_REQUIRES_INTEGRITY_PROTECTION)
            if options.encrypted and not encrypts:
                raise MslException(MslError.RESPONSE_REQUIRES_ENCRYPTION)
        await record_issued(self.ctx, request, header)
        await self._send(channel, header, reply_data)
        if key_request_data:
            # The requester answers our key request on the same channel.
            answer = await self._receive(channel, key_request_data)
            if answer is not None and answer.header is not None:
                self._absorb(answer)

    def _response_tokens(
        self, request: MessageHeader, keyx: KeyExchangeResult | None, service_tokens: Sequence[ServiceToken]
    ) -> _Tokens:
        """The user ID token to issue or renew for the request's user, and the
        application's service tokens, in the peer slots of the response: bound to the
        master token we issued to the requester (control.md §4.3)."""
        bound_to = keyx.response.master_token if keyx is not None else request.master_token
        if bound_to is None:
            return _Tokens()
        factory = self.ctx.token_factory
        assert factory is not None
        data = request.data
        uit = data.user_id_token
        if uit is None and data.user_auth_data is not None and request.user is not None:
            uit = factory.create_user_id_token(self.ctx, request.user, bound_to)
        elif (
            uit is not None
            and uit.verified
            and ((data.renewable and uit.is_renewable(None)) or uit.is_expired(None) or not uit.is_bound_to(bound_to))
        ):
            uit = factory.renew_user_id_token(self.ctx, uit, bound_to)
        elif uit is not None and not uit.is_bound_to(bound_to):
            uit = None
        return _Tokens(peer_user_id_token=uit, peer_service_tokens=_bound(service_tokens, bound_to, uit))

    async def _send_error(self, channel: Channel, exc: MslException, request: MessageHeader | None) -> None:
        try:
            error = build_error_response(self.ctx, exc, request.message_id if request is not None else None)
        except MslException:
            raise MslInternalException("cannot build an error response", cause=exc) from exc
        await channel.write(error.encode())


def _bound(
    tokens: Iterable[ServiceToken], master_token: MasterToken | None, user_id_token: UserIdToken | None
) -> tuple[ServiceToken, ...]:
    """The service tokens that may travel with this master token and user ID token."""
    return tuple(
        t
        for t in tokens
        if (not t.is_master_token_bound or t.is_bound_to_master_token(master_token))
        and (not t.is_user_id_token_bound or t.is_bound_to_user_id_token(user_id_token))
    )
