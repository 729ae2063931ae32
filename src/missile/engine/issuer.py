"""The issuer's checks and records around a received message (messages.md §11 steps 3
and 4, control.md §2.2, §7).

The sans-IO reader verifies and decrypts a message with its keys and the current time;
it never asks the token state anything. What only the issuer's state can answer
(revocation, the newest serial and sequence numbers, replay windows) is decided here, in
the engine, by awaiting the context's :class:`~missile.tokens.factory.TokenFactory`,
whose every call is bounded in time. :func:`check_request` runs after a header is read
and before anything of the message reaches the application; :func:`record_issued` runs
after a response that issues a master token is built and before it is sent.
"""

from __future__ import annotations

from missile.context import MslContext
from missile.errors import MslError, MslException, MslMessageException, MslUserAuthException
from missile.messages.header import MessageHeader
from missile.messages.reader import decorate
from missile.userauth.user_id_token import UserIdTokenAuthData

__all__ = ["check_request", "record_issued"]


async def check_request(ctx: MslContext, header: MessageHeader) -> None:
    """Raise the MslException the issuer's state calls for, decorated with the message's
    tokens and ID; return when the message may be processed."""
    try:
        await _check(ctx, header)
    except MslException as exc:
        decorate(exc, header)
        raise


async def _check(ctx: MslContext, header: MessageHeader) -> None:
    factory = ctx.token_factory
    data = header.data
    mt = header.master_token
    nrid = data.non_replayable_id
    if nrid is not None and mt is None:
        raise MslMessageException(MslError.INCOMPLETE_NONREPLAYABLE_MESSAGE)
    if factory is None:
        return
    replay: MslError | None = None
    if mt is not None and (ctx.peer_to_peer or mt.verified):
        expired = mt.is_expired(None)
        # One trip to the state answers revocation, renewability and the replay window.
        error, replay = await factory.check_master_token(
            ctx, mt, nrid, renewing=expired and data.renewable and bool(data.key_request_data)
        )
        if error is not None:
            raise MslMessageException(error)
        uit = data.user_id_token
        if uit is not None:
            if not uit.verified:
                raise MslMessageException(MslError.USERIDTOKEN_NOT_DECRYPTED).set_user_id_token(uit)
            error = await factory.is_user_id_token_revoked(ctx, mt, uit)
            if error is not None:
                raise MslMessageException(error).set_user_id_token(uit)
        if expired and not data.renewable:
            raise MslMessageException(MslError.MESSAGE_EXPIRED_NOT_RENEWABLE)
        if expired and not data.key_request_data:
            raise MslMessageException(MslError.MESSAGE_EXPIRED_NO_KEYREQUEST_DATA)
    elif mt is not None and nrid is not None:
        replay = await factory.accept_non_replayable_id(ctx, mt, nrid)
    if replay is not None:
        raise MslMessageException(replay)
    await _check_user_auth_token(ctx, header)


async def _check_user_auth_token(ctx: MslContext, header: MessageHeader) -> None:
    """USER_ID_TOKEN user authentication presents a user ID token we issued: it must not
    be revoked (the reference's UserIdTokenAuthenticationFactory)."""
    uad = header.data.user_auth_data
    factory = ctx.token_factory
    if not isinstance(uad, UserIdTokenAuthData) or factory is None:
        return
    try:
        error = await factory.is_user_id_token_revoked(ctx, uad.master_token, uad.user_id_token)
    except MslException as exc:
        if exc.error is MslError.INTERNAL_EXCEPTION:
            raise  # the state did not answer: TRANSIENT_FAILURE, retry later
        raise MslUserAuthException(MslError.USERAUTH_USERIDTOKEN_REVOKE_CHECK_ERROR, cause=exc).set_user_auth_data(
            uad
        ) from exc
    if error is not None:
        raise MslUserAuthException(error).set_user_auth_data(uad)


async def record_issued(ctx: MslContext, request: MessageHeader, response: MessageHeader) -> None:
    """Record the master token ``response`` issues, if any (control.md §2.2).

    Raises MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC (decorated with the request) when a
    concurrent renewal of the same token won: the response must then not be sent.
    """
    krd = response.data.key_response_data
    factory = ctx.token_factory
    if krd is None or factory is None:
        return
    try:
        await factory.record_issued(request.master_token, krd.master_token)
    except MslException as exc:
        decorate(exc, request)
        raise
