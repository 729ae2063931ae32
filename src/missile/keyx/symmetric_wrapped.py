"""SYMMETRIC_WRAPPED key exchange (keyx.md §3).

Fresh session keys are RFC 3394 AES-key-wrapped with an existing key, named by ``keyid``:

* ``PSK``: the entity's pre-shared wrapping key Kpw (from a :class:`PskWrapKeyLookup`;
  none configured -> ``UNSUPPORTED_KEYX_KEY_ID``, unknown identity -> ``ENTITY_NOT_FOUND``).
* ``SESSION``: the crypto context of the current master token
  (``ctx.master_token_crypto_context``; no master token -> ``KEYX_MASTER_TOKEN_MISSING``).
  As in the reference, a session context has no wrapping key, so unless the stored
  context can wrap this fails with ``WRAP_NOT_SUPPORTED`` (responder) /
  ``UNWRAP_NOT_SUPPORTED`` (requester). Treat ``SESSION`` as unsupported for interop.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.context import CryptoContext
from missile.errors import MslError, MslKeyExchangeException
from missile.keyx import _common
from missile.keyx.base import (
    KEY_REQUEST_SCHEMES,
    KEY_RESPONSE_SCHEMES,
    KeyRequestData,
    KeyResponseData,
)
from missile.keyx.psk_lookup import PskWrapKeyLookup
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.context import MslContext
    from missile.encoding import MslObject

__all__ = [
    "SYMMETRIC_WRAPPED",
    "SymmetricWrappedKeyId",
    "SymmetricWrappedRequest",
    "SymmetricWrappedResponse",
    "SymmetricWrappedExchange",
]

SYMMETRIC_WRAPPED = "SYMMETRIC_WRAPPED"

KEY_KEY_ID = "keyid"
KEY_ENCRYPTION_KEY = "encryptionkey"
KEY_HMAC_KEY = "hmackey"


class SymmetricWrappedKeyId(StrEnum):
    """The ``keyid`` values (keyx.md §3)."""

    PSK = "PSK"
    SESSION = "SESSION"

    @classmethod
    def from_wire(cls, value: str) -> SymmetricWrappedKeyId:
        """Parse; unknown names raise ``UNIDENTIFIED_KEYX_KEY_ID``."""
        return _common.enum_from_wire(cls, value, MslError.UNIDENTIFIED_KEYX_KEY_ID)


@KEY_REQUEST_SCHEMES.register
class SymmetricWrappedRequest(KeyRequestData):
    """``{"keyid": "PSK" | "SESSION"}``."""

    scheme: ClassVar[str] = SYMMETRIC_WRAPPED

    def __init__(self, key_id: SymmetricWrappedKeyId | str) -> None:
        self.key_id = SymmetricWrappedKeyId.from_wire(str(key_id))

    def keydata(self) -> dict[str, Any]:
        return {KEY_KEY_ID: str(self.key_id)}

    @classmethod
    def parse(cls, keydata: MslObject, ctx: MslContext) -> Self:
        return cls(SymmetricWrappedKeyId.from_wire(keydata.get_string(KEY_KEY_ID)))

    def __repr__(self) -> str:
        return f"SymmetricWrappedRequest(keyid={self.key_id})"


@KEY_RESPONSE_SCHEMES.register
class SymmetricWrappedResponse(KeyResponseData):
    """``{"keyid", "encryptionkey", "hmackey"}`` with AES-KW wrapped raw session keys."""

    scheme: ClassVar[str] = SYMMETRIC_WRAPPED

    def __init__(
        self, master_token: MasterToken, key_id: SymmetricWrappedKeyId | str, encryption_key: bytes, hmac_key: bytes
    ) -> None:
        self.master_token = master_token
        self.key_id = SymmetricWrappedKeyId.from_wire(str(key_id))
        self.encryption_key = encryption_key
        """The wrapped session encryption key (24 bytes for AES-128)."""
        self.hmac_key = hmac_key
        """The wrapped session HMAC key (40 bytes for a 32-byte key)."""

    def keydata(self) -> dict[str, Any]:
        return {KEY_KEY_ID: str(self.key_id), KEY_ENCRYPTION_KEY: self.encryption_key, KEY_HMAC_KEY: self.hmac_key}

    @classmethod
    def parse(cls, keydata: MslObject, master_token: MasterToken, ctx: MslContext) -> Self:
        return cls(
            master_token,
            SymmetricWrappedKeyId.from_wire(keydata.get_string(KEY_KEY_ID)),
            keydata.get_bytes(KEY_ENCRYPTION_KEY),
            keydata.get_bytes(KEY_HMAC_KEY),
        )

    def __repr__(self) -> str:
        return f"SymmetricWrappedResponse(keyid={self.key_id}, master_token={self.master_token!r})"


class SymmetricWrappedExchange(_common.BuiltinKeyExchange[SymmetricWrappedRequest, SymmetricWrappedResponse]):
    """Both sides of SYMMETRIC_WRAPPED (keyx.md §3)."""

    scheme: ClassVar[str] = SYMMETRIC_WRAPPED
    request_class = SymmetricWrappedRequest
    response_class = SymmetricWrappedResponse

    def __init__(self, psk_lookup: PskWrapKeyLookup | None = None) -> None:
        self.psk_lookup = psk_lookup
        """Kpw by identity for key ID ``PSK`` (None: ``PSK`` is unsupported)."""

    def _wrap_context(
        self, ctx: MslContext, key_id: SymmetricWrappedKeyId, master_token: MasterToken | None, identity: str
    ) -> CryptoContext:
        if key_id is SymmetricWrappedKeyId.PSK:
            return _common.psk_wrap_context(self.psk_lookup, identity, MslError.UNSUPPORTED_KEYX_KEY_ID, str(key_id))
        if master_token is None:
            raise MslKeyExchangeException(MslError.KEYX_MASTER_TOKEN_MISSING, str(key_id))
        return ctx.master_token_crypto_context(master_token)

    def _respond(
        self, ctx: MslContext, req: SymmetricWrappedRequest, issuance: _common.Issuance
    ) -> SymmetricWrappedResponse:
        encryption_key, hmac_key = _common.new_session_keys(ctx)
        wrapper = self._wrap_context(ctx, req.key_id, issuance.master_token, issuance.identity)
        wrapped_enc = wrapper.wrap(encryption_key)
        wrapped_hmac = wrapper.wrap(hmac_key)
        new_token = issuance.issue(ctx, encryption_key, hmac_key)
        return SymmetricWrappedResponse(new_token, req.key_id, wrapped_enc, wrapped_hmac)

    def _recover(
        self,
        ctx: MslContext,
        req: SymmetricWrappedRequest,
        resp: SymmetricWrappedResponse,
        master_token: MasterToken | None,
    ) -> CryptoContext:
        if req.key_id is not resp.key_id:
            raise _common.mismatch("keyid")
        unwrapper = self._wrap_context(ctx, req.key_id, master_token, ctx.identity)
        encryption_key = unwrapper.unwrap(resp.encryption_key)
        hmac_key = unwrapper.unwrap(resp.hmac_key)
        return _common.requester_session_context(ctx, resp, encryption_key, hmac_key)
