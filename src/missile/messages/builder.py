"""Builders for requests, responses and error responses (messages.md §7, keyx.md §1.1,
errors.md §3).

These are the sans-IO building blocks the protocol engine drives: they pick the
protecting token, message IDs, capabilities, key exchange and token issuance, and
return a :class:`~missile.messages.header.MessageHeader` plus the crypto context its
payload chunks use.

A response issues its tokens (the master token of a key exchange, user ID tokens) in the
response's own encoder format (docs/binary-format.md §7): the format is decided first,
from the capabilities alone, and the tokens follow it. Tokens received are never
re-encoded, whatever the format of the message that carries them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.crypto.random import random_long
from missile.encoding import EncoderFormat, next_id
from missile.entityauth.base import EntityAuthData
from missile.errors import MslError, MslException, MslInternalException, MslKeyExchangeException, MslMessageException
from missile.keyx.base import KeyExchangeResult, KeyRequestData
from missile.messages.capabilities import DEFAULT_CAPABILITIES, MessageCapabilities
from missile.messages.error_header import ErrorHeader
from missile.messages.header import HeaderData, MessageHeader
from missile.messages.negotiation import request_format, response_format
from missile.tokens.master import MasterToken
from missile.tokens.service import ServiceToken
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import UserAuthData

__all__ = ["BuiltMessage", "build_error_response", "build_push", "build_request", "build_response", "exchange_keys"]


@dataclass(frozen=True)
class BuiltMessage:
    """A header ready to send and the context protecting its payload."""

    header: MessageHeader
    """The protected header."""
    payload_crypto_context: CryptoContext
    """The context for the payload chunks."""
    key_exchange: KeyExchangeResult | None = None
    """The key exchange performed for this response, if any."""


def build_request(
    ctx: MslContext,
    *,
    message_id: int | None = None,
    master_token: MasterToken | None = None,
    use_entity_auth: bool = False,
    user_id_token: UserIdToken | None = None,
    user_auth_data: UserAuthData | None = None,
    key_request_data: Sequence[KeyRequestData] = (),
    renewable: bool = False,
    handshake: bool = False,
    non_replayable: bool = False,
    service_tokens: Iterable[ServiceToken] = (),
    capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES,
    peer_master_token: MasterToken | None = None,
    peer_user_id_token: UserIdToken | None = None,
    peer_service_tokens: Iterable[ServiceToken] = (),
    encoder_format: EncoderFormat | None = None,
) -> BuiltMessage:
    """A request: random message ID, the newest stored master token unless
    ``use_entity_auth`` (then the context's entity auth data). ``encoder_format`` None
    means the best one the server advertised to the store, else JSON
    (:func:`~missile.messages.negotiation.request_format`)."""
    if master_token is None and not use_entity_auth and ctx.store is not None:
        master_token = ctx.store.get_master_token()
    entity_auth_data = None
    if master_token is None:
        entity_auth_data = ctx.get_entity_auth_data()
        if entity_auth_data is None:
            raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND, "no master token or entity auth data")
        user_id_token = None
    if handshake:
        # messages.md §9: a handshake is renewable and never non-replayable.
        renewable = True
        non_replayable = False
        if not key_request_data:
            raise MslMessageException(MslError.HANDSHAKE_DATA_MISSING)
    non_replayable_id = None
    if non_replayable:
        if master_token is None:
            raise MslMessageException(MslError.NONREPLAYABLE_MESSAGE_REQUIRES_MASTERTOKEN)
        if ctx.store is None:
            raise MslInternalException("non-replayable messages need a store")
        non_replayable_id = ctx.store.get_non_replayable_id(master_token)
    data = HeaderData(
        message_id=message_id if message_id is not None else random_long(ctx.random),
        timestamp=ctx.clock() // 1000,
        renewable=renewable,
        handshake=handshake,
        non_replayable_id=non_replayable_id,
        capabilities=capabilities,
        key_request_data=tuple(key_request_data) if renewable else (),
        user_auth_data=user_auth_data,
        user_id_token=user_id_token,
        service_tokens=tuple(service_tokens),
        peer_master_token=peer_master_token,
        peer_user_id_token=peer_user_id_token,
        peer_service_tokens=tuple(peer_service_tokens),
    )
    if encoder_format is None:
        encoder_format = request_format(ctx.store, capabilities)
    header = MessageHeader.create(
        ctx, data, master_token=master_token, entity_auth_data=entity_auth_data, encoder_format=encoder_format
    )
    return BuiltMessage(header, header.crypto_context)


def exchange_keys(
    ctx: MslContext,
    request: MessageHeader,
    *,
    now_ms: int | None = None,
    encoder_format: EncoderFormat = EncoderFormat.JSON,
) -> KeyExchangeResult | None:
    """The responder's key exchange for a received request (keyx.md §1.1), or None.

    Key exchange happens only for a renewable request with key request data, and with a
    master token only when it is renewable or expired. Factories are tried in the
    context's preference order; a failure of the last factory is raised at once. The
    master token is issued in ``encoder_format``, the format of the response carrying it.
    """
    return _exchange_keys(ctx, request, now_ms, encoder_format)


def _exchange_keys(
    ctx: MslContext, request: MessageHeader, now_ms: int | None, encoder_format: EncoderFormat
) -> KeyExchangeResult | None:
    data = request.data
    if not data.renewable or not data.key_request_data:
        return None
    master_token = request.master_token
    if master_token is not None:
        if not (master_token.is_renewable(now_ms) or master_token.is_expired(now_ms)):
            return None
        if not master_token.decrypted:
            raise MslException(MslError.MASTERTOKEN_UNTRUSTED).set_master_token(master_token)
    factories = ctx.key_exchange_factories
    failure: MslException | None = None
    for index, factory in enumerate(factories):
        for key_request in data.key_request_data:
            if key_request.scheme != factory.scheme:
                continue
            try:
                if master_token is not None:
                    return factory.generate_response(
                        ctx, key_request, master_token=master_token, encoder_format=encoder_format
                    )
                return factory.generate_response(
                    ctx, key_request, entity_auth_data=request.entity_auth_data, encoder_format=encoder_format
                )
            except MslException as exc:
                if index == len(factories) - 1:
                    raise
                failure = exc
    if failure is not None:
        raise failure
    raise MslKeyExchangeException(MslError.KEYX_FACTORY_NOT_FOUND, "no matching key request data")


def build_response(
    ctx: MslContext,
    request: MessageHeader,
    *,
    service_tokens: Iterable[ServiceToken] = (),
    capabilities: MessageCapabilities | None = DEFAULT_CAPABILITIES,
    issue_tokens: bool = True,
    peer_master_token: MasterToken | None = None,
    message_id: int | None = None,
) -> BuiltMessage:
    """A trusted-network server's response to ``request`` (message ID + 1).

    With ``issue_tokens`` the server performs key exchange when asked and allowed,
    issues a user ID token for a user authenticated by user auth data, and renews a
    renewable user ID token of a renewable request.
    """
    data = request.data
    # The best encoder format both sides advertise (docs/binary-format.md §8); the
    # tokens issued below are written in it too (§7).
    encoder_format = response_format(data.capabilities, capabilities)
    keyx = exchange_keys(ctx, request, encoder_format=encoder_format) if issue_tokens else None
    # The response is protected like the request was: its master token, else the
    # server's own entity authentication (control.md §3.1).
    master_token = request.master_token
    entity_auth_data: EntityAuthData | None = None
    if master_token is None:
        entity_auth_data = ctx.get_entity_auth_data()
        if entity_auth_data is None:
            raise MslInternalException("the responder has no entity authentication data")
    token_master = keyx.response.master_token if keyx is not None else master_token
    user_id_token = data.user_id_token
    factory = ctx.token_factory
    if issue_tokens and factory is not None and token_master is not None:
        if user_id_token is None and data.user_auth_data is not None and request.user is not None:
            user_id_token = factory.create_user_id_token(ctx, request.user, token_master, encoder_format=encoder_format)
        elif (
            user_id_token is not None
            and user_id_token.verified
            and (
                # control.md §4.3: renew when renewable on a renewable request, when
                # expired, or when the master token it must be bound to changed.
                (data.renewable and user_id_token.is_renewable(None))
                or user_id_token.is_expired(None)
                or not user_id_token.is_bound_to(token_master)
            )
        ):
            user_id_token = factory.renew_user_id_token(ctx, user_id_token, token_master, encoder_format=encoder_format)
    if user_id_token is not None and not user_id_token.is_bound_to(token_master):
        user_id_token = None
    tokens = [
        t
        for t in (*data.service_tokens, *service_tokens)
        if (not t.is_master_token_bound or t.is_bound_to_master_token(token_master))
        and (not t.is_user_id_token_bound or t.is_bound_to_user_id_token(user_id_token))
    ]
    unique: dict[tuple[str, int | None, int | None], ServiceToken] = {}
    for token in tokens:
        unique[token.key] = token
    # messages.md §5: the shared capabilities, in the request's order.
    caps = data.capabilities.intersection(capabilities) if data.capabilities is not None else None
    header_data = HeaderData(
        message_id=message_id if message_id is not None else next_id(data.message_id),
        timestamp=ctx.clock() // 1000,
        renewable=False,
        capabilities=caps,
        key_response_data=keyx.response if keyx is not None else None,
        user_id_token=user_id_token,
        service_tokens=tuple(unique.values()),
        peer_master_token=peer_master_token,
    )
    header = MessageHeader.create(
        ctx, header_data, master_token=master_token, entity_auth_data=entity_auth_data, encoder_format=encoder_format
    )
    payload_crypto = keyx.crypto_context if keyx is not None and not ctx.peer_to_peer else header.crypto_context
    return BuiltMessage(header, payload_crypto, keyx)


def build_push(ctx: MslContext, request: MessageHeader) -> BuiltMessage:
    """A server-initiated message on a request's connection (control.md §4.5): random
    message ID, protected like a response, no token issuance or renewal."""
    return build_response(ctx, request, issue_tokens=False, message_id=random_long(ctx.random))


def build_error_response(
    ctx: MslContext,
    error: MslException | MslError,
    request_message_id: int | None = None,
    *,
    user_message: str | None = None,
) -> ErrorHeader:
    """An error header for a failure (errors.md §3): message ID = request ID + 1 when known."""
    entity_auth_data = ctx.get_entity_auth_data()
    if entity_auth_data is None:
        raise MslInternalException("no entity authentication data for the error header")
    msl_error = error.error if isinstance(error, MslException) else error
    if request_message_id is None and isinstance(error, MslException):
        request_message_id = error.message_id
    message_id = next_id(request_message_id) if request_message_id is not None else random_long(ctx.random)
    return ErrorHeader.from_error(ctx, entity_auth_data, message_id, msl_error, user_message=user_message)
