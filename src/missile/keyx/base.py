"""Key exchange: request and response data, factories and the registry (keyx.md §1).

A key exchange scheme is a :class:`KeyRequestData` and a :class:`KeyResponseData`
subclass (registered by scheme name in :data:`KEY_REQUEST_SCHEMES` and
:data:`KEY_RESPONSE_SCHEMES`) plus one :class:`KeyExchangeFactory` that a context lists
in its preference order. The responder's factory issues or renews the master token and
protects the new session keys for the requester; the requester's factory recovers them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject
from missile.errors import MslError, MslKeyExchangeException
from missile.registry import SchemeRegistry
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.context import MslContext
    from missile.entityauth.base import EntityAuthData

__all__ = [
    "KEY_REQUEST_SCHEMES",
    "KEY_RESPONSE_SCHEMES",
    "KeyExchangeFactory",
    "KeyExchangeResult",
    "KeyRequestData",
    "KeyResponseData",
    "parse_key_request_data",
    "parse_key_response_data",
]

KEY_SCHEME = "scheme"
KEY_KEYDATA = "keydata"
KEY_MASTER_TOKEN = "mastertoken"


class KeyRequestData(ABC):
    """Key request data of one scheme: ``{"scheme": ..., "keydata": {...}}``."""

    scheme: ClassVar[str]
    """The scheme's wire name."""

    @abstractmethod
    def keydata(self) -> Mapping[str, Any]:
        """The scheme-specific ``keydata`` object."""

    @classmethod
    @abstractmethod
    def parse(cls, keydata: MslObject, ctx: MslContext) -> Self:
        """Parse ``keydata`` (as received by a responder: no private parts)."""

    def to_msl(self) -> dict[str, Any]:
        """The wire object."""
        return {KEY_SCHEME: self.scheme, KEY_KEYDATA: self.keydata()}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, KeyRequestData)
            and other.scheme == self.scheme
            and dict(other.keydata()) == dict(self.keydata())
        )

    def __hash__(self) -> int:
        return hash(self.scheme)


class KeyResponseData(ABC):
    """Key response data: ``{"mastertoken": ..., "scheme": ..., "keydata": {...}}``."""

    scheme: ClassVar[str]
    """The scheme's wire name."""

    master_token: MasterToken
    """The new (or renewed) master token holding the new session keys."""

    @abstractmethod
    def keydata(self) -> Mapping[str, Any]:
        """The scheme-specific ``keydata`` object."""

    @classmethod
    @abstractmethod
    def parse(cls, keydata: MslObject, master_token: MasterToken, ctx: MslContext) -> Self:
        """Parse ``keydata`` of a response carrying ``master_token``."""

    def to_msl(self) -> dict[str, Any]:
        """The wire object."""
        return {KEY_MASTER_TOKEN: self.master_token, KEY_SCHEME: self.scheme, KEY_KEYDATA: self.keydata()}


@dataclass(frozen=True)
class KeyExchangeResult:
    """What a responder's key exchange produces."""

    response: KeyResponseData
    """The key response data to send (it carries the new master token)."""
    crypto_context: CryptoContext
    """The session crypto context of the new master token."""


class KeyExchangeFactory(ABC):
    """Both sides of one key exchange scheme."""

    scheme: ClassVar[str]
    """The scheme's wire name."""

    @abstractmethod
    def generate_response(
        self,
        ctx: MslContext,
        request: KeyRequestData,
        *,
        master_token: MasterToken | None = None,
        entity_auth_data: EntityAuthData | None = None,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> KeyExchangeResult:
        """Responder: renew ``master_token`` or create one for ``entity_auth_data``
        (exactly one is given) with fresh session keys protected for the requester. The
        master token is issued in ``encoder_format``, the format of the response."""

    @abstractmethod
    def crypto_context(
        self,
        ctx: MslContext,
        request: KeyRequestData,
        response: KeyResponseData,
        master_token: MasterToken | None,
    ) -> CryptoContext:
        """Requester: recover the session keys of ``response`` to ``request`` (which holds
        the requester's private parts) and return their session crypto context.
        ``master_token`` is the header's master token, if any."""

    @staticmethod
    def check_permitted(ctx: MslContext, identity: str, scheme: str) -> None:
        """Every responder first checks the identity may use the scheme (keyx.md §1.1)."""
        if not ctx.auth_utils.is_scheme_permitted(identity, scheme):
            raise MslKeyExchangeException(MslError.KEYX_INCORRECT_DATA, f"{identity} may not use {scheme}")


KEY_REQUEST_SCHEMES: SchemeRegistry[KeyRequestData] = SchemeRegistry(
    "key exchange", MslError.UNIDENTIFIED_KEYX_SCHEME, MslKeyExchangeException
)
KEY_RESPONSE_SCHEMES: SchemeRegistry[KeyResponseData] = SchemeRegistry(
    "key exchange", MslError.UNIDENTIFIED_KEYX_SCHEME, MslKeyExchangeException
)


def parse_key_request_data(obj: MslObject, ctx: MslContext) -> KeyRequestData:
    """Parse one ``keyrequestdata`` object."""
    scheme = obj.get_string(KEY_SCHEME)
    cls = KEY_REQUEST_SCHEMES.get(scheme)
    if ctx.key_exchange_factory(scheme) is None:
        raise MslKeyExchangeException(MslError.KEYX_FACTORY_NOT_FOUND, scheme)
    return cls.parse(obj.get_object(KEY_KEYDATA), ctx)


def parse_key_response_data(obj: MslObject, ctx: MslContext) -> KeyResponseData:
    """Parse a ``keyresponsedata`` object, including its master token."""
    master_token = MasterToken.parse(obj.get_object(KEY_MASTER_TOKEN), ctx.msl_crypto, clock=ctx.clock)
    scheme = obj.get_string(KEY_SCHEME)
    cls = KEY_RESPONSE_SCHEMES.get(scheme)
    if ctx.key_exchange_factory(scheme) is None:
        raise MslKeyExchangeException(MslError.KEYX_FACTORY_NOT_FOUND, scheme)
    return cls.parse(obj.get_object(KEY_KEYDATA), master_token, ctx)
