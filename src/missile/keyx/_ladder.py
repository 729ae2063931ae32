"""The key ladder shared by JWE_LADDER and JWK_LADDER (keyx.md §5, §6).

Each exchange issues a new AES-128 wrapping key W with the session keys. W travels as a
JWK wrapped under the *old* wrapping key (Kpw for mechanism ``PSK``, the previous W for
``WRAP``); the session key JWKs are wrapped under W; ``wrapdata`` is W wrapped by the
responder's MSL crypto context, echoed by the requester's next ``WRAP`` request. The two
schemes differ only in how a key wraps a JWK (JWE JSON vs. padded AES-KW) and in the JWK
members, supplied by the subclasses.
"""

from __future__ import annotations

from abc import abstractmethod
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from missile.crypto.context import CryptoContext
from missile.crypto.jwk import JsonWebKey, session_encryption_jwk, session_hmac_jwk
from missile.errors import MslCryptoException, MslEncodingException, MslError, MslKeyExchangeException
from missile.keyx import _common
from missile.keyx.base import KeyRequestData, KeyResponseData
from missile.keyx.psk_lookup import PskWrapKeyLookup
from missile.keyx.repository import WrapCryptoContextRepository
from missile.tokens.master import MasterToken

if TYPE_CHECKING:
    from missile.context import MslContext
    from missile.encoding import MslObject

KEY_MECHANISM = "mechanism"
KEY_WRAPDATA = "wrapdata"
KEY_WRAP_KEY = "wrapkey"
KEY_ENCRYPTION_KEY = "encryptionkey"
KEY_HMAC_KEY = "hmackey"

WRAP_KEY_LENGTH = 16


class LadderMechanism(StrEnum):
    """How the new wrapping key is protected: Kpw (``PSK``) or the previous key (``WRAP``)."""

    PSK = "PSK"
    WRAP = "WRAP"

    @classmethod
    def from_wire(cls, value: str) -> LadderMechanism:
        """Parse; unknown names (including the Javadoc's ``MGK``) raise ``UNIDENTIFIED_KEYX_MECHANISM``."""
        return _common.enum_from_wire(cls, value, MslError.UNIDENTIFIED_KEYX_MECHANISM)


class LadderRequest(KeyRequestData):
    """``{"mechanism", "wrapdata"?}``; ``wrapdata`` is required (non-empty) for ``WRAP``."""

    def __init__(self, mechanism: LadderMechanism | str, wrapdata: bytes | None = None) -> None:
        self.mechanism = LadderMechanism.from_wire(str(mechanism))
        if self.mechanism is LadderMechanism.WRAP:
            if not wrapdata:
                raise MslKeyExchangeException(MslError.KEYX_WRAPPING_KEY_MISSING, "WRAP without wrapdata")
            self.wrapdata: bytes | None = bytes(wrapdata)
        else:
            self.wrapdata = None

    def keydata(self) -> dict[str, Any]:
        out: dict[str, Any] = {KEY_MECHANISM: str(self.mechanism)}
        if self.wrapdata is not None:
            out[KEY_WRAPDATA] = self.wrapdata
        return out

    @classmethod
    def parse(cls, keydata: MslObject, ctx: MslContext) -> Self:
        mechanism = LadderMechanism.from_wire(keydata.get_string(KEY_MECHANISM))
        wrapdata = keydata.get_bytes(KEY_WRAPDATA) if mechanism is LadderMechanism.WRAP else None
        return cls(mechanism, wrapdata)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mechanism={self.mechanism})"


class LadderResponse(KeyResponseData):
    """``{"wrapkey", "wrapdata", "encryptionkey", "hmackey"}``, all required."""

    def __init__(
        self, master_token: MasterToken, wrap_key: bytes, wrapdata: bytes, encryption_key: bytes, hmac_key: bytes
    ) -> None:
        self.master_token = master_token
        self.wrap_key = wrap_key
        """The new wrapping key JWK, wrapped under the old wrapping key."""
        self.wrapdata = wrapdata
        """Opaque: the new wrapping key wrapped by the responder's MSL crypto context."""
        self.encryption_key = encryption_key
        """The session encryption key JWK, wrapped under the new wrapping key."""
        self.hmac_key = hmac_key
        """The session HMAC key JWK, wrapped under the new wrapping key."""

    def keydata(self) -> dict[str, Any]:
        return {
            KEY_WRAP_KEY: self.wrap_key,
            KEY_WRAPDATA: self.wrapdata,
            KEY_ENCRYPTION_KEY: self.encryption_key,
            KEY_HMAC_KEY: self.hmac_key,
        }

    @classmethod
    def parse(cls, keydata: MslObject, master_token: MasterToken, ctx: MslContext) -> Self:
        return cls(
            master_token,
            keydata.get_bytes(KEY_WRAP_KEY),
            keydata.get_bytes(KEY_WRAPDATA),
            keydata.get_bytes(KEY_ENCRYPTION_KEY),
            keydata.get_bytes(KEY_HMAC_KEY),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(master_token={self.master_token!r})"


def _parse_jwk(data: bytes) -> bytes:
    """The ``k`` bytes of an unwrapped JWK; failures are ``INVALID_JWK`` (keyx.md §5)."""
    try:
        return JsonWebKey.parse(data).secret_key()
    except (MslEncodingException, MslCryptoException) as exc:
        raise MslKeyExchangeException(MslError.INVALID_JWK, "unwrapped data is not a symmetric JWK") from exc


class LadderExchange(_common.BuiltinKeyExchange[LadderRequest, LadderResponse]):
    """Both sides of a key ladder; subclasses fix the wrapping format."""

    session_jwk_key_ops: ClassVar[bool]
    """True: session JWKs carry ``key_ops``; False: ``use``."""

    def __init__(
        self, psk_lookup: PskWrapKeyLookup | None = None, repository: WrapCryptoContextRepository | None = None
    ) -> None:
        self.psk_lookup = psk_lookup
        """Kpw by identity for mechanism ``PSK`` (None: ``PSK`` is unsupported)."""
        self.repository = repository
        """Requester's wrapping keys; None means ``ctx.wrap_repository``."""

    @abstractmethod
    def key_context(self, ctx: MslContext, key: bytes | CryptoContext) -> CryptoContext:
        """The context that wraps JWKs under ``key`` (raw AES key or an AES-KW context)."""

    @abstractmethod
    def wrapping_jwk(self, ctx: MslContext, wrap_key: bytes) -> JsonWebKey:
        """The JWK of a new wrapping key."""

    def _repository(self, ctx: MslContext) -> WrapCryptoContextRepository | None:
        return self.repository if self.repository is not None else ctx.wrap_repository

    def _respond(self, ctx: MslContext, req: LadderRequest, issuance: _common.Issuance) -> LadderResponse:
        # Old wrapping key first: a bad request fails before anything is drawn or issued.
        if req.mechanism is LadderMechanism.PSK:
            kpw = _common.psk_wrap_context(
                self.psk_lookup, issuance.identity, MslError.UNSUPPORTED_KEYX_MECHANISM, "PSK"
            )
            old_context = self.key_context(ctx, kpw)
        else:
            assert req.wrapdata is not None
            previous = ctx.msl_crypto.unwrap(req.wrapdata)
            if not previous:
                raise MslKeyExchangeException(MslError.KEYX_WRAPPING_KEY_MISSING, "wrapdata holds no key")
            old_context = self.key_context(ctx, previous)
        wrap_jwk = self.wrapping_jwk(ctx, ctx.random.random_bytes(WRAP_KEY_LENGTH))
        new_wrap_key = wrap_jwk.secret_key()
        wrapdata = ctx.msl_crypto.wrap(new_wrap_key)
        encryption_key, hmac_key = _common.new_session_keys(ctx)
        wrapped_wrap_key = old_context.wrap(wrap_jwk.encode())
        new_context = self.key_context(ctx, new_wrap_key)
        key_ops = self.session_jwk_key_ops
        wrapped_enc = new_context.wrap(session_encryption_jwk(encryption_key, with_key_ops=key_ops).encode())
        wrapped_hmac = new_context.wrap(session_hmac_jwk(hmac_key, with_key_ops=key_ops).encode())
        new_token = issuance.issue(ctx, encryption_key, hmac_key)
        return self.response_class(new_token, wrapped_wrap_key, wrapdata, wrapped_enc, wrapped_hmac)

    def _recover(
        self, ctx: MslContext, req: LadderRequest, resp: LadderResponse, master_token: MasterToken | None
    ) -> CryptoContext:
        repository = self._repository(ctx)
        if req.mechanism is LadderMechanism.PSK:
            kpw = _common.psk_wrap_context(self.psk_lookup, ctx.identity, MslError.UNSUPPORTED_KEYX_MECHANISM, "PSK")
            old_context = self.key_context(ctx, kpw)
        else:
            assert req.wrapdata is not None
            stored = repository.get_crypto_context(req.wrapdata) if repository is not None else None
            if stored is None:
                raise MslKeyExchangeException(MslError.KEYX_WRAPPING_KEY_MISSING, "no wrapping key for wrapdata")
            old_context = stored
        new_wrap_key = _parse_jwk(old_context.unwrap(resp.wrap_key))
        new_context = self.key_context(ctx, new_wrap_key)
        encryption_key = _parse_jwk(new_context.unwrap(resp.encryption_key))
        hmac_key = _parse_jwk(new_context.unwrap(resp.hmac_key))
        session = _common.requester_session_context(ctx, resp, encryption_key, hmac_key)
        # keyx.md §5 step 4: remember the new wrapping key, then forget the old one.
        if repository is not None:
            repository.add_crypto_context(resp.wrapdata, new_context)
            if req.wrapdata is not None and req.wrapdata != resp.wrapdata:
                repository.remove_crypto_context(req.wrapdata)
        return session
