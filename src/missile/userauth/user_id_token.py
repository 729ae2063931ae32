"""USER_ID_TOKEN user authentication (userauth.md §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.encoding import MslObject
from missile.errors import MslError, MslException, MslInternalException, MslUserAuthException
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser, UserFactory, default_user_factory
from missile.tokens.user_id import UserIdToken
from missile.userauth.base import (
    USER_AUTH_SCHEMES,
    UserAuthData,
    UserAuthFactory,
    check_permitted,
    check_user_id_token_user,
    expect_data,
)

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["UserIdTokenAuthData", "UserIdTokenAuthFactory"]

KEY_MASTER_TOKEN = "mastertoken"
KEY_USER_ID_TOKEN = "useridtoken"


def _user_factory(ctx: MslContext) -> UserFactory:
    token_factory = ctx.token_factory
    if token_factory is None:
        return default_user_factory
    return lambda identity: token_factory.create_user(ctx, identity)


@USER_AUTH_SCHEMES.register
class UserIdTokenAuthData(UserAuthData):
    """``{"mastertoken": token, "useridtoken": token}``: a user established elsewhere."""

    scheme: ClassVar[str] = "USER_ID_TOKEN"

    def __init__(self, master_token: MasterToken, user_id_token: UserIdToken) -> None:
        if not user_id_token.is_bound_to(master_token):
            raise MslInternalException("the user ID token must be bound to the master token")
        self.master_token = master_token
        self.user_id_token = user_id_token

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_MASTER_TOKEN: self.master_token, KEY_USER_ID_TOKEN: self.user_id_token}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext, master_token: MasterToken | None) -> Self:
        """Parse both tokens; their failures become USERAUTH_*_INVALID (userauth.md §3)."""
        token_obj = authdata.get_object(KEY_MASTER_TOKEN)
        uit_obj = authdata.get_object(KEY_USER_ID_TOKEN)
        try:
            embedded = MasterToken.parse(token_obj, ctx.msl_crypto, clock=ctx.clock)
        except MslException as e:
            raise MslUserAuthException(MslError.USERAUTH_MASTERTOKEN_INVALID, cause=e) from e
        try:
            user_id_token = UserIdToken.parse(
                uit_obj, ctx.msl_crypto, embedded, user_factory=_user_factory(ctx), clock=ctx.clock
            )
        except MslException as e:
            raise MslUserAuthException(MslError.USERAUTH_USERIDTOKEN_INVALID, cause=e) from e
        return cls(embedded, user_id_token)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UserIdTokenAuthData)
            and other.master_token == self.master_token
            and other.user_id_token == self.user_id_token
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.master_token, self.user_id_token))


class UserIdTokenAuthFactory(UserAuthFactory):
    """Authenticates the embedded tokens, checks in the spec's order (userauth.md §3)."""

    scheme: ClassVar[str] = UserIdTokenAuthData.scheme

    def authenticate(
        self,
        ctx: MslContext,
        entity_identity: str,
        data: UserAuthData,
        user_id_token: UserIdToken | None,
    ) -> MslUser:
        uad = expect_data(data, UserIdTokenAuthData)
        check_permitted(ctx, entity_identity, self.scheme, uad)
        embedded = uad.master_token
        if embedded.identity is None:
            raise MslUserAuthException(MslError.USERAUTH_MASTERTOKEN_NOT_DECRYPTED).set_user_auth_data(uad)
        if embedded.identity != entity_identity:
            raise MslUserAuthException(
                MslError.USERAUTH_ENTITY_MISMATCH, f"entity {entity_identity}; uad entity {embedded.identity}"
            ).set_user_auth_data(uad)
        user = uad.user_id_token.user
        if user is None:
            raise MslUserAuthException(MslError.USERAUTH_USERIDTOKEN_NOT_DECRYPTED).set_user_auth_data(uad)
        check_permitted(ctx, entity_identity, self.scheme, uad, user)
        # Whether the token is revoked is the issuer state's answer: the engine asks it
        # (missile.engine.issuer) before the message reaches the application.
        check_user_id_token_user(user, user_id_token, uad)
        return user
