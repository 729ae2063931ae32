"""USER_ID_TOKEN: embedded tokens, error conversion, checks in the spec's order (userauth.md §3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from missile.authutils import ConfigurableAuthenticationUtils
from missile.clock import FixedClock
from missile.context import MslContext
from missile.crypto.null import ClientMslCryptoContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import decode, encode
from missile.engine.issuer import check_request
from missile.errors import MslError, MslException, MslInternalException, MslUserAuthException, ResponseCode
from missile.messages.header import HeaderData, MessageHeader
from missile.tokens import MasterToken, UserIdToken
from missile.tokens.factory import TokenFactory
from missile.tokens.state import MemoryTokenState
from missile.tokens.user import MslUser
from missile.userauth import USER_AUTH_SCHEMES, UserIdTokenAuthData, UserIdTokenAuthFactory, parse_user_auth_data

NOW_MS = 1_735_689_600_000
MSL = SymmetricCryptoContext("issuer", bytes(range(16)), bytes(range(16, 48)))
OTHER_MSL = SymmetricCryptoContext("other", bytes(range(1, 17)), bytes(range(17, 49)))
ALICE = MslUser("alice")


def make_ctx(
    msl: Any = MSL, *, auth_utils: ConfigurableAuthenticationUtils | None = None, token_factory: Any = None
) -> MslContext:
    """An issuer (or, with a client MSL crypto context, a client) context; the
    configuration is frozen, so a test wanting other hooks builds another context."""
    return MslContext(
        msl_crypto=msl,
        user_auth_factories={"USER_ID_TOKEN": UserIdTokenAuthFactory()},
        auth_utils=auth_utils or ConfigurableAuthenticationUtils(),
        token_factory=token_factory or TokenFactory(),
        clock=FixedClock(NOW_MS),
    )


def tokens(ctx: MslContext, identity: str = "client1", user: MslUser = ALICE) -> tuple[MasterToken, UserIdToken]:
    assert ctx.token_factory is not None
    master_token = ctx.token_factory.create_master_token(ctx, identity, bytes(range(50, 66)), bytes(range(66, 98)))
    return master_token, ctx.token_factory.create_user_id_token(ctx, user, master_token)


def wire(obj: dict[str, Any], ctx: MslContext) -> UserIdTokenAuthData:
    data = parse_user_auth_data(decode(encode(obj)), ctx, None)
    assert isinstance(data, UserIdTokenAuthData)
    return data


def authenticate(ctx: MslContext, data: UserIdTokenAuthData, entity: str = "client1", uit: Any = None) -> MslUser:
    return ctx.user_auth_factories["USER_ID_TOKEN"].authenticate(ctx, entity, data, uit)


def fails(error: MslError, fn: Any, *args: Any, **kw: Any) -> MslException:
    with pytest.raises(MslException) as info:
        fn(*args, **kw)
    assert info.value.error is error, info.value.error
    return info.value


def test_registered_and_round_trip() -> None:
    assert USER_AUTH_SCHEMES.get("USER_ID_TOKEN") is UserIdTokenAuthData
    ctx = make_ctx()
    master_token, uit = tokens(ctx)
    data = UserIdTokenAuthData(master_token, uit)
    obj = decode(encode(data.to_msl())).to_dict()
    assert set(obj["authdata"]) == {"mastertoken", "useridtoken"}
    parsed = wire(obj, ctx)
    assert parsed == data
    assert parsed.master_token.identity == "client1"
    assert authenticate(ctx, parsed) == ALICE


def test_constructor_requires_binding() -> None:
    ctx = make_ctx()
    _, uit1 = tokens(ctx)
    mt2, _ = tokens(ctx)
    with pytest.raises(MslInternalException):
        UserIdTokenAuthData(mt2, uit1)


def test_user_id_token_bound_to_another_master_token() -> None:
    ctx = make_ctx()
    _, uit1 = tokens(ctx)
    mt2, _ = tokens(ctx)
    obj = {"scheme": "USER_ID_TOKEN", "authdata": {"mastertoken": mt2.to_msl(), "useridtoken": uit1.to_msl()}}
    exc = fails(MslError.USERAUTH_USERIDTOKEN_INVALID, wire, obj, ctx)
    assert isinstance(exc, MslUserAuthException)
    assert exc.response_code.name == "USERDATA_REAUTH"
    assert isinstance(exc.__cause__, MslException)
    assert exc.__cause__.error is MslError.USERIDTOKEN_MASTERTOKEN_MISMATCH


def test_invalid_master_token() -> None:
    ctx = make_ctx()
    _, uit = tokens(ctx)
    bad = {"tokendata": "eyJ4IjoxfQ==", "signature": "AAAA"}
    obj = {"scheme": "USER_ID_TOKEN", "authdata": {"mastertoken": bad, "useridtoken": uit.to_msl()}}
    exc = fails(MslError.USERAUTH_MASTERTOKEN_INVALID, wire, obj, ctx)
    assert exc.response_code.name == "USERDATA_REAUTH"
    missing = {"scheme": "USER_ID_TOKEN", "authdata": {"useridtoken": uit.to_msl()}}
    fails(MslError.MSL_PARSE_ERROR, wire, missing, ctx)


def test_embedded_master_token_not_decrypted() -> None:
    issuer = make_ctx()
    data = UserIdTokenAuthData(*tokens(issuer))
    client = make_ctx(ClientMslCryptoContext())
    parsed = wire(data.to_msl(), client)  # parses, but cannot open the tokens
    assert not parsed.master_token.decrypted
    fails(MslError.USERAUTH_MASTERTOKEN_NOT_DECRYPTED, authenticate, client, parsed)


def test_entity_mismatch() -> None:
    ctx = make_ctx()
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    fails(MslError.USERAUTH_ENTITY_MISMATCH, authenticate, ctx, parsed, "client2")


def test_embedded_user_id_token_not_decrypted() -> None:
    ctx = make_ctx()
    master_token, _ = tokens(ctx)
    foreign_uit = UserIdToken.create(
        OTHER_MSL,
        renewal_window_ms=NOW_MS + 1000,
        expiration_ms=NOW_MS + 2000,
        master_token=master_token,
        serial_number=5,
        user=ALICE,
    )
    parsed = wire(UserIdTokenAuthData(master_token, foreign_uit).to_msl(), ctx)
    assert parsed.user_id_token.user is None
    fails(MslError.USERAUTH_USERIDTOKEN_NOT_DECRYPTED, authenticate, ctx, parsed)


def test_permissions_in_order() -> None:
    ctx = make_ctx()
    auth = ctx.auth_utils
    assert isinstance(auth, ConfigurableAuthenticationUtils)
    client = make_ctx(ClientMslCryptoContext(), auth_utils=auth)
    undecrypted = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), client)
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    auth.deny("client1", "USER_ID_TOKEN", ALICE)
    fails(MslError.USERAUTH_ENTITYUSER_INCORRECT_DATA, authenticate, ctx, parsed)
    auth.deny("client1", "USER_ID_TOKEN")
    exc = fails(MslError.USERAUTH_ENTITY_INCORRECT_DATA, authenticate, client, undecrypted)  # checked first
    assert exc.response_code.name == "FAIL"


def user_auth_header(data: UserIdTokenAuthData) -> MessageHeader:
    """A header carrying ``data`` as its user authentication data, as the reader returns it."""
    return MessageHeader(
        data=HeaderData(message_id=7, user_auth_data=data),
        master_token=None,
        entity_auth_data=None,
        crypto_context=MSL,
        headerdata=b"",
        signature=b"",
        encrypting=True,
    )


def issuer_check(ctx: MslContext, data: UserIdTokenAuthData) -> None:
    """The engine's issuer checks, which include the user ID token's revocation."""
    asyncio.run(check_request(ctx, user_auth_header(data)))


def test_revoked_user_id_token() -> None:
    ctx = make_ctx()
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    assert ctx.token_factory is not None
    issuer_check(ctx, parsed)  # not revoked yet
    asyncio.run(ctx.token_factory.revoke_user("alice"))
    # authenticate() needs no state; the issuer's checks (awaited by the engine) refuse.
    assert authenticate(ctx, parsed) == ALICE
    exc = fails(MslError.USERIDTOKEN_REVOKED, issuer_check, ctx, parsed)
    assert isinstance(exc, MslUserAuthException)
    assert exc.user_auth_data == parsed and exc.message_id == 7


def test_revoked_user_id_token_by_serial() -> None:
    ctx = make_ctx()
    master_token, uit = tokens(ctx)
    parsed = wire(UserIdTokenAuthData(master_token, uit).to_msl(), ctx)
    assert ctx.token_factory is not None
    asyncio.run(ctx.token_factory.revoke_user_id_token(uit.serial_number))
    exc = fails(MslError.USERIDTOKEN_REVOKED, issuer_check, ctx, parsed)
    assert isinstance(exc, MslUserAuthException)


class BrokenState(MemoryTokenState):
    """A token state whose revocation lookup fails with ``error``."""

    def __init__(self, error: MslError) -> None:
        super().__init__()
        self.error = error

    async def user_id_token_revoked(self, user: str | None, serial_number: int) -> bool:
        raise MslException(self.error, "lookup failed")


def test_revocation_check_error() -> None:
    ctx = make_ctx()
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    ctx = make_ctx(token_factory=TokenFactory(BrokenState(MslError.USERIDTOKEN_USERDATA_INVALID)))
    exc = fails(MslError.USERAUTH_USERIDTOKEN_REVOKE_CHECK_ERROR, issuer_check, ctx, parsed)
    assert isinstance(exc, MslUserAuthException)
    assert exc.user_auth_data == parsed


def test_revocation_check_error_keeps_its_cause() -> None:
    ctx = make_ctx()
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    ctx = make_ctx(token_factory=TokenFactory(BrokenState(MslError.USERIDTOKEN_USERDATA_INVALID)))
    exc = fails(MslError.USERAUTH_USERIDTOKEN_REVOKE_CHECK_ERROR, issuer_check, ctx, parsed)
    assert isinstance(exc.__cause__, MslException)
    assert exc.__cause__.error is MslError.USERIDTOKEN_USERDATA_INVALID


def test_unreachable_state_is_a_transient_failure() -> None:
    """A state that cannot answer is TRANSIENT_FAILURE (retry), not a user re-authentication."""
    ctx = make_ctx()
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    ctx = make_ctx(token_factory=TokenFactory(BrokenState(MslError.INTERNAL_EXCEPTION)))
    exc = fails(MslError.INTERNAL_EXCEPTION, issuer_check, ctx, parsed)
    assert exc.response_code is ResponseCode.TRANSIENT_FAILURE


def test_message_user_id_token_must_match() -> None:
    ctx = make_ctx()
    parsed = wire(UserIdTokenAuthData(*tokens(ctx)).to_msl(), ctx)
    _, bob_uit = tokens(ctx, user=MslUser("bob"))
    fails(MslError.USERIDTOKEN_USERAUTH_DATA_MISMATCH, authenticate, ctx, parsed, "client1", bob_uit)
    _, alice_uit = tokens(ctx)
    assert authenticate(ctx, parsed, "client1", alice_uit) == ALICE


def test_users_come_from_the_token_factory() -> None:
    class Upper(TokenFactory):
        def create_user(self, ctx: MslContext, user_data: str) -> MslUser:
            return MslUser(user_data.upper())

    ctx = make_ctx()
    obj = UserIdTokenAuthData(*tokens(ctx)).to_msl()
    ctx = make_ctx(token_factory=Upper())
    assert authenticate(ctx, wire(obj, ctx)) == MslUser("ALICE")
