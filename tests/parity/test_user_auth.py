"""User authentication failure cases the reference probes (UserAuthenticationDataTest,
UserIdTokenAuthenticationDataTest) beyond tests/userauth: the generic envelope and the
embedded user ID token of the USER_ID_TOKEN scheme."""

from __future__ import annotations

from typing import Any

import pytest

from missile.encoding import MslObject, decode, encode
from missile.errors import MslError
from missile.userauth import UserIdTokenAuthData, parse_user_auth_data
from userauth.test_user_id_token import make_ctx, tokens

from ._helpers import raises


@pytest.mark.parametrize(
    "obj",
    [
        {"authdata": {"email": "a", "password": "b"}},
        {"scheme": "USER_ID_TOKEN"},
        {"scheme": 1, "authdata": {}},
        {"scheme": "USER_ID_TOKEN", "authdata": "x"},
    ],
    ids=["noScheme", "noAuthdata", "scheme-mistyped", "authdata-not-object"],
)
def test_envelope(obj: dict[str, Any]) -> None:
    """UserAuthenticationDataTest: noScheme / noAuthdata."""
    raises(MslError.MSL_PARSE_ERROR, parse_user_auth_data, MslObject(obj), make_ctx(), None)


def _authdata(**changes: Any) -> MslObject:
    ctx = make_ctx()
    data: dict[str, Any] = decode(encode(UserIdTokenAuthData(*tokens(ctx)).to_msl())).to_dict()
    for key, value in changes.items():
        if value is None:
            del data["authdata"][key]
        else:
            data["authdata"][key] = value
    return MslObject(data)


def test_missing_user_id_token() -> None:
    """UserIdTokenAuthenticationDataTest.missingUserIdToken."""
    raises(MslError.MSL_PARSE_ERROR, parse_user_auth_data, _authdata(useridtoken=None), make_ctx(), None)


@pytest.mark.parametrize(
    "value",
    [{}, {"tokendata": "eyJ4IjoxfQ==", "signature": "AAAA"}, {"tokendata": "AAAA"}, "x"],
    ids=["empty-object", "garbage-token", "no-signature", "not-an-object"],
)
def test_invalid_user_id_token(value: Any) -> None:
    """UserIdTokenAuthenticationDataTest.invalidUserIdToken: a user ID token that does not
    parse is USERAUTH_USERIDTOKEN_INVALID (a non-object is a plain parse error)."""
    ctx = make_ctx()
    error = MslError.MSL_PARSE_ERROR if value == "x" else MslError.USERAUTH_USERIDTOKEN_INVALID
    raises(error, parse_user_auth_data, _authdata(useridtoken=value), ctx, None)


@pytest.mark.parametrize("value", [{}, {"tokendata": "AAAA"}], ids=["empty-object", "no-signature"])
def test_invalid_master_token(value: Any) -> None:
    """UserIdTokenAuthenticationDataTest.invalidMasterToken (an empty object)."""
    raises(MslError.USERAUTH_MASTERTOKEN_INVALID, parse_user_auth_data, _authdata(mastertoken=value), make_ctx(), None)
