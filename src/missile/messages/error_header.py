"""The error header (errors.md §1).

Always protected with the *sender's* entity authentication data, never a master token,
and never followed by payload chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from missile.context import MslContext
from missile.crypto.context import CryptoContext
from missile.encoding import EncoderFormat, MslObject, decode, encode, in_range
from missile.entityauth.base import EntityAuthData, parse_entity_auth_data
from missile.errors import MslError, MslException, MslMessageException, ResponseCode
from missile.messages.header import select_header_crypto_context

__all__ = ["ErrorHeader"]

KEY_ENTITY_AUTH_DATA = "entityauthdata"
KEY_ERROR_DATA = "errordata"
KEY_SIGNATURE = "signature"
KEY_TIMESTAMP = "timestamp"
KEY_MESSAGE_ID = "messageid"
KEY_ERROR_CODE = "errorcode"
KEY_INTERNAL_CODE = "internalcode"
KEY_ERROR_MESSAGE = "errormsg"
KEY_USER_MESSAGE = "usermsg"


@dataclass(frozen=True, eq=False)
class ErrorHeader:
    """An error header, built locally or received."""

    entity_auth_data: EntityAuthData
    """The error sender's entity authentication data."""
    message_id: int
    """Request message ID + 1 when known, else random."""
    error_code: ResponseCode
    """How the receiver should recover (unknown wire values read as FAIL)."""
    internal_code: int | None = None
    """Reference-style ``100000 + MslError code``, when given."""
    error_message: str | None = None
    """Developer-facing message."""
    user_message: str | None = None
    """User-facing (localised) message."""
    timestamp: int | None = None
    """Sender clock, seconds."""
    errordata: bytes = field(default=b"", repr=False)
    """The exact protected error-data bytes."""
    signature: bytes = field(default=b"", repr=False)
    """The signature over ``errordata``."""
    raw_error_code: int | None = None
    """The ``errorcode`` integer as received."""
    encoder_format: EncoderFormat = EncoderFormat.JSON
    """The format the error header is written in (or was received in)."""

    @property
    def error(self) -> MslError | None:
        """The MslError named by ``internal_code``, if it is one of the reference's."""
        return MslError.from_internal_code(self.internal_code) if self.internal_code is not None else None

    @classmethod
    def create(
        cls,
        ctx: MslContext,
        entity_auth_data: EntityAuthData,
        message_id: int,
        error_code: ResponseCode,
        *,
        internal_code: int | None = None,
        error_message: str | None = None,
        user_message: str | None = None,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> ErrorHeader:
        """Build and protect an error header, written in ``encoder_format``."""
        if not in_range(message_id):
            raise MslMessageException(MslError.MESSAGE_ID_OUT_OF_RANGE, str(message_id))
        crypto = select_header_crypto_context(ctx, None, entity_auth_data)
        timestamp = ctx.clock() // 1000
        fields: dict[str, Any] = {
            KEY_TIMESTAMP: timestamp,
            KEY_MESSAGE_ID: message_id,
            KEY_ERROR_CODE: int(error_code),
            KEY_INTERNAL_CODE: internal_code if internal_code is not None and internal_code > 0 else None,
            KEY_ERROR_MESSAGE: error_message,
            KEY_USER_MESSAGE: user_message,
        }
        errordata = crypto.encrypt_in_format(encode(fields, encoder_format), encoder_format)
        return cls(
            entity_auth_data=entity_auth_data,
            message_id=message_id,
            error_code=error_code,
            internal_code=internal_code,
            error_message=error_message,
            user_message=user_message,
            timestamp=timestamp,
            errordata=errordata,
            signature=crypto.sign(errordata),
            raw_error_code=int(error_code),
            encoder_format=encoder_format,
        )

    @classmethod
    def from_error(
        cls,
        ctx: MslContext,
        entity_auth_data: EntityAuthData,
        message_id: int,
        error: MslError,
        *,
        user_message: str | None = None,
        encoder_format: EncoderFormat = EncoderFormat.JSON,
    ) -> ErrorHeader:
        """An error header for an MslError, as the reference responds (errors.md §3)."""
        return cls.create(
            ctx,
            entity_auth_data,
            message_id,
            error.response_code,
            internal_code=error.internal_code,
            error_message=error.message,
            user_message=user_message,
            encoder_format=encoder_format,
        )

    def to_msl(self) -> dict[str, Any]:
        """The wire object."""
        return {
            KEY_ENTITY_AUTH_DATA: self.entity_auth_data,
            KEY_ERROR_DATA: self.errordata,
            KEY_SIGNATURE: self.signature,
        }

    def encode(self) -> bytes:
        """The encoded error header object."""
        return encode(self.to_msl(), self.encoder_format)

    @classmethod
    def parse(cls, ctx: MslContext, obj: MslObject) -> ErrorHeader:
        """Parse and authenticate a received error header."""
        if KEY_ENTITY_AUTH_DATA not in obj:
            raise MslMessageException(MslError.MESSAGE_ENTITY_NOT_FOUND)
        entity_auth_data = parse_entity_auth_data(obj.get_object(KEY_ENTITY_AUTH_DATA), ctx)
        try:
            errordata = obj.get_bytes(KEY_ERROR_DATA)
            signature = obj.get_bytes(KEY_SIGNATURE)
            if not errordata:
                raise MslMessageException(MslError.HEADER_DATA_MISSING)
            crypto: CryptoContext = select_header_crypto_context(ctx, None, entity_auth_data)
            if not crypto.verify(errordata, signature):
                raise MslMessageException(MslError.MESSAGE_VERIFICATION_FAILED)
            data = decode(crypto.decrypt(errordata))
            message_id = data.get_int(KEY_MESSAGE_ID)
            if not in_range(message_id):
                raise MslMessageException(MslError.MESSAGE_ID_OUT_OF_RANGE, str(message_id))
            timestamp = data.opt_int(KEY_TIMESTAMP)
            raw_code = data.get_int(KEY_ERROR_CODE)
            internal_code = data.opt_int(KEY_INTERNAL_CODE)
            if internal_code is not None and internal_code < 0:
                raise MslMessageException(MslError.INTERNAL_CODE_NEGATIVE, str(internal_code))
            # errormsg and usermsg are read leniently (encoding.md §1).
            raw = data.to_dict()
            error_message = raw.get(KEY_ERROR_MESSAGE)
            user_message = raw.get(KEY_USER_MESSAGE)
        except MslException as exc:
            exc.set_entity_auth_data(entity_auth_data)
            raise
        return cls(
            entity_auth_data=entity_auth_data,
            message_id=message_id,
            error_code=ResponseCode.from_wire(raw_code),
            internal_code=internal_code,
            error_message=error_message if isinstance(error_message, str) else None,
            user_message=user_message if isinstance(user_message, str) else None,
            timestamp=timestamp,
            errordata=errordata,
            signature=signature,
            raw_error_code=raw_code,
            encoder_format=EncoderFormat.MISSILE_CBOR if obj.binary else EncoderFormat.JSON,
        )
