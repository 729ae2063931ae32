"""The requester's choice of tokens, renewal and handshake, rule by rule (missile.engine.choice).

Each table row is one situation and what the rules choose; the tokens are labels ("mt",
"uit"), so the rows read like the rules. The property tests check the invariants the
engine relies on over every combination: what is sent meets the message's needs, an
empty payload never travels with key requests, and a message that need not wait for the
renewal lock never needs a handshake (it could not send one without the lock).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missile.engine.choice import (
    RECOVERY,
    REPORT,
    Attempt,
    Decision,
    Failure,
    Held,
    Needs,
    Protection,
    Renewal,
    State,
    after_wait,
    choose_tokens,
    decide,
    handshake_for_empty,
    keys_due,
    needs_handshake,
    recovery_action,
    renewal,
    resend,
)
from missile.engine.options import MessageOptions
from missile.errors import MslError, MslMessageException, ResponseCode
from missile.userauth.email_password import EmailPasswordAuthData

MT = Held("mt")
MT_RENEWABLE = Held("mt", renewable=True)
MT_EXPIRED = Held("mt", renewable=True, expired=True)
UIT = Held("uit")
UIT_RENEWABLE = Held("uit", renewable=True)

FULL = Protection(encrypts=True, protects_integrity=True)  # e.g. PSK
NO_PROTECTION = Protection(encrypts=False, protects_integrity=False)  # NONE
SIGNED = Protection(encrypts=False, protects_integrity=True)  # e.g. RSA

USER_AUTH = EmailPasswordAuthData("user1@foo.com", "user1pwd")
PLAIN = Needs(encrypted=False, integrity_protected=False)


def state(
    master: Held[str] | None = MT,
    user: Held[str] | None = None,
    entity: Protection | None = FULL,
    key_exchange: bool = True,
) -> State[str, str]:
    return State(master, user, entity, key_exchange)


def sent(
    master: str | None = "mt",
    user: str | None = None,
    *,
    user_auth: bool = False,
    renewable: bool = False,
    key_exchange: bool = False,
    handshake: bool = False,
) -> Decision[str, str]:
    return Decision(master, user, user_auth, renewable, key_exchange, handshake)


# -- decide --------------------------------------------------------------------------------

# (name, state, needs, attempt, holds the lock, user auth data at hand) -> decision or error
DECISIONS: list[tuple[str, State[str, str], Needs, Attempt, bool, bool, Decision[str, str] | MslError]] = [
    ("fresh master token: sent as it is", state(), Needs(), Attempt(), False, False, sent()),
    ("fresh master token with the lock: renewable, no keys", state(), Needs(), Attempt(), True, False,
     sent(renewable=True)),
    ("renewable master token with the lock: asks for keys", state(MT_RENEWABLE), Needs(), Attempt(), True, False,
     sent(renewable=True, key_exchange=True)),
    ("renewable master token without the lock: as it is", state(MT_RENEWABLE), Needs(), Attempt(), False, False,
     sent()),
    ("renewable master token, empty payload: the renewal waits", state(MT_RENEWABLE), Needs(empty=True),
     Attempt(), True, False, sent(renewable=True)),
    ("expired master token: asks for keys", state(MT_EXPIRED), Needs(), Attempt(), True, False,
     sent(renewable=True, key_exchange=True)),
    ("expired master token, empty payload: handshake first", state(MT_EXPIRED), Needs(empty=True), Attempt(),
     True, False, sent(renewable=True, key_exchange=True, handshake=True)),
    ("no master token, PSK: entity auth with keys", state(None), Needs(), Attempt(), True, False,
     sent(None, renewable=True, key_exchange=True)),
    ("no master token, empty payload: handshake first", state(None), Needs(empty=True), Attempt(), True, False,
     sent(None, renewable=True, key_exchange=True, handshake=True)),
    ("no master token, no key exchange: entity auth only", state(None, key_exchange=False), Needs(), Attempt(),
     True, False, sent(None, renewable=True)),
    ("NONE entity auth, encryption needed: handshake", state(None, entity=NO_PROTECTION), Needs(), Attempt(),
     True, False, sent(None, renewable=True, key_exchange=True, handshake=True)),
    ("NONE entity auth, encryption needed, no key exchange", state(None, entity=NO_PROTECTION, key_exchange=False),
     Needs(), Attempt(), True, False, MslError.HANDSHAKE_DATA_MISSING),
    ("NONE entity auth, nothing needed: sent as it is", state(None, entity=NO_PROTECTION), PLAIN, Attempt(),
     False, False, sent(None)),
    ("RSA entity auth, integrity only needed: sent as it is", state(None, entity=SIGNED),
     Needs(encrypted=False), Attempt(), False, False, sent(None)),
    ("RSA entity auth, encryption needed: handshake", state(None, entity=SIGNED), Needs(), Attempt(), True,
     False, sent(None, renewable=True, key_exchange=True, handshake=True)),
    ("neither master token nor entity auth data", state(None, entity=None), Needs(), Attempt(), True, False,
     MslError.MESSAGE_ENTITY_NOT_FOUND),
    ("non-replayable without a master token: handshake", state(None), Needs(non_replayable=True), Attempt(),
     True, False, sent(None, renewable=True, key_exchange=True, handshake=True)),
    ("non-replayable with a fresh master token: asks for keys", state(), Needs(non_replayable=True), Attempt(),
     True, False, sent(renewable=True, key_exchange=True)),
    ("user without a token: user auth data under the master token", state(), Needs(user=True), Attempt(), True,
     True, sent(user_auth=True, renewable=True)),
    ("user without a token or user auth data", state(), Needs(user=True), Attempt(), True, False,
     sent(renewable=True)),
    ("user with RSA entity auth: credentials wait for a handshake", state(None, entity=SIGNED),
     Needs(encrypted=False, user=True), Attempt(), True, True,
     sent(None, renewable=True, key_exchange=True, handshake=True)),
    ("user with PSK entity auth: credentials go at once", state(None), Needs(user=True), Attempt(), True, True,
     sent(None, user_auth=True, renewable=True, key_exchange=True)),
    ("user's token held: no user auth data", state(user=UIT), Needs(user=True), Attempt(), False, True,
     sent(user="uit")),
    ("forced renewal: keys for a fresh master token", state(), Needs(), Attempt(force_renewable=True), True,
     False, sent(renewable=True, key_exchange=True)),
    ("forced renewal, empty payload: handshake first", state(), Needs(empty=True),
     Attempt(force_renewable=True), True, False, sent(renewable=True, key_exchange=True, handshake=True)),
    ("renewable master token, no key exchange: renewable only", state(MT_RENEWABLE, key_exchange=False),
     Needs(), Attempt(), True, False, sent(renewable=True)),
]


@pytest.mark.parametrize(
    ("state_", "needs", "attempt", "renewable", "user_auth", "expected"),
    [row[1:] for row in DECISIONS],
    ids=[row[0] for row in DECISIONS],
)
def test_decide(
    state_: State[str, str],
    needs: Needs,
    attempt: Attempt,
    renewable: bool,
    user_auth: bool,
    expected: Decision[str, str] | MslError,
) -> None:
    if isinstance(expected, MslError):
        with pytest.raises(MslMessageException) as info:
            decide(state_, needs, attempt, renewable=renewable, user_auth=user_auth)
        assert info.value.error is expected
    else:
        assert decide(state_, needs, attempt, renewable=renewable, user_auth=user_auth) == expected


# -- renewal -------------------------------------------------------------------------------

RENEWALS: list[tuple[str, State[str, str], Needs, Attempt, Renewal | MslError]] = [
    ("fresh master token", state(), Needs(), Attempt(), Renewal.NONE),
    ("renewable master token", state(MT_RENEWABLE), Needs(), Attempt(), Renewal.WANTED),
    ("expired master token", state(MT_EXPIRED), Needs(), Attempt(), Renewal.MANDATORY),
    ("no master token, PSK", state(None), Needs(), Attempt(), Renewal.WANTED),
    ("no master token, NONE, encryption needed", state(None, entity=NO_PROTECTION), Needs(), Attempt(),
     Renewal.MANDATORY),
    ("no master token, NONE, nothing needed", state(None, entity=NO_PROTECTION), PLAIN, Attempt(), Renewal.WANTED),
    ("no master token, RSA, integrity needed", state(None, entity=SIGNED), Needs(encrypted=False), Attempt(),
     Renewal.WANTED),
    ("user without a token", state(), Needs(user=True), Attempt(), Renewal.WANTED),
    ("user with a renewable token", state(user=UIT_RENEWABLE), Needs(user=True), Attempt(), Renewal.WANTED),
    ("user with a fresh token", state(user=UIT), Needs(user=True), Attempt(), Renewal.NONE),
    ("user without a token, RSA entity auth", state(None, entity=SIGNED), Needs(encrypted=False, user=True),
     Attempt(), Renewal.MANDATORY),
    ("forced renewal", state(), Needs(), Attempt(force_renewable=True), Renewal.MANDATORY),
    ("non-replayable without a master token", state(None), Needs(non_replayable=True), Attempt(),
     Renewal.MANDATORY),
    ("non-replayable with a master token", state(), Needs(non_replayable=True), Attempt(), Renewal.NONE),
    ("requesting tokens, master token held", state(), Needs(requesting_tokens=True), Attempt(), Renewal.NONE),
    ("requesting tokens without a master token", state(None), Needs(requesting_tokens=True), Attempt(),
     Renewal.MANDATORY),
    ("requesting tokens for a user without a token", state(), Needs(requesting_tokens=True, user=True), Attempt(),
     Renewal.MANDATORY),
    ("neither master token nor entity auth data", state(None, entity=None), Needs(), Attempt(),
     MslError.MESSAGE_ENTITY_NOT_FOUND),
]


@pytest.mark.parametrize(
    ("state_", "needs", "attempt", "expected"), [row[1:] for row in RENEWALS], ids=[row[0] for row in RENEWALS]
)
def test_renewal(state_: State[str, str], needs: Needs, attempt: Attempt, expected: Renewal | MslError) -> None:
    if isinstance(expected, MslError):
        with pytest.raises(MslMessageException) as info:
            renewal(state_, needs, attempt)
        assert info.value.error is expected
    else:
        assert renewal(state_, needs, attempt) is expected


# -- tokens --------------------------------------------------------------------------------

TOKENS: list[tuple[str, Held[str] | None, Needs, Attempt, tuple[Held[str] | None, Held[str] | None]]] = [
    ("master and user ID token", MT, Needs(user=True), Attempt(), (MT, UIT)),
    ("no user named: no user ID token", MT, Needs(), Attempt(), (MT, None)),
    ("entity re-authentication: neither", MT, Needs(user=True), Attempt(force_entity_auth=True), (None, None)),
    ("user re-authentication: fresh user auth data instead", MT, Needs(user=True), Attempt(user_auth=USER_AUTH),
     (MT, None)),
    ("no master token: no user ID token", None, Needs(user=True), Attempt(), (None, None)),
]


@pytest.mark.parametrize(
    ("newest", "needs", "attempt", "expected"), [row[1:] for row in TOKENS], ids=[row[0] for row in TOKENS]
)
def test_choose_tokens(
    newest: Held[str] | None, needs: Needs, attempt: Attempt, expected: tuple[Held[str] | None, Held[str] | None]
) -> None:
    assert choose_tokens(newest, UIT, needs, attempt) == expected


def test_after_wait_uses_a_newer_master_token_for_a_forced_resend() -> None:
    forced = Attempt(7, force_entity_auth=True, force_renewable=True, entity_reauth=ResponseCode.ENTITY_REAUTH)
    assert after_wait(forced, newer=False) is forced
    assert after_wait(forced, newer=True) == Attempt(7, entity_reauth=ResponseCode.ENTITY_REAUTH)


def test_needs_of_options() -> None:
    options = MessageOptions(user_id="alice", encrypted=False, non_replayable=True)
    assert Needs.of(options, empty=True) == Needs(
        encrypted=False, integrity_protected=True, non_replayable=True, user=True, empty=True
    )


# -- recovery ------------------------------------------------------------------------------

NEXT = 42  # the error response's message ID; the resend's is 43

# (code, facts) -> the resend, or None: reported to the application
RESENDS: list[tuple[ResponseCode, Failure, Attempt | None]] = [
    (ResponseCode.ENTITY_REAUTH, Failure(NEXT, master_token=True, entity_auth=True),
     Attempt(43, force_entity_auth=True, entity_reauth=ResponseCode.ENTITY_REAUTH)),
    (ResponseCode.ENTITYDATA_REAUTH, Failure(NEXT, entity_auth=True),
     Attempt(43, force_entity_auth=True, entity_reauth=ResponseCode.ENTITYDATA_REAUTH)),
    (ResponseCode.ENTITY_REAUTH, Failure(NEXT, master_token=True), None),
    (ResponseCode.USER_REAUTH, Failure(NEXT, user=True, user_auth=USER_AUTH), Attempt(43, user_auth=USER_AUTH)),
    (ResponseCode.USER_REAUTH, Failure(NEXT, user=True), None),
    (ResponseCode.USER_REAUTH, Failure(NEXT, user_auth=USER_AUTH), None),
    (ResponseCode.USERDATA_REAUTH, Failure(NEXT, user=True, user_auth=USER_AUTH), Attempt(43, user_auth=USER_AUTH)),
    (ResponseCode.SSOTOKEN_REJECTED, Failure(NEXT, user=True, user_auth=USER_AUTH),
     Attempt(43, user_auth=USER_AUTH)),
    (ResponseCode.KEYX_REQUIRED, Failure(NEXT, master_token=True),
     Attempt(43, force_entity_auth=True, force_renewable=True)),
    (ResponseCode.KEYX_REQUIRED, Failure(NEXT, key_exchange=True),
     Attempt(43, force_entity_auth=True, force_renewable=True)),
    (ResponseCode.KEYX_REQUIRED, Failure(NEXT), None),
    (ResponseCode.EXPIRED, Failure(NEXT, master_token=True, newest=True), Attempt(43, force_renewable=True)),
    (ResponseCode.EXPIRED, Failure(NEXT, master_token=True, newest=False), Attempt(43)),
    (ResponseCode.EXPIRED, Failure(NEXT), Attempt(43, force_renewable=True)),
    (ResponseCode.REPLAYED, Failure(NEXT, master_token=True), Attempt(43)),
    (ResponseCode.FAIL, Failure(NEXT, master_token=True, entity_auth=True, key_exchange=True), None),
    (ResponseCode.TRANSIENT_FAILURE, Failure(NEXT, master_token=True), None),
    (ResponseCode.REPLAYED, Failure(2**53), Attempt(0)),  # message IDs wrap around
]


@pytest.mark.parametrize(
    ("code", "failure", "expected"),
    RESENDS,
    ids=[f"{code.name}-{i}" for i, (code, _, _) in enumerate(RESENDS)],
)
def test_resend(code: ResponseCode, failure: Failure, expected: Attempt | None) -> None:
    assert resend(code, failure) == expected


# code -> (forget master token, forget user ID token, provider code for fresh user auth data)
RULES: dict[ResponseCode, tuple[bool, bool, ResponseCode | None]] = {
    ResponseCode.ENTITY_REAUTH: (True, False, None),
    ResponseCode.ENTITYDATA_REAUTH: (True, False, None),
    ResponseCode.USER_REAUTH: (False, True, None),
    ResponseCode.USERDATA_REAUTH: (False, True, ResponseCode.USERDATA_REAUTH),
    ResponseCode.SSOTOKEN_REJECTED: (False, False, ResponseCode.SSOTOKEN_REJECTED),
    ResponseCode.KEYX_REQUIRED: (False, False, None),
    ResponseCode.EXPIRED: (False, False, None),
    ResponseCode.REPLAYED: (False, False, None),
}


@pytest.mark.parametrize("code", list(ResponseCode), ids=lambda code: code.name)
def test_recovery_table(code: ResponseCode) -> None:
    rule = RECOVERY.get(code)
    if code not in RULES:
        assert rule is None and recovery_action(code) == REPORT
        assert resend(code, Failure(NEXT, master_token=True, entity_auth=True, user=True, key_exchange=True)) is None
        return
    assert rule is not None and recovery_action(code) == rule.action != REPORT
    assert (rule.forget_master_token, rule.forget_user_id_token, rule.user_reauth) == RULES[code]


# A recovery and the next message, end to end through the rules: (code, what the failed
# message used, facts) -> how the resend goes (the engine waits for the lock when the
# renewal is mandatory; the stored master token is still "mt" unless forgotten).
AFTER_ERRORS: list[tuple[ResponseCode, Failure, Held[str] | None, Renewal, Decision[str, str]]] = [
    (ResponseCode.KEYX_REQUIRED, Failure(NEXT, master_token=True), MT, Renewal.MANDATORY,
     sent(None, renewable=True, key_exchange=True)),
    (ResponseCode.ENTITY_REAUTH, Failure(NEXT, master_token=True, entity_auth=True), None, Renewal.WANTED,
     sent(None, renewable=True, key_exchange=True)),
    (ResponseCode.EXPIRED, Failure(NEXT, master_token=True, newest=True), MT, Renewal.MANDATORY,
     sent(renewable=True, key_exchange=True)),
    (ResponseCode.EXPIRED, Failure(NEXT, master_token=True), MT, Renewal.NONE, sent()),
    (ResponseCode.REPLAYED, Failure(NEXT, master_token=True), MT, Renewal.NONE, sent()),
    (ResponseCode.USER_REAUTH, Failure(NEXT, master_token=True, user=True, user_auth=USER_AUTH), MT, Renewal.WANTED,
     sent(user_auth=True, renewable=True)),
]


@pytest.mark.parametrize(
    ("code", "failure", "newest", "expected_renewal", "expected"),
    AFTER_ERRORS,
    ids=[f"{row[0].name}-{i}" for i, row in enumerate(AFTER_ERRORS)],
)
def test_the_message_after_an_error(
    code: ResponseCode,
    failure: Failure,
    newest: Held[str] | None,
    expected_renewal: Renewal,
    expected: Decision[str, str],
) -> None:
    attempt = resend(code, failure)
    assert attempt is not None and attempt.message_id == NEXT + 1
    needs = Needs(user=failure.user)
    master, user = choose_tokens(newest, UIT, needs, attempt)
    chosen = State(master, user, FULL, key_exchange=True)
    need = renewal(chosen, needs, attempt)
    assert need is expected_renewal
    user_auth = attempt.user_auth is not None
    assert decide(chosen, needs, attempt, renewable=need is not Renewal.NONE, user_auth=user_auth) == expected


# -- shared rules ----------------------------------------------------------------------------


def test_handshake_for_empty_payload() -> None:
    assert handshake_for_empty(None)
    assert handshake_for_empty(MT_EXPIRED)
    assert not handshake_for_empty(MT_RENEWABLE)
    assert handshake_for_empty(MT, force_renewable=True)


def test_keys_due() -> None:
    assert keys_due(None) and keys_due(MT_RENEWABLE) and keys_due(MT_EXPIRED)
    assert not keys_due(MT)
    assert keys_due(MT, non_replayable=True) and keys_due(MT, force_renewable=True)


def test_secrets_stay_out_of_reprs() -> None:
    assert "user1pwd" not in repr(Attempt(1, user_auth=USER_AUTH))
    assert "user1pwd" not in repr(Failure(1, user_auth=USER_AUTH))


# -- properties ------------------------------------------------------------------------------

_held = st.builds(Held, st.just("mt"), renewable=st.booleans(), expired=st.booleans())
_held_user = st.builds(Held, st.just("uit"), renewable=st.booleans())
_protection = st.builds(Protection, encrypts=st.booleans(), protects_integrity=st.booleans())
_states = st.builds(
    State,
    st.none() | _held,
    st.none() | _held_user,
    st.none() | _protection,
    key_exchange=st.booleans(),
)
_needs = st.builds(
    Needs,
    encrypted=st.booleans(),
    integrity_protected=st.booleans(),
    non_replayable=st.booleans(),
    requesting_tokens=st.booleans(),
    user=st.booleans(),
    empty=st.booleans(),
)
_attempts = st.builds(
    Attempt,
    st.none() | st.integers(0, 2**53),
    force_entity_auth=st.booleans(),
    force_renewable=st.booleans(),
    user_auth=st.none() | st.just(USER_AUTH),
)


def _consistent(chosen: State[str, str], needs: Needs) -> State[str, str]:
    # A user ID token is only ever chosen with a master token, for a named user.
    if chosen.master_token is None or not needs.user:
        return dataclasses.replace(chosen, user_id_token=None)
    return chosen


@settings(max_examples=400, deadline=None)
@given(_states, _needs, _attempts, st.booleans(), st.booleans())
def test_what_is_sent_meets_the_needs(
    chosen: State[str, str], needs: Needs, attempt: Attempt, renewable: bool, user_auth: bool
) -> None:
    chosen = _consistent(chosen, needs)
    try:
        decision = decide(chosen, needs, attempt, renewable=renewable, user_auth=user_auth)
    except MslMessageException as exc:
        assert exc.error in (MslError.HANDSHAKE_DATA_MISSING, MslError.MESSAGE_ENTITY_NOT_FOUND)
        return
    guarded = FULL if chosen.master_token is not None else chosen.entity
    assert guarded is not None
    assert decision.renewable >= renewable
    assert not decision.key_exchange or (decision.renewable and chosen.key_exchange)
    assert not decision.handshake or (decision.renewable and decision.key_exchange)
    # An empty payload never travels with key requests: it would read as a handshake.
    assert not (needs.empty and decision.key_exchange and not decision.handshake)
    # User credentials only under full protection, and only without a user ID token.
    assert not decision.user_auth or (guarded.full and decision.user_id_token is None and user_auth)
    if not decision.handshake:
        assert not needs_handshake(
            guarded, needs, master_token=decision.master_token is not None, user_auth=user_auth and needs.user
            and chosen.user_id_token is None,
        )
        assert guarded.encrypts or not needs.encrypted
        assert guarded.protects_integrity or not needs.integrity_protected
        assert decision.master_token is not None or not needs.non_replayable


@settings(max_examples=400, deadline=None)
@given(_states, _needs, _attempts, st.booleans())
def test_only_a_message_that_waits_for_the_lock_needs_a_handshake(
    chosen: State[str, str], needs: Needs, attempt: Attempt, user_auth: bool
) -> None:
    """The engine sends a message unrenewable unless it holds the renewal lock, and
    waits for the lock only when renewal is mandatory: so any other message must be
    sendable as it is."""
    chosen = _consistent(chosen, needs)
    try:
        need = renewal(chosen, needs, attempt)
    except MslMessageException as exc:
        assert exc.error is MslError.MESSAGE_ENTITY_NOT_FOUND
        return
    if need is not Renewal.MANDATORY:
        decision = decide(chosen, needs, attempt, renewable=False, user_auth=user_auth)
        assert not decision.handshake and not decision.renewable and not decision.key_exchange
