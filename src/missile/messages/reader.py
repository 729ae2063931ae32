"""The sans-IO message reader (messages.md §11).

Feed it bytes in any split; it returns events as soon as they are complete: the header
(authenticated, decrypted and validated), each payload chunk (verified, decrypted,
decompressed), the end of the message, or an error header. It applies every check the
reference's message input stream applies that keys and the current time can answer.
The checks only the issuer's state can answer (revocation, sequence numbers, replay)
are the engine's (:mod:`missile.engine.issuer`): the reader never calls a store, so a
slow store cannot stall it. Every failure raises an
:class:`~missile.errors.MslException` carrying its MslError and, where known, the
message ID and tokens, so the caller can answer with the right error message.

The reader never consumes past the end of its message: :meth:`remaining` gives back
whatever followed, for the next message on the same connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, ObjectStreamDecoder
from missile.errors import MslError, MslException, MslKeyExchangeException, MslMessageException
from missile.keyx.base import KeyRequestData, KeyResponseData
from missile.messages.error_header import ErrorHeader
from missile.messages.events import ErrorReceived, Event, HeaderReceived, MessageEnd, PayloadReceived
from missile.messages.header import MessageHeader
from missile.messages.limits import DEFAULT_LIMITS, ReaderLimits
from missile.messages.payload import PayloadChunk
from missile.tokens.master import MasterToken

__all__ = ["MessageReader", "ReaderLimits", "decorate"]


_HEADER, _PAYLOAD, _DONE = range(3)


def decorate(exc: MslException, header: MessageHeader) -> MslException:
    """``exc`` with the message's ID and tokens, so an error response can name them."""
    if header.master_token is not None:
        exc.set_master_token(header.master_token)
    elif header.entity_auth_data is not None:
        exc.set_entity_auth_data(header.entity_auth_data)
    if header.data.user_id_token is not None:
        exc.set_user_id_token(header.data.user_id_token)
    exc.set_message_id(header.message_id)
    return exc


class MessageReader:
    """Incrementally read one MSL message."""

    def __init__(
        self,
        ctx: MslContext,
        *,
        service_token_contexts: Mapping[str, CryptoContext] | None = None,
        key_request_data: Sequence[KeyRequestData] = (),
        limits: ReaderLimits | None = None,
        single_message: bool = False,
    ) -> None:
        """``key_request_data`` are the requests this entity sent (to process a key response).
        With ``single_message`` (one message per body, as over HTTP) anything after the
        end of the message is MESSAGE_FORMAT_ERROR instead of being kept for the next."""
        self.ctx = ctx
        self.service_token_contexts = dict(service_token_contexts or {})
        self.key_request_data = list(key_request_data)
        self.limits = limits or DEFAULT_LIMITS
        self.single_message = single_message
        self._decoder = ObjectStreamDecoder(max_object_size=self.limits.max_header_size)
        self._state = _HEADER
        self._next_sequence = 1
        self._pushed_back = b""
        self._legacy_handshake = False
        self._received = 0
        self.header: MessageHeader | None = None
        """The message header, once received."""
        self.error_header: ErrorHeader | None = None
        """The error header, if this is an error message."""
        self.payload_crypto_context: CryptoContext | None = None
        """The context protecting the payload chunks."""
        self.key_exchange_crypto_context: CryptoContext | None = None
        """The session context from key response data, if any."""

    @property
    def bytes_received(self) -> int:
        """Bytes fed so far."""
        return self._received

    @property
    def done(self) -> bool:
        """True once the message is complete."""
        return self._state == _DONE

    @property
    def is_handshake(self) -> bool:
        """True for a handshake message, including the legacy form (messages.md §9)."""
        return self.header is not None and (self.header.is_handshake or self._legacy_handshake)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Accept received bytes and return the events they complete."""
        if self._state == _DONE:
            self._decoder.feed(data)
            self._check_trailing()
            return []
        self._received += len(data)
        if self._received > self.limits.max_message_size:
            raise self._decorate(
                MslMessageException(
                    MslError.MESSAGE_FORMAT_ERROR, f"message exceeds the limit of {self.limits.max_message_size} bytes"
                )
            )
        self._decoder.feed(data)
        events: list[Event] = []
        while self._state != _DONE:
            item = self._decoder.next_object()
            if item is None:
                break
            if self._state == _HEADER:
                events.append(self._on_header(item[1]))
            else:
                events.extend(self._on_chunk(*item))
        if self._state == _DONE:
            self._check_trailing()
        return events

    def end_of_stream(self) -> list[Event]:
        """The source ended: completes a header-only message (messages.md §1); a message
        whose chunks stop before the end-of-message chunk is MESSAGE_FORMAT_ERROR."""
        if self._state == _HEADER:
            detail = "truncated header" if self._decoder.has_pending_data() else "no message data"
            raise MslMessageException(MslError.MSL_PARSE_ERROR, detail)
        if self._decoder.has_pending_data():
            raise self._decorate(MslMessageException(MslError.MSL_PARSE_ERROR, "truncated payload chunk"))
        if self._state == _PAYLOAD:
            if self._next_sequence > 1:
                # Chunks came but the end-of-message chunk did not: the stream was cut.
                # (A stream ending right after the header is a complete, header-only
                # message, as the reference's automatic handshake responses are.)
                raise self._decorate(
                    MslMessageException(MslError.MESSAGE_FORMAT_ERROR, "message ended without end-of-message chunk")
                )
            self._state = _DONE
            return [MessageEnd()]
        return []

    def remaining(self) -> bytes:
        """Bytes received after the end of this message (the start of the next one)."""
        self._pushed_back += self._decoder.take_remaining()
        return self._pushed_back

    # -- internals --------------------------------------------------------------------

    def _check_trailing(self) -> None:
        if self.single_message and (self._pushed_back or self._decoder.has_pending_data()):
            raise self._decorate(MslMessageException(MslError.MESSAGE_FORMAT_ERROR, "data after end of message"))

    def _decorate(self, exc: MslException) -> MslException:
        return decorate(exc, self.header) if self.header is not None else exc

    def _on_header(self, obj: MslObject) -> Event:
        if "headerdata" in obj:
            header = MessageHeader.parse(self.ctx, obj, self.service_token_contexts, self.limits)
            self.header = header
            try:
                event = self._accept_header(header)
            except MslException as exc:
                raise self._decorate(exc) from None
            self._decoder.max_object_size = self.limits.max_chunk_size
            return event
        if "errordata" in obj:
            self.error_header = ErrorHeader.parse(self.ctx, obj)
            self._state = _DONE
            return ErrorReceived(self.error_header)
        raise MslMessageException(MslError.MSL_PARSE_ERROR, "neither headerdata nor errordata")

    def _accept_header(self, header: MessageHeader) -> HeaderReceived:
        ctx = self.ctx
        data = header.data
        keyx_crypto: CryptoContext | None = None
        if data.key_response_data is not None:
            keyx_crypto = self._key_exchange_context(data.key_response_data, header.master_token)
        # messages.md §6: trusted services protect a key response's payloads with the new keys.
        if keyx_crypto is not None and not ctx.peer_to_peer:
            payload_crypto = keyx_crypto
        else:
            payload_crypto = header.crypto_context
        if data.handshake and (not data.renewable or not data.key_request_data):
            raise MslMessageException(MslError.HANDSHAKE_DATA_MISSING)
        self._key_checks(header)
        self.payload_crypto_context = payload_crypto
        self.key_exchange_crypto_context = keyx_crypto
        self._state = _PAYLOAD
        return HeaderReceived(header, payload_crypto, keyx_crypto)

    def _key_exchange_context(self, response: KeyResponseData, master_token: MasterToken | None) -> CryptoContext:
        # keyx.md §1.2: a token we issued opens directly; otherwise our own request does.
        ctx = self.ctx
        if response.master_token.decrypted:
            return ctx.session_crypto_context(response.master_token)
        factory = ctx.key_exchange_factory(response.scheme)
        if factory is None:
            raise MslKeyExchangeException(MslError.KEYX_FACTORY_NOT_FOUND, response.scheme)
        failure: MslException | None = None
        for request in self.key_request_data:
            if request.scheme != response.scheme:
                continue
            try:
                return factory.crypto_context(ctx, request, response, master_token)
            except MslException as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise MslKeyExchangeException(MslError.KEYX_RESPONSE_REQUEST_MISMATCH, response.scheme)

    @staticmethod
    def _key_checks(header: MessageHeader) -> None:
        """messages.md §11 steps 3 and 4, the part keys and time answer; the issuer
        state's part is :func:`missile.engine.issuer.check_request`."""
        if header.data.non_replayable_id is not None and header.master_token is None:
            raise MslMessageException(MslError.INCOMPLETE_NONREPLAYABLE_MESSAGE)

    def _on_chunk(self, raw: bytes, obj: MslObject) -> list[Event]:
        if "payload" not in obj and ("headerdata" in obj or "errordata" in obj):
            # A header-only message followed by the next message on the same stream.
            self._pushed_back = raw
            self._state = _DONE
            return [MessageEnd()]
        assert self.header is not None and self.payload_crypto_context is not None
        try:
            if obj.binary != (self.header.encoder_format is not EncoderFormat.JSON):
                # One message, one encoder format (docs/binary-format.md §6).
                raise MslMessageException(MslError.MSL_PARSE_ERROR, "payload chunk in another encoder format")
            if self._next_sequence > self.limits.max_chunks:
                raise MslMessageException(
                    MslError.MESSAGE_FORMAT_ERROR, f"more than {self.limits.max_chunks} payload chunks"
                )
            # The chunk codec reads the exact bytes the decoder framed (what parse() would
            # look up as obj.encoded).
            chunk = PayloadChunk.open(
                raw,
                self.payload_crypto_context,
                max_deflate_ratio=self.ctx.max_deflate_ratio,
                max_data_size=self.limits.max_chunk_data_size,
            )
            if chunk.message_id != self.header.message_id:
                raise MslMessageException(
                    MslError.PAYLOAD_MESSAGE_ID_MISMATCH, f"{chunk.message_id} != {self.header.message_id}"
                )
            if chunk.sequence_number != self._next_sequence:
                raise MslMessageException(
                    MslError.PAYLOAD_SEQUENCE_NUMBER_MISMATCH, f"{chunk.sequence_number} != {self._next_sequence}"
                )
        except MslException as exc:
            raise self._decorate(exc) from None
        if self._next_sequence == 1 and chunk.end_of_message and not chunk.data:
            data = self.header.data
            # Legacy handshake form (messages.md §9): renewable, key request data and
            # one empty end-of-message chunk.
            self._legacy_handshake = data.renewable and bool(data.key_request_data)
        self._next_sequence += 1
        events: list[Event] = [PayloadReceived(chunk)]
        if chunk.end_of_message:
            self._state = _DONE
            events.append(MessageEnd())
        return events
