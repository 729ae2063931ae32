"""What a requester sends: its choice of tokens, renewal and handshake, as pure functions
(control.md §3, §5, §11, messages.md §9, errors.md §2).

The choice depends on many facts at once: which master token and user ID token are held
and whether each is renewable or expired at the remote time, what the message must be
(encrypted, integrity protected, non-replayable), whether a user is named, whether key
request data can be produced, whether the payload is empty, and what the last error
response asked for. Mixed into an engine that also reads stores, waits for the renewal
lock and writes to sockets, such rules are hard to review and hard to test one by one.
So they live here as functions of plain values returning frozen values, in the manner of
a transition table: nothing in this module reads a store, a clock or a channel, calls the
application, or waits. The engines (:mod:`missile.engine.client`,
:mod:`missile.engine.peer`) gather the facts, ask, and carry the answer out;
``tests/engine/test_choice.py`` checks the rules row by row.

A client chooses in steps because the renewal lock sits between them (control.md §3.2):

1. :func:`choose_tokens`: the newest master token (or entity authentication data) and the
   user ID token to go with it;
2. :func:`renewal`: whether the message must be renewable (wait for the lock), would like
   to be (take the lock when it is free), or need not;
3. after waiting for the lock, :func:`after_wait` and steps 1 and 2 again: the holder may
   have obtained a new master token meanwhile;
4. :func:`decide`: the :class:`Decision` for the message;
5. for an error response, :func:`resend` (with the :data:`RECOVERY` table): the
   :class:`Attempt` that answers it, or None to report the error to the application.

Tokens are opaque here (a :class:`Held` carries the token with its state), so the engine's
:class:`~missile.tokens.master.MasterToken` or a test's label both fit.

The values built for every message (:class:`Held`, :class:`Needs`, :class:`State`,
:class:`Decision`) are frozen dataclasses whose ``__init__`` is written out: the generated
one sets each field through ``object.__setattr__`` (the frozen path), and a message builds
four of them; filling the instance dictionary in one step takes half the time. Their
parameters and defaults are the fields' (``tests/engine/test_choice_init.py`` compares
them), so constructing, ``replace()``, equality, hashing and ``repr`` are a generated
dataclass's.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, TypeVar

from missile.encoding import next_id
from missile.engine.options import MessageOptions
from missile.errors import MslError, MslMessageException, ResponseCode
from missile.tokens.master import MasterToken
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import UserAuthData

__all__ = [
    "RECOVERY",
    "REPORT",
    "FIRST_ATTEMPT",
    "Attempt",
    "Decision",
    "Failure",
    "Held",
    "Needs",
    "Protection",
    "Recovery",
    "Renewal",
    "State",
    "after_wait",
    "asks_user_auth",
    "choose_tokens",
    "decide",
    "handshake_for_empty",
    "held",
    "keys_due",
    "needs_handshake",
    "protection",
    "recovery_action",
    "renewal",
    "resend",
]

T = TypeVar("T")
M = TypeVar("M")
"""A master token: the engine's :class:`~missile.tokens.master.MasterToken`, or any label."""
U = TypeVar("U")
"""A user ID token: the engine's :class:`~missile.tokens.user_id.UserIdToken`, or any label."""
Token = TypeVar("Token", MasterToken, UserIdToken)


@dataclass(frozen=True, init=False)
class Held(Generic[T]):
    """A token the requester holds, with its state at the remote time (tokens.md §1.5)."""

    token: T
    renewable: bool = False
    """Its renewal window has opened."""
    expired: bool = False
    """It has expired."""

    def __init__(self, token: T, renewable: bool = False, expired: bool = False) -> None:
        self.__dict__.update({"token": token, "renewable": renewable, "expired": expired})


def held(token: Token | None, now: int | None) -> Held[Token] | None:
    """``token`` with its state at the remote time ``now`` (None when no remote time is
    known yet: the token's own rule applies, tokens.md §1.5)."""
    if token is None:
        return None
    return Held(token, renewable=token.is_renewable(now), expired=token.is_expired(now))


@dataclass(frozen=True, init=False)
class Needs:
    """What one application message must be (from its :class:`MessageOptions`)."""

    encrypted: bool = True
    integrity_protected: bool = True
    non_replayable: bool = False
    requesting_tokens: bool = False
    """The application asks for tokens (a master token, and a user ID token for a user)."""
    user: bool = False
    """A user is named (``MessageOptions.user_id``)."""
    empty: bool = False
    """The payload is empty."""

    def __init__(
        self,
        encrypted: bool = True,
        integrity_protected: bool = True,
        non_replayable: bool = False,
        requesting_tokens: bool = False,
        user: bool = False,
        empty: bool = False,
    ) -> None:
        self.__dict__.update(
            {
                "encrypted": encrypted,
                "integrity_protected": integrity_protected,
                "non_replayable": non_replayable,
                "requesting_tokens": requesting_tokens,
                "user": user,
                "empty": empty,
            }
        )

    @classmethod
    def of(cls, options: MessageOptions, *, empty: bool) -> Needs:
        """The needs of a message sent with ``options``."""
        return cls(
            encrypted=options.encrypted,
            integrity_protected=options.integrity_protected,
            non_replayable=options.non_replayable,
            requesting_tokens=options.requesting_tokens,
            user=options.user_id is not None,
            empty=empty,
        )


@dataclass(frozen=True)
class Protection:
    """What a header's crypto context gives the payload."""

    encrypts: bool
    protects_integrity: bool

    @property
    def full(self) -> bool:
        """Both: the only protection user credentials may travel under (control.md §3.3)."""
        return self.encrypts and self.protects_integrity


#: A master token's session keys encrypt and protect integrity.
FULL = Protection(encrypts=True, protects_integrity=True)


@dataclass(frozen=True)
class Attempt:
    """What one message of an application request must do because of an earlier answer
    (errors.md §2): the first message of a request is ``Attempt()``."""

    message_id: int | None = None
    """The message ID to send (None: a new random one)."""
    force_entity_auth: bool = False
    """Authenticate with entity authentication data even when a master token is held."""
    force_renewable: bool = False
    """Ask for keys even when the master token is not yet renewable."""
    entity_reauth: ResponseCode | None = None
    """The entity re-authentication code to ask the context's entity data for."""
    user_auth: UserAuthData | None = field(default=None, repr=False)
    """Fresh user authentication data after a user re-authentication code (secret: no repr)."""


#: The first message of every application request (a frozen value, shared).
FIRST_ATTEMPT = Attempt()


@dataclass(frozen=True, init=False)
class State(Generic[M, U]):
    """What the requester holds for one message."""

    master_token: Held[M] | None
    """The master token to use (None: entity authentication data)."""
    user_id_token: Held[U] | None
    """The user ID token to send, bound to that master token."""
    entity: Protection | None
    """What the entity authentication data protects (None: there is none). Looked at
    only without a master token."""
    key_exchange: bool
    """Key request data can be produced (a key request factory is configured)."""

    def __init__(
        self, master_token: Held[M] | None, user_id_token: Held[U] | None, entity: Protection | None, key_exchange: bool
    ) -> None:
        self.__dict__.update(
            {
                "master_token": master_token,
                "user_id_token": user_id_token,
                "entity": entity,
                "key_exchange": key_exchange,
            }
        )


class Renewal(enum.Enum):
    """How much a message needs to be renewable, i.e. to hold the renewal lock."""

    NONE = "none"
    """It goes as it is."""
    WANTED = "wanted"
    """It would renew or obtain a token: take the lock if nobody holds it."""
    MANDATORY = "mandatory"
    """It cannot go without keys: wait for the lock (control.md §3.2)."""


@dataclass(frozen=True, init=False)
class Decision(Generic[M, U]):
    """How to send one message."""

    master_token: M | None
    """The master token (None: entity authentication data)."""
    user_id_token: U | None
    """The user ID token to send."""
    user_auth: bool
    """Send the user's authentication data."""
    renewable: bool
    """Mark the message renewable."""
    key_exchange: bool
    """Send key request data."""
    handshake: bool
    """Send a handshake (no application data) first; the data follows under its keys."""

    def __init__(
        self,
        master_token: M | None,
        user_id_token: U | None,
        user_auth: bool,
        renewable: bool,
        key_exchange: bool,
        handshake: bool,
    ) -> None:
        self.__dict__.update(
            {
                "master_token": master_token,
                "user_id_token": user_id_token,
                "user_auth": user_auth,
                "renewable": renewable,
                "key_exchange": key_exchange,
                "handshake": handshake,
            }
        )

    @property
    def entity_auth(self) -> bool:
        """The message authenticates with entity authentication data."""
        return self.master_token is None


def choose_tokens(
    newest: Held[M] | None, user_token: Held[U] | None, needs: Needs, attempt: Attempt
) -> tuple[Held[M] | None, Held[U] | None]:
    """The master token and user ID token for a message.

    ``newest`` is the newest master token held, ``user_token`` the named user's token
    when it is bound to it. Entity re-authentication and key exchange resends go without
    a master token; a resend after a user re-authentication code carries fresh user
    authentication data and no user ID token, even when one is held (SSOTOKEN_REJECTED).
    """
    master_token = None if attempt.force_entity_auth else newest
    if master_token is None or not needs.user or attempt.user_auth is not None:
        return master_token, None
    return master_token, user_token


def protection(state: State[M, U]) -> Protection:
    """What the message's header protects; MESSAGE_ENTITY_NOT_FOUND when it has neither a
    master token nor entity authentication data."""
    if state.master_token is not None:
        return FULL
    if state.entity is None:
        raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND, "no entity authentication data")
    return state.entity


def keys_due(master_token: Held[M] | None, *, non_replayable: bool = False, force_renewable: bool = False) -> bool:
    """A renewable message asks for keys: without a master token, with a renewable or
    expired one, for a non-replayable message, or when the last error asked for keys."""
    return master_token is None or master_token.renewable or master_token.expired or non_replayable or force_renewable


def asks_user_auth(state: State[M, U], needs: Needs) -> bool:
    """The message would carry user authentication data: a user is named and no user ID
    token goes with it (the engine then asks the application for the data)."""
    return needs.user and state.user_id_token is None


def needs_handshake(protection: Protection, needs: Needs, *, master_token: bool, user_auth: bool) -> bool:
    """The application data cannot go yet, as the message would be protected: it needs
    keys first (a handshake). User credentials never travel without full protection
    (control.md §3.3 step 1); a non-replayable message needs a master token."""
    return (
        (user_auth and not protection.full)
        or (needs.encrypted and not protection.encrypts)
        or (needs.integrity_protected and not protection.protects_integrity)
        or (needs.non_replayable and not master_token)
    )


def renewal(state: State[M, U], needs: Needs, attempt: Attempt) -> Renewal:
    """Whether the message must, or would like to, be renewable (control.md §3.2)."""
    master, user = state.master_token, state.user_id_token
    guarded = protection(state)
    mandatory = (
        (needs.encrypted and not guarded.encrypts)
        or (needs.integrity_protected and not guarded.protects_integrity)
        or attempt.force_renewable
        or (needs.non_replayable and master is None)
        or (master is not None and master.expired)
        or (needs.user and user is None and not guarded.full)
        or (needs.requesting_tokens and (master is None or (needs.user and user is None)))
    )
    if mandatory:
        return Renewal.MANDATORY
    wanted = (
        master is None or master.renewable or (needs.user and user is None) or (user is not None and user.renewable)
    )
    return Renewal.WANTED if wanted else Renewal.NONE


def after_wait(attempt: Attempt, *, newer: bool) -> Attempt:
    """The attempt after waiting for the renewal lock. When the holder obtained a newer
    master token meanwhile (``newer``), use it, also for a resend that was going to
    re-authenticate or ask for keys."""
    if not newer:
        return attempt
    return Attempt(message_id=attempt.message_id, entity_reauth=attempt.entity_reauth, user_auth=attempt.user_auth)


def handshake_for_empty(master_token: Held[M] | None, *, force_renewable: bool = False) -> bool:
    """Whether a message with an empty payload that would ask for keys goes as a real
    handshake first (True) or waits for a later message to ask (False).

    A renewable message with key request data and one empty end-of-message chunk is how
    older stacks marked a handshake, and receivers (the reference, and
    :class:`~missile.engine.server.MslServer`, for interoperability) still read it so
    (messages.md §9): the application would never see it. So an empty payload never
    travels with key requests: when keys are needed (no master token, an expired one, or
    a forced exchange) a handshake goes first and the payload follows under the new
    master token; an optional renewal waits for a message that carries data.
    """
    return master_token is None or master_token.expired or force_renewable


def decide(state: State[M, U], needs: Needs, attempt: Attempt, *, renewable: bool, user_auth: bool) -> Decision[M, U]:
    """How to send the message. ``renewable``: the requester holds the renewal lock;
    ``user_auth``: user authentication data is at hand (see :func:`asks_user_auth`).

    Raises HANDSHAKE_DATA_MISSING when the data cannot go before keys are established and
    no key request data can be produced, MESSAGE_ENTITY_NOT_FOUND without any way to
    authenticate."""
    guarded = protection(state)
    master = state.master_token
    user_auth = user_auth and asks_user_auth(state, needs)
    handshake = needs_handshake(guarded, needs, master_token=master is not None, user_auth=user_auth)
    renewable = renewable or handshake
    key_exchange = (
        renewable
        and state.key_exchange
        and keys_due(master, non_replayable=needs.non_replayable, force_renewable=attempt.force_renewable)
    )
    if key_exchange and needs.empty and not handshake:
        handshake = key_exchange = handshake_for_empty(master, force_renewable=attempt.force_renewable)
    if handshake and not key_exchange:
        raise MslMessageException(MslError.HANDSHAKE_DATA_MISSING, "no key request data to establish keys")
    return Decision(
        master_token=master.token if master is not None else None,
        user_id_token=state.user_id_token.token if state.user_id_token is not None else None,
        # Delayed until the handshake gives keys that protect it fully.
        user_auth=user_auth and guarded.full,
        renewable=renewable,
        key_exchange=key_exchange,
        handshake=handshake,
    )


# -- recovery (errors.md §2) ------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """How a requester answers one error response code."""

    action: str
    """What it does, for observers."""
    forget_master_token: bool = False
    """Delete the master token the failed message used (even when it then gives up)."""
    forget_user_id_token: bool = False
    """Delete the user ID token the failed message carried (even when it then gives up)."""
    reauthenticate_entity: bool = False
    """Resend with entity authentication data for the code; give up without any."""
    reauthenticate_user: bool = False
    """Resend with fresh user authentication data; give up without any."""
    user_reauth: ResponseCode | None = None
    """The code to ask the application's user authentication provider with."""
    exchange_keys: bool = False
    """Resend with entity authentication data and key request data."""
    renew: bool = False
    """Resend renewable, unless another exchange already renewed the master token."""


#: The error response codes a requester recovers from, and how; any other is reported
#: to the application (errors.md §2).
RECOVERY: Mapping[ResponseCode, Recovery] = MappingProxyType(
    {
        ResponseCode.ENTITY_REAUTH: Recovery(
            "re-authenticate the entity", forget_master_token=True, reauthenticate_entity=True
        ),
        ResponseCode.ENTITYDATA_REAUTH: Recovery(
            "re-authenticate the entity with new data", forget_master_token=True, reauthenticate_entity=True
        ),
        ResponseCode.USER_REAUTH: Recovery(
            "re-authenticate the user", forget_user_id_token=True, reauthenticate_user=True
        ),
        ResponseCode.USERDATA_REAUTH: Recovery(
            "re-authenticate the user with new data",
            forget_user_id_token=True,
            reauthenticate_user=True,
            user_reauth=ResponseCode.USERDATA_REAUTH,
        ),
        # The user ID token may still be good: only the single-sign-on token was refused.
        ResponseCode.SSOTOKEN_REJECTED: Recovery(
            "re-authenticate the user", reauthenticate_user=True, user_reauth=ResponseCode.SSOTOKEN_REJECTED
        ),
        ResponseCode.KEYX_REQUIRED: Recovery("resend with key exchange", exchange_keys=True),
        ResponseCode.EXPIRED: Recovery("renew the master token", renew=True),
        ResponseCode.REPLAYED: Recovery("resend with a new non-replayable ID"),
    }
)

#: What a requester does with an error it does not recover from.
REPORT = "report the error to the application"


def recovery_action(code: ResponseCode) -> str:
    """What the requester does about error response ``code``, for observers."""
    rule = RECOVERY.get(code)
    return rule.action if rule is not None else REPORT


@dataclass(frozen=True)
class Failure:
    """The facts a resend depends on besides the error code (the engine gathers only
    those the code's :class:`Recovery` looks at)."""

    message_id: int
    """The error response's message ID (the resend's is the next)."""
    master_token: bool = False
    """The failed message used a master token."""
    newest: bool = False
    """The newest master token held is still the one the failed message used (none for none)."""
    entity_auth: bool = False
    """Entity authentication data exists for the code."""
    user_auth: UserAuthData | None = field(default=None, repr=False)
    """Fresh user authentication data from the application (secret: no repr)."""
    user: bool = False
    """A user is named."""
    key_exchange: bool = False
    """Key request data can be produced."""


def resend(code: ResponseCode, failure: Failure) -> Attempt | None:
    """The message that answers error response ``code``, or None to report the error."""
    rule = RECOVERY.get(code)
    if rule is None:
        return None
    message_id = next_id(failure.message_id)
    if rule.reauthenticate_entity:
        if not failure.entity_auth:
            return None
        return Attempt(message_id, force_entity_auth=True, entity_reauth=code)
    if rule.reauthenticate_user:
        if failure.user_auth is None or not failure.user:
            return None
        return Attempt(message_id, user_auth=failure.user_auth)
    if rule.exchange_keys:
        if not failure.master_token and not failure.key_exchange:
            return None
        return Attempt(message_id, force_entity_auth=True, force_renewable=True)
    if rule.renew:
        return Attempt(message_id, force_renewable=not failure.master_token or failure.newest)
    return Attempt(message_id)
