"""The issuer's token state: an asynchronous interface and its in-memory form
(control.md §2.2, §7).

What an issuer must remember between messages (the newest master-token serial per
identity, the newest sequence number per serial, the largest accepted non-replayable ID
per master token, and revocations) lives behind :class:`TokenState`: a handful of
primitives, each atomic on its own. The policy that uses them lives once in
:class:`~missile.tokens.factory.TokenFactory`; the engine awaits it with a time bound.

The interface is asynchronous because real state lives in another process (Redis) or
on disk (SQLite): a slow or hung store must delay only the requests that need it, never
the event loop. Persistent and shared implementations are in :mod:`missile.stores`.

:class:`MemoryTokenState` keeps the state in this process. It is lost on restart (a
non-replayable message can then be replayed once more) and cannot be shared by several
processes, so it is meant for tests and single-process tools. It refuses to be used from
a process forked after it was created: each worker would otherwise keep its own replay
windows and accept the same message once per worker.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from missile.encoding import MAX_LONG_VALUE
from missile.errors import MslError, MslException

__all__ = [
    "MasterTokenState",
    "MemoryTokenState",
    "NON_REPLAYABLE_CATCHUP",
    "NON_REPLAYABLE_WINDOW",
    "TokenState",
    "check_non_replayable_id",
]

#: Largest forward jump of a non-replayable ID that is still accepted (control.md §7).
NON_REPLAYABLE_WINDOW = 65536
#: IDs this close behind the largest accepted one are "replayed but recoverable":
#: half the 12-message budget of one application request (control.md §7).
NON_REPLAYABLE_CATCHUP = 6


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


def _current(state: MasterTokenState, serial_number: int) -> bool:
    return state.newest_serial is None or state.newest_serial == serial_number


class TokenState(ABC):
    """The issuer's state, as asynchronous primitives that are each atomic.

    Implementations raise :class:`~missile.errors.MslException` with
    ``INTERNAL_EXCEPTION`` (response code TRANSIENT_FAILURE) when the state cannot be
    reached: a message that could not be checked is refused, never accepted.
    """

    shared: bool = False
    """True when several processes (or hosts) may use this state at once."""
    durable: bool = False
    """True when the state survives a restart of this process."""
    may_block: bool = True
    """False when every call completes without waiting (no time bound is needed)."""

    @abstractmethod
    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        """The revocation and sequence state of a master token."""

    @abstractmethod
    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        """Atomically: ``L`` = largest accepted ID of (identity, serial) or 0; apply
        :func:`check_non_replayable_id`; on acceptance store ``candidate`` (control.md §7)."""

    async def check_master_token(
        self, identity: str, serial_number: int, non_replayable_id: int | None = None
    ) -> tuple[MasterTokenState, MslError | None]:
        """What a message under a master token needs, in one trip: the token's state and,
        when ``non_replayable_id`` is given, the verdict on it (None: accepted and
        recorded, or no ID), atomically with the read.

        An ID under a serial that is not the identity's newest is neither checked nor
        recorded: that token is refused as superseded whatever its ID. Backends override
        this to make one round trip; this default makes two, each atomic.
        """
        state = await self.master_token_state(identity, serial_number)
        if non_replayable_id is None or not _current(state, serial_number):
            return state, None
        return state, await self.accept_non_replayable_id(identity, serial_number, non_replayable_id)

    @abstractmethod
    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        """Atomically make ``serial_number`` the identity's newest serial at sequence 0,
        forgetting the sequence and replay state of its previous newest serial."""

    @abstractmethod
    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        """Atomically set the serial's sequence to ``new_sequence`` if it is unknown or
        still ``old_sequence``; False when another renewal won."""

    @abstractmethod
    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        """True when the user or the user ID token serial number is revoked."""

    @abstractmethod
    async def revoke_identity(self, identity: str) -> None:
        """Refuse every master token of ``identity`` (MASTERTOKEN_IDENTITY_REVOKED)."""

    @abstractmethod
    async def revoke_master_token(self, serial_number: int) -> None:
        """Refuse the master tokens with this serial number."""

    @abstractmethod
    async def revoke_user(self, user: str) -> None:
        """Refuse user ID tokens of this user (USERIDTOKEN_REVOKED)."""

    @abstractmethod
    async def revoke_user_id_token(self, serial_number: int) -> None:
        """Refuse the user ID tokens with this serial number (USERIDTOKEN_REVOKED)."""

    @abstractmethod
    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        """Forget the sequence state of a serial number (its tokens become unknown)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and files held by this state."""

    def describe(self) -> str:
        """A one-line description for start-up logs (never a secret)."""
        return type(self).__name__


class MemoryTokenState(TokenState):
    """Token state in this process's memory: for tests and single-process tools.

    Lost on restart and never shared: see the module documentation. Using it from a
    process forked after its creation raises ``INTERNAL_EXCEPTION``.
    """

    shared = False
    durable = False
    may_block = False

    def __init__(self) -> None:
        self._pid = os.getpid()
        # Threads of one process may share it (the blocking facade runs a loop per thread).
        self._lock = threading.Lock()
        # serial number -> newest sequence number issued
        self._sequence: dict[int, int] = {}
        # identity -> serial number of its newest master token: issuing a new master
        # token invalidates the entity's earlier ones (control.md §2.2).
        self._newest_serial: dict[str, int] = {}
        # (identity, serial number) -> largest accepted non-replayable ID
        self._largest: dict[tuple[str, int], int] = {}
        self.revoked_identities: set[str] = set()
        self.revoked_serials: set[int] = set()
        self.revoked_users: set[str] = set()
        self.revoked_user_id_tokens: set[int] = set()

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise MslException(
                MslError.INTERNAL_EXCEPTION,
                "in-memory token state used by a forked process; several processes need shared state (SQLite or Redis)",
            )

    async def master_token_state(self, identity: str, serial_number: int) -> MasterTokenState:
        self._check_process()
        with self._lock:
            return self._state(identity, serial_number)

    async def accept_non_replayable_id(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        self._check_process()
        with self._lock:
            return self._accept(identity, serial_number, candidate)

    async def check_master_token(
        self, identity: str, serial_number: int, non_replayable_id: int | None = None
    ) -> tuple[MasterTokenState, MslError | None]:
        self._check_process()
        with self._lock:
            state = self._state(identity, serial_number)
            if non_replayable_id is None or not _current(state, serial_number):
                return state, None
            return state, self._accept(identity, serial_number, non_replayable_id)

    def _state(self, identity: str, serial_number: int) -> MasterTokenState:
        return MasterTokenState(
            identity_revoked=identity in self.revoked_identities,
            serial_revoked=serial_number in self.revoked_serials,
            newest_serial=self._newest_serial.get(identity),
            sequence=self._sequence.get(serial_number),
        )

    def _accept(self, identity: str, serial_number: int, candidate: int) -> MslError | None:
        key = (identity, serial_number)
        error = check_non_replayable_id(self._largest.get(key, 0), candidate)
        if error is None:
            self._largest[key] = candidate
        return error

    async def record_new_master_token(self, identity: str, serial_number: int) -> None:
        self._check_process()
        with self._lock:
            previous = self._newest_serial.get(identity)
            if previous is not None:
                self._sequence.pop(previous, None)
                self._largest.pop((identity, previous), None)
            self._sequence[serial_number] = 0
            self._newest_serial[identity] = serial_number

    async def record_renewal(self, identity: str, serial_number: int, old_sequence: int, new_sequence: int) -> bool:
        self._check_process()
        with self._lock:
            current = self._sequence.get(serial_number)
            if current is not None and current != old_sequence:
                return False
            self._sequence[serial_number] = new_sequence
            return True

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        self._check_process()
        with self._lock:
            return (user is not None and user in self.revoked_users) or serial_number in self.revoked_user_id_tokens

    async def revoke_identity(self, identity: str) -> None:
        self._check_process()
        with self._lock:
            self.revoked_identities.add(identity)

    async def revoke_master_token(self, serial_number: int) -> None:
        self._check_process()
        with self._lock:
            self.revoked_serials.add(serial_number)

    async def revoke_user(self, user: str) -> None:
        self._check_process()
        with self._lock:
            self.revoked_users.add(user)

    async def revoke_user_id_token(self, serial_number: int) -> None:
        self._check_process()
        with self._lock:
            self.revoked_user_id_tokens.add(serial_number)

    async def forget_master_token(self, identity: str, serial_number: int) -> None:
        self._check_process()
        with self._lock:
            self._sequence.pop(serial_number, None)

    def describe(self) -> str:
        return "memory (this process only; lost on restart)"
