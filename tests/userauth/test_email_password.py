"""EMAIL_PASSWORD: parsing, Java trim, constant-time store, checks in the spec's order (userauth.md §2)."""

from __future__ import annotations

from typing import Any

import pytest

from missile.authutils import ConfigurableAuthenticationUtils
from missile.context import MslContext
from missile.crypto.symmetric import SymmetricCryptoContext
from missile.encoding import MslObject, decode, encode
from missile.errors import MslError, MslException, MslInternalException, MslUserAuthException
from missile.keyfile import KeyFile
from missile.tokens.factory import TokenFactory
from missile.tokens.user import MslUser
from missile.userauth import (
    USER_AUTH_SCHEMES,
    EmailPasswordAuthData,
    EmailPasswordAuthFactory,
    InMemoryEmailPasswordStore,
    UserIdTokenAuthFactory,
    java_trim,
    parse_user_auth_data,
    user_auth_from_keyfile,
)

ENTITY = "client1"


def make_ctx() -> MslContext:
    store = InMemoryEmailPasswordStore()
    store.add("user1@foo.com", "pässword", MslUser("user-1"))
    store.add("plain@foo.com", "pw")
    return MslContext(
        msl_crypto=SymmetricCryptoContext("issuer", bytes(16), bytes(32)),
        user_auth_factories={"EMAIL_PASSWORD": EmailPasswordAuthFactory(store)},
        auth_utils=ConfigurableAuthenticationUtils(),
        token_factory=TokenFactory(),
    )


def utils(ctx: MslContext) -> ConfigurableAuthenticationUtils:
    assert isinstance(ctx.auth_utils, ConfigurableAuthenticationUtils)
    return ctx.auth_utils


def authenticate(ctx: MslContext, email: str, password: str, **kw: Any) -> MslUser:
    data = EmailPasswordAuthData(email, password)
    parsed = parse_user_auth_data(decode(encode(data.to_msl())), ctx, None)
    assert parsed == data
    return ctx.user_auth_factories["EMAIL_PASSWORD"].authenticate(ctx, kw.get("entity", ENTITY), parsed, kw.get("uit"))


def fails(error: MslError, ctx: MslContext, email: str, password: str, **kw: Any) -> MslException:
    with pytest.raises(MslUserAuthException) as info:
        authenticate(ctx, email, password, **kw)
    assert info.value.error is error, info.value.error
    return info.value


def test_registered() -> None:
    assert USER_AUTH_SCHEMES.get("EMAIL_PASSWORD") is EmailPasswordAuthData


def test_wire_form_and_success() -> None:
    ctx = make_ctx()
    data = EmailPasswordAuthData("user1@foo.com", "pässword")
    assert decode(encode(data.to_msl())).to_dict() == {
        "scheme": "EMAIL_PASSWORD",
        "authdata": {"email": "user1@foo.com", "password": "pässword"},
    }
    assert authenticate(ctx, "user1@foo.com", "pässword") == MslUser("user-1")
    assert authenticate(ctx, "plain@foo.com", "pw") == MslUser("plain@foo.com")


def test_secrets_not_in_repr_or_errors() -> None:
    data = EmailPasswordAuthData("user1@foo.com", "s3cret-pw")
    assert "s3cret-pw" not in repr(data)
    exc = fails(MslError.EMAILPASSWORD_INCORRECT, make_ctx(), "user1@foo.com", "s3cret-pw")
    assert "s3cret-pw" not in str(exc)


def test_java_trim() -> None:
    assert java_trim("\x00 \t") == ""
    assert java_trim("\x01a b\x1f ") == "a b"
    assert java_trim("\u00a0a\u2003") == "\u00a0a\u2003"
    assert java_trim("") == ""


def test_values_are_trimmed_like_java() -> None:
    ctx = make_ctx()
    assert authenticate(ctx, " \tuser1@foo.com\r\n", "\x00pässword ") == MslUser("user-1")


@pytest.mark.parametrize(("email", "password"), [("\x00 \t", "pw"), ("plain@foo.com", " \x1f"), ("", "")])
def test_blank_after_trim(email: str, password: str) -> None:
    exc = fails(MslError.EMAILPASSWORD_BLANK, make_ctx(), email, password)
    assert exc.response_code.name == "USERDATA_REAUTH"


@pytest.mark.parametrize(
    ("email", "password"), [("\u00a0", "pw"), ("\u00a0plain@foo.com", "pw"), ("plain@foo.com", "pw\u3000")]
)
def test_non_ascii_whitespace_is_not_trimmed(email: str, password: str) -> None:
    fails(MslError.EMAILPASSWORD_INCORRECT, make_ctx(), email, password)


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("user1@foo.com", "password"),
        ("user1@foo.com", "pässwordx"),
        ("nobody@foo.com", "pässword"),
        ("USER1@foo.com", "pässword"),
    ],
)
def test_incorrect(email: str, password: str) -> None:
    fails(MslError.EMAILPASSWORD_INCORRECT, make_ctx(), email, password)


def test_scheme_not_permitted_for_entity_comes_first() -> None:
    ctx = make_ctx()
    utils(ctx).deny(ENTITY, "EMAIL_PASSWORD")
    exc = fails(MslError.USERAUTH_ENTITY_INCORRECT_DATA, ctx, "\x00", "")  # before the blank check
    assert exc.response_code.name == "FAIL"
    assert authenticate(ctx, "plain@foo.com", "pw", entity="other") == MslUser("plain@foo.com")


def test_scheme_not_permitted_for_entity_and_user() -> None:
    ctx = make_ctx()
    utils(ctx).deny(ENTITY, "EMAIL_PASSWORD", MslUser("user-1"))
    fails(MslError.EMAILPASSWORD_INCORRECT, ctx, "user1@foo.com", "bad")  # lookup comes first
    fails(MslError.USERAUTH_ENTITYUSER_INCORRECT_DATA, ctx, "user1@foo.com", "pässword")
    assert authenticate(ctx, "plain@foo.com", "pw") == MslUser("plain@foo.com")


def test_message_user_id_token_must_name_the_same_user() -> None:
    ctx = make_ctx()
    assert ctx.token_factory is not None
    master_token = ctx.token_factory.create_master_token(ctx, ENTITY, bytes(16), bytes(32))
    uit_other = ctx.token_factory.create_user_id_token(ctx, MslUser("someone-else"), master_token)
    fails(MslError.USERIDTOKEN_USERAUTH_DATA_MISMATCH, ctx, "user1@foo.com", "pässword", uit=uit_other)
    uit_same = ctx.token_factory.create_user_id_token(ctx, MslUser("user-1"), master_token)
    assert authenticate(ctx, "user1@foo.com", "pässword", uit=uit_same) == MslUser("user-1")


def test_parse_failures() -> None:
    ctx = make_ctx()
    for authdata in ({"email": "a"}, {"password": "b"}, {"email": 1, "password": "b"}):
        with pytest.raises(MslException) as info:
            parse_user_auth_data(MslObject({"scheme": "EMAIL_PASSWORD", "authdata": authdata}), ctx, None)
        assert info.value.error is MslError.MSL_PARSE_ERROR
    with pytest.raises(MslUserAuthException) as uinfo:
        parse_user_auth_data(MslObject({"scheme": "NETFLIXID", "authdata": {}}), ctx, None)
    assert uinfo.value.error is MslError.UNIDENTIFIED_USERAUTH_SCHEME
    with pytest.raises(MslUserAuthException) as uinfo:
        parse_user_auth_data(MslObject({"scheme": "USER_ID_TOKEN", "authdata": {}}), ctx, None)
    assert uinfo.value.error is MslError.USERAUTH_FACTORY_NOT_FOUND


def test_wrong_data_type() -> None:
    ctx = make_ctx()
    with pytest.raises(MslInternalException):
        EmailPasswordAuthFactory(InMemoryEmailPasswordStore()).authenticate(ctx, ENTITY, object(), None)  # type: ignore[arg-type]


def test_store_remove_and_user_auth_from_keyfile() -> None:
    store = InMemoryEmailPasswordStore()
    store.add("a@b", "pw")
    assert store.is_user("a@b", "pw") == MslUser("a@b")
    store.remove("a@b")
    assert store.is_user("a@b", "pw") is None
    keys = KeyFile.from_dict({"role": "server", "users": [{"email": "u@x", "password": "p", "user": "U"}]})
    factories = user_auth_from_keyfile(keys)
    assert isinstance(factories["USER_ID_TOKEN"], UserIdTokenAuthFactory)
    ctx = make_ctx()
    data = EmailPasswordAuthData("u@x", "p")
    assert factories["EMAIL_PASSWORD"].authenticate(ctx, ENTITY, data, None) == MslUser("U")
    assert set(user_auth_from_keyfile(KeyFile.from_dict({"role": "client"}))) == {"USER_ID_TOKEN"}
