"""User authentication: data, factories and the scheme registry (userauth.md §1).

A user authentication scheme is one :class:`UserAuthData` subclass registered with
``@USER_AUTH_SCHEMES.register`` plus one :class:`UserAuthFactory` a context is
configured with. The factory authenticates the data for the sending entity and returns
the :class:`~missile.tokens.user.MslUser`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from missile.encoding import MslObject
from missile.errors import MslError, MslInternalException, MslUserAuthException
from missile.registry import SchemeRegistry
from missile.tokens.master import MasterToken
from missile.tokens.user import MslUser
from missile.tokens.user_id import UserIdToken

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["USER_AUTH_SCHEMES", "UserAuthData", "UserAuthFactory", "parse_user_auth_data"]

KEY_SCHEME = "scheme"
KEY_AUTHDATA = "authdata"


class UserAuthData(ABC):
    """User authentication data of one scheme: ``{"scheme": ..., "authdata": {...}}``."""

    scheme: ClassVar[str]
    """The scheme's wire name."""

    @abstractmethod
    def authdata(self) -> Mapping[str, Any]:
        """The scheme-specific ``authdata`` object."""

    @classmethod
    @abstractmethod
    def parse(cls, authdata: MslObject, ctx: MslContext, master_token: MasterToken | None) -> Self:
        """Parse ``authdata``; ``master_token`` is the message's token-verification master token."""

    def to_msl(self) -> dict[str, Any]:
        """The wire object."""
        return {KEY_SCHEME: self.scheme, KEY_AUTHDATA: self.authdata()}

    def __repr__(self) -> str:
        # Never print credentials.
        return f"{type(self).__name__}(scheme={self.scheme!r})"


class UserAuthFactory(ABC):
    """The authenticating side of a user authentication scheme."""

    scheme: ClassVar[str]
    """The scheme's wire name."""

    @abstractmethod
    def authenticate(
        self,
        ctx: MslContext,
        entity_identity: str,
        data: UserAuthData,
        user_id_token: UserIdToken | None,
    ) -> MslUser:
        """Authenticate ``data`` sent by ``entity_identity``; raise a user-auth error on failure.

        When the message also carries ``user_id_token`` (decrypted), its user must be the
        authenticated user (USERIDTOKEN_USERAUTH_DATA_MISMATCH).
        """


_D = TypeVar("_D", bound=UserAuthData)


def expect_data(data: UserAuthData, cls: type[_D]) -> _D:
    """``data`` as ``cls``; a factory handed another scheme's data is a programming error."""
    if not isinstance(data, cls):
        raise MslInternalException(f"incorrect user authentication data type {type(data).__name__}")
    return data


def check_permitted(
    ctx: MslContext, entity_identity: str, scheme: str, data: UserAuthData, user: MslUser | None = None
) -> None:
    """The entity may use ``scheme`` (USERAUTH_ENTITY_INCORRECT_DATA), or with ``user`` the
    entity may use it for that user (USERAUTH_ENTITYUSER_INCORRECT_DATA)."""
    if user is None:
        if not ctx.auth_utils.is_scheme_permitted(entity_identity, scheme):
            raise MslUserAuthException(
                MslError.USERAUTH_ENTITY_INCORRECT_DATA, f"{entity_identity} may not use {scheme}"
            ).set_user_auth_data(data)
    elif not ctx.auth_utils.is_scheme_permitted(entity_identity, scheme, user):
        raise MslUserAuthException(
            MslError.USERAUTH_ENTITYUSER_INCORRECT_DATA, f"{entity_identity} may not use {scheme} for {user}"
        ).set_user_auth_data(data)


def check_user_id_token_user(user: MslUser, user_id_token: UserIdToken | None, data: UserAuthData) -> None:
    """A user ID token accompanying the data must name the same user (userauth.md §1)."""
    if user_id_token is not None and user_id_token.user != user:
        raise MslUserAuthException(
            MslError.USERIDTOKEN_USERAUTH_DATA_MISMATCH, f"uad user {user}; uit user {user_id_token.user}"
        ).set_user_auth_data(data)


USER_AUTH_SCHEMES: SchemeRegistry[UserAuthData] = SchemeRegistry(
    "user authentication", MslError.UNIDENTIFIED_USERAUTH_SCHEME, MslUserAuthException
)


def parse_user_auth_data(obj: MslObject, ctx: MslContext, master_token: MasterToken | None) -> UserAuthData:
    """Parse a ``userauthdata`` object: scheme lookup, factory check, the scheme's parser."""
    scheme = obj.get_string(KEY_SCHEME)
    cls = USER_AUTH_SCHEMES.get(scheme)
    if scheme not in ctx.user_auth_factories:
        raise MslUserAuthException(MslError.USERAUTH_FACTORY_NOT_FOUND, scheme)
    return cls.parse(obj.get_object(KEY_AUTHDATA), ctx, master_token)
