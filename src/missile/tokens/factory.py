"""The token factory: the issuer's policy for creating, renewing and checking tokens
(control.md §2.2, §7).

:class:`TokenFactory` is the protocol the engine and the key exchange schemes call.
:class:`InMemoryTokenFactory` is a complete implementation keeping its state in memory:
master-token sequence numbers per serial number, non-replayable ID windows, revocation
of identities, master tokens and user ID tokens. Persistent implementations (SQLite,
Redis) live in :mod:`missile.stores`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from missile.crypto.random import random_long
from missile.encoding import MAX_LONG_VALUE, next_id
from missile.errors import MslError, MslMasterTokenException
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["InMemoryTokenFactory", "TokenFactory", "check_non_replayable_id", "NON_REPLAYABLE_WINDOW"]

#: Largest forward jump of a non-replayable ID that is still accepted (control.md §7).
NON_REPLAYABLE_WINDOW = 65536
#: IDs this close behind the largest accepted one are "replayed but recoverable":
#: half the 12-message budget of one application request (control.md §7).
NON_REPLAYABLE_CATCHUP = 6

DAY_MS = 24 * 3600 * 1000


class TokenFactory(Protocol):
    """Issuer policy: every check returns None to accept or the MslError to refuse."""

    def is_master_token_revoked(self, ctx: MslContext, master_token: MasterToken) -> MslError | None: ...

    def accept_non_replayable_id(
        self, ctx: MslContext, master_token: MasterToken, non_replayable_id: int
    ) -> MslError | None: ...

    def create_master_token(
        self,
        ctx: MslContext,
        identity: str,
        encryption_key: bytes,
        hmac_key: bytes,
        issuer_data: dict[str, Any] | None = None,
    ) -> MasterToken: ...

    def is_master_token_renewable(self, ctx: MslContext, master_token: MasterToken) -> MslError | None: ...

    def renew_master_token(
        self,
        ctx: MslContext,
        master_token: MasterToken,
        encryption_key: bytes,
        hmac_key: bytes,
        issuer_data: dict[str, Any] | None = None,
    ) -> MasterToken: ...

    def is_user_id_token_revoked(
        self, ctx: MslContext, master_token: MasterToken, user_id_token: UserIdToken
    ) -> MslError | None: ...

    def create_user_id_token(self, ctx: MslContext, user: MslUser, master_token: MasterToken) -> UserIdToken: ...

    def renew_user_id_token(
        self, ctx: MslContext, user_id_token: UserIdToken, master_token: MasterToken
    ) -> UserIdToken: ...

    def create_user(self, ctx: MslContext, user_data: str) -> MslUser: ...


def check_non_replayable_id(largest: int, candidate: int) -> MslError | None:
    """The reference acceptance rule for a non-replayable ID (control.md §7).

    ``largest`` is the largest ID accepted so far for the master token (0 initially).
    Returns None to accept (the caller then records ``candidate`` as the new largest).
    """
    if largest - NON_REPLAYABLE_CATCHUP < candidate <= largest:
        return MslError.MESSAGE_REPLAYED
    if candidate - NON_REPLAYABLE_WINDOW > largest:
        return MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    if candidate < largest and candidate >= largest - MAX_LONG_VALUE + NON_REPLAYABLE_WINDOW:
        return MslError.MESSAGE_REPLAYED_UNRECOVERABLE
    return None


class InMemoryTokenFactory:
    """A token factory keeping its state in process memory.

    Lifetimes default to a renewal window of one day and an expiration of seven days.
    Renewal keeps the serial number and increments the sequence number (wrapping);
    only the newest sequence number of a serial number is accepted afterwards.
    """

    def __init__(
        self,
        *,
        master_token_renewal_ms: int = DAY_MS,
        master_token_expiration_ms: int = 7 * DAY_MS,
        user_id_token_renewal_ms: int = DAY_MS,
        user_id_token_expiration_ms: int = 7 * DAY_MS,
    ) -> None:
        self.mt_renewal_ms = master_token_renewal_ms
        self.mt_expiration_ms = master_token_expiration_ms
        self.uit_renewal_ms = user_id_token_renewal_ms
        self.uit_expiration_ms = user_id_token_expiration_ms
        self._lock = threading.Lock()
        # serial number -> newest sequence number issued
        self._sequence: dict[int, int] = {}
        # identity -> serial number of its newest master token: issuing a new master
        # token invalidates the entity's earlier ones (control.md §2.2).
        self._newest_serial: dict[str, int] = {}
        # (identity, serial number) -> largest accepted non-replayable ID
        self._largest_nonreplayable: dict[tuple[str, int], int] = {}
        self.revoked_identities: set[str] = set()
        self.revoked_serials: set[int] = set()
        self.revoked_users: set[str] = set()
        self.revoked_user_id_tokens: set[int] = set()

    # -- revocation -------------------------------------------------------------------

    def revoke_identity(self, identity: str) -> None:
        """Refuse every master token of ``identity`` (MASTERTOKEN_IDENTITY_REVOKED)."""
        with self._lock:
            self.revoked_identities.add(identity)

    def revoke_master_token(self, serial_number: int) -> None:
        """Refuse the master tokens with this serial number."""
        with self._lock:
            self.revoked_serials.add(serial_number)

    def revoke_user(self, user: str) -> None:
        """Refuse user ID tokens of this user (USERIDTOKEN_REVOKED)."""
        with self._lock:
            self.revoked_users.add(user)

    def forget_master_token(self, serial_number: int) -> None:
        """Forget the sequence state of a serial number (its tokens become out of sync)."""
        with self._lock:
            self._sequence.pop(serial_number, None)

    # -- checks -----------------------------------------------------------------------

    def is_master_token_revoked(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        with self._lock:
            if master_token.identity in self.revoked_identities:
                return MslError.MASTERTOKEN_IDENTITY_REVOKED
            if master_token.serial_number in self.revoked_serials:
                return MslError.MASTERTOKEN_IDENTITY_REVOKED
            current = self._newest_serial.get(master_token.identity or "")
            if current is not None and current != master_token.serial_number:
                return MslError.MASTERTOKEN_IDENTITY_REVOKED
            newest = self._sequence.get(master_token.serial_number)
        if newest is None:
            # A token this factory does not know (e.g. issued before a restart of an
            # in-memory factory) is accepted on the strength of its signature.
            return None
        if newest != master_token.sequence_number:
            return MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
        return None

    def accept_non_replayable_id(
        self, ctx: MslContext, master_token: MasterToken, non_replayable_id: int
    ) -> MslError | None:
        key = (master_token.identity or "", master_token.serial_number)
        with self._lock:
            largest = self._largest_nonreplayable.get(key, 0)
            error = check_non_replayable_id(largest, non_replayable_id)
            if error is None:
                self._largest_nonreplayable[key] = non_replayable_id
            return error

    def is_master_token_renewable(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        return self.is_master_token_revoked(ctx, master_token)

    def is_user_id_token_revoked(
        self, ctx: MslContext, master_token: MasterToken, user_id_token: UserIdToken
    ) -> MslError | None:
        with self._lock:
            if user_id_token.user is not None and user_id_token.user.encode() in self.revoked_users:
                return MslError.USERIDTOKEN_REVOKED
            if user_id_token.serial_number in self.revoked_user_id_tokens:
                return MslError.USERIDTOKEN_REVOKED
        return None

    # -- issuance ---------------------------------------------------------------------

    def create_master_token(
        self,
        ctx: MslContext,
        identity: str,
        encryption_key: bytes,
        hmac_key: bytes,
        issuer_data: dict[str, Any] | None = None,
    ) -> MasterToken:
        now = ctx.clock()
        serial = random_long(ctx.random)
        token = MasterToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.mt_renewal_ms,
            expiration_ms=now + self.mt_expiration_ms,
            sequence_number=0,
            serial_number=serial,
            identity=identity,
            encryption_key=encryption_key,
            signature_key=hmac_key,
            issuer_data=issuer_data,
            clock=ctx.clock,
        )
        with self._lock:
            previous = self._newest_serial.get(identity)
            if previous is not None:
                self._sequence.pop(previous, None)
            self._sequence[serial] = 0
            self._newest_serial[identity] = serial
        return token

    def renew_master_token(
        self,
        ctx: MslContext,
        master_token: MasterToken,
        encryption_key: bytes,
        hmac_key: bytes,
        issuer_data: dict[str, Any] | None = None,
    ) -> MasterToken:
        if not master_token.decrypted or master_token.identity is None:
            raise MslMasterTokenException(MslError.MASTERTOKEN_UNTRUSTED).set_master_token(master_token)
        error = self.is_master_token_renewable(ctx, master_token)
        if error is not None:
            raise MslMasterTokenException(error).set_master_token(master_token)
        merged = dict(master_token.issuer_data or {})
        merged.update(issuer_data or {})
        now = ctx.clock()
        with self._lock:
            sequence = next_id(master_token.sequence_number)
            self._sequence[master_token.serial_number] = sequence
        return MasterToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.mt_renewal_ms,
            expiration_ms=now + self.mt_expiration_ms,
            sequence_number=sequence,
            serial_number=master_token.serial_number,
            identity=master_token.identity,
            encryption_key=encryption_key,
            signature_key=hmac_key,
            issuer_data=merged or None,
            clock=ctx.clock,
        )

    def create_user_id_token(self, ctx: MslContext, user: MslUser, master_token: MasterToken) -> UserIdToken:
        now = ctx.clock()
        return UserIdToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.uit_renewal_ms,
            expiration_ms=now + self.uit_expiration_ms,
            master_token=master_token,
            serial_number=random_long(ctx.random),
            user=user,
            clock=ctx.clock,
        )

    def renew_user_id_token(
        self, ctx: MslContext, user_id_token: UserIdToken, master_token: MasterToken
    ) -> UserIdToken:
        if user_id_token.user is None:
            raise MslMasterTokenException(MslError.USERIDTOKEN_NOT_DECRYPTED)
        now = ctx.clock()
        return UserIdToken.create(
            ctx.msl_crypto,
            renewal_window_ms=now + self.uit_renewal_ms,
            expiration_ms=now + self.uit_expiration_ms,
            master_token=master_token,
            serial_number=user_id_token.serial_number,
            user=user_id_token.user,
            issuer_data=user_id_token.issuer_data,
            clock=ctx.clock,
        )

    def create_user(self, ctx: MslContext, user_data: str) -> MslUser:
        return MslUser(user_data)
