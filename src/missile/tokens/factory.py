"""The token factory: the issuer's policy for creating, renewing and checking tokens
(control.md §2.2, §7).

:class:`TokenFactory` is the protocol the engine and the key exchange schemes call.
:class:`BaseTokenFactory` holds the shared policy (lifetimes, creation, renewal, checks)
over a few atomic state primitives. :class:`InMemoryTokenFactory` keeps that state in memory:
master-token sequence numbers per serial number, non-replayable ID windows, revocation
of identities, master tokens and user ID tokens. Persistent implementations (SQLite,
Redis) live in :mod:`missile.stores`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from missile.crypto.random import random_long
from missile.encoding import MAX_LONG_VALUE, next_id
from missile.errors import MslError, MslMasterTokenException
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = [
    "BaseTokenFactory",
    "InMemoryTokenFactory",
    "MasterTokenState",
    "TokenFactory",
    "check_non_replayable_id",
    "NON_REPLAYABLE_WINDOW",
]

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


@dataclass(frozen=True)
class MasterTokenState:
    """What the issuer's state says about one master token (control.md §2.2)."""

    identity_revoked: bool
    """The token's identity was revoked."""
    serial_revoked: bool
    """The token's serial number was revoked."""
    newest_serial: int | None
    """Serial number of the newest master token issued to the identity, if known."""
    sequence: int | None
    """Newest sequence number issued for the serial number, if known."""


class BaseTokenFactory(ABC):
    """The issuer policy shared by every token factory (control.md §2.2, §7; tokens.md §1.3).

    Subclasses keep the state (sequence numbers, newest serial per identity, replay
    windows, revocations) behind a few primitives, each of which must be atomic;
    lifetimes, token creation and the acceptance rules live here once.

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

    # -- state primitives (each atomic) -------------------------------------------------

    @abstractmethod
    def _master_token_state(self, identity: str | None, serial_number: int) -> MasterTokenState:
        """Read the revocation and sequence state of a master token."""

    @abstractmethod
    def _accept_largest(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        """Atomically: ``L`` = largest accepted ID of (identity, serial) or 0; apply
        :func:`check_non_replayable_id`; on acceptance store ``candidate`` (control.md §7)."""

    @abstractmethod
    def _record_new_master_token(self, identity: str, serial_number: int) -> None:
        """Atomically make ``serial_number`` the identity's newest serial at sequence 0,
        forgetting the sequence state of the previous newest serial."""

    @abstractmethod
    def _record_renewal(self, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        """Atomically set the serial's sequence to ``new_sequence`` if it is unknown or
        still ``old_sequence``; False when another renewal won."""

    @abstractmethod
    def _user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        """True when the user or the user ID token serial number is revoked."""

    # -- revocation -----------------------------------------------------------------------

    @abstractmethod
    def revoke_identity(self, identity: str) -> None:
        """Refuse every master token of ``identity`` (MASTERTOKEN_IDENTITY_REVOKED)."""

    @abstractmethod
    def revoke_master_token(self, serial_number: int) -> None:
        """Refuse the master tokens with this serial number."""

    @abstractmethod
    def revoke_user(self, user: str) -> None:
        """Refuse user ID tokens of this user (USERIDTOKEN_REVOKED)."""

    @abstractmethod
    def revoke_user_id_token(self, serial_number: int) -> None:
        """Refuse the user ID tokens with this serial number (USERIDTOKEN_REVOKED)."""

    @abstractmethod
    def forget_master_token(self, serial_number: int) -> None:
        """Forget the sequence state of a serial number (its tokens become out of sync)."""

    # -- checks -----------------------------------------------------------------------

    def is_master_token_revoked(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        state = self._master_token_state(master_token.identity, master_token.serial_number)
        if state.identity_revoked or state.serial_revoked:
            return MslError.MASTERTOKEN_IDENTITY_REVOKED
        if state.newest_serial is not None and state.newest_serial != master_token.serial_number:
            return MslError.MASTERTOKEN_IDENTITY_REVOKED
        return None

    def accept_non_replayable_id(
        self, ctx: MslContext, master_token: MasterToken, non_replayable_id: int
    ) -> MslError | None:
        return self._accept_largest(master_token.identity or "", master_token.serial_number, non_replayable_id)

    def is_master_token_renewable(self, ctx: MslContext, master_token: MasterToken) -> MslError | None:
        # Only the newest sequence number of a serial may be renewed. Older ones stay
        # usable until they expire (as in the reference), so messages in flight during
        # a renewal still succeed instead of forcing entity re-authentication.
        error = self.is_master_token_revoked(ctx, master_token)
        if error is not None:
            return error
        state = self._master_token_state(master_token.identity, master_token.serial_number)
        if state.sequence is None:
            # A token this factory does not know (e.g. issued before a restart of an
            # in-memory factory) is trusted on the strength of its signature.
            return None
        if state.sequence != master_token.sequence_number:
            return MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC
        return None

    def is_user_id_token_revoked(
        self, ctx: MslContext, master_token: MasterToken, user_id_token: UserIdToken
    ) -> MslError | None:
        user = user_id_token.user.encode() if user_id_token.user is not None else None
        if self._user_id_token_revoked(user, user_id_token.serial_number):
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
        self._record_new_master_token(identity, serial)
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
        sequence = next_id(master_token.sequence_number)
        if not self._record_renewal(master_token.serial_number, master_token.sequence_number, sequence):
            # A concurrent renewal of the same token won (control.md §2.2).
            raise MslMasterTokenException(MslError.MASTERTOKEN_SEQUENCE_NUMBER_OUT_OF_SYNC).set_master_token(
                master_token
            )
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
        return self._issue_user_id_token(ctx, user, master_token, random_long(ctx.random), None)

    def renew_user_id_token(
        self, ctx: MslContext, user_id_token: UserIdToken, master_token: MasterToken
    ) -> UserIdToken:
        # Renewal keeps the serial number and the user, rebinds to ``master_token``.
        if user_id_token.user is None:
            raise MslMasterTokenException(MslError.USERIDTOKEN_NOT_DECRYPTED)
        return self._issue_user_id_token(
            ctx, user_id_token.user, master_token, user_id_token.serial_number, user_id_token.issuer_data
        )

    def _issue_user_id_token(
        self,
        ctx: MslContext,
        user: MslUser,
        master_token: MasterToken,
        serial_number: int,
        issuer_data: dict[str, Any] | None,
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
        )

    def create_user(self, ctx: MslContext, user_data: str) -> MslUser:
        return MslUser(user_data)


class InMemoryTokenFactory(BaseTokenFactory):
    """A token factory keeping its state in process memory (see :class:`BaseTokenFactory`)."""

    def __init__(
        self,
        *,
        master_token_renewal_ms: int = DAY_MS,
        master_token_expiration_ms: int = 7 * DAY_MS,
        user_id_token_renewal_ms: int = DAY_MS,
        user_id_token_expiration_ms: int = 7 * DAY_MS,
    ) -> None:
        super().__init__(
            master_token_renewal_ms=master_token_renewal_ms,
            master_token_expiration_ms=master_token_expiration_ms,
            user_id_token_renewal_ms=user_id_token_renewal_ms,
            user_id_token_expiration_ms=user_id_token_expiration_ms,
        )
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
        with self._lock:
            self.revoked_identities.add(identity)

    def revoke_master_token(self, serial_number: int) -> None:
        with self._lock:
            self.revoked_serials.add(serial_number)

    def revoke_user(self, user: str) -> None:
        with self._lock:
            self.revoked_users.add(user)

    def revoke_user_id_token(self, serial_number: int) -> None:
        with self._lock:
            self.revoked_user_id_tokens.add(serial_number)

    def forget_master_token(self, serial_number: int) -> None:
        with self._lock:
            self._sequence.pop(serial_number, None)

    # -- state primitives ---------------------------------------------------------------

    def _master_token_state(self, identity: str | None, serial_number: int) -> MasterTokenState:
        with self._lock:
            return MasterTokenState(
                identity_revoked=identity in self.revoked_identities,
                serial_revoked=serial_number in self.revoked_serials,
                newest_serial=self._newest_serial.get(identity or ""),
                sequence=self._sequence.get(serial_number),
            )

    def _accept_largest(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        key = (identity, serial_number)
        with self._lock:
            largest = self._largest_nonreplayable.get(key, 0)
            error = check_non_replayable_id(largest, candidate)
            if error is None:
                self._largest_nonreplayable[key] = candidate
            return error

    def _record_new_master_token(self, identity: str, serial_number: int) -> None:
        with self._lock:
            previous = self._newest_serial.get(identity)
            if previous is not None:
                self._sequence.pop(previous, None)
            self._sequence[serial_number] = 0
            self._newest_serial[identity] = serial_number

    def _record_renewal(self, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        with self._lock:
            current = self._sequence.get(serial_number)
            if current is not None and current != old_sequence:
                return False
            self._sequence[serial_number] = new_sequence
            return True

    def _user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        with self._lock:
            return (user is not None and user in self.revoked_users) or serial_number in self.revoked_user_id_tokens
