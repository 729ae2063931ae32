"""Steps shared by the built-in key exchange schemes (keyx.md §1.1, §1.2)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from missile.crypto.context import CryptoContext
from missile.crypto.symmetric import SessionCryptoContext
from missile.encoding import EncoderFormat
from missile.errors import (
    MslEntityAuthException,
    MslError,
    MslInternalException,
    MslKeyExchangeException,
    MslMasterTokenException,
)
from missile.keyx.base import KeyExchangeFactory, KeyExchangeResult, KeyRequestData, KeyResponseData
from missile.keyx.psk_lookup import PskWrapKeyLookup
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.context import MslContext
    from missile.entityauth.base import EntityAuthData

AES_KEY_LENGTH = 16
HMAC_KEY_LENGTH = 32

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)
_Req = TypeVar("_Req", bound=KeyRequestData)
_Resp = TypeVar("_Resp", bound=KeyResponseData)


def enum_from_wire(cls: type[_E], value: str, unknown: MslError) -> _E:
    """The member of ``cls`` named ``value``; an unknown name raises ``unknown``."""
    try:
        return cls(value)
    except ValueError:
        raise MslKeyExchangeException(unknown, repr(value)) from None


def expect_type(value: object, cls: type[_T], what: str) -> _T:
    """Key request/response data handed to a factory must be of that factory's scheme."""
    if not isinstance(value, cls):
        raise MslInternalException(f"{what} {type(value).__name__} was not created by this factory")
    return value


def responder_identity(
    ctx: MslContext,
    scheme: str,
    master_token: MasterToken | None,
    entity_auth_data: EntityAuthData | None,
) -> str:
    """The identity a responder issues for (keyx.md §1.1).

    Renewal needs a master token issued (verified and decrypted) by this network, else
    ``MASTERTOKEN_UNTRUSTED``; then the identity must be permitted to use ``scheme``
    (``KEYX_INCORRECT_DATA``).
    """
    if (master_token is None) == (entity_auth_data is None):
        raise MslInternalException("exactly one of master_token and entity_auth_data is required")
    if master_token is not None:
        if not master_token.verified or master_token.identity is None:
            raise MslMasterTokenException(MslError.MASTERTOKEN_UNTRUSTED).set_master_token(master_token)
        identity = master_token.identity
    else:
        assert entity_auth_data is not None
        identity = entity_auth_data.identity
    try:
        KeyExchangeFactory.check_permitted(ctx, identity, scheme)
    except MslKeyExchangeException as exc:
        if master_token is not None:
            exc.set_master_token(master_token)
        else:
            exc.set_entity_auth_data(entity_auth_data)
        raise
    return identity


def new_session_keys(ctx: MslContext) -> tuple[bytes, bytes]:
    """Fresh AES-128 and HMAC-SHA256 session keys from ``ctx.random`` (keyx.md §1.1)."""
    return ctx.random.random_bytes(AES_KEY_LENGTH), ctx.random.random_bytes(HMAC_KEY_LENGTH)


def requester_session_context(
    ctx: MslContext, response: KeyResponseData, encryption_key: bytes, hmac_key: bytes
) -> SessionCryptoContext:
    """The requester's session context: key ID ``"<local identity>_<seq>"`` (keyx.md §1.2)."""
    identity = ctx.identity or None
    return SessionCryptoContext(
        identity, response.master_token.sequence_number, encryption_key, hmac_key, random=ctx.random
    )


def mismatch(what: str) -> MslKeyExchangeException:
    """``KEYX_RESPONSE_REQUEST_MISMATCH`` naming the differing field."""
    return MslKeyExchangeException(MslError.KEYX_RESPONSE_REQUEST_MISMATCH, f"{what} differs")


def psk_wrap_context(lookup: PskWrapKeyLookup | None, identity: str, unsupported: MslError, name: str) -> CryptoContext:
    """Kpw of ``identity``: no lookup configured -> ``unsupported``; unknown identity ->
    ``ENTITY_NOT_FOUND`` (what the reference's PSK factory raises)."""
    if lookup is None:
        raise MslKeyExchangeException(unsupported, name)
    context = lookup.wrap_crypto_context(identity)
    if context is None:
        raise MslEntityAuthException(MslError.ENTITY_NOT_FOUND, f"no PSK key set for {identity}")
    return context


def check_request(request: KeyRequestData, response: KeyResponseData) -> None:
    """Schemes of a request and response handed to one factory must agree."""
    if request.scheme != response.scheme:
        raise mismatch("scheme")


@dataclass(frozen=True)
class Issuance:
    """Whom a responder issues for: the checked identity, and the master token to renew
    or the entity authentication data to create one for (exactly one is given)."""

    identity: str
    master_token: MasterToken | None
    entity_auth_data: EntityAuthData | None
    encoder_format: EncoderFormat = EncoderFormat.JSON
    """The format of the response, and so of the master token issued."""

    def issue(self, ctx: MslContext, encryption_key: bytes, hmac_key: bytes) -> MasterToken:
        """Renew the master token or create one for the entity with the new session keys."""
        factory = ctx.token_factory
        if factory is None:
            raise MslInternalException("the responder has no token factory")
        if self.master_token is not None:
            return factory.renew_master_token(
                ctx, self.master_token, encryption_key, hmac_key, encoder_format=self.encoder_format
            )
        assert self.entity_auth_data is not None
        return factory.create_master_token(
            ctx, self.entity_auth_data.identity, encryption_key, hmac_key, encoder_format=self.encoder_format
        )


class BuiltinKeyExchange(KeyExchangeFactory, Generic[_Req, _Resp]):
    """The steps every built-in scheme takes around its own (keyx.md §1.1, §1.2).

    Responder: the request must be of :attr:`request_class` and the identity permitted
    (:func:`responder_identity`); the result carries the response's session context.
    Requester: request and response must be of this scheme's classes. Subclasses
    protect the session keys in :meth:`_respond` and recover them in :meth:`_recover`.
    """

    request_class: type[_Req]
    response_class: type[_Resp]

    def generate_response(
        self,
        ctx: MslContext,
        request: KeyRequestData,
        *,
        master_token: MasterToken | None = None,
        entity_auth_data: EntityAuthData | None = None,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> KeyExchangeResult:
        req = expect_type(request, self.request_class, "key request data")
        identity = responder_identity(ctx, self.scheme, master_token, entity_auth_data)
        issuance = Issuance(identity, master_token, entity_auth_data, encoder_format)
        response = self._respond(ctx, req, issuance)
        return KeyExchangeResult(response, ctx.session_crypto_context(response.master_token))

    def crypto_context(
        self,
        ctx: MslContext,
        request: KeyRequestData,
        response: KeyResponseData,
        master_token: MasterToken | None,
    ) -> CryptoContext:
        check_request(request, response)
        req = expect_type(request, self.request_class, "key request data")
        resp = expect_type(response, self.response_class, "key response data")
        return self._recover(ctx, req, resp, master_token)

    @abstractmethod
    def _respond(self, ctx: MslContext, req: _Req, issuance: Issuance) -> _Resp:
        """Fresh session keys protected for the requester, in a response carrying the
        master token issued with them (:meth:`Issuance.issue`)."""

    @abstractmethod
    def _recover(self, ctx: MslContext, req: _Req, resp: _Resp, master_token: MasterToken | None) -> CryptoContext:
        """The session keys of ``resp`` and their context (:func:`requester_session_context`)."""
