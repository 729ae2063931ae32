"""The message header (messages.md §2–§3).

``{"entityauthdata"|"mastertoken": …, "headerdata": <protected header data>, "signature": …}``.

:class:`HeaderData` is what the sender says; :class:`MessageHeader` adds how it is
protected and, for a received header, what the receiver established while parsing it
(verified tokens, the authenticated user). Building and parsing never touch I/O.

Almost every message of a session has the same ordinary header data: a message ID, a
timestamp, a flag or two and the capabilities the peer always sends. Once decrypted,
such header data is read by one regular-expression match (capabilities looked up by
their exact encoded bytes, parsed by the general path the first time), and written in
JSON from its encoded members; anything else takes the general path. Both shortcuts
give what the general path gives, result or error (property-tested on generated and
mutated input), at a fraction of the cost: they are what keeps a small message's
header in the same range as its cryptography.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, cbor, decode, encode, in_range
from missile.encoding.base64 import b64encode_bytes
from missile.encoding.codec import encode_binary, encode_json, encode_json_value, java_order, to_json_value
from missile.entityauth.base import EntityAuthData, parse_entity_auth_data
from missile.errors import MslEncodingException, MslError, MslException, MslInternalException, MslMessageException
from missile.keyx.base import KeyRequestData, KeyResponseData, parse_key_request_data, parse_key_response_data
from missile.messages.capabilities import MessageCapabilities
from missile.messages.limits import DEFAULT_LIMITS, ReaderLimits, check_token_size
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import UserAuthData, parse_user_auth_data

__all__ = ["HeaderData", "MessageHeader", "select_header_crypto_context"]

KEY_ENTITY_AUTH_DATA = "entityauthdata"
KEY_MASTER_TOKEN = "mastertoken"
KEY_HEADER_DATA = "headerdata"
KEY_SIGNATURE = "signature"

KEY_SENDER = "sender"
KEY_TIMESTAMP = "timestamp"
KEY_MESSAGE_ID = "messageid"
KEY_NON_REPLAYABLE = "nonreplayable"
KEY_NON_REPLAYABLE_ID = "nonreplayableid"
KEY_RENEWABLE = "renewable"
KEY_HANDSHAKE = "handshake"
KEY_CAPABILITIES = "capabilities"
KEY_KEY_REQUEST_DATA = "keyrequestdata"
KEY_KEY_RESPONSE_DATA = "keyresponsedata"
KEY_USER_AUTH_DATA = "userauthdata"
KEY_USER_ID_TOKEN = "useridtoken"
KEY_SERVICE_TOKENS = "servicetokens"
KEY_PEER_MASTER_TOKEN = "peermastertoken"
KEY_PEER_USER_ID_TOKEN = "peeruseridtoken"
KEY_PEER_SERVICE_TOKENS = "peerservicetokens"


@dataclass(frozen=True, init=False)
class HeaderData:
    """The content of a message header.

    A frozen dataclass whose ``__init__`` is written out rather than generated: the
    generated one sets each of the 15 fields through ``object.__setattr__`` (the frozen
    path), about 2 µs on every header built or parsed, twice per message exchanged;
    filling the instance dictionary in one step takes a third of that. Its parameters
    and defaults are the fields' (a test compares them), so constructing, ``replace()``,
    equality, hashing and ``repr`` are exactly a generated dataclass's.
    """

    message_id: int
    """0 … 2^53; a response's is the request's plus one (messages.md §7)."""
    renewable: bool = False
    """The sender allows or asks for token issuance and renewal."""
    handshake: bool = False
    """A handshake message: key exchange only, no application data."""
    non_replayable_id: int | None = None
    """Anti-replay counter of a non-replayable message."""
    timestamp: int | None = None
    """Sender clock in seconds; filled in when the header is built."""
    capabilities: MessageCapabilities | None = None
    """The sender's capabilities (request) or the shared ones (response)."""
    key_request_data: tuple[KeyRequestData, ...] = ()
    """Key exchange requests (a set: order carries no meaning)."""
    key_response_data: KeyResponseData | None = None
    """Key exchange response carrying the new master token."""
    user_auth_data: UserAuthData | None = None
    """User authentication data (only in encrypted headers)."""
    user_id_token: UserIdToken | None = None
    """User ID token, bound to the token-verification master token."""
    service_tokens: tuple[ServiceToken, ...] = ()
    """Service tokens (a set)."""
    peer_master_token: MasterToken | None = None
    """Peer-to-peer: the master token the sender issued to the receiver."""
    peer_user_id_token: UserIdToken | None = None
    """Peer-to-peer: user ID token bound to the peer master token."""
    peer_service_tokens: tuple[ServiceToken, ...] = ()
    """Peer-to-peer: service tokens of the peer token set."""
    sender: str | None = None
    """Legacy sender identity, written when a master token protects the header."""

    def __init__(
        self,
        message_id: int,
        renewable: bool = False,
        handshake: bool = False,
        non_replayable_id: int | None = None,
        timestamp: int | None = None,
        capabilities: MessageCapabilities | None = None,
        key_request_data: tuple[KeyRequestData, ...] = (),
        key_response_data: KeyResponseData | None = None,
        user_auth_data: UserAuthData | None = None,
        user_id_token: UserIdToken | None = None,
        service_tokens: tuple[ServiceToken, ...] = (),
        peer_master_token: MasterToken | None = None,
        peer_user_id_token: UserIdToken | None = None,
        peer_service_tokens: tuple[ServiceToken, ...] = (),
        sender: str | None = None,
    ) -> None:
        self.__dict__.update(
            {
                "message_id": message_id,
                "renewable": renewable,
                "handshake": handshake,
                "non_replayable_id": non_replayable_id,
                "timestamp": timestamp,
                "capabilities": capabilities,
                "key_request_data": key_request_data,
                "key_response_data": key_response_data,
                "user_auth_data": user_auth_data,
                "user_id_token": user_id_token,
                "service_tokens": service_tokens,
                "peer_master_token": peer_master_token,
                "peer_user_id_token": peer_user_id_token,
                "peer_service_tokens": peer_service_tokens,
                "sender": sender,
            }
        )


def select_header_crypto_context(
    ctx: MslContext, master_token: MasterToken | None, entity_auth_data: EntityAuthData | None
) -> CryptoContext:
    """The context protecting a header (messages.md §2): the master token's session
    context, else the entity auth scheme's (which authenticates the entity)."""
    if master_token is not None:
        return ctx.master_token_crypto_context(master_token)
    if entity_auth_data is None:
        raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND)
    factory = ctx.entity_auth_factory(entity_auth_data.scheme)
    if factory is None:
        raise MslException(MslError.ENTITYAUTH_FACTORY_NOT_FOUND, entity_auth_data.scheme)
    return factory.crypto_context(ctx, entity_auth_data)


def _token_verification_master_token(
    ctx: MslContext, master_token: MasterToken | None, key_response: KeyResponseData | None
) -> MasterToken | None:
    # messages.md §3.1: trusted services use the new master token of a key response.
    if not ctx.peer_to_peer and key_response is not None:
        return key_response.master_token
    return master_token


def _peer_verification_master_token(
    key_response: KeyResponseData | None, peer_master_token: MasterToken | None
) -> MasterToken | None:
    return key_response.master_token if key_response is not None else peer_master_token


def _dedupe_service_tokens(tokens: list[ServiceToken]) -> tuple[ServiceToken, ...]:
    seen: dict[tuple[str, int | None, int | None], ServiceToken] = {}
    for token in tokens:
        seen.setdefault(token.key, token)
    return tuple(seen.values())


@dataclass(frozen=True, eq=False, init=False)
class MessageHeader:
    """A message header with its protection.

    Its ``__init__`` is written out for the reason :class:`HeaderData`'s is (one is made
    for every message sent or received); parameters and defaults are the fields'.
    """

    data: HeaderData
    """The header content."""
    master_token: MasterToken | None
    """The sender's master token, when it protects the header."""
    entity_auth_data: EntityAuthData | None
    """The sender's entity authentication data, when it protects the header."""
    crypto_context: CryptoContext = field(repr=False)
    """The context that protects this header."""
    headerdata: bytes = field(repr=False)
    """The exact protected header-data bytes (what the signature covers)."""
    signature: bytes = field(repr=False)
    """The signature over ``headerdata``."""
    encrypting: bool
    """Whether the protection encrypts (master token, or an encrypting scheme)."""
    user: MslUser | None = None
    """The authenticated user: from user auth data, else from a decrypted user ID token."""
    encoder_format: EncoderFormat = EncoderFormat.JSON
    """The format the header is written in (or was received in); its payload chunks use
    it too (docs/binary-format.md)."""

    def __init__(
        self,
        data: HeaderData,
        master_token: MasterToken | None,
        entity_auth_data: EntityAuthData | None,
        crypto_context: CryptoContext,
        headerdata: bytes,
        signature: bytes,
        encrypting: bool,
        user: MslUser | None = None,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> None:
        self.__dict__.update(
            {
                "data": data,
                "master_token": master_token,
                "entity_auth_data": entity_auth_data,
                "crypto_context": crypto_context,
                "headerdata": headerdata,
                "signature": signature,
                "encrypting": encrypting,
                "user": user,
                "encoder_format": encoder_format,
            }
        )

    # -- convenience ------------------------------------------------------------------

    @property
    def message_id(self) -> int:
        """The message ID."""
        return self.data.message_id

    @property
    def is_handshake(self) -> bool:
        """True for a handshake message."""
        return self.data.handshake

    @property
    def is_renewable(self) -> bool:
        """True when the message is renewable."""
        return self.data.renewable

    @property
    def identity(self) -> str | None:
        """The sender identity from the master token (if decrypted) or entity auth data."""
        if self.master_token is not None:
            return self.master_token.identity
        return self.entity_auth_data.identity if self.entity_auth_data is not None else None

    def to_msl(self) -> dict[str, Any]:
        """The wire object."""
        return {
            KEY_MASTER_TOKEN: self.master_token,
            KEY_ENTITY_AUTH_DATA: self.entity_auth_data if self.master_token is None else None,
            KEY_HEADER_DATA: self.headerdata,
            KEY_SIGNATURE: self.signature,
        }

    def encode(self) -> bytes:
        """The encoded header object."""
        if self.encoder_format is EncoderFormat.MISSILE_CBOR:
            # The map written directly, its keys in their deterministic order
            # (``signature``, ``headerdata``, then ``mastertoken`` or ``entityauthdata``),
            # the token from its cached encoding.
            if self.master_token is not None:
                last = _BINARY_MASTER_TOKEN_KEY + self.master_token.cbor_encoded
            elif self.entity_auth_data is not None:
                last = _BINARY_ENTITY_AUTH_DATA_KEY + cbor.encode_value(self.entity_auth_data)
            else:  # pragma: no cover - create() and parse() require one of them
                return encode_binary(self.to_msl())
            return b"".join(
                (
                    _BINARY_HEADER_HEAD,
                    cbor.bytes_head(len(self.signature)),
                    self.signature,
                    _BINARY_HEADER_DATA_KEY,
                    cbor.bytes_head(len(self.headerdata)),
                    self.headerdata,
                    last,
                )
            )
        if self.master_token is not None:
            # What encode(self.to_msl()) writes (the reference's member order), from the
            # token's cached encoding: base64 values never need escaping.
            return b"".join(
                (
                    b'{"headerdata":"',
                    b64encode_bytes(self.headerdata),
                    b'","signature":"',
                    b64encode_bytes(self.signature),
                    b'","mastertoken":',
                    self.master_token.encoded,
                    b"}",
                )
            )
        return encode(self.to_msl())

    # -- building ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        ctx: MslContext,
        data: HeaderData,
        *,
        master_token: MasterToken | None = None,
        entity_auth_data: EntityAuthData | None = None,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> MessageHeader:
        """Build and protect a header (messages.md §3.3 constraints apply), written in
        ``encoder_format`` (only ever one the receiver advertised, or JSON)."""
        if not in_range(data.message_id):
            raise MslInternalException(f"message ID {data.message_id} out of range")
        if master_token is None and entity_auth_data is None:
            raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND)
        if data.non_replayable_id is not None and master_token is None:
            raise MslMessageException(MslError.NONREPLAYABLE_MESSAGE_REQUIRES_MASTERTOKEN)
        encrypting = master_token is not None or (entity_auth_data is not None and entity_auth_data.encrypts)
        if data.user_auth_data is not None and not encrypting:
            raise MslMessageException(MslError.UNENCRYPTED_MESSAGE_WITH_USERAUTHDATA)
        verifier = _token_verification_master_token(ctx, master_token, data.key_response_data)
        _check_bindings(verifier, data.user_id_token, data.service_tokens)
        if ctx.peer_to_peer:
            peer_verifier = _peer_verification_master_token(data.key_response_data, data.peer_master_token)
            _check_bindings(peer_verifier, data.peer_user_id_token, data.peer_service_tokens)
        elif data.peer_master_token or data.peer_user_id_token or data.peer_service_tokens:
            # Peer tokens exist only between peers; dropping them silently would hide a bug.
            raise MslInternalException("peer tokens in a header outside a peer-to-peer network")
        crypto = select_header_crypto_context(ctx, master_token, entity_auth_data)
        timestamp = data.timestamp if data.timestamp is not None else ctx.clock() // 1000
        if encoder_format is EncoderFormat.MISSILE_CBOR:
            plaintext = _binary_header_data(data, timestamp, peer_to_peer=ctx.peer_to_peer)
            headerdata = crypto.encrypt_in_format(plaintext, encoder_format)
        else:
            # The legacy sender is written only when a master token protects the header,
            # and only in JSON: the binary format has no sender (docs/binary-format.md §5.6).
            sender = None
            if master_token is not None:
                sender = data.sender if data.sender is not None else ctx.identity
            plaintext = _json_header_data_bytes(ctx, data, sender, timestamp)
            headerdata = crypto.encrypt(plaintext)
        signature = crypto.sign(headerdata)
        stamped = data if data.timestamp is not None else _replace(data, timestamp=timestamp)
        user = data.user_id_token.user if data.user_id_token is not None else None
        return cls(
            data=stamped,
            master_token=master_token,
            entity_auth_data=entity_auth_data if master_token is None else None,
            crypto_context=crypto,
            headerdata=headerdata,
            signature=signature,
            encrypting=encrypting,
            user=user,
            encoder_format=encoder_format,
        )

    # -- parsing ----------------------------------------------------------------------

    @classmethod
    def parse(
        cls,
        ctx: MslContext,
        obj: MslObject,
        service_token_contexts: Mapping[str, CryptoContext] | None = None,
        limits: ReaderLimits = DEFAULT_LIMITS,
    ) -> MessageHeader:
        """Parse, authenticate and decrypt a received header (messages.md §3.2), within
        ``limits`` (token sizes, service token and key request counts)."""
        entity_auth_data: EntityAuthData | None = None
        master_token: MasterToken | None = None
        try:
            if KEY_ENTITY_AUTH_DATA in obj:
                entity_auth_data = parse_entity_auth_data(obj.get_object(KEY_ENTITY_AUTH_DATA), ctx)
            if KEY_MASTER_TOKEN in obj:
                master_token = _parse_master_token(ctx, _token_object(obj, KEY_MASTER_TOKEN, limits))
            signature = obj.get_bytes(KEY_SIGNATURE)
            headerdata = obj.get_bytes(KEY_HEADER_DATA)
            if not headerdata:
                raise MslMessageException(MslError.HEADER_DATA_MISSING)
            if master_token is None and entity_auth_data is None:
                raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND)
            # The master token wins when both are present (messages.md §2).
            protecting_ead = entity_auth_data if master_token is None else None
            crypto = select_header_crypto_context(ctx, master_token, protecting_ead)
            if not crypto.verify(headerdata, signature):
                raise MslMessageException(
                    MslError.MESSAGE_MASTERTOKENBASED_VERIFICATION_FAILED
                    if master_token is not None
                    else MslError.MESSAGE_ENTITYDATABASED_VERIFICATION_FAILED
                )
            plaintext = crypto.decrypt(headerdata)
            quick = _quick_header_data(plaintext)
            if type(quick) is HeaderData:
                return cls(
                    data=quick,
                    master_token=master_token,
                    entity_auth_data=protecting_ead,
                    crypto_context=crypto,
                    headerdata=headerdata,
                    signature=signature,
                    encrypting=master_token is not None or (protecting_ead is not None and protecting_ead.encrypts),
                    encoder_format=EncoderFormat.MISSILE_CBOR if obj.binary else EncoderFormat.JSON,
                )
            header_obj = decode(plaintext)
        except MslException as exc:
            if master_token is not None:
                exc.set_master_token(master_token)
            elif entity_auth_data is not None:
                exc.set_entity_auth_data(entity_auth_data)
            raise
        encrypting = master_token is not None or (protecting_ead is not None and protecting_ead.encrypts)
        message_id: int | None = None
        try:
            message_id = header_obj.get_int(KEY_MESSAGE_ID)
            if not in_range(message_id):
                raise MslMessageException(MslError.MESSAGE_ID_OUT_OF_RANGE, str(message_id))
            header = cls._parse_data(
                ctx,
                header_obj,
                message_id,
                master_token,
                protecting_ead,
                crypto,
                headerdata,
                signature,
                encrypting,
                service_token_contexts or {},
                limits,
                # The message's format is its outer object's (what a response answers in).
                EncoderFormat.MISSILE_CBOR if obj.binary else EncoderFormat.JSON,
            )
        except MslException as exc:
            if master_token is not None:
                exc.set_master_token(master_token)
            elif entity_auth_data is not None:
                exc.set_entity_auth_data(entity_auth_data)
            if message_id is not None and in_range(message_id):
                exc.set_message_id(message_id)
            raise
        if type(quick) is bytes and header.data.capabilities is not None:
            _remember_capabilities(quick, header.data.capabilities)
        return header

    @classmethod
    def _parse_data(
        cls,
        ctx: MslContext,
        obj: MslObject,
        message_id: int,
        master_token: MasterToken | None,
        entity_auth_data: EntityAuthData | None,
        crypto: CryptoContext,
        headerdata: bytes,
        signature: bytes,
        encrypting: bool,
        st_contexts: Mapping[str, CryptoContext],
        limits: ReaderLimits,
        encoder_format: EncoderFormat,
    ) -> MessageHeader:
        raw = obj.to_dict()
        timestamp = obj.opt_int(KEY_TIMESTAMP)
        key_response: KeyResponseData | None = None
        if KEY_KEY_RESPONSE_DATA in raw:
            key_response = parse_key_response_data(obj.get_object(KEY_KEY_RESPONSE_DATA), ctx)
        verifier = _token_verification_master_token(ctx, master_token, key_response)

        user_id_token: UserIdToken | None = None
        if KEY_USER_ID_TOKEN in raw:
            user_id_token = UserIdToken.parse(
                _token_object(obj, KEY_USER_ID_TOKEN, limits),
                ctx.msl_crypto,
                verifier,
                user_factory=_user_factory(ctx),
                clock=ctx.clock,
            )

        user_auth_data: UserAuthData | None = None
        user: MslUser | None = None
        if KEY_USER_AUTH_DATA in raw:
            user_auth_data = parse_user_auth_data(obj.get_object(KEY_USER_AUTH_DATA), ctx, verifier)
            if not encrypting:
                raise MslMessageException(MslError.UNENCRYPTED_MESSAGE_WITH_USERAUTHDATA).set_user_auth_data(
                    user_auth_data
                )
            factory = ctx.user_auth_factory(user_auth_data.scheme)
            if factory is None:  # pragma: no cover - parse_user_auth_data already checked
                raise MslException(MslError.USERAUTH_FACTORY_NOT_FOUND, user_auth_data.scheme)
            identity = (master_token.identity if master_token is not None else None) or (
                entity_auth_data.identity if entity_auth_data is not None else ""
            )
            try:
                user = factory.authenticate(ctx, identity or "", user_auth_data, user_id_token)
            except MslException as exc:
                exc.set_user_auth_data(user_auth_data)
                raise
            if user_id_token is not None and user_id_token.user is not None and user_id_token.user != user:
                raise MslMessageException(
                    MslError.USERIDTOKEN_USERAUTH_DATA_MISMATCH
                ).set_user_auth_data(user_auth_data)
        elif user_id_token is not None:
            user = user_id_token.user

        service_tokens: tuple[ServiceToken, ...] = ()
        if KEY_SERVICE_TOKENS in raw:
            service_tokens = _parse_service_tokens(
                obj, KEY_SERVICE_TOKENS, st_contexts, verifier, user_id_token, ctx, limits
            )

        non_replayable_id = obj.opt_int(KEY_NON_REPLAYABLE_ID)
        if non_replayable_id is not None and not in_range(non_replayable_id):
            raise MslMessageException(MslError.NONREPLAYABLE_ID_OUT_OF_RANGE, str(non_replayable_id))
        if obj.binary:
            # docs/binary-format.md §5.6: a false flag is left out, never written; the
            # legacy sender does not exist in this format.
            if KEY_SENDER in raw:
                raise MslMessageException(MslError.MSL_PARSE_ERROR, "binary header data has no sender")
            _binary_flag(raw, KEY_NON_REPLAYABLE)
            renewable = _binary_flag(raw, KEY_RENEWABLE)
            handshake = _binary_flag(raw, KEY_HANDSHAKE)
        else:
            renewable = obj.get_bool(KEY_RENEWABLE)
            handshake = obj.opt_bool(KEY_HANDSHAKE, False)
        capabilities = (
            MessageCapabilities.parse(obj.get_object(KEY_CAPABILITIES)) if KEY_CAPABILITIES in raw else None
        )
        key_requests: list[KeyRequestData] = []
        if KEY_KEY_REQUEST_DATA in raw:
            requests = obj.get_array(KEY_KEY_REQUEST_DATA)
            if len(requests) > limits.max_key_requests:
                detail = f"{len(requests)} key requests exceed the limit of {limits.max_key_requests}"
                raise MslMessageException(MslError.MSL_PARSE_ERROR, detail)
            for item in requests.objects():
                request = parse_key_request_data(item, ctx)
                if request not in key_requests:
                    key_requests.append(request)

        peer_master_token: MasterToken | None = None
        peer_user_id_token: UserIdToken | None = None
        peer_service_tokens: tuple[ServiceToken, ...] = ()
        if ctx.peer_to_peer:
            if KEY_PEER_MASTER_TOKEN in raw:
                peer_master_token = _parse_master_token(ctx, _token_object(obj, KEY_PEER_MASTER_TOKEN, limits))
            peer_verifier = _peer_verification_master_token(key_response, peer_master_token)
            if KEY_PEER_USER_ID_TOKEN in raw:
                peer_user_id_token = UserIdToken.parse(
                    _token_object(obj, KEY_PEER_USER_ID_TOKEN, limits),
                    ctx.msl_crypto,
                    peer_verifier,
                    user_factory=_user_factory(ctx),
                    clock=ctx.clock,
                )
            peer_service_tokens = _parse_service_tokens(
                obj, KEY_PEER_SERVICE_TOKENS, st_contexts, peer_verifier, peer_user_id_token, ctx, limits
            )

        data = HeaderData(
            message_id=message_id,
            renewable=renewable,
            handshake=handshake,
            non_replayable_id=non_replayable_id,
            timestamp=timestamp,
            capabilities=capabilities,
            key_request_data=tuple(key_requests),
            key_response_data=key_response,
            user_auth_data=user_auth_data,
            user_id_token=user_id_token,
            service_tokens=service_tokens,
            peer_master_token=peer_master_token,
            peer_user_id_token=peer_user_id_token,
            peer_service_tokens=peer_service_tokens,
            sender=sender if type(sender := raw.get(KEY_SENDER)) is str else None,
        )
        return cls(
            data=data,
            master_token=master_token,
            entity_auth_data=entity_auth_data,
            crypto_context=crypto,
            headerdata=headerdata,
            signature=signature,
            encrypting=encrypting,
            user=user,
            encoder_format=encoder_format,
        )


_JSON_MEMBER_NAMES = {
    key: b'"%s":' % key.encode()
    for key in (
        KEY_SENDER, KEY_TIMESTAMP, KEY_MESSAGE_ID, KEY_NON_REPLAYABLE, KEY_NON_REPLAYABLE_ID, KEY_RENEWABLE,
        KEY_HANDSHAKE, KEY_CAPABILITIES,
    )
}  # fmt: skip
_JSON_BOOLEANS = {True: b"true", False: b"false"}


def _json_header_data_bytes(ctx: MslContext, data: HeaderData, sender: str | None, timestamp: int) -> bytes:
    """``encode_json(_json_header_data(…))``, the encoded header data. An ordinary
    message's (no tokens, key exchange or user authentication; an ASCII sender; a
    non-replayable ID or none) is put together from its encoded members, in the same
    order, without building and encoding a mapping (tested to give the same bytes); any
    other goes the general way."""
    non_replayable_id = data.non_replayable_id
    if (
        (non_replayable_id is not None and type(non_replayable_id) is not int)
        or data.key_request_data
        or data.key_response_data is not None
        or data.user_auth_data is not None
        or data.user_id_token is not None
        or data.service_tokens
        or data.peer_master_token is not None
        or data.peer_user_id_token is not None
        or data.peer_service_tokens
        or type(data.message_id) is not int
        or type(timestamp) is not int
        or type(data.renewable) is not bool
        or type(data.handshake) is not bool
        or (sender is not None and not (type(sender) is str and sender.isascii()))
    ):
        return encode_json(_json_header_data(ctx, data, sender, timestamp))
    members: dict[str, bytes] = {}
    if sender is not None:
        members[KEY_SENDER] = encode_json_value(sender)
    members[KEY_TIMESTAMP] = b"%d" % timestamp
    members[KEY_MESSAGE_ID] = b"%d" % data.message_id
    if non_replayable_id is None:
        members[KEY_NON_REPLAYABLE] = b"false"
    else:
        members[KEY_NON_REPLAYABLE] = b"true"
        members[KEY_NON_REPLAYABLE_ID] = b"%d" % non_replayable_id
    members[KEY_RENEWABLE] = _JSON_BOOLEANS[data.renewable]
    members[KEY_HANDSHAKE] = _JSON_BOOLEANS[data.handshake]
    if data.capabilities is not None:
        members[KEY_CAPABILITIES] = data.capabilities.json_encoded
    return b"{%s}" % b",".join([_JSON_MEMBER_NAMES[key] + members[key] for key in java_order(tuple(members))])


def _json_header_data(ctx: MslContext, data: HeaderData, sender: str | None, timestamp: int) -> dict[str, Any]:
    """The header data as JSON values, absent fields left out (what encode() would make
    of the same mapping with None values, without converting every field). Every
    boolean is written, as the reference writes them; the insertion order is the one
    :func:`~missile.encoding.codec.java_order` expects."""
    fields: dict[str, Any] = {}
    if sender is not None:
        fields[KEY_SENDER] = sender
    fields[KEY_TIMESTAMP] = timestamp
    fields[KEY_MESSAGE_ID] = data.message_id
    fields[KEY_NON_REPLAYABLE] = data.non_replayable_id is not None
    if data.non_replayable_id is not None:
        fields[KEY_NON_REPLAYABLE_ID] = data.non_replayable_id
    fields[KEY_RENEWABLE] = data.renewable
    fields[KEY_HANDSHAKE] = data.handshake
    if data.capabilities is not None:
        fields[KEY_CAPABILITIES] = data.capabilities.json_value
    if data.key_request_data:
        fields[KEY_KEY_REQUEST_DATA] = to_json_value(list(data.key_request_data))
    if data.key_response_data is not None:
        fields[KEY_KEY_RESPONSE_DATA] = to_json_value(data.key_response_data)
    if data.user_auth_data is not None:
        fields[KEY_USER_AUTH_DATA] = to_json_value(data.user_auth_data)
    if data.user_id_token is not None:
        fields[KEY_USER_ID_TOKEN] = data.user_id_token.json_value
    if data.service_tokens:
        fields[KEY_SERVICE_TOKENS] = [token.json_value for token in data.service_tokens]
    if ctx.peer_to_peer:
        if data.peer_master_token is not None:
            fields[KEY_PEER_MASTER_TOKEN] = data.peer_master_token.json_value
        if data.peer_user_id_token is not None:
            fields[KEY_PEER_USER_ID_TOKEN] = data.peer_user_id_token.json_value
        if data.peer_service_tokens:
            fields[KEY_PEER_SERVICE_TOKENS] = [token.json_value for token in data.peer_service_tokens]
    return fields


#: Encoded map keys of the header data (docs/binary-format.md §5.6), computed once.
_K = {
    key: cbor.encode_text(key)
    for key in (
        KEY_SENDER, KEY_TIMESTAMP, KEY_MESSAGE_ID, KEY_NON_REPLAYABLE, KEY_NON_REPLAYABLE_ID, KEY_RENEWABLE,
        KEY_HANDSHAKE, KEY_CAPABILITIES, KEY_KEY_REQUEST_DATA, KEY_KEY_RESPONSE_DATA, KEY_USER_AUTH_DATA,
        KEY_USER_ID_TOKEN, KEY_SERVICE_TOKENS, KEY_PEER_MASTER_TOKEN, KEY_PEER_USER_ID_TOKEN, KEY_PEER_SERVICE_TOKENS,
    )
}  # fmt: skip
_TRUE = b"\xf5"
_BINARY_HEADER_HEAD = bytes((cbor.IDENTIFIER,)) + cbor.map_head(3) + cbor.encode_text(KEY_SIGNATURE)
_BINARY_HEADER_DATA_KEY = cbor.encode_text(KEY_HEADER_DATA)
_BINARY_MASTER_TOKEN_KEY = cbor.encode_text(KEY_MASTER_TOKEN)
_BINARY_ENTITY_AUTH_DATA_KEY = cbor.encode_text(KEY_ENTITY_AUTH_DATA)
_IDENTIFIER = bytes((cbor.IDENTIFIER,))


def _binary_header_data(data: HeaderData, timestamp: int, *, peer_to_peer: bool) -> bytes:
    """The encoded header data in the binary format, written in one pass: each member
    encoded once (tokens and capabilities from their cached encodings), the members then
    put in the deterministic key order. A boolean is written only when true
    (docs/binary-format.md §5.6)."""
    pairs: list[tuple[bytes, bytes]] = [
        (_K[KEY_TIMESTAMP], cbor.encode_value(timestamp)),
        (_K[KEY_MESSAGE_ID], cbor.encode_value(data.message_id)),
    ]
    if data.non_replayable_id is not None:
        pairs.append((_K[KEY_NON_REPLAYABLE], _TRUE))
        pairs.append((_K[KEY_NON_REPLAYABLE_ID], cbor.encode_value(data.non_replayable_id)))
    if data.renewable:
        pairs.append((_K[KEY_RENEWABLE], _TRUE))
    if data.handshake:
        pairs.append((_K[KEY_HANDSHAKE], _TRUE))
    if data.capabilities is not None:
        pairs.append((_K[KEY_CAPABILITIES], data.capabilities.cbor_encoded))
    if data.key_request_data:
        pairs.append((_K[KEY_KEY_REQUEST_DATA], cbor.encode_value(list(data.key_request_data))))
    if data.key_response_data is not None:
        pairs.append((_K[KEY_KEY_RESPONSE_DATA], cbor.encode_value(data.key_response_data)))
    if data.user_auth_data is not None:
        pairs.append((_K[KEY_USER_AUTH_DATA], cbor.encode_value(data.user_auth_data)))
    if data.user_id_token is not None:
        pairs.append((_K[KEY_USER_ID_TOKEN], data.user_id_token.cbor_encoded))
    if data.service_tokens:
        pairs.append((_K[KEY_SERVICE_TOKENS], cbor.encode_value(list(data.service_tokens))))
    if peer_to_peer:
        if data.peer_master_token is not None:
            pairs.append((_K[KEY_PEER_MASTER_TOKEN], data.peer_master_token.cbor_encoded))
        if data.peer_user_id_token is not None:
            pairs.append((_K[KEY_PEER_USER_ID_TOKEN], data.peer_user_id_token.cbor_encoded))
        if data.peer_service_tokens:
            pairs.append((_K[KEY_PEER_SERVICE_TOKENS], cbor.encode_value(list(data.peer_service_tokens))))
    # Deterministic order: by the encoded keys (unique, so values are never compared).
    pairs.sort()
    parts = [_IDENTIFIER, cbor.map_head(len(pairs))]
    for key, value in pairs:
        parts.append(key)
        parts.append(value)
    return b"".join(parts)


#: Binary header data of the usual shape: the map head, then in key order an optional
#: ``handshake: true``, ``messageid``, an optional ``renewable: true``, ``timestamp``
#: (unsigned integers, minimal heads), and nothing else before ``capabilities``, if any.
_QUICK_BINARY_HEADER_DATA = re.compile(
    b"\x1c([\xa2-\xa5])(%s)?%s(%s)(%s)?%s(%s)"
    % (
        re.escape(_K[KEY_HANDSHAKE] + _TRUE),
        re.escape(_K[KEY_MESSAGE_ID]),
        cbor.MINIMAL_UINT,
        re.escape(_K[KEY_RENEWABLE] + _TRUE),
        re.escape(_K[KEY_TIMESTAMP]),
        cbor.MINIMAL_UINT,
    ),
    re.DOTALL,
)
_CAPABILITIES_KEY = _K[KEY_CAPABILITIES]
#: Capabilities the general path parsed, by their exact encoded form: a peer sends the
#: same one or two sets in every message. A binary map starts with a map head, a JSON
#: object with ``{``: the two formats' keys never collide. Bounded (once full, nothing
#: more is added) in count and in size (ordinary sets take under a hundred bytes;
#: larger ones are parsed each time), so a peer sending ever new sets costs at most
#: 64 KiB of keys.
_QUICK_CAPABILITIES: dict[bytes, MessageCapabilities] = {}
_QUICK_CAPABILITIES_MAX = 64
_QUICK_CAPABILITIES_MAX_SIZE = 1024

#: A JSON string of printable ASCII without escapes (quotes and backslashes excluded, so
#: the expression splits the text into tokens exactly as a JSON parser does).
_JSON_PLAIN_STRING = rb'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
#: Capabilities in JSON: an object of arrays of such strings, nothing nested.
_JSON_STRING_ARRAY = rb'"[a-z]+":\[(?:%s(?:,%s)*)?\]' % (_JSON_PLAIN_STRING, _JSON_PLAIN_STRING)
_JSON_STRING_ARRAYS = rb"\{(?:%s(?:,%s)*)?\}" % (_JSON_STRING_ARRAY, _JSON_STRING_ARRAY)
#: JSON header data as this library (and the reference) writes it for an ordinary
#: message, compact and in the reference's member order: the two false-or-true flags,
#: ``nonreplayable`` false, optional capabilities and sender, the message ID and the
#: timestamp (decimal integers without sign, fraction or exponent).
_QUICK_JSON_HEADER_DATA = re.compile(
    rb'\{"handshake":(true|false),"nonreplayable":false,(?:"capabilities":(%s),)?(?:"sender":"(%s)",)?'
    rb'"renewable":(true|false),"messageid":(0|[1-9][0-9]{0,15}),"timestamp":(0|[1-9][0-9]{0,18})\}'
    % (_JSON_STRING_ARRAYS, _JSON_PLAIN_STRING[1:-1])
)


def _quick_header_data(plaintext: bytes) -> HeaderData | bytes | None:
    """The header data of a plaintext of the usual shape in either format, read by one
    match instead of decoding it and walking the general path: the same result, as
    nothing else is present to check (property-tested against the general path). Its
    capabilities, if any, must be ones the general path parsed before: when only they
    are new, their encoded form is returned, for :func:`_remember_capabilities` once the
    general path has parsed them. None for any other plaintext. Never raises: whatever
    is not answered here the general path decides."""
    if plaintext.startswith(b"{"):
        return _quick_json_header_data(plaintext)
    return _quick_binary_header_data(plaintext)


def _quick_json_header_data(plaintext: bytes) -> HeaderData | bytes | None:
    """:func:`_quick_header_data` of JSON (:data:`_QUICK_JSON_HEADER_DATA`)."""
    m = _QUICK_JSON_HEADER_DATA.fullmatch(plaintext)
    if m is None:
        return None
    message_id = int(m.group(5))
    if not in_range(message_id):
        return None
    encoded = m.group(2)
    capabilities = None
    if encoded is not None:
        capabilities = _QUICK_CAPABILITIES.get(encoded)
        if capabilities is None:
            return encoded
    sender = m.group(3)
    return HeaderData(
        message_id=message_id,
        renewable=m.group(4) == b"true",
        handshake=m.group(1) == b"true",
        timestamp=int(m.group(6)),
        capabilities=capabilities,
        sender=sender.decode("ascii") if sender is not None else None,
    )


def _quick_binary_header_data(plaintext: bytes) -> HeaderData | bytes | None:
    """:func:`_quick_header_data` of the binary format (:data:`_QUICK_BINARY_HEADER_DATA`)."""
    m = _QUICK_BINARY_HEADER_DATA.match(plaintext)
    if m is None:
        return None
    handshake = m.group(2) is not None
    renewable = m.group(4) is not None
    message_id = cbor.minimal_uint_value(m.group(3))
    count = 2 + handshake + renewable
    end = m.end()
    encoded: bytes | None = None
    if end != len(plaintext):
        if not plaintext.startswith(_CAPABILITIES_KEY, end):
            return None
        encoded = plaintext[end + len(_CAPABILITIES_KEY) :]
        count += 1
    members = plaintext[1] - 0xA0  # from the map head: structure, as the decoder reads it
    if members != count or not in_range(message_id):
        return None
    capabilities = None
    if encoded is not None:
        capabilities = _QUICK_CAPABILITIES.get(encoded)
        if capabilities is None:
            return encoded
    return HeaderData(
        message_id=message_id,
        renewable=renewable,
        handshake=handshake,
        timestamp=cbor.minimal_uint_value(m.group(5)),
        capabilities=capabilities,
    )


def _remember_capabilities(encoded: bytes, capabilities: MessageCapabilities) -> None:
    """Keep ``capabilities``, which the general path parsed from ``encoded`` in header
    data of the usual shape: the same bytes in the same place parse the same."""
    if len(_QUICK_CAPABILITIES) < _QUICK_CAPABILITIES_MAX and len(encoded) <= _QUICK_CAPABILITIES_MAX_SIZE:
        _QUICK_CAPABILITIES[encoded] = capabilities


def _binary_flag(raw: dict[str, Any], key: str) -> bool:
    """A boolean of binary-format header data: absent is false, present must be ``true``
    (an explicit ``false`` is a second encoding of the same value, refused)."""
    value = raw.get(key)
    if value is None:
        return False
    if value is True:
        return True
    detail = "is false: a false boolean is left out" if value is False else "is not a boolean"
    raise MslEncodingException(MslError.MSL_PARSE_ERROR, f"'{key}' {detail}")


def _user_factory(ctx: MslContext) -> Any:
    factory = ctx.token_factory
    if factory is None:
        return MslUser
    return lambda identity: factory.create_user(ctx, identity)


def _parse_service_tokens(
    obj: MslObject,
    key: str,
    contexts: Mapping[str, CryptoContext],
    master_token: MasterToken | None,
    user_id_token: UserIdToken | None,
    ctx: MslContext,
    limits: ReaderLimits,
) -> tuple[ServiceToken, ...]:
    if key not in obj:
        return ()
    items = obj.get_array(key)
    if len(items) > limits.max_service_tokens:
        raise MslMessageException(
            MslError.MSL_PARSE_ERROR, f"{len(items)} service tokens exceed the limit of {limits.max_service_tokens}"
        )
    tokens = []
    for item in items.objects():
        check_token_size(item, limits, "service token")
        tokens.append(
            ServiceToken.parse(item, contexts, master_token, user_id_token, max_deflate_ratio=ctx.max_deflate_ratio)
        )
    return _dedupe_service_tokens(tokens)


def _parse_master_token(ctx: MslContext, token: MslObject) -> MasterToken:
    """``ctx.parse_master_token``, which caches parsed tokens by their wire values (base64
    text in JSON, byte strings in the binary format)."""
    return ctx.parse_master_token(token)


def _token_object(obj: MslObject, key: str, limits: ReaderLimits) -> MslObject:
    """The token object under ``key``, refused when larger than the limit."""
    token = obj.get_object(key)
    check_token_size(token, limits, key)
    return token


def _check_bindings(
    master_token: MasterToken | None, user_id_token: UserIdToken | None, service_tokens: tuple[ServiceToken, ...]
) -> None:
    if user_id_token is not None and not user_id_token.is_bound_to(master_token):
        raise MslMessageException(MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH).set_user_id_token(user_id_token)
    for token in service_tokens:
        if token.is_master_token_bound and not token.is_bound_to_master_token(master_token):
            raise MslMessageException(MslError.MESSAGE_SERVICETOKEN_MISMATCH, token.name)
        if token.is_user_id_token_bound and not token.is_bound_to_user_id_token(user_id_token):
            raise MslMessageException(MslError.MESSAGE_SERVICETOKEN_MISMATCH, token.name)


def _replace(data: HeaderData, **changes: Any) -> HeaderData:
    from dataclasses import replace

    return replace(data, **changes)
