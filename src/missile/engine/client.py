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
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import next_id
from missile.engine import choice
from missile.engine.body import MessageBody
from missile.engine.choice import Attempt, Needs, Renewal
from missile.engine.errors import MslErrorResponse, MslMessageLimitExceeded
from missile.engine.message_io import MessageStream, read_head, read_message, read_rest, write_message
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

#: The scope of a message when the observer does not trace (reusable: it keeps no state).
_NO_SCOPE = contextlib.nullcontext()

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
    """The context's renewal lock, extended across processes by a :class:`SharedStore`;
    held with ``async with``.

    The in-process lock is always taken first, so a process asks for the shared lock
    once at a time per context, and all holders take the two in the same order.
    """

    def __init__(self, local: asyncio.Lock, store: object) -> None:
        self._local = local
        self._store = store if isinstance(store, SharedStore) else None
        self._release_shared: Callable[[], None] | None = None

    def locked(self) -> bool:
        """Whether a message of the context holds (or is taking) the lock."""
        return self._local.locked()

    async def __aenter__(self) -> None:
        await self._local.acquire()
        if self._store is None:
            return
        try:
            self._release_shared = await self._store.acquire_exchange_lock()
        except BaseException:
            self._local.release()
            raise

    async def __aexit__(self, *exc: object) -> None:
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


@dataclass(frozen=True, init=False)
class _Plan:
    """One message to send: a :class:`~missile.engine.choice.Decision` carried out.

    Built for every message: its ``__init__`` fills the instance dictionary at once,
    like :class:`~missile.engine.choice.Decision`'s (the generated frozen one sets each
    field through ``object.__setattr__``)."""

    message_id: int | None
    master_token: MasterToken | None
    user_id_token: UserIdToken | None
    user_auth_data: UserAuthData | None
    renewable: bool
    handshake: bool
    key_request_data: list[KeyRequestData]

    def __init__(
        self,
        message_id: int | None,
        master_token: MasterToken | None,
        user_id_token: UserIdToken | None,
        user_auth_data: UserAuthData | None,
        renewable: bool,
        handshake: bool,
        key_request_data: list[KeyRequestData],
    ) -> None:
        self.__dict__.update(
            {
                "message_id": message_id,
                "master_token": master_token,
                "user_id_token": user_id_token,
                "user_auth_data": user_auth_data,
                "renewable": renewable,
                "handshake": handshake,
                "key_request_data": key_request_data,
            }
        )


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
        key_request_factory: Callable[[], Sequence[KeyRequestData]] | None = None,
        capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        reader_limits: ReaderLimits | None = None,
        max_messages: int = MAX_MESSAGES,
        max_payload_size: int = 256 * 1024 * 1024,
        observer: Observer | None = None,
    ) -> None:
        """``key_request_factory`` produces fresh key request data (with private parts) each
        time the client asks for keys; without it the client cannot establish sessions.
        ``max_payload_size`` bounds a buffered response (:meth:`request_stream` has none).
        ``observer`` is told of every message and recovery step (:mod:`missile.observe`;
        by default a :class:`~missile.observe.LogObserver`)."""
        if ctx.store is None:
            raise ValueError("an MSL client needs a store")
        self.ctx = ctx
        self.transport = transport
        self.key_request_factory = key_request_factory
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

    async def one_way(self, data: Payload = b"", options: MessageOptions | None = None) -> Response | None:
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
            if not observer.traces:  # the request's scope is for tracing only
                return await self._attempts(data, options, one_way=one_way, stream=stream)
            with observer.span("client request", {"msl.one_way": int(one_way)}):
                return await self._attempts(data, options, one_way=one_way, stream=stream)
        finally:
            CURRENT.reset(token)

    async def _attempts(
        self, data: Payload, options: MessageOptions, *, one_way: bool, stream: bool
    ) -> Response | StreamingResponse | None:
        attempt = choice.FIRST_ATTEMPT
        needs = Needs.of(options, empty=len(data) == 0)
        used = 0
        last_error: MslException | None = None
        while True:
            if used + 2 > self.max_messages:
                raise MslMessageLimitExceeded(last_error)
            used += 2
            state = self._state(options, needs, attempt)
            need = choice.renewal(state, needs, attempt)
            if need is Renewal.NONE or (need is Renewal.WANTED and self._renewal_lock.locked()):
                # No lock to take (the usual message): planned without the context manager.
                plan = self._plan(options, needs, attempt, state, renewable=False)
                result = await self._exchange_absorbed(plan, data, options, one_way=one_way, stream=stream)
            else:
                async with self._planned(options, needs, attempt, state, need) as plan:
                    result = await self._exchange_absorbed(plan, data, options, one_way=one_way, stream=stream)
            if result is None:
                return None
            if result.error is not None:
                last_error = MslErrorResponse(result.error)
                self._observe_recovery(result.error, used)
                attempt = self._recover(plan, result.error, options)
                continue
            assert result.header is not None
            if plan.handshake:
                # Resend the application data in response to the handshake response.
                attempt = Attempt(message_id=next_id(result.header.message_id))
                continue
            if result.body is not None:
                assert result.channel is not None
                return StreamingResponse(result.header, result.body, used, result.channel)
            return Response(result.header, result.payload, used, result.pushes)

    # -- planning (the rules are in missile.engine.choice) ------------------------------

    @asynccontextmanager
    async def _planned(
        self,
        options: MessageOptions,
        needs: Needs,
        attempt: Attempt,
        state: choice.State[MasterToken, UserIdToken],
        need: Renewal,
    ) -> AsyncIterator[_Plan]:
        """The next message's plan, holding the renewal lock while the message is
        renewable (control.md §3.2: one renewable message at a time per context,
        whichever client sends it, and per shared store, whichever process).
        ``state`` and ``need`` are what :meth:`_state` and :func:`~missile.engine.choice.renewal`
        said just before."""
        lock = self._renewal_lock
        if need is Renewal.MANDATORY:
            # Waiters re-evaluate with whatever the holder obtained.
            before = self._newest_master_token()
            async with lock:
                newest = self._newest_master_token()
                newer = newest is not None and newest != before
                attempt = choice.after_wait(attempt, newer=newer)
                state = self._state(options, needs, attempt)
                need = choice.renewal(state, needs, attempt)
                if not newer or need is Renewal.MANDATORY:
                    yield self._plan(options, needs, attempt, state, renewable=True)
                    return
            # The holder's new master token made renewal optional: the lock is free again.
        if need is Renewal.WANTED and not lock.locked():
            async with lock:
                # Waiting may have let another exchange renew or delete these tokens.
                state = self._state(options, needs, attempt)
                yield self._plan(options, needs, attempt, state, renewable=True)
                return
        yield self._plan(options, needs, attempt, state, renewable=False)

    def _state(self, options: MessageOptions, needs: Needs, attempt: Attempt) -> choice.State[MasterToken, UserIdToken]:
        """What the client holds for the next message, at the remote time."""
        ctx = self.ctx
        store = ctx.store
        assert store is not None
        now = self.remote_time_ms()
        newest = self._newest_master_token()
        user_token = None
        if newest is not None and options.user_id is not None:
            user_token = store.get_user_id_token(options.user_id)
            if user_token is not None and not user_token.is_bound_to(newest):
                user_token = None
        master, user = choice.choose_tokens(choice.held(newest, now), choice.held(user_token, now), needs, attempt)
        entity = None
        if master is None:
            ead = ctx.get_entity_auth_data(attempt.entity_reauth)
            if ead is not None:
                entity = choice.Protection(ead.encrypts, ead.protects_integrity)
        return choice.State(master, user, entity, key_exchange=self.key_request_factory is not None)

    def _plan(
        self,
        options: MessageOptions,
        needs: Needs,
        attempt: Attempt,
        state: choice.State[MasterToken, UserIdToken],
        *,
        renewable: bool,
    ) -> _Plan:
        """The message :func:`~missile.engine.choice.decide` chooses, with the user
        authentication data and key request data it needs."""
        user_auth = None
        if choice.asks_user_auth(state, needs):
            user_auth = attempt.user_auth if attempt.user_auth is not None else options.user_auth_data(None)
        have_user_auth = user_auth is not None
        decision = choice.decide(state, needs, attempt, renewable=renewable, user_auth=have_user_auth)
        key_request_data: list[KeyRequestData] = []
        if decision.key_exchange and self.key_request_factory is not None:
            key_request_data = list(self.key_request_factory())
            if not key_request_data:
                # A factory that produces no key request data is as good as none.
                unable = replace(state, key_exchange=False)
                decision = choice.decide(unable, needs, attempt, renewable=renewable, user_auth=have_user_auth)
        return _Plan(
            attempt.message_id,
            decision.master_token,
            decision.user_id_token,
            user_auth if decision.user_auth else None,
            decision.renewable,
            decision.handshake,
            key_request_data,
        )

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

    async def _exchange_absorbed(
        self, plan: _Plan, data: Payload, options: MessageOptions, *, one_way: bool, stream: bool
    ) -> _Result | None:
        """One exchange and its bookkeeping (:meth:`_absorb`), counting the plan's master
        token in use meanwhile (control.md §11)."""
        master_token = plan.master_token
        if master_token is not None:
            self._in_use[master_token] = self._in_use.get(master_token, 0) + 1
        try:
            result = await self._exchange(plan, data, options, one_way=one_way, stream=stream)
            if result is not None:
                self._absorb(plan, result, options)
            return result
        finally:
            if master_token is not None:
                self._release_master_token(master_token)

    # -- one exchange -----------------------------------------------------------------

    async def _exchange(
        self,
        plan: _Plan,
        data: Payload,
        options: MessageOptions,
        *,
        one_way: bool = False,
        stream: bool = False,
    ) -> _Result | None:
        """One message and its answer, in a tracing scope, told to the observer."""
        observer = self.observer
        if not observer.traces and not observer.observes("client"):
            # Nothing would be traced or told: no scope, no clock, no byte counts.
            return await self._exchange_once(plan, data, options, None, one_way=one_way, stream=stream)
        start = time.perf_counter()
        counted: list[CountingChannel] = []
        result: _Result | None = None
        failure: MslException | None = None
        scope: contextlib.AbstractContextManager[None] = _NO_SCOPE
        if observer.traces:
            scope = observer.span("client message", {"msl.handshake": int(plan.handshake)})
        with scope:
            try:
                result = await self._exchange_once(plan, data, options, counted, one_way=one_way, stream=stream)
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
                    action=choice.recovery_action(error.error_code),
                    message=used,
                    budget=self.max_messages,
                )
            )
        except Exception:
            log.exception("an observer failed")

    async def _exchange_once(
        self,
        plan: _Plan,
        data: Payload,
        options: MessageOptions,
        counted: list[CountingChannel] | None,
        *,
        one_way: bool,
        stream: bool,
    ) -> _Result | None:
        """``counted`` receives the channel, counting its bytes (None: not counted)."""
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
            message_id=plan.message_id,
            master_token=plan.master_token,
            use_entity_auth=plan.master_token is None,
            user_id_token=plan.user_id_token,
            user_auth_data=plan.user_auth_data,
            key_request_data=plan.key_request_data,
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
            channel: Channel = await self.transport.connect()
        except OSError as exc:
            raise MslException(MslError.MSL_COMMS_FAILURE, f"cannot connect: {exc.strerror or exc}") from exc
        if counted is not None:
            counting = CountingChannel(channel)
            counted.append(counting)
            channel = counting
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
        reader = self._reader(options, plan.key_request_data)
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
        payload = await read_rest(source, reader, pending, self.max_payload_size, "response payload")
        pushes: tuple[bytes, ...] = ()
        if not source.at_eof and channel.one_exchange:
            pushes = await self._pushes(source, options)
        return _Result(request, header, error, payload, keyx_context, pushes)

    def _reader(self, options: MessageOptions, key_request_data: Sequence[KeyRequestData] = ()) -> MessageReader:
        return MessageReader(
            self.ctx,
            service_token_contexts=options.service_token_contexts,
            key_request_data=key_request_data,
            limits=self.reader_limits,
        )

    async def _pushes(self, source: MessageStream, options: MessageOptions) -> tuple[bytes, ...]:
        """Messages the server pushed after the response, until the channel ends."""
        pushes: list[bytes] = []
        while not await source.ended():
            push = await read_message(source, self._reader(options), max_payload=self.max_payload_size)
            if push is None:
                break
            pushes.append(push.payload)
        return tuple(pushes)

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

    def _recover(self, plan: _Plan, error: ErrorHeader, options: MessageOptions) -> Attempt:
        """The resend for an error response (errors.md §2, :data:`~missile.engine.choice.RECOVERY`),
        or raise it to the application."""
        ctx = self.ctx
        store = ctx.store
        assert store is not None
        code = error.error_code
        rule = choice.RECOVERY.get(code)
        if rule is None:
            raise MslErrorResponse(error)
        if rule.forget_master_token and plan.master_token is not None:
            self._remove_master_token(plan.master_token)
        if rule.forget_user_id_token and plan.user_id_token is not None:
            store.remove_user_id_token(plan.user_id_token)
        failure = choice.Failure(
            message_id=error.message_id,
            master_token=plan.master_token is not None,
            newest=rule.renew and self._newest_master_token() == plan.master_token,
            entity_auth=rule.reauthenticate_entity and ctx.get_entity_auth_data(code) is not None,
            user_auth=options.user_auth_data(rule.user_reauth) if rule.reauthenticate_user else None,
            user=options.user_id is not None,
            key_exchange=self.key_request_factory is not None,
        )
        resend = choice.resend(code, failure)
        if resend is None:
            raise MslErrorResponse(error)
        return resend


def _error_name(error: ErrorHeader | None, failure: MslException | None) -> str | None:
    if error is not None:
        known = error.error
        return known.name if known is not None else f"code {error.internal_code}"
    return failure.error.name if failure is not None else None


def _own_identity(ctx: MslContext) -> str | None:
    ead = ctx.entity_auth_data
    return ead.identity if ead is not None else None
