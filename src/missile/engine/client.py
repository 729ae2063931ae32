"""The requesting side of the protocol engine (control.md §3, §5, §6, errors.md §2).

:class:`MslClient` sends an application request and returns the response, doing what
MSL promises on the way: it protects the message with the newest master token (or the
entity's authentication data), asks for keys when it needs them or when its token is
renewable, sends a handshake first when the data cannot yet be protected as required,
keeps the store current from every response, and recovers automatically from every
recoverable error response, within 12 messages per application request.

Renewable messages go one at a time per context (control.md §3.2). When the store is
shared by several processes (:class:`SharedStore`, e.g. one SQLite file), the lock
extends across them through the store: otherwise each process would run its own key
exchange, and since an issuer keeps one current master token serial per identity, each
new exchange would revoke the tokens the others had just obtained.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import next_id
from missile.engine.body import MessageBody
from missile.engine.errors import MslErrorResponse, MslMessageLimitExceeded
from missile.engine.message_io import MessageStream, read_head, read_message, read_payload, write_message
from missile.engine.options import MessageOptions
from missile.engine.transport import Channel, ClientTransport, CountingChannel
from missile.errors import MslError, MslException, MslMessageException, ResponseCode
from missile.keyx.base import KeyRequestData
from missile.messages.builder import build_request
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.header import MessageHeader
from missile.messages.negotiation import remember_peer_formats
from missile.messages.reader import MessageReader, ReaderLimits
from missile.messages.writer import DEFAULT_CHUNK_SIZE, MessageWriter
from missile.observe.base import CURRENT, MessageObserved, Observer, RecoveryObserved
from missile.observe.logs import LogObserver
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import UserAuthData

__all__ = ["MAX_MESSAGES", "MslClient", "Response", "SharedStore", "StreamingResponse"]

log = logging.getLogger("missile.client")

#: Application data to send: any bytes-like object (a memoryview of a mapped file
#: sends a large file without copying it into memory).
Payload = bytes | bytearray | memoryview

#: control.md §6: an application operation involves at most 12 MSL messages.
MAX_MESSAGES = 12

# Error codes whose message ID a requester does not check (messages.md §7).
_UNCHECKED_IDS = frozenset(
    {ResponseCode.FAIL, ResponseCode.TRANSIENT_FAILURE, ResponseCode.ENTITY_REAUTH, ResponseCode.ENTITYDATA_REAUTH}
)


@runtime_checkable
class SharedStore(Protocol):
    """A store that several processes share, with a lock held across them."""

    async def acquire_exchange_lock(self) -> Callable[[], None]:
        """Take the cross-process lock; return the function releasing it."""
        ...


class _RenewalLock:
    """The context's renewal lock, extended across processes by a :class:`SharedStore`.

    The in-process lock is always taken first, so a process asks for the shared lock
    once at a time per context, and all holders take the two in the same order.
    """

    def __init__(self, local: asyncio.Lock, store: object) -> None:
        self._local = local
        self._store = store if isinstance(store, SharedStore) else None
        self._release_shared: Callable[[], None] | None = None

    def locked(self) -> bool:
        return self._local.locked()

    async def acquire(self) -> None:
        await self._local.acquire()
        if self._store is None:
            return
        try:
            self._release_shared = await self._store.acquire_exchange_lock()
        except BaseException:
            self._local.release()
            raise

    def release(self) -> None:
        release, self._release_shared = self._release_shared, None
        try:
            if release is not None:
                release()
        finally:
            self._local.release()


class _ResponseTokens:
    """The tokens a response leaves the client with."""

    header: MessageHeader

    @property
    def master_token(self) -> MasterToken | None:
        """The master token now in use (the new one after key exchange)."""
        krd = self.header.data.key_response_data
        return krd.master_token if krd is not None else self.header.master_token

    @property
    def user_id_token(self) -> UserIdToken | None:
        """The user ID token the response carried, if any."""
        return self.header.data.user_id_token

    @property
    def identity(self) -> str | None:
        """The sender identity the response header names: the responder's entity
        identity when it answered with entity authentication data, or the master
        token's when that token is readable (None when the response uses a master token
        a trusted-network client cannot open, which is the usual case)."""
        return self.header.identity


@dataclass(frozen=True)
class Response(_ResponseTokens):
    """The application-level result of a request."""

    header: MessageHeader
    """The response header."""
    payload: bytes = field(repr=False)
    """The response application data (plaintext, so never in the repr)."""
    messages: int
    """How many MSL messages the exchange took (requests, responses, resends)."""
    pushes: tuple[bytes, ...] = field(default=(), repr=False)
    """Payloads of messages the server pushed after its response (control.md §4.5)."""


@dataclass(frozen=True)
class StreamingResponse(_ResponseTokens):
    """A response whose payload is read as it arrives (see :meth:`MslClient.request_stream`)."""

    header: MessageHeader
    """The response header (already verified; the store is already updated)."""
    body: MessageBody
    """The payload, chunk by chunk: ``async for chunk in response.body``."""
    messages: int
    """How many MSL messages the exchange took."""
    _channel: Channel = field(repr=False)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.body.__aiter__()

    async def read(self) -> bytes:
        """The whole payload."""
        try:
            return await self.body.read()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release the connection (reading the payload to its end does it too)."""
        await self._channel.close()

    async def __aenter__(self) -> StreamingResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class _Attempt:
    message_id: int | None = None
    force_entity_auth: bool = False
    force_renewable: bool = False
    entity_reauth: ResponseCode | None = None
    user_auth: UserAuthData | None = None
    user_auth_delivered: bool = False


@dataclass
class _Plan:
    master_token: MasterToken | None
    user_id_token: UserIdToken | None
    user_auth_data: UserAuthData | None
    renewable: bool
    handshake: bool
    key_requests: list[KeyRequestData] = field(default_factory=list)
    lock_held: bool = False


@dataclass
class _Result:
    request: MessageHeader
    header: MessageHeader | None
    error: ErrorHeader | None
    payload: bytes
    keyx_context: CryptoContext | None = None
    pushes: tuple[bytes, ...] = ()
    body: MessageBody | None = None
    channel: Channel | None = None


class MslClient:
    """An asyncio MSL requester in a trusted services network."""

    def __init__(
        self,
        ctx: MslContext,
        transport: ClientTransport,
        *,
        key_requests: Callable[[], Sequence[KeyRequestData]] | None = None,
        capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reader_limits: ReaderLimits | None = None,
        max_messages: int = MAX_MESSAGES,
        max_payload_size: int = 256 * 1024 * 1024,
        observer: Observer | None = None,
    ) -> None:
        """``key_requests`` produces fresh key request data (with private parts) each
        time the client asks for keys; without it the client cannot establish sessions.
        ``max_payload_size`` bounds a buffered response (:meth:`request_stream` has none).
        ``observer`` is told of every message and recovery step (:mod:`missile.observe`;
        by default a :class:`~missile.observe.LogObserver`)."""
        if ctx.store is None:
            raise ValueError("an MSL client needs a store")
        self.ctx = ctx
        self.transport = transport
        self.key_requests = key_requests
        self.capabilities = capabilities
        self.chunk_size = chunk_size
        self.reader_limits = reader_limits
        self.max_messages = max_messages
        self.max_payload_size = max_payload_size
        self.observer: Observer = observer if observer is not None else LogObserver()
        self.remote_offset_ms: int | None = None
        """Estimated remote clock minus local clock (control.md §9)."""
        # control.md §11: a master token in use by an in-flight exchange is deleted only
        # once that exchange has finished.
        # Shared by every client of the context, like the renewal lock.
        self._in_use = ctx.master_tokens_in_use
        self._doomed = ctx.master_tokens_doomed
        self._latest: MasterToken | None = None
        """The master token of the last key response this client received."""
        self._renewal_lock = _RenewalLock(ctx.renewal_lock, ctx.store)

    def remote_time_ms(self) -> int | None:
        """The estimated remote time, once a response has been seen."""
        if self.remote_offset_ms is None:
            return None
        return self.ctx.clock() + self.remote_offset_ms

    def _lock(self) -> _RenewalLock:
        # control.md §3.2: one renewable message at a time per context, whichever
        # client (and transport) sends it, and per shared store, whichever process.
        return self._renewal_lock

    # -- public API -------------------------------------------------------------------

    async def request(self, data: Payload = b"", options: MessageOptions | None = None) -> Response:
        """Send ``data`` and return the response, recovering from errors automatically."""
        response = await self._run(data, options or MessageOptions(), one_way=False)
        assert isinstance(response, Response)
        return response

    async def request_stream(self, data: Payload = b"", options: MessageOptions | None = None) -> StreamingResponse:
        """Like :meth:`request`, but return as soon as the response header has been
        verified; the payload is then read chunk by chunk from ``response.body``. Use
        ``async with`` (or read it to the end) to release the connection."""
        response = await self._run(data, options or MessageOptions(), one_way=False, stream=True)
        assert isinstance(response, StreamingResponse)
        return response

    async def send(self, data: Payload = b"", options: MessageOptions | None = None) -> Response | None:
        """Send ``data`` one way. The server answers only when it has tokens to deliver
        (or an error); that answer is processed and returned, otherwise None."""
        response = await self._run(data, options or MessageOptions(), one_way=True)
        assert response is None or isinstance(response, Response)
        return response

    async def _run(
        self, data: Payload, options: MessageOptions, *, one_way: bool, stream: bool = False
    ) -> Response | StreamingResponse | None:
        # The observer's trace context reaches the transport through the task's context.
        observer = self.observer
        token = CURRENT.set(observer)
        try:
            with observer.span("client request", {"msl.one_way": int(one_way)}):
                return await self._attempts(data, options, one_way=one_way, stream=stream)
        finally:
            CURRENT.reset(token)

    async def _attempts(
        self, data: Payload, options: MessageOptions, *, one_way: bool, stream: bool
    ) -> Response | StreamingResponse | None:
        attempt = _Attempt()
        used = 0
        last_error: MslException | None = None
        while True:
            if used + 2 > self.max_messages:
                raise MslMessageLimitExceeded(last_error)
            used += 2
            plan = await self._plan(options, attempt, empty=len(data) == 0)
            in_use = plan.master_token
            if in_use is not None:
                self._in_use[in_use] = self._in_use.get(in_use, 0) + 1
            try:
                result = await self._exchange(plan, attempt, data, options, one_way=one_way, stream=stream)
                if result is None:
                    return None
                self._absorb(plan, result, options)
            finally:
                if in_use is not None:
                    self._release_master_token(in_use)
                if plan.lock_held:
                    self._lock().release()
            if result.error is not None:
                last_error = MslErrorResponse(result.error)
                self._observe_recovery(result.error, used)
                attempt = self._recover(plan, result.error, options)
                continue
            assert result.header is not None
            if plan.handshake:
                # Resend the application data in response to the handshake response.
                attempt = _Attempt(message_id=next_id(result.header.message_id))
                continue
            if result.body is not None:
                assert result.channel is not None
                return StreamingResponse(result.header, result.body, used, result.channel)
            return Response(result.header, result.payload, used, result.pushes)

    # -- planning -----------------------------------------------------------------------

    def _tokens(self, options: MessageOptions, attempt: _Attempt) -> tuple[MasterToken | None, UserIdToken | None]:
        store = self.ctx.store
        assert store is not None
        master_token = None if attempt.force_entity_auth else self._newest_master_token()
        user_id_token = None
        # A resend after a user reauth code carries fresh user auth data and no user ID
        # token, even when the store keeps it (SSOTOKEN_REJECTED, errors.md §2).
        if master_token is not None and options.user_id is not None and attempt.user_auth is None:
            user_id_token = store.get_user_id_token(options.user_id)
            if user_id_token is not None and not user_id_token.is_bound_to(master_token):
                user_id_token = None
        return master_token, user_id_token

    def _newest_master_token(self) -> MasterToken | None:
        """The store's newest master token, passing over one that is being deleted (it
        stays stored only until its in-flight exchanges end, control.md §11) for the
        last one a key response gave, when that one is still stored."""
        store = self.ctx.store
        assert store is not None
        newest = store.get_master_token()
        latest = self._latest
        if (
            newest in self._doomed
            and latest is not None
            and latest not in self._doomed
            and store.get_crypto_context(latest) is not None
        ):
            return latest
        return newest

    def _protection(self, master_token: MasterToken | None, attempt: _Attempt) -> tuple[bool, bool]:
        if master_token is not None:
            return True, True
        ead = self.ctx.get_entity_auth_data(attempt.entity_reauth)
        if ead is None:
            raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND, "no entity authentication data")
        return ead.encrypts, ead.protects_integrity

    def _mandatory_renewable(
        self,
        options: MessageOptions,
        attempt: _Attempt,
        master_token: MasterToken | None,
        user_id_token: UserIdToken | None,
    ) -> bool:
        encrypts, protects = self._protection(master_token, attempt)
        now = self.remote_time_ms()
        return (
            (options.encrypted and not encrypts)
            or (options.integrity_protected and not protects)
            or attempt.force_renewable
            or (options.non_replayable and master_token is None)
            or (master_token is not None and master_token.is_expired(now))
            or (options.user_id is not None and user_id_token is None and not (encrypts and protects))
            or (
                options.requesting_tokens
                and (master_token is None or (options.user_id is not None and user_id_token is None))
            )
        )

    async def _plan(self, options: MessageOptions, attempt: _Attempt, *, empty: bool = False) -> _Plan:
        lock = self._lock()
        master_token, user_id_token = self._tokens(options, attempt)
        lock_held = False
        if self._mandatory_renewable(options, attempt, master_token, user_id_token):
            # control.md §3.2: one renewable message at a time; waiters re-evaluate
            # with whatever the holder obtained.
            before = self._newest_master_token()
            await lock.acquire()
            lock_held = True
            newest = self._newest_master_token()
            if newest is not None and newest != before:
                # The holder obtained a new master token while we waited: use it (also
                # for a resend that was going to re-authenticate or ask for keys), and
                # keep the lock only if renewal is still mandatory with it.
                attempt.force_entity_auth = False
                attempt.force_renewable = False
                master_token, user_id_token = self._tokens(options, attempt)
                if not self._mandatory_renewable(options, attempt, master_token, user_id_token):
                    lock.release()
                    lock_held = False
            else:
                master_token, user_id_token = self._tokens(options, attempt)
        now = self.remote_time_ms()
        if not lock_held and not lock.locked():
            wants = (
                master_token is None
                or master_token.is_renewable(now)
                or (options.user_id is not None and user_id_token is None)
                or (user_id_token is not None and user_id_token.is_renewable(now))
            )
            if wants:
                await lock.acquire()
                lock_held = True
                # Waiting may have let another exchange renew or delete these tokens.
                master_token, user_id_token = self._tokens(options, attempt)
        try:
            return self._finish_plan(options, attempt, master_token, user_id_token, lock_held, now, empty=empty)
        except BaseException:
            if lock_held:
                lock.release()
            raise

    def _finish_plan(
        self,
        options: MessageOptions,
        attempt: _Attempt,
        master_token: MasterToken | None,
        user_id_token: UserIdToken | None,
        renewable: bool,
        now: int | None,
        *,
        empty: bool = False,
    ) -> _Plan:
        encrypts, protects = self._protection(master_token, attempt)
        user_auth: UserAuthData | None = None
        delay_user = False
        if options.user_id is not None and user_id_token is None:
            user_auth = attempt.user_auth if attempt.user_auth is not None else options.user_auth_data(None)
            if user_auth is not None and not (encrypts and protects):
                # User credentials never travel unprotected (control.md §3.3 step 1).
                delay_user = True
                user_auth = None
        can_send = (
            not delay_user
            and (not options.encrypted or encrypts)
            and (not options.integrity_protected or protects)
            and (not options.non_replayable or master_token is not None)
        )
        handshake = not can_send
        if handshake:
            renewable = True
        key_requests: list[KeyRequestData] = []
        if renewable and (
            master_token is None
            or master_token.is_renewable(now)
            or master_token.is_expired(now)
            or options.non_replayable
            or attempt.force_renewable
        ):
            if self.key_requests is not None:
                key_requests = list(self.key_requests())
        if key_requests and empty and not handshake:
            handshake, key_requests = _unambiguous_empty(master_token, now, attempt, key_requests)
        if handshake and not key_requests:
            raise MslMessageException(MslError.HANDSHAKE_DATA_MISSING, "no key request data to establish keys")
        return _Plan(master_token, user_id_token, user_auth, renewable, handshake, key_requests, renewable)

    # -- one exchange -----------------------------------------------------------------

    async def _exchange(
        self,
        plan: _Plan,
        attempt: _Attempt,
        data: Payload,
        options: MessageOptions,
        *,
        one_way: bool = False,
        stream: bool = False,
    ) -> _Result | None:
        """One message and its answer, in a tracing scope, told to the observer."""
        start = time.perf_counter()
        counted: list[CountingChannel] = []
        result: _Result | None = None
        failure: MslException | None = None
        with self.observer.span("client message", {"msl.handshake": int(plan.handshake)}):
            try:
                result = await self._exchange_once(
                    plan, attempt, data, options, counted, one_way=one_way, stream=stream
                )
                return result
            except MslException as exc:
                failure = exc
                raise
            finally:
                self._observe(plan, result, failure, counted, time.perf_counter() - start)

    def _observe(
        self,
        plan: _Plan,
        result: _Result | None,
        failure: MslException | None,
        counted: list[CountingChannel],
        duration: float,
    ) -> None:
        header = result.header if result is not None else None
        error = result.error if result is not None else None
        krd = header.data.key_response_data if header is not None else None
        if error is not None or failure is not None:
            kind = "error"
        elif plan.handshake:
            kind = "handshake"
        elif krd is not None:
            kind = "renewal" if plan.master_token is not None else "key_exchange"
        else:
            kind = "application"
        try:
            self.observer.message(
                MessageObserved(
                    role="client",
                    kind=kind,
                    identity=_own_identity(self.ctx),
                    message_id=header.message_id if header is not None else None,
                    key_exchange=krd.scheme if krd is not None else None,
                    error=_error_name(error, failure),
                    response_code=error.error_code.name if error is not None else None,
                    bytes_in=counted[0].received if counted else 0,
                    bytes_out=counted[0].sent if counted else 0,
                    duration=duration,
                )
            )
        except Exception:
            log.exception("an observer failed")

    def _observe_recovery(self, error: ErrorHeader, used: int) -> None:
        try:
            self.observer.recovery(
                RecoveryObserved(
                    error=_error_name(error, None) or "",
                    response_code=error.error_code.name,
                    action=_RECOVERY_ACTIONS.get(error.error_code, "report the error to the application"),
                    message=used,
                    budget=self.max_messages,
                )
            )
        except Exception:
            log.exception("an observer failed")

    async def _exchange_once(
        self,
        plan: _Plan,
        attempt: _Attempt,
        data: Payload,
        options: MessageOptions,
        counted: list[CountingChannel],
        *,
        one_way: bool,
        stream: bool,
    ) -> _Result | None:
        ctx = self.ctx
        store = ctx.store
        assert store is not None
        tokens: dict[tuple[str, int | None, int | None], ServiceToken] = {}
        for token in store.get_service_tokens(plan.master_token, plan.user_id_token):
            tokens[token.key] = token
        for token in options.service_tokens:
            tokens[token.key] = token
        built = build_request(
            ctx,
            message_id=attempt.message_id,
            master_token=plan.master_token,
            use_entity_auth=plan.master_token is None,
            user_id_token=plan.user_id_token,
            user_auth_data=plan.user_auth_data,
            key_request_data=plan.key_requests,
            renewable=plan.renewable,
            handshake=plan.handshake,
            non_replayable=options.non_replayable and not plan.handshake,
            service_tokens=[
                t
                for t in tokens.values()
                if (not t.is_master_token_bound or t.is_bound_to_master_token(plan.master_token))
                and (not t.is_user_id_token_bound or t.is_bound_to_user_id_token(plan.user_id_token))
            ],
            capabilities=self.capabilities,
        )
        writer = MessageWriter(built.header, built.payload_crypto_context, chunk_size=self.chunk_size)
        try:
            counting = CountingChannel(await self.transport.connect())
            counted.append(counting)
        except OSError as exc:
            raise MslException(MslError.MSL_COMMS_FAILURE, f"cannot connect: {exc.strerror or exc}") from exc
        channel: Channel = counting
        try:
            await write_message(channel, writer, None if plan.handshake else data, self.chunk_size, header_first=True)
            await channel.finish()
            result = await self._receive(
                channel, built.header, plan, options, one_way=one_way, stream=stream and not plan.handshake
            )
        except (OSError, EOFError) as exc:
            await channel.close()
            raise MslException(MslError.MSL_COMMS_FAILURE, type(exc).__name__) from exc
        except BaseException:
            await channel.close()
            raise
        if result is None or result.body is None:
            await channel.close()
        return result

    async def _receive(
        self,
        channel: Channel,
        request: MessageHeader,
        plan: _Plan,
        options: MessageOptions,
        *,
        one_way: bool,
        stream: bool = False,
    ) -> _Result | None:
        reader = self._reader(options, plan.key_requests)
        source = MessageStream(channel)
        pending: list[bytes] = []
        if not await read_head(source, reader, pending):
            if one_way and not plan.handshake:
                return None  # a one-way message the server did not answer
            raise MslMessageException(MslError.MSL_PARSE_ERROR, "no response")
        header, error, keyx_context = reader.header, reader.error_header, reader.key_exchange_crypto_context
        if stream and header is not None:
            body = MessageBody(reader, source, pending)
            return _Result(request, header, error, b"", keyx_context, (), body, channel)
        payload: list[bytes] = []
        received_size = 0
        async for chunk in read_payload(source, reader, pending):
            received_size += len(chunk)
            if received_size > self.max_payload_size:
                raise MslMessageException(
                    MslError.MESSAGE_FORMAT_ERROR, f"response payload exceeds {self.max_payload_size} bytes"
                )
            payload.append(chunk)
        pushes: tuple[bytes, ...] = ()
        if not source.at_eof and getattr(channel, "one_exchange", True):
            pushes = await self._pushes(source, options)
        return _Result(request, header, error, b"".join(payload), keyx_context, pushes)

    def _reader(self, options: MessageOptions, key_requests: Sequence[KeyRequestData] = ()) -> MessageReader:
        return MessageReader(
            self.ctx,
            service_token_contexts=options.service_token_contexts,
            key_requests=key_requests,
            limits=self.reader_limits,
        )

    async def _pushes(self, source: MessageStream, options: MessageOptions) -> tuple[bytes, ...]:
        """Messages the server pushed after the response, until the channel ends."""
        pushes: list[bytes] = []
        while True:
            push = await read_message(source, self._reader(options), max_payload=self.max_payload_size)
            if push is None:
                return tuple(pushes)
            pushes.append(push.payload)

    # -- bookkeeping --------------------------------------------------------------------

    def _absorb(self, plan: _Plan, result: _Result, options: MessageOptions) -> None:
        """Update the clock offset and the store from a response (control.md §3.4)."""
        ctx = self.ctx
        store = ctx.store
        assert store is not None
        expected_id = next_id(result.request.message_id)
        # The server's encoder formats, for the format of later requests (negotiation.py).
        remember_peer_formats(store, result.request, result.header, result.error)
        if result.error is not None:
            eh = result.error
            if eh.timestamp is not None:
                self.remote_offset_ms = eh.timestamp * 1000 - ctx.clock()
            if eh.error_code not in _UNCHECKED_IDS and eh.message_id != expected_id:
                raise MslMessageException(MslError.UNEXPECTED_RESPONSE_MESSAGE_ID, str(eh.message_id))
            return
        header = result.header
        assert header is not None
        data = header.data
        if header.message_id != expected_id:
            raise MslMessageException(MslError.UNEXPECTED_RESPONSE_MESSAGE_ID, str(header.message_id))
        if options.expected_remote_identity is not None and header.entity_auth_data is not None:
            if header.entity_auth_data.identity != options.expected_remote_identity:
                raise MslMessageException(MslError.MESSAGE_SENDER_MISMATCH, header.entity_auth_data.identity)
        if data.timestamp is not None:
            self.remote_offset_ms = data.timestamp * 1000 - ctx.clock()
        master_token = header.master_token
        krd = data.key_response_data
        if krd is not None:
            # A new serial number means the issuer authenticated the entity afresh, which
            # invalidates its earlier master tokens (control.md §2.2): drop them, or one
            # with a higher sequence number would stay the store's "newest".
            self._remove_other_serials(krd.master_token)
            if result.keyx_context is not None:
                store.set_crypto_context(krd.master_token, result.keyx_context)
                self._latest = krd.master_token
            if plan.master_token is not None and plan.master_token != krd.master_token:
                self._remove_master_token(plan.master_token)
            master_token = krd.master_token
        uit = data.user_id_token
        if uit is not None and options.user_id is not None and not uit.verified:
            store.add_user_id_token(options.user_id, uit)
        for token in data.service_tokens:
            if token.mt_serial_number is not None and master_token is not None and master_token.verified:
                continue
            if token.deleted:
                store.remove_service_tokens(
                    token.name,
                    master_token if token.is_master_token_bound else None,
                    uit if token.is_user_id_token_bound else None,
                )
            else:
                store.add_service_tokens([token])

    def _remove_other_serials(self, master_token: MasterToken) -> None:
        """Remove the stored master tokens whose serial number is not ``master_token``'s."""
        store = self.ctx.store
        assert store is not None
        latest = self._latest
        if latest is not None and latest.serial_number != master_token.serial_number:
            # The newest stored token may be an in-use one hiding it.
            if store.get_crypto_context(latest) is not None:
                self._remove_master_token(latest)
        seen: set[MasterToken] = set()
        while (held := store.get_master_token()) is not None and held.serial_number != master_token.serial_number:
            if held in seen:
                break  # in use: deleted when its last exchange ends
            seen.add(held)
            self._remove_master_token(held)

    def _remove_master_token(self, master_token: MasterToken) -> None:
        """Delete a master token's session now, or when its last in-flight exchange ends."""
        if self._in_use.get(master_token):
            self._doomed.add(master_token)
        else:
            store = self.ctx.store
            assert store is not None
            store.remove_crypto_context(master_token)

    def _release_master_token(self, master_token: MasterToken) -> None:
        count = self._in_use.get(master_token, 0) - 1
        if count > 0:
            self._in_use[master_token] = count
            return
        self._in_use.pop(master_token, None)
        if master_token in self._doomed:
            self._doomed.discard(master_token)
            self._remove_master_token(master_token)

    def _recover(self, plan: _Plan, error: ErrorHeader, options: MessageOptions) -> _Attempt:
        """The resend for an error response (errors.md §2), or raise it to the application."""
        ctx = self.ctx
        store = ctx.store
        assert store is not None
        code = error.error_code
        nxt = _Attempt(message_id=next_id(error.message_id))
        if code in (ResponseCode.ENTITY_REAUTH, ResponseCode.ENTITYDATA_REAUTH):
            if plan.master_token is not None:
                self._remove_master_token(plan.master_token)
            if ctx.get_entity_auth_data(code) is None:
                raise MslErrorResponse(error)
            nxt.force_entity_auth = True
            nxt.entity_reauth = code
            return nxt
        if code in (ResponseCode.USER_REAUTH, ResponseCode.USERDATA_REAUTH, ResponseCode.SSOTOKEN_REJECTED):
            if code != ResponseCode.SSOTOKEN_REJECTED and plan.user_id_token is not None:
                store.remove_user_id_token(plan.user_id_token)
            reauth = None if code == ResponseCode.USER_REAUTH else code
            user_auth = options.user_auth_data(reauth)
            if user_auth is None or options.user_id is None:
                raise MslErrorResponse(error)
            nxt.user_auth = user_auth
            return nxt
        if code == ResponseCode.KEYX_REQUIRED:
            if plan.master_token is None and not self.key_requests:
                raise MslErrorResponse(error)
            nxt.force_entity_auth = True
            nxt.force_renewable = True
            return nxt
        if code == ResponseCode.EXPIRED:
            newest = self._newest_master_token()
            nxt.force_renewable = plan.master_token is None or newest == plan.master_token
            return nxt
        if code == ResponseCode.REPLAYED:
            return nxt
        raise MslErrorResponse(error)


def _unambiguous_empty(
    master_token: MasterToken | None, now: int | None, attempt: _Attempt, key_requests: list[KeyRequestData]
) -> tuple[bool, list[KeyRequestData]]:
    """Whether to send a handshake first, and the key requests to send, for an empty payload.

    A renewable message with key request data and one empty end-of-message chunk is how
    older stacks marked a handshake, and receivers (the reference, and
    :class:`~missile.engine.server.MslServer`, for interoperability) still read it so
    (messages.md §9): the application would never see it. So an empty payload never
    travels with key requests: when keys are needed (no master token, an expired one, or
    a forced exchange) a real handshake goes first and the payload follows under the new
    master token; an optional renewal waits for a message that carries data.
    """
    if master_token is None or master_token.is_expired(now) or attempt.force_renewable:
        return True, key_requests
    return False, []


_RECOVERY_ACTIONS = {
    ResponseCode.ENTITY_REAUTH: "re-authenticate the entity",
    ResponseCode.ENTITYDATA_REAUTH: "re-authenticate the entity with new data",
    ResponseCode.USER_REAUTH: "re-authenticate the user",
    ResponseCode.USERDATA_REAUTH: "re-authenticate the user with new data",
    ResponseCode.SSOTOKEN_REJECTED: "re-authenticate the user",
    ResponseCode.KEYX_REQUIRED: "resend with key exchange",
    ResponseCode.EXPIRED: "renew the master token",
    ResponseCode.REPLAYED: "resend with a new non-replayable ID",
}


def _error_name(error: ErrorHeader | None, failure: MslException | None) -> str | None:
    if error is not None:
        known = error.error
        return known.name if known is not None else f"code {error.internal_code}"
    return failure.error.name if failure is not None else None


def _own_identity(ctx: MslContext) -> str | None:
    ead = ctx.entity_auth_data
    return ead.identity if ead is not None else None
