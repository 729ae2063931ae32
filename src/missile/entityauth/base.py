"""Entity authentication: data, factories and the scheme registry (entityauth.md §1).

An entity authentication scheme is one :class:`EntityAuthData` subclass, registered
with ``@ENTITY_AUTH_SCHEMES.register``, plus one :class:`EntityAuthFactory` that a
context is configured with. The data class parses and encodes ``authdata``; the factory
authenticates it (revocation, permission, key lookup) and yields the crypto context.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from missile.crypto.context import CryptoContext
from missile.encoding import MslObject
from missile.errors import MslEntityAuthException, MslError, MslException, MslInternalException
from missile.registry import SchemeRegistry

if TYPE_CHECKING:
    from missile.context import MslContext

__all__ = ["ENTITY_AUTH_SCHEMES", "EntityAuthData", "EntityAuthFactory", "parse_entity_auth_data"]

KEY_SCHEME = "scheme"
KEY_AUTHDATA = "authdata"
KEY_IDENTITY = "identity"


class EntityAuthData(ABC):
    """Entity authentication data of one scheme: ``{"scheme": ..., "authdata": {...}}``."""

    scheme: ClassVar[str]
    """The scheme's wire name."""
    encrypts: ClassVar[bool]
    """Whether headers protected by this scheme are encrypted."""
    protects_integrity: ClassVar[bool]
    """Whether headers protected by this scheme are integrity protected."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """The entity identity this data claims."""

    @abstractmethod
    def authdata(self) -> Mapping[str, Any]:
        """The scheme-specific ``authdata`` object."""

    @classmethod
    @abstractmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        """Parse the ``authdata`` object (missing or mistyped fields: MSL_PARSE_ERROR)."""

    def to_msl(self) -> dict[str, Any]:
        """The wire object."""
        return {KEY_SCHEME: self.scheme, KEY_AUTHDATA: self.authdata()}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EntityAuthData)
            and other.scheme == self.scheme
            and dict(other.authdata()) == dict(self.authdata())
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.identity))


class EntityAuthFactory(ABC):
    """The authenticating side of a scheme: yields the crypto context for its data."""

    scheme: ClassVar[str]
    """The scheme's wire name."""

    @abstractmethod
    def crypto_context(self, ctx: MslContext, data: EntityAuthData) -> CryptoContext:
        """Authenticate ``data`` (revocation, permission, keys) and return its crypto context."""

    @staticmethod
    def check_entity(ctx: MslContext, identity: str, scheme: str) -> None:
        """The common revocation and permission checks (entityauth.md §1)."""
        if ctx.auth_utils.is_entity_revoked(identity):
            raise MslEntityAuthException(MslError.ENTITY_REVOKED, identity)
        if not ctx.auth_utils.is_scheme_permitted(identity, scheme):
            raise MslEntityAuthException(MslError.INCORRECT_ENTITYAUTH_DATA, f"{identity} may not use {scheme}")


class IdentityEntityAuthData(EntityAuthData):
    """``{"identity": string}``: the data of schemes that name just the entity (NONE, PSK)."""

    def __init__(self, identity: str) -> None:
        self._identity = identity

    @property
    def identity(self) -> str:
        return self._identity

    def authdata(self) -> Mapping[str, Any]:
        return {KEY_IDENTITY: self._identity}

    @classmethod
    def parse(cls, authdata: MslObject, ctx: MslContext) -> Self:
        return cls(authdata.get_string(KEY_IDENTITY))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(identity={self._identity!r})"


_D = TypeVar("_D", bound=EntityAuthData)


def expect_data(data: EntityAuthData, cls: type[_D]) -> _D:
    """``data`` as ``cls``; a factory handed another scheme's data is a programming error."""
    if not isinstance(data, cls):
        raise MslInternalException(f"incorrect entity authentication data type {type(data).__name__}")
    return data


def checked(ctx: MslContext, data: EntityAuthData, identity: str, scheme: str) -> None:
    """:meth:`EntityAuthFactory.check_entity` with ``data`` attached to the failure."""
    try:
        EntityAuthFactory.check_entity(ctx, identity, scheme)
    except MslException as e:
        e.set_entity_auth_data(data)
        raise


ENTITY_AUTH_SCHEMES: SchemeRegistry[EntityAuthData] = SchemeRegistry(
    "entity authentication", MslError.UNIDENTIFIED_ENTITYAUTH_SCHEME, MslEntityAuthException
)


def parse_entity_auth_data(obj: MslObject, ctx: MslContext) -> EntityAuthData:
    """Parse an ``entityauthdata`` object: scheme lookup, then the scheme's parser."""
    scheme = obj.get_string(KEY_SCHEME)
    cls = ENTITY_AUTH_SCHEMES.get(scheme)
    if scheme not in ctx.entity_auth_factories:
        raise MslEntityAuthException(MslError.ENTITYAUTH_FACTORY_NOT_FOUND, scheme)
    if not ctx.allows_insecure(scheme):
        raise MslEntityAuthException(
            MslError.INCORRECT_ENTITYAUTH_DATA, f"{scheme} entity authentication is not enabled"
        )
    return cls.parse(obj.get_object(KEY_AUTHDATA), ctx)
