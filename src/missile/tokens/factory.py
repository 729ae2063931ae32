"""The token factory: the issuer's policy for creating, renewing and checking tokens
(control.md §2.2, §7).

:class:`TokenFactory` holds the policy once: token lifetimes, how tokens are created and
renewed, and the acceptance rules (revocation, newest serial, sequence numbers, replay
windows). Its state lives behind a :class:`~missile.tokens.state.TokenState` (memory,
SQLite, Redis, Redis Cluster).

The split follows what may block. Creating a token is pure computation, so the sans-IO
message builder calls :meth:`TokenFactory.create_master_token` and friends directly.
Every decision that needs the state is a coroutine the engine awaits, each bounded by
:attr:`TokenFactory.state_timeout`: a store that does not answer in time makes the
message fail with ``INTERNAL_EXCEPTION`` (response code TRANSIENT_FAILURE), so a slow or
hung store never freezes the event loop and never lets a message through unchecked.
Issuing a master token is recorded by the engine after the response is built and before
it is sent (:meth:`TokenFactory.record_issued`); a renewal that loses a race with
another renewal of the same token is refused there.

Tokens are issued in the encoder format of the response that carries them
(docs/binary-format.md §7): a binary response carries binary tokens, about 40% smaller,
and a binary response only ever goes to a party that advertised the binary format. The
builder names the format (``encoder_format=``) and hands it to the key exchange
factories, which pass it on when they issue a master token.
A deployment whose issuing servers include JSON-only ones sharing the MSL keys (a
reference server) turns this off with ``binary_tokens=False``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from missile.crypto.random import random_long
from missile.deadlines import Deadlines, check_seconds
from missile.encoding import EncoderFormat, next_id
from missile.errors import MslError, MslException, MslMasterTokenException
from missile.observe.base import Observer, StateCallObserved
from missile.tokens.master import MasterToken
from missile.tokens.state import (
    NON_REPLAYABLE_CATCHUP,
    NON_REPLAYABLE_WINDOW,
    MasterTokenState,
    MemoryTokenState,
    TokenState,
    check_non_replayable_id,
)
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = [
    "DAY_MS",
    "DEFAULT_STATE_TIMEOUT",
    "MasterTokenState",
    "NON_REPLAYABLE_CATCHUP",
    "NON_REPLAYABLE_WINDOW",
    "TokenFactory",
    "check_non_replayable_id",
]

DAY_MS = 24 * 3600 * 1000

#: Seconds one state call may take before the message fails with TRANSIENT_FAILURE. A
#: healthy Redis or SQLite answers in well under a millisecond; one second leaves room
#: for a busy store while keeping a requester's retry (and its 12-message budget) useful.
DEFAULT_STATE_TIMEOUT = 1.0

_T = TypeVar("_T")


class TokenFactory:
    """The issuer policy over a token state (control.md §2.2, §7; tokens.md §1.3).

    Lifetimes default to a renewal window of one day and an expiration of seven days.
    Renewal keeps the serial number and increments the sequence number (wrapping); only
    the newest sequence number of a serial number may be renewed afterwards. ``state``
    defaults to :class:`~missile.tokens.state.MemoryTokenState` (one process, lost on
    restart): a server behind several processes needs shared state.

    Tokens are issued in the format of the response carrying them; with
    ``binary_tokens=False`` always in JSON, readable by every MSL stack sharing the keys.
    """

    def __init__(
        self,
        state: TokenState | None = None,
        *,
        master_token_renewal_ms: int = DAY_MS,
        master_token_expiration_ms: int = 7 * DAY_MS,
        user_id_token_renewal_ms: int = DAY_MS,
        user_id_token_expiration_ms: int = 7 * DAY_MS,
        state_timeout: float = DEFAULT_STATE_TIMEOUT,
        observer: Observer | None = None,
        binary_tokens: bool = True,
    ) -> None:
        check_seconds(state_timeout, "state_timeout")
        self.state: TokenState = state if state is not None else MemoryTokenState()
        """Where the issuer's state lives."""
        self.state_timeout = state_timeout
        """Seconds each state call may take (then TRANSIENT_FAILURE)."""
        self._bounds: Deadlines | None = None
        self.observer: Observer | None = observer
        """Told of every state call (backend, operation, time, success)."""
        self.mt_renewal_ms = master_token_renewal_ms
        self.mt_expiration_ms = master_token_expiration_ms
        self.uit_renewal_ms = user_id_token_renewal_ms
        self.uit_expiration_ms = user_id_token_expiration_ms
        self.binary_tokens = binary_tokens
        """Issue tokens in the binary format inside binary responses (else always JSON)."""

    async def _bounded(self, call: Coroutine[Any, Any, _T], operation: str) -> _T:
        observer = self.observer
        if not self.state.may_block and observer is None:
            return await call
        start = time.perf_counter()
        ok = False
        try:
            result = await self._deadlines().run(call)
            ok = True
            return result
        except TimeoutError:
            raise MslException(
                MslError.INTERNAL_EXCEPTION, f"token state did not answer within {self.state_timeout:g} s"
            ) from None
        finally:
            if observer is not None:
                observer.state_call(
                    StateCallObserved(type(self.state).__name__, operation, time.perf_counter() - start, ok)
                )

    def _deadlines(self) -> Deadlines:
        """The bounds of this event loop's state calls (one timer for all of them)."""
        deadlines = self._bounds
        loop = asyncio.get_running_loop()
        if deadlines is None or deadlines.loop is not loop or deadlines.timeout != self.state_timeout:
            deadlines = self._bounds = Deadlines(loop, self.state_timeout)
        return deadlines

    async def aclose(self) -> None:
        """Release the state's connections and files."""
        await self.state.aclose()

    # -- checks (awaited by the engine) ---------------------------------------------------

    async def is_master_token_revoked(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        """MASTERTOKEN_IDENTITY_REVOKED when the identity or serial is revoked, or a newer
        master token was issued to the identity; else None."""
        state = await self._master_token_state(master_token)
        return _revocation(state, master_token)

    async def is_master_token_renewable(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        """None when ``master_token`` may be renewed: not revoked, and its sequence number
        the newest issued for its serial (an unknown serial is trusted on the strength
        of its signature). Older sequence numbers stay usable until they expire, as in
        the reference, so messages in flight during a renewal still succeed."""
        state = await self._master_token_state(master_token)
        error = _revocation(state, master_token)
        if error is not None:
            return error
        if state.sequence is not None and state.sequence != master_token.sequence_number:
            return MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
        return None

    async def check_master_token(
        self,
        ctx: MslContext,
        master_token: MasterToken,
        non_replayable_id: int | None = None,
        *,
        renewing: bool = False,
    ) -> tuple[MslError | None, MslError | None]:
        """Everything a message under ``master_token`` needs from the state, in one call:
        (the token's refusal, the non-replayable ID's refusal), each None when accepted.

        The first is :meth:`is_master_token_renewable`'s answer with ``renewing`` (an
        expired token on a renewal request), else :meth:`is_master_token_revoked`'s. The
        ID is recorded when accepted, even if the message is refused later for another
        reason: a refused message's ID is never needed again (control.md §7).
        """
        state, replay = await self._bounded(
            self.state.check_master_token(master_token.identity or "", master_token.serial_number, non_replayable_id),
            "check_master_token",
        )
        error = _revocation(state, master_token)
        if error is None and renewing and state.sequence not in (None, master_token.sequence_number):
            error = MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
        return error, replay

    async def accept_non_replayable_id(
        self, ctx: MslContext, master_token: MasterToken, non_replayable_id: int
    ) -> MslError | None:
        """Accept (None, and remember) or refuse a non-replayable ID (control.md §7)."""
        return await self._bounded(
            self.state.accept_non_replayable_id(
                master_token.identity or "", master_token.serial_number, non_replayable_id
            ),
            "accept_non_replayable_id",
        )

    async def is_user_id_token_revoked(
        self, ctx: MslContext, master_token: MasterToken, user_id_token: UserIdToken
    ) -> MslError | None:
        """USERIDTOKEN_REVOKED when the user or the token's serial is revoked; else None."""
        user = user_id_token.user.encode() if user_id_token.user is not None else None
        if await self._bounded(
            self.state.user_id_token_revoked(user, user_id_token.serial_number), "user_id_token_revoked"
        ):
            return MslError.USERIDTOKEN_REVOKED
        return None

    async def _master_token_state(self, master_token: MasterToken) -> MasterTokenState:
        return await self._bounded(
            self.state.master_token_state(master_token.identity or "", master_token.serial_number), "master_token_state"
        )

    # -- recording issuance (awaited by the engine before a response is sent) -------------

    async def record_issued(self, previous: MasterToken | None, issued: MasterToken) -> None:
        """Record a master token issued in a response to a request under ``previous``.

        The same serial number is a renewal: it succeeds only if no other renewal of the
        same sequence number won (MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC otherwise, so
        one renewal request replayed yields exactly one renewed token). A new serial
        makes the token the identity's newest, superseding its earlier ones.
        """
        identity = issued.identity or ""
        if previous is not None and previous.serial_number == issued.serial_number:
            renewed = await self._bounded(
                self.state.record_renewal(
                    identity, issued.serial_number, previous.sequence_number, issued.sequence_number
                ),
                "record_renewal",
            )
            if not renewed:
                raise MslMasterTokenException(MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC).set_master_token(
                    previous
                )
            return
        await self._bounded(
            self.state.record_new_master_token(identity, issued.serial_number), "record_new_master_token"
        )

    # -- revocation -----------------------------------------------------------------------

    async def revoke_identity(self, identity: str) -> None:
        """Refuse every master token of ``identity``."""
        await self._bounded(self.state.revoke_identity(identity), "revoke_identity")

    async def revoke_master_token(self, serial_number: int) -> None:
        """Refuse the master tokens with this serial number."""
        await self._bounded(self.state.revoke_master_token(serial_number), "revoke_master_token")

    async def revoke_user(self, user: str) -> None:
        """Refuse the user ID tokens of ``user``."""
        await self._bounded(self.state.revoke_user(user), "revoke_user")

    async def revoke_user_id_token(self, serial_number: int) -> None:
        """Refuse the user ID tokens with this serial number."""
        await self._bounded(self.state.revoke_user_id_token(serial_number), "revoke_user_id_token")

    # -- issuance (pure: the builder calls these) -------------------------------------------

    def create_master_token(
        self,
        ctx: MslContext,
        identity: str,
        encryption_key: bytes,
        hmac_key: bytes,
        issuer_data: dict[str, Any] | None = None,
        *,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> MasterToken:
        """A new master token (fresh serial, sequence 0) for ``identity``, written in
        ``encoder_format``."""
        now = ctx.clock()
        return MasterToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.mt_renewal_ms,
            expiration_ms=now + self.mt_expiration_ms,
            sequence_number=0,
            serial_number=random_long(ctx.random),
            identity=identity,
            encryption_key=encryption_key,
            signature_key=hmac_key,
            issuer_data=issuer_data,
            clock=ctx.clock,
            encoder_format=self.issuing_in(encoder_format),
        )

    def renew_master_token(
        self,
        ctx: MslContext,
        master_token: MasterToken,
        encryption_key: bytes,
        hmac_key: bytes,
        issuer_data: dict[str, Any] | None = None,
        *,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> MasterToken:
        """The renewal of ``master_token``: same serial, next sequence number, new keys,
        written in ``encoder_format`` (as for :meth:`create_master_token`; the format of
        the token renewed does not matter). Whether it may be renewed is decided when it
        is recorded (:meth:`record_issued`)."""
        if not master_token.decrypted or master_token.identity is None:
            raise MslMasterTokenException(MslError.MASTERTOKEN_UNTRUSTED).set_master_token(master_token)
        merged = dict(master_token.issuer_data or {})
        merged.update(issuer_data or {})
        now = ctx.clock()
        return MasterToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.mt_renewal_ms,
            expiration_ms=now + self.mt_expiration_ms,
            sequence_number=next_id(master_token.sequence_number),
            serial_number=master_token.serial_number,
            identity=master_token.identity,
            encryption_key=encryption_key,
            signature_key=hmac_key,
            issuer_data=merged or None,
            clock=ctx.clock,
            encoder_format=self.issuing_in(encoder_format),
        )

    def create_user_id_token(
        self,
        ctx: MslContext,
        user: MslUser,
        master_token: MasterToken,
        *,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> UserIdToken:
        """A new user ID token for ``user`` bound to ``master_token``, written in
        ``encoder_format`` (as for :meth:`create_master_token`)."""
        return self._issue_user_id_token(
            ctx, user, master_token, random_long(ctx.random), None, self.issuing_in(encoder_format)
        )

    def renew_user_id_token(
        self,
        ctx: MslContext,
        user_id_token: UserIdToken,
        master_token: MasterToken,
        *,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> UserIdToken:
        """Renewal keeps the serial number and the user, rebinds to ``master_token``;
        written in ``encoder_format`` (as for :meth:`create_master_token`)."""
        if user_id_token.user is None:
            raise MslMasterTokenException(MslError.USERIDTOKEN_NOT_DECRYPTED)
        return self._issue_user_id_token(
            ctx,
            user_id_token.user,
            master_token,
            user_id_token.serial_number,
            user_id_token.issuer_data,
            self.issuing_in(encoder_format),
        )

    def issuing_in(self, requested: EncoderFormat) -> EncoderFormat:
        """The format a token is issued in: ``requested``, unless this factory issues
        JSON only (``binary_tokens=False``)."""
        return requested if self.binary_tokens else EncoderFormat.JSON

    def _issue_user_id_token(
        self,
        ctx: MslContext,
        user: MslUser,
        master_token: MasterToken,
        serial_number: int,
        issuer_data: dict[str, Any] | None,
        encoder_format: EncoderFormat,
    ) -> UserIdToken:
        now = ctx.clock()
        return UserIdToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.uit_renewal_ms,
            expiration_ms=now + self.uit_expiration_ms,
            master_token=master_token,
            serial_number=serial_number,
            user=user,
            issuer_data=issuer_data,
            clock=ctx.clock,
            encoder_format=encoder_format,
        )

    def create_user(self, ctx: MslContext, user_data: str) -> MslUser:
        """The user a user ID token's user data names."""
        return MslUser(user_data)


def _revocation(state: MasterTokenState, master_token: MasterToken) -> MslError | None:
    if state.identity_revoked or state.serial_revoked:
        return MslError.MASTERTOKEN_IDENTITY_REVOKED
    if state.newest_serial is not None and state.newest_serial != master_token.serial_number:
        return MslError.MASTERTOKEN_IDENTITY_REVOKED
    return None
